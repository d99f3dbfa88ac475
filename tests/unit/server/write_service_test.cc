// The WriteBatcher service on an in-process gRPC server (loopback, default
// gRPC limits) over a real Engine whose DynamoDB is a FakeWriter: validation,
// outcomes per op, limits and backpressure, Flush, the drain.

#include "service/server/write_service.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/engine/engine.h"
#include "service/metrics/metrics.h"
#include "tests/support/fake_writer.h"

namespace dynamo_batcher {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;
using testing_util::FakeCall;
using testing_util::FakeWriter;
using testing_util::WrittenResponse;

v1::Item Item(const std::string& pk) {
  v1::Item item;
  (*item.mutable_attributes())["pk"].set_s(pk);
  (*item.mutable_attributes())["v"].set_n("1");
  return item;
}

v1::WriteOp PutOp(uint64_t id, const std::string& pk, const std::string& table = "events") {
  v1::WriteOp op;
  op.set_id(id);
  op.set_table(table);
  *op.mutable_put() = Item(pk);
  return op;
}

v1::PutRequest Put(uint64_t id, const std::string& pk, const std::string& table = "events") {
  v1::PutRequest put;
  put.set_id(id);
  put.set_table(table);
  *put.mutable_item() = Item(pk);
  return put;
}

class WriteServiceTest : public ::testing::Test {
 protected:
  WriteServiceTest() : metrics_({"events"}) {}

  ~WriteServiceTest() override {
    if (!engine_) return;
    // Answer whatever is still waiting so every call can finish.
    writer_.set_auto_answer([](const FakeCall&) { return WrittenResponse(); });
    while (writer_.pending() > 0) writer_.TakeNext().Answer(WrittenResponse());
    engine_->Drain(absl::Seconds(10));
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    engine_->Stop();
  }

  void Start(ServiceLimits limits = {}, EngineOptions options = {}) {
    std::vector<EngineTable> tables(1);
    tables[0].schema.name = "events";
    tables[0].schema.partition_key = {"pk", KeyType::kS};
    options.batching.rng_seed = 1;
    engine_ = std::make_unique<Engine>(tables, options, &writer_, &metrics_, &clock_);
    ASSERT_TRUE(engine_->Start().ok());
    service_ = std::make_unique<WriteBatcherService>(engine_.get(), &metrics_, limits);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::WriteBatcher::NewStub(channel_);
  }

  void AutoWrite() {
    writer_.set_auto_answer([](const FakeCall&) { return WrittenResponse(); });
  }

  // A blocking Put on its own thread.
  std::future<std::pair<grpc::Status, v1::WriteResult>> PutAsync(v1::PutRequest put) {
    return std::async(std::launch::async, [this, put] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::WriteResult result;
      grpc::Status status = stub_->Put(&ctx, put, &result);
      return std::make_pair(status, result);
    });
  }

  Metrics metrics_;
  SteadyClock clock_;
  FakeWriter writer_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<WriteBatcherService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WriteBatcher::Stub> stub_;
};

// Sends `messages` on one Write stream, half-closes, reads every result.
struct StreamOutcome {
  grpc::Status status;
  std::map<uint64_t, v1::WriteResult> results;
  int responses = 0;
  size_t largest_response = 0;  // bytes
};
StreamOutcome WriteAll(v1::WriteBatcher::Stub* stub,
                       const std::vector<v1::WriteRequest>& messages) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->Write(&ctx);
  for (const auto& m : messages) stream->Write(m);
  stream->WritesDone();
  StreamOutcome out;
  v1::WriteResponse response;
  while (stream->Read(&response)) {
    ++out.responses;
    out.largest_response = std::max(out.largest_response, response.ByteSizeLong());
    for (const auto& r : response.results()) out.results[r.id()] = r;
  }
  out.status = stream->Finish();
  return out;
}

// Results are written in WriteResponse's wire format by hand: the bytes
// must be what protobuf writes for the same results, for every outcome,
// empty and non-empty strings, zero and multi-byte varints.
TEST(AppendResultEntry, WritesWhatProtobufWrites) {
  static const std::string kTable = "events";
  static const std::string kEmptyTable;
  std::vector<OpResult> results;
  for (Outcome outcome :
       {Outcome::kWritten, Outcome::kCoalesced, Outcome::kFailed, Outcome::kRejected}) {
    for (uint64_t id :
         {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300}, ~uint64_t{0}}) {
      OpResult r;
      r.outcome = outcome;
      r.op.id = id;
      r.op.attempts = static_cast<uint32_t>(id % 200);
      r.op.table = id % 3 == 0 ? nullptr : (id % 3 == 1 ? &kTable : &kEmptyTable);
      if (outcome != Outcome::kWritten) {
        r.error_code = "ValidationException";
        r.message = std::string(static_cast<size_t>(id % 500), 'm');
      }
      results.push_back(std::move(r));
    }
  }
  v1::WriteResponse expected;
  std::string wire;
  for (const OpResult& r : results) {
    ToProto(r, expected.add_results());
    const size_t before = wire.size();
    const size_t n = AppendResultEntry(r, &wire);
    EXPECT_EQ(n, wire.size() - before);
  }
  EXPECT_EQ(wire, expected.SerializeAsString());
  v1::WriteResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.results_size(), static_cast<int>(results.size()));
}

TEST_F(WriteServiceTest, PutIsAnsweredWrittenOnceDynamoDbAccepted) {
  AutoWrite();
  Start();
  auto [status, result] = PutAsync(Put(7, "a")).get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(result.id(), 7u);
  EXPECT_EQ(result.outcome(), v1::WRITTEN);
  EXPECT_EQ(result.attempts(), 1u);
  EXPECT_EQ(writer_.call_sizes().size(), 1u);
}

TEST_F(WriteServiceTest, InvalidOpsAreRejectedWithACodeAndNeverSent) {
  AutoWrite();
  Start();
  auto [unknown_status, unknown] = PutAsync(Put(1, "a", "nope")).get();
  ASSERT_TRUE(unknown_status.ok());
  EXPECT_EQ(unknown.outcome(), v1::REJECTED);
  EXPECT_EQ(unknown.error_code(), "UnknownTable");
  EXPECT_THAT(unknown.message(), HasSubstr("nope"));

  v1::PutRequest no_key;
  no_key.set_id(2);
  no_key.set_table("events");
  (*no_key.mutable_item()->mutable_attributes())["other"].set_s("x");
  auto [missing_status, missing] = PutAsync(no_key).get();
  ASSERT_TRUE(missing_status.ok());
  EXPECT_EQ(missing.outcome(), v1::REJECTED);
  EXPECT_EQ(missing.error_code(), "KeyMissing");
  EXPECT_THAT(missing.message(), HasSubstr("pk"));
  EXPECT_TRUE(writer_.call_sizes().empty());
}

TEST_F(WriteServiceTest, WriteStreamGivesEveryOpItsOwnOutcome) {
  AutoWrite();
  Start();
  v1::WriteRequest m;
  *m.add_ops() = PutOp(1, "a");
  *m.add_ops() = PutOp(2, "a");  // replaces op 1 before it is sent
  *m.add_ops() = PutOp(3, "b", "nope");
  v1::WriteOp bad_number = PutOp(4, "c");
  (*bad_number.mutable_put()->mutable_attributes())["v"].set_n("not-a-number");
  *m.add_ops() = bad_number;
  v1::WriteOp del;
  del.set_id(5);
  del.set_table("events");
  (*del.mutable_delete_key()->mutable_attributes())["pk"].set_s("d");
  *m.add_ops() = del;
  StreamOutcome out = WriteAll(stub_.get(), {m});
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.results.size(), 5u);
  EXPECT_EQ(out.results[1].outcome(), v1::COALESCED);
  EXPECT_EQ(out.results[2].outcome(), v1::WRITTEN);
  EXPECT_EQ(out.results[3].outcome(), v1::REJECTED);
  EXPECT_EQ(out.results[3].error_code(), "UnknownTable");
  EXPECT_EQ(out.results[4].outcome(), v1::REJECTED);
  EXPECT_EQ(out.results[4].error_code(), "InvalidNumber");
  EXPECT_EQ(out.results[5].outcome(), v1::WRITTEN);
  size_t sent = 0;
  for (size_t n : writer_.call_sizes()) sent += n;
  EXPECT_EQ(sent, 2u);  // op 2 and the delete
}

TEST_F(WriteServiceTest, MessageOverTheOpLimitIsRejectedWhole) {
  AutoWrite();
  ServiceLimits limits;
  limits.max_ops_per_message = 2;
  Start(limits);
  v1::WriteRequest m;
  for (int i = 1; i <= 3; ++i) *m.add_ops() = PutOp(i, absl::StrCat("k", i));
  StreamOutcome out = WriteAll(stub_.get(), {m});
  ASSERT_TRUE(out.status.ok());
  ASSERT_EQ(out.results.size(), 3u);
  for (auto& [id, r] : out.results) {
    EXPECT_EQ(r.outcome(), v1::REJECTED) << id;
    EXPECT_EQ(r.error_code(), "TooManyOps") << id;
  }
  EXPECT_TRUE(writer_.call_sizes().empty());
}

TEST_F(WriteServiceTest, ManyResultsAreSplitIntoResponsesUnderTheLimit) {
  AutoWrite();
  ServiceLimits limits;
  limits.max_response_bytes = 4096;
  Start(limits);
  v1::WriteRequest m;
  for (int i = 1; i <= 2000; ++i) *m.add_ops() = PutOp(i, absl::StrCat("k", i));
  StreamOutcome out = WriteAll(stub_.get(), {m});
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.results.size(), 2000u);
  EXPECT_LE(out.largest_response, 4096u);
  EXPECT_GE(out.responses, 2);
}

TEST_F(WriteServiceTest, UnaryCallsBeyondTheLimitAreRefused) {
  ServiceLimits limits;
  limits.max_unary_calls = 1;
  Start(limits);
  auto first = PutAsync(Put(1, "a"));
  ASSERT_TRUE(writer_.WaitForPending(1));  // op 1 is in flight, unanswered
  auto [status, result] = PutAsync(Put(2, "b")).get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("max_unary_calls"));
  writer_.TakeNext().Answer(WrittenResponse());
  auto [first_status, first_result] = first.get();
  ASSERT_TRUE(first_status.ok());
  EXPECT_EQ(first_result.outcome(), v1::WRITTEN);
}

TEST_F(WriteServiceTest, PutWaitsForBufferSpaceThenFailsAndIsNeverWritten) {
  ServiceLimits limits;
  limits.default_unary_wait = absl::Milliseconds(300);
  EngineOptions options;
  options.max_table_buffer_bytes = 1;  // the first op fills the table's budget
  Start(limits, options);
  auto first = PutAsync(Put(1, "a"));
  ASSERT_TRUE(writer_.WaitForPending(1));
  auto [status, result] = PutAsync(Put(2, "b")).get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("buffer is full"));
  // Space frees up now, but op 2's caller was told it failed: never sent.
  writer_.TakeNext().Answer(WrittenResponse());
  ASSERT_TRUE(first.get().first.ok());
  EXPECT_FALSE(writer_.WaitForPending(1, absl::Milliseconds(300)));
  EXPECT_EQ(writer_.call_sizes().size(), 1u);
}

TEST_F(WriteServiceTest, StreamIsNotReadPastItsInflightCapUntilResultsAreWritten) {
  ServiceLimits limits;
  limits.max_inflight_ops_per_stream = 2;
  Start(limits);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub_->Write(&ctx);
  v1::WriteRequest m1;
  *m1.add_ops() = PutOp(1, "a");
  *m1.add_ops() = PutOp(2, "b");
  v1::WriteRequest m2;
  *m2.add_ops() = PutOp(3, "c");
  ASSERT_TRUE(stream->Write(m1));
  ASSERT_TRUE(stream->Write(m2));
  ASSERT_TRUE(writer_.WaitForPending(1));
  // Message 2 is not read while 2 ops wait for their results.
  EXPECT_FALSE(writer_.WaitForPending(2, absl::Milliseconds(300)));
  FakeCall call = writer_.TakeNext();
  EXPECT_EQ(call.items(), 2u);
  call.Answer(WrittenResponse());
  ASSERT_TRUE(writer_.WaitForPending(1));
  FakeCall second = writer_.TakeNext();
  EXPECT_EQ(second.items(), 1u) << "message 2 is read once results went out";
  second.Answer(WrittenResponse());
  stream->WritesDone();
  std::map<uint64_t, v1::WriteResult> results;
  v1::WriteResponse response;
  while (stream->Read(&response)) {
    for (const auto& r : response.results()) results[r.id()] = r;
  }
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(results.size(), 3u);
  for (auto& [id, r] : results) EXPECT_EQ(r.outcome(), v1::WRITTEN) << id;
}

TEST_F(WriteServiceTest, FlushSendsAtOnceAndAnswersWhenOutcomesAreKnown) {
  AutoWrite();
  EngineOptions options;
  options.batching.linger = absl::Hours(1);  // only Flush sends
  Start({}, options);
  auto put = PutAsync(Put(1, "a"));
  EXPECT_FALSE(writer_.WaitForPending(1, absl::Milliseconds(200)));
  EXPECT_TRUE(writer_.call_sizes().empty());
  grpc::ClientContext ctx;
  v1::FlushRequest flush;
  v1::FlushResponse flushed;
  grpc::Status status = stub_->Flush(&ctx, flush, &flushed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(flushed.ops(), 1u);
  EXPECT_EQ(put.get().second.outcome(), v1::WRITTEN);

  grpc::ClientContext ctx2;
  flush.set_table("nope");
  status = stub_->Flush(&ctx2, flush, &flushed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("nope"));
}

TEST_F(WriteServiceTest, MessageThatDoesNotParseIsInvalidArgument) {
  AutoWrite();
  Start();
  // PutRequest.table (field 1, a proto3 string) holding invalid UTF-8.
  const std::string bytes("\x0a\x01\xff", 3);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/dynamobatcher.v1.WriteBatcher/Put", grpc::StubOptions(), &request,
                    &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(status.error_message().empty());
  EXPECT_TRUE(writer_.call_sizes().empty());
}

TEST_F(WriteServiceTest, DrainRefusesNewStreamsAndUnaryCalls) {
  AutoWrite();
  Start();
  service_->BeginDrain();
  EXPECT_TRUE(service_->draining());
  auto [status, result] = PutAsync(Put(1, "a")).get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::WriteRequest m;
  *m.add_ops() = PutOp(2, "b");
  StreamOutcome out = WriteAll(stub_.get(), {m});
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(out.results.empty());
  EXPECT_TRUE(writer_.call_sizes().empty());
}

}  // namespace
}  // namespace dynamo_batcher
