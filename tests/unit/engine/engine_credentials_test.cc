// The engine thread never waits on credentials I/O: a credentials endpoint
// that stalls holds back only the writes that need it (until their
// deadline), never the engine's other work.

#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/auth/refreshing_credentials.h"
#include "service/codec/codec.h"
#include "service/common/clock.h"
#include "service/dynamodb/dynamodb_client.h"
#include "service/engine/engine.h"
#include "service/http/http_transport.h"
#include "service/metrics/metrics.h"

namespace dynamo_batcher {
namespace {

namespace v1 = ::dynamobatcher::v1;

// DynamoDB that accepts every call at once.
class AcceptingTransport : public HttpTransport {
 public:
  void Send(HttpRequest, Callback done) override {
    HttpResponse r;
    r.status = 200;
    r.body = R"({"UnprocessedItems":{}})";
    done(std::move(r));
  }
};

// A credentials source whose fetches block until Release().
class StallingSource {
 public:
  absl::StatusOr<AwsCredentials> Fetch() {
    std::unique_lock<std::mutex> lock(mu_);
    ++fetches_;
    cv_.wait(lock, [&] { return released_; });
    AwsCredentials c;
    c.access_key_id = "AKID";
    c.secret_access_key = "SECRET";
    c.expiration = absl::Now() + absl::Hours(1);
    return c;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int fetches() {
    std::lock_guard<std::mutex> lock(mu_);
    return fetches_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int fetches_ = 0;
};

class Collector : public ResultSink {
 public:
  void Deliver(OpResult r) override {
    std::lock_guard<std::mutex> lock(mu_);
    results_.push_back(std::move(r));
    cv_.notify_all();
  }
  bool WaitFor(size_t n, absl::Duration limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(limit),
                        [&] { return results_.size() >= n; });
  }
  std::vector<OpResult> results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<OpResult> results_;
};

TableSchema Schema(const std::string& name) {
  TableSchema s;
  s.name = name;
  s.partition_key = {"pk", KeyType::kS};
  return s;
}

class EngineCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RefreshOptions ro;
    ro.never_block = true;
    credentials_ = std::make_unique<RefreshingCredentialsProvider>(
        "stalling", [this] { return source_.Fetch(); }, ro);
    DynamoDbOptions dopts;
    dopts.endpoint = "http://127.0.0.1:1";
    ddb_ = std::make_unique<DynamoDbClient>(dopts, &transport_, credentials_.get());
    metrics_ = std::make_unique<Metrics>(std::vector<std::string>{"events", "users"});
  }
  void TearDown() override {
    if (engine_) engine_->Stop();
    source_.Release();  // lets the background fetch end before the provider goes
    engine_.reset();
  }

  void StartEngine(absl::Duration op_deadline) {
    EngineOptions eo;
    eo.batching.linger = absl::Milliseconds(1);
    eo.retry.base = absl::Milliseconds(10);
    eo.retry.cap = absl::Milliseconds(100);
    eo.retry.max_attempts = 3;
    eo.retry.op_deadline = op_deadline;
    engine_ = std::make_unique<Engine>(
        std::vector<EngineTable>{{Schema("events"), {}}, {Schema("users"), {}}}, eo, ddb_.get(),
        metrics_.get(), &clock_);
    ASSERT_TRUE(engine_->Start().ok());
  }

  void Put(const std::string& table, const std::string& pk, std::shared_ptr<ResultSink> sink) {
    const int t = engine_->TableIndex(table);
    v1::WriteOp w;
    w.set_id(1);
    w.set_table(table);
    v1::AttributeValue v;
    v.set_s(pk);
    (*w.mutable_put()->mutable_attributes())["pk"] = v;
    Op op;
    op.id = 1;
    op.table = engine_->table_name(t);
    op.sink = std::move(sink);
    EncodeResult encoded = EncodeWriteOp(w, engine_->schema(t));
    ASSERT_TRUE(encoded.ok()) << encoded.rejection->message;
    op.write = std::move(encoded.write);
    op.arrival = clock_.Now();
    ASSERT_TRUE(engine_->TryReserve(t, op.MemoryBytes()));
    std::vector<Op> ops;
    ops.push_back(std::move(op));
    engine_->Submit(t, std::move(ops));
  }

  StallingSource source_;
  AcceptingTransport transport_;
  SteadyClock clock_;
  std::unique_ptr<RefreshingCredentialsProvider> credentials_;
  std::unique_ptr<DynamoDbClient> ddb_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineCredentialsTest, StalledCredentialsFailWritesAtTheirDeadlineNotLater) {
  StartEngine(absl::Seconds(2));
  auto sink = std::make_shared<Collector>();
  const absl::Time start = absl::Now();
  Put("events", "a", sink);
  // Had the engine thread fetched credentials itself, it would still be
  // waiting on the stalled endpoint and nothing would be answered.
  ASSERT_TRUE(sink->WaitFor(1, absl::Seconds(6)));
  const absl::Duration took = absl::Now() - start;
  const OpResult r = sink->results().front();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error_code, "DeadlineExceeded") << r.message;
  EXPECT_TRUE(absl::StrContains(r.message, "CredentialsUnavailable")) << r.message;
  EXPECT_LT(took, absl::Seconds(4));
  // Calls that never left are not attempts: max_attempts (3) did not end it.
  EXPECT_EQ(source_.fetches(), 1) << "one fetch in the background, not one per call";
}

TEST_F(EngineCredentialsTest, OtherWorkIsServedWhileCredentialsStall) {
  StartEngine(absl::Seconds(30));
  auto sink = std::make_shared<Collector>();
  Put("events", "a", sink);
  absl::SleepFor(absl::Milliseconds(200));  // the write is now waiting for credentials
  // A flush of the other table, which has nothing buffered, is answered at once.
  auto flushed = std::make_shared<std::promise<uint64_t>>();
  const absl::Time start = absl::Now();
  engine_->Flush(engine_->TableIndex("users"), [flushed](uint64_t n) { flushed->set_value(n); });
  auto f = flushed->get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(f.get(), 0u);
  EXPECT_TRUE(sink->results().empty()) << "the write waits for credentials";
  // Credentials arrive: the waiting write goes out and is written.
  source_.Release();
  ASSERT_TRUE(sink->WaitFor(1, absl::Seconds(10)));
  EXPECT_EQ(sink->results().front().outcome, Outcome::kWritten)
      << sink->results().front().error_code << ": " << sink->results().front().message;
}

}  // namespace
}  // namespace dynamo_batcher
