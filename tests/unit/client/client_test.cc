#include "dynamo_batcher/client.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fake_write_batcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// These tests run a real gRPC server on loopback, so waits are real time;
// every wait is bounded (kLong) so a bug fails the test instead of hanging it.

namespace dynamo_batcher {
namespace {

using ::dynamo_batcher::testing::FakeServer;
using ::testing::HasSubstr;

constexpr auto kLong = std::chrono::seconds(10);

ClientOptions OptionsFor(const FakeServer& server) {
  ClientOptions o;
  o.target = server.target();
  o.op_deadline = absl::Seconds(20);
  o.reconnect_backoff = absl::Milliseconds(20);
  o.max_reconnect_backoff = absl::Milliseconds(200);
  return o;
}

std::unique_ptr<Client> MustCreate(ClientOptions o) {
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Create(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

WriteOutcome Get(std::future<WriteOutcome>& f) {
  if (f.wait_for(kLong) != std::future_status::ready) {
    ADD_FAILURE() << "future not resolved in time";
    return {};
  }
  return f.get();
}

TEST(Client, CreateRejectsBadOptions) {
  ClientOptions o;
  o.streams = 0;
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClientOptions();
  o.max_ops_per_message = 0;
  EXPECT_FALSE(Client::Create(o).ok());
  o = ClientOptions();
  o.op_deadline = absl::ZeroDuration();
  EXPECT_FALSE(Client::Create(o).ok());
}

TEST(Client, FuturesResolveWithTheOutcomesTheSidecarReturns) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = MustCreate(OptionsFor(server));
  ASSERT_NE(client, nullptr);

  auto written = client->Put("t", Item().S("pk", "a"));
  auto coalesced = client->Put("t", Item().S("pk", "a").Bool("coalesce", true));
  auto rejected = client->Put("reject", Item().S("pk", "a"));
  auto failed = client->Delete("fail", Item().S("pk", "a"));
  auto deleted = client->Delete("t", Item().S("pk", "b"));

  WriteOutcome w = Get(written);
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(w.outcome, v1::WRITTEN);
  EXPECT_EQ(w.attempts, 1u);
  EXPECT_EQ(Get(coalesced).outcome, v1::COALESCED);
  WriteOutcome r = Get(rejected);
  EXPECT_EQ(r.outcome, v1::REJECTED);
  EXPECT_EQ(r.error_code, "UnknownTable");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status.ok());
  WriteOutcome f = Get(failed);
  EXPECT_EQ(f.outcome, v1::FAILED);
  EXPECT_EQ(f.error_code, "ValidationException");
  EXPECT_EQ(Get(deleted).outcome, v1::WRITTEN);

  // The ops arrived as sent: table, kind and item intact, ids distinct.
  std::vector<v1::WriteOp> ops = server.service().received_ops();
  ASSERT_EQ(ops.size(), 5u);
  EXPECT_EQ(ops[0].table(), "t");
  EXPECT_EQ(ops[0].put().attributes().at("pk").s(), "a");
  EXPECT_TRUE(ops[3].has_delete_key());
  std::vector<uint64_t> ids = server.service().ids();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()), ids.end());

  Client::Stats s = client->stats();
  EXPECT_EQ(s.ops_submitted, 5u);
  EXPECT_EQ(s.ops_resolved, 5u);
  EXPECT_EQ(s.written, 2u);
  EXPECT_EQ(s.coalesced, 1u);
  EXPECT_EQ(s.rejected, 1u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.inflight, 0u);
}

TEST(Client, CallbacksAndSyncCallsDeliverOutcomes) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = MustCreate(OptionsFor(server));
  std::promise<WriteOutcome> p;
  client->Put("t", Item().S("pk", "cb"), [&p](WriteOutcome o) { p.set_value(o); });
  auto f = p.get_future();
  EXPECT_EQ(Get(f).outcome, v1::WRITTEN);

  absl::StatusOr<WriteOutcome> put = client->PutSync("t", Item().S("pk", "s"));
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->outcome, v1::WRITTEN);
  absl::StatusOr<WriteOutcome> del = client->DeleteSync("reject", Item().S("pk", "s"));
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->outcome, v1::REJECTED);
}

TEST(Client, PacksManyOpsIntoEachMessage) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.linger = absl::Milliseconds(20);
  auto client = MustCreate(o);
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 1000; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  for (auto& f : futures) ASSERT_EQ(Get(f).outcome, v1::WRITTEN);
  EXPECT_EQ(server.service().ops(), 1000u);
  // 1000 ops at up to 256 per message: a handful of messages, not 1000.
  EXPECT_LE(server.service().messages(), 20u);
  EXPECT_LE(server.service().max_ops_in_a_message(), 256u);
  // The sender counts a message after its Write returns, which can be after
  // the results are in; Close joins the sender.
  ASSERT_TRUE(client->Close(absl::Seconds(10)).ok());
  EXPECT_EQ(client->stats().messages_sent, server.service().messages());
}

TEST(Client, KeepsMessagesWithinMaxOpsAndMaxBytes) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.max_ops_per_message = 10;
  o.max_message_bytes = 4096;
  o.linger = absl::Milliseconds(20);
  auto client = MustCreate(o);
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 100; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  // Big items: about 1 KiB each, so at most 4 fit in 4 KiB.
  for (int i = 0; i < 20; ++i) {
    futures.push_back(
        client->Put("t", Item().S("pk", absl::StrCat("big", i)).S("v", std::string(1000, 'x'))));
  }
  for (auto& f : futures) ASSERT_EQ(Get(f).outcome, v1::WRITTEN);
  EXPECT_EQ(server.service().max_ops_in_a_message(), 10u);
  EXPECT_GE(server.service().messages(), 10u + 5u);
}

TEST(Client, KeepsCallOrderOnTheStream) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = MustCreate(OptionsFor(server));
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 300; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", "same").N("v", i)));
  }
  for (auto& f : futures) Get(f);
  std::vector<v1::WriteOp> ops = server.service().received_ops();
  ASSERT_EQ(ops.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(ops[i].put().attributes().at("v").n(), std::to_string(i));
  }
}

TEST(Client, FlushSendsAtOnceCallsTheRpcAndWaitsForResults) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.linger = absl::Seconds(30);  // nothing leaves without the flush
  auto client = MustCreate(o);
  auto f = client->Put("t", Item().S("pk", "a"));
  EXPECT_EQ(server.service().flushes(), 0u);
  absl::Status s = client->Flush("", absl::Seconds(10));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(server.service().flushes(), 1u);
  // Flush returned only after the result was in.
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get().outcome, v1::WRITTEN);
  ASSERT_TRUE(client->Flush("t", absl::Seconds(10)).ok());
  EXPECT_EQ(server.service().flushes(), 2u);
}

TEST(Client, FailModeReturnsResourceExhaustedOnceTheBudgetIsFull) {
  FakeServer server(/*withhold=*/true);
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.max_inflight_ops = 10;
  o.when_full = ClientOptions::WhenFull::kFail;
  auto client = MustCreate(o);
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 10; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  auto refused = client->Put("t", Item().S("pk", "one too many"));
  ASSERT_EQ(refused.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  WriteOutcome r = refused.get();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(client->stats().inflight, 10u);

  ASSERT_TRUE(server.service().WaitForOps(10, absl::Seconds(10)));
  server.service().Release();
  for (auto& f : futures) EXPECT_EQ(Get(f).outcome, v1::WRITTEN);
  // Room again.
  auto later = client->Put("t", Item().S("pk", "later"));
  EXPECT_EQ(Get(later).outcome, v1::WRITTEN);
}

TEST(Client, BlockModeWaitsUntilResultsFlow) {
  FakeServer server(/*withhold=*/true);
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.max_inflight_ops = 5;
  o.when_full = ClientOptions::WhenFull::kBlock;
  auto client = MustCreate(o);
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 5; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  auto blocked = std::async(std::launch::async,
                            [&] { return client->Put("t", Item().S("pk", "sixth")).get(); });
  EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  EXPECT_EQ(server.service().ops(), 5u);
  server.service().Release();
  ASSERT_EQ(blocked.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(blocked.get().outcome, v1::WRITTEN);
  for (auto& f : futures) EXPECT_EQ(Get(f).outcome, v1::WRITTEN);
}

TEST(Client, ResendsPendingOpsInOrderAfterTheStreamBreaks) {
  auto first = std::make_unique<FakeServer>(/*withhold=*/true);
  ASSERT_TRUE(first->ok());
  const int port = first->port();
  ClientOptions o = OptionsFor(*first);
  auto client = MustCreate(o);
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 50; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  ASSERT_TRUE(first->service().WaitForOps(50, absl::Seconds(10)));
  const std::vector<uint64_t> sent_ids = first->service().ids();
  first->Shutdown();  // the stream breaks with 50 ops unanswered
  first.reset();
  // Ops submitted while the sidecar is away queue behind the pending ones.
  for (int i = 50; i < 60; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  FakeServer second(/*withhold=*/false, port);
  ASSERT_TRUE(second.ok()) << "could not listen again on port " << port;

  for (auto& f : futures) EXPECT_EQ(Get(f).outcome, v1::WRITTEN);
  std::vector<uint64_t> resent = second.service().ids();
  ASSERT_EQ(resent.size(), 60u);
  EXPECT_TRUE(std::is_sorted(resent.begin(), resent.end()));
  EXPECT_TRUE(std::equal(sent_ids.begin(), sent_ids.end(), resent.begin()));
  Client::Stats s = client->stats();
  EXPECT_GE(s.ops_resent, 50u);
  EXPECT_GE(s.reconnects, 1u);
  EXPECT_EQ(s.inflight, 0u);
}

TEST(Client, ResolvesWithDeadlineExceededWhenTheSidecarNeverAnswers) {
  FakeServer server(/*withhold=*/true);
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.op_deadline = absl::Milliseconds(300);
  auto client = MustCreate(o);
  const absl::Time start = absl::Now();
  auto f = client->Put("t", Item().S("pk", "a"));
  WriteOutcome r = Get(f);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded) << r.status;
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_EQ(client->stats().client_errors, 1u);
  EXPECT_EQ(client->stats().inflight, 0u);
}

TEST(Client, ResolvesWithUnavailableWhenNoSidecarListens) {
  int port;
  {
    FakeServer gone;  // find a free port, then free it again
    ASSERT_TRUE(gone.ok());
    port = gone.port();
  }
  ClientOptions o;
  o.target = absl::StrCat("127.0.0.1:", port);
  o.op_deadline = absl::Milliseconds(300);
  o.reconnect_backoff = absl::Milliseconds(20);
  o.max_reconnect_backoff = absl::Milliseconds(100);
  auto client = MustCreate(o);
  auto f = client->Put("t", Item().S("pk", "a"));
  WriteOutcome r = Get(f);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("unreachable"));
}

TEST(Client, DestructorResolvesEveryFutureWithCancelled) {
  FakeServer server(/*withhold=*/true);
  ASSERT_TRUE(server.ok());
  auto client = MustCreate(OptionsFor(server));
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 20; ++i) {
    futures.push_back(client->Put("t", Item().S("pk", absl::StrCat("k", i))));
  }
  ASSERT_TRUE(server.service().WaitForOps(20, absl::Seconds(10)));
  client.reset();
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_EQ(f.get().status.code(), absl::StatusCode::kCancelled);
  }
}

TEST(Client, CloseFlushesThenRefusesNewOps) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.linger = absl::Seconds(30);
  auto client = MustCreate(o);
  auto before = client->Put("t", Item().S("pk", "a"));
  ASSERT_TRUE(client->Close(absl::Seconds(10)).ok());
  EXPECT_EQ(Get(before).outcome, v1::WRITTEN);
  EXPECT_EQ(server.service().flushes(), 1u);
  auto after = client->Put("t", Item().S("pk", "b"));
  EXPECT_EQ(Get(after).status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(client->Close(absl::Seconds(1)).ok());  // idempotent
}

TEST(Client, CloseGivesUpOnASidecarThatNeverAnswers) {
  FakeServer server(/*withhold=*/true);
  ASSERT_TRUE(server.ok());
  auto client = MustCreate(OptionsFor(server));
  auto f = client->Put("t", Item().S("pk", "a"));
  ASSERT_TRUE(server.service().WaitForOps(1, absl::Seconds(10)));
  const absl::Time start = absl::Now();
  absl::Status s = client->Close(absl::Milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get().status.code(), absl::StatusCode::kCancelled);
}

TEST(Client, SpreadsTablesOverSeveralStreams) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  ClientOptions o = OptionsFor(server);
  o.streams = 4;
  auto client = MustCreate(o);
  std::vector<std::future<WriteOutcome>> futures;
  for (int i = 0; i < 400; ++i) {
    futures.push_back(client->Put(absl::StrCat("table", i % 8), Item().S("pk", absl::StrCat(i))));
  }
  for (auto& f : futures) EXPECT_EQ(Get(f).outcome, v1::WRITTEN);
  EXPECT_EQ(server.service().ops(), 400u);
}

// Not a pass/fail benchmark (the machine is shared); prints the numbers the
// README quotes and checks that packing really reduces messages.
TEST(ClientThroughput, PackedMessagesVersusOneOpPerMessage) {
  constexpr int kOps = 20000;
  auto run = [&](size_t per_message) {
    FakeServer server;
    EXPECT_TRUE(server.ok());
    ClientOptions o = OptionsFor(server);
    o.max_ops_per_message = per_message;
    o.linger = absl::Milliseconds(1);
    auto client = MustCreate(o);
    std::atomic<int> done{0};
    const absl::Time start = absl::Now();
    for (int i = 0; i < kOps; ++i) {
      client->Put("t", Item().S("pk", absl::StrCat("k", i)).S("v", std::string(100, 'x')),
                  [&done](WriteOutcome) { ++done; });
    }
    EXPECT_TRUE(client->Flush("", absl::Seconds(60)).ok());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    EXPECT_EQ(done.load(), kOps);
    const uint64_t messages = server.service().messages();
    std::printf("ops_per_message=%zu: %d ops in %.3fs = %.0f ops/s, %llu messages\n", per_message,
                kOps, seconds, kOps / seconds, static_cast<unsigned long long>(messages));
    return messages;
  };
  const uint64_t single = run(1);
  const uint64_t packed = run(256);
  EXPECT_EQ(single, static_cast<uint64_t>(kOps));
  EXPECT_LT(packed * 10, single);
}

}  // namespace
}  // namespace dynamo_batcher
