// The engine between gRPC and DynamoDB, driven by a FakeClock and a
// FakeWriter: when batches are cut (linger, 25 items, Flush), what happens to
// unprocessed items, which outcome reaches which sink, and the drain.

#include "service/engine/engine.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/metrics/metrics.h"
#include "tests/support/fake_writer.h"

namespace dynamo_batcher {
namespace {

using ::testing::ElementsAre;
using testing_util::FakeCall;
using testing_util::FakeWriter;
using testing_util::FatalResponse;
using testing_util::ThrottledResponse;
using testing_util::UnprocessedResponse;
using testing_util::WrittenResponse;

const std::string kEvents = "events";
constexpr absl::Duration kLinger = absl::Seconds(1);

// Collects the results delivered to it; tests wait for them in real time
// (the engine runs on its own thread).
class RecordingSink : public ResultSink {
 public:
  void Deliver(OpResult result) override {
    absl::MutexLock lock(&mu_);
    results_[result.op.id] = std::move(result);
  }
  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return results_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return results_.size();
  }
  // The result of op `id`; the op must have one.
  OpResult Get(uint64_t id) {
    absl::MutexLock lock(&mu_);
    auto it = results_.find(id);
    EXPECT_NE(it, results_.end()) << "no result for op " << id;
    return it == results_.end() ? OpResult{} : it->second;
  }

 private:
  absl::Mutex mu_;
  std::map<uint64_t, OpResult> results_ ABSL_GUARDED_BY(mu_);
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : metrics_({kEvents}) {}
  ~EngineTest() override {
    if (engine_) engine_->Stop();
  }

  void StartEngine(EngineOptions options = DefaultOptions()) {
    std::vector<EngineTable> tables(1);
    tables[0].schema.name = kEvents;
    tables[0].schema.partition_key = {"pk", KeyType::kS};
    engine_ = std::make_unique<Engine>(tables, options, &writer_, &metrics_, &clock_);
    ASSERT_TRUE(engine_->Start().ok());
  }

  static EngineOptions DefaultOptions() {
    EngineOptions o;
    o.batching.linger = kLinger;
    o.batching.rng_seed = 1;
    o.retry.base = absl::Milliseconds(100);
    o.retry.cap = absl::Seconds(1);
    o.inflight_grace = absl::Milliseconds(200);
    return o;
  }

  Op MakeOp(uint64_t id, const std::string& key) {
    Op op;
    op.id = id;
    op.table = &kEvents;
    op.sink = sink_;
    op.write.key = key;
    op.write.request_json = absl::StrCat(R"({"PutRequest":{"Item":{"pk":{"S":")", key,
                                         R"("},"id":{"N":")", id, R"("}}}})");
    op.write.item_size = op.write.request_json.size();
    op.arrival = clock_.Now();
    return op;
  }

  // Reserves the ops' bytes, as the server does, and submits them.
  void Submit(std::vector<Op> ops) {
    uint64_t bytes = 0;
    for (const Op& op : ops) bytes += op.MemoryBytes();
    ASSERT_TRUE(engine_->TryReserve(0, bytes));
    engine_->Submit(0, std::move(ops));
  }
  // Ops 1..n on keys k1..kn.
  void SubmitDistinct(int n, int first_id = 1) {
    std::vector<Op> ops;
    for (int i = first_id; i < first_id + n; ++i) ops.push_back(MakeOp(i, absl::StrCat("k", i)));
    Submit(std::move(ops));
  }

  // The engine counts an op as pending until it has handed the op's result to
  // its sink (Deliver/DeliverAll returned), so a sink may hold a result a
  // moment before pending_ops() drops: wait for it, bounded.
  bool WaitForNoPendingOps(absl::Duration timeout = absl::Seconds(10)) {
    absl::Time give_up = absl::Now() + timeout;
    while (engine_->pending_ops() != 0) {
      if (absl::Now() > give_up) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }

  void Advance(absl::Duration d) {
    clock_.AdvanceTime(d);
    engine_->Poke();
  }

  Metrics metrics_;
  FakeClock clock_;
  FakeWriter writer_;
  std::shared_ptr<RecordingSink> sink_ = std::make_shared<RecordingSink>();
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, PartialBatchWaitsForLingerThenGoesOut) {
  StartEngine();
  SubmitDistinct(3);
  // No fake time passed: nothing may be sent, however long we wait.
  EXPECT_FALSE(writer_.WaitForPending(1, absl::Milliseconds(300)));
  Advance(kLinger - absl::Milliseconds(1));
  EXPECT_FALSE(writer_.WaitForPending(1, absl::Milliseconds(200)));
  Advance(absl::Milliseconds(1));
  ASSERT_TRUE(writer_.WaitForPending(1));
  FakeCall call = writer_.TakeNext();
  EXPECT_EQ(call.table, kEvents);
  EXPECT_EQ(call.items(), 3u);
  EXPECT_TRUE(call.Contains(R"("RequestItems":{"events":[)")) << call.body;
  call.Answer(WrittenResponse());
  ASSERT_TRUE(sink_->WaitFor(3));
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(sink_->Get(id).outcome, Outcome::kWritten);
    EXPECT_EQ(sink_->Get(id).op.attempts, 1u);
  }
}

TEST_F(EngineTest, TwentyFiveItemsGoOutAtOnceWithoutWaitingForLinger) {
  StartEngine();
  SubmitDistinct(60);
  // Two full calls without any fake time passing; the 10 left linger.
  ASSERT_TRUE(writer_.WaitForPending(2));
  EXPECT_FALSE(writer_.WaitForPending(3, absl::Milliseconds(300)));
  EXPECT_THAT(writer_.call_sizes(), ElementsAre(25u, 25u));
  Advance(kLinger);
  ASSERT_TRUE(writer_.WaitForPending(3));
  EXPECT_THAT(writer_.call_sizes(), ElementsAre(25u, 25u, 10u));
  for (int i = 0; i < 3; ++i) writer_.TakeNext().Answer(WrittenResponse());
  ASSERT_TRUE(sink_->WaitFor(60));
  EXPECT_TRUE(WaitForNoPendingOps()) << engine_->pending_ops();
}

TEST_F(EngineTest, FlushSendsAtOnceAndReportsWhenEverythingIsAnswered) {
  StartEngine();
  SubmitDistinct(4);
  absl::Notification flushed;
  uint64_t flushed_ops = 0;
  engine_->Flush(-1, [&](uint64_t n) {
    flushed_ops = n;
    flushed.Notify();
  });
  ASSERT_TRUE(writer_.WaitForPending(1));  // no linger wait
  EXPECT_FALSE(flushed.HasBeenNotified());
  writer_.TakeNext().Answer(WrittenResponse());
  ASSERT_TRUE(flushed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(flushed_ops, 4u);
  EXPECT_EQ(sink_->size(), 4u);  // results before the flush's answer
}

TEST_F(EngineTest, UnprocessedItemsAreRetriedAfterBackoffAndOthersAnsweredAtOnce) {
  StartEngine();
  SubmitDistinct(3);
  engine_->Flush(-1, [](uint64_t) {});
  ASSERT_TRUE(writer_.WaitForPending(1));
  writer_.TakeNext().Answer(UnprocessedResponse({"k2"}));
  ASSERT_TRUE(sink_->WaitFor(2));
  EXPECT_EQ(sink_->Get(1).outcome, Outcome::kWritten);
  EXPECT_EQ(sink_->Get(3).outcome, Outcome::kWritten);
  // k2 waits for its backoff (fake time), then goes out alone. (A retry
  // lingers like a new write; the Flush sends it once its backoff is over.)
  engine_->Flush(-1, [](uint64_t) {});
  EXPECT_FALSE(writer_.WaitForPending(1, absl::Milliseconds(300)));
  Advance(absl::Seconds(5));
  ASSERT_TRUE(writer_.WaitForPending(1));
  FakeCall retry = writer_.TakeNext();
  EXPECT_EQ(retry.items(), 1u);
  EXPECT_TRUE(retry.Contains(R"({"S":"k2"})")) << retry.body;
  retry.Answer(WrittenResponse());
  ASSERT_TRUE(sink_->WaitFor(3));
  OpResult k2 = sink_->Get(2);
  EXPECT_EQ(k2.outcome, Outcome::kWritten);
  EXPECT_EQ(k2.op.attempts, 2u);
  EXPECT_EQ(engine_->buffered_bytes(), 0u);
}

TEST_F(EngineTest, ReplacedWriteIsCoalescedOnceItsReplacementIsWritten) {
  StartEngine();
  std::vector<Op> ops;
  ops.push_back(MakeOp(1, "same"));
  ops.push_back(MakeOp(2, "same"));
  ops.push_back(MakeOp(3, "other"));
  Submit(std::move(ops));
  engine_->Flush(-1, [](uint64_t) {});
  ASSERT_TRUE(writer_.WaitForPending(1));
  FakeCall call = writer_.TakeNext();
  EXPECT_EQ(call.items(), 2u);  // never two writes to one key in one call
  EXPECT_TRUE(call.Contains(R"("id":{"N":"2"})")) << call.body;
  EXPECT_FALSE(call.Contains(R"("id":{"N":"1"})")) << call.body;
  // Nothing is answered before DynamoDB answered.
  EXPECT_FALSE(sink_->WaitFor(1, absl::Milliseconds(100)));
  call.Answer(WrittenResponse());
  ASSERT_TRUE(sink_->WaitFor(3));
  EXPECT_EQ(sink_->Get(1).outcome, Outcome::kCoalesced);
  EXPECT_EQ(sink_->Get(2).outcome, Outcome::kWritten);
  EXPECT_EQ(sink_->Get(3).outcome, Outcome::kWritten);
}

TEST_F(EngineTest, NonRetryableErrorFailsTheOpsWithDynamoDbsMessage) {
  StartEngine();
  SubmitDistinct(2);
  engine_->Flush(-1, [](uint64_t) {});
  ASSERT_TRUE(writer_.WaitForPending(1));
  writer_.TakeNext().Answer(
      FatalResponse("ResourceNotFoundException", "Requested resource not found"));
  ASSERT_TRUE(sink_->WaitFor(2));
  for (uint64_t id : {1, 2}) {
    OpResult r = sink_->Get(id);
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_EQ(r.error_code, "ResourceNotFoundException");
    EXPECT_THAT(r.message, ::testing::HasSubstr("Requested resource not found"));
  }
  EXPECT_EQ(engine_->failed_ops(), 2u);
  EXPECT_EQ(writer_.call_sizes().size(), 1u);  // not retried
}

TEST_F(EngineTest, DrainSendsWhatIsBufferedAndIsCleanWhenAllIsWritten) {
  writer_.set_auto_answer([](const FakeCall&) { return WrittenResponse(); });
  StartEngine();
  SubmitDistinct(30);
  // No fake time passes: the drain itself must send the lingering ops.
  EXPECT_TRUE(engine_->Drain(absl::Seconds(10)));
  EXPECT_EQ(sink_->size(), 30u);
  EXPECT_EQ(sink_->Get(30).outcome, Outcome::kWritten);
  EXPECT_EQ(engine_->pending_ops(), 0u);
  EXPECT_EQ(engine_->buffered_bytes(), 0u);
}

TEST_F(EngineTest, DrainFailsWhatIsStillRetryingAtTheTimeout) {
  // Throttled forever; fake time never moves, so the retries stay in backoff.
  writer_.set_auto_answer([](const FakeCall&) { return ThrottledResponse(); });
  StartEngine();
  SubmitDistinct(3);
  EXPECT_FALSE(engine_->Drain(absl::Milliseconds(300)));
  ASSERT_TRUE(sink_->WaitFor(3));
  for (uint64_t id : {1, 2, 3}) {
    OpResult r = sink_->Get(id);
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_EQ(r.error_code, "ShuttingDown");
  }
  EXPECT_TRUE(WaitForNoPendingOps()) << engine_->pending_ops();
  EXPECT_EQ(engine_->failed_ops(), 3u);
}

}  // namespace
}  // namespace dynamo_batcher
