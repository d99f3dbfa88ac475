// The C++ client library (dynamo_batcher::client) against the real sidecar
// and dynalite on loopback: outcomes, Flush, many threads, a sidecar restart
// with ops in flight, and the client's in-flight budget.

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dynamo_batcher/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

// `linger` is the sidecar's batching linger: a long one withholds results
// until a Flush (or 25 items of one table are buffered).
std::string Config(const std::string& endpoint, const std::string& linger,
                   const std::string& listen = "") {
  return SidecarConfig(endpoint)
      .Listen(listen)
      .Table("events", "pk")
      .Table("users", "id")
      .Linger(linger);
}

// Table contents as key -> value of attribute `v` (S), or "<no v>".
absl::StatusOr<std::map<std::string, std::string>> ReadTable(const std::string& endpoint,
                                                             const std::string& table,
                                                             const std::string& key_attr) {
  auto items = ScanTable(endpoint, table);
  if (!items.ok()) return items.status();
  std::map<std::string, std::string> out;
  for (const std::string& line : *items) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember(key_attr.c_str())) {
      return absl::InternalError(absl::StrCat("bad scan line: ", line));
    }
    std::string key = d[key_attr.c_str()]["S"].GetString();
    std::string v = d.HasMember("v") && d["v"].HasMember("S") ? d["v"]["S"].GetString() : "<no v>";
    out[key] = v;
  }
  return out;
}

bool Ready(std::future<WriteOutcome>& f, absl::Duration wait = absl::ZeroDuration()) {
  return f.wait_for(absl::ToChronoNanoseconds(wait)) == std::future_status::ready;
}

class ClientIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(
        absl::StrCat("client-", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
  }
  absl::StatusOr<Sidecar> Start(const std::string& linger, const std::string& listen = "",
                                const std::string& dir = "") {
    return StartSidecar(dir.empty() ? dir_ : dir, Config(dynalite_.endpoint(), linger, listen));
  }
  std::unique_ptr<Client> MakeClient(const Sidecar& sidecar, ClientOptions options = {}) {
    options.target = sidecar.target();
    auto client = Client::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }
  std::string dir_;
  Dynalite dynalite_;
};

TEST_F(ClientIntegration, FuturesResolveWrittenRejectedAndCoalesced) {
  // A 10 s linger: nothing is sent before Flush, so the puts to one key meet
  // in the sidecar's buffer and all but the last are coalesced.
  auto sidecar = Start("10s");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto client = MakeClient(*sidecar);
  ASSERT_NE(client, nullptr);

  std::vector<std::future<WriteOutcome>> same_key;
  for (int i = 0; i < 5; ++i) {
    same_key.push_back(client->Put("events", Item().S("pk", "same").S("v", absl::StrCat("v", i))));
  }
  auto other = client->Put("events", Item().S("pk", "other").S("v", "x"));
  auto deleted = client->Delete("users", Item().S("id", "nobody"));
  auto unknown_table = client->Put("no_such_table", Item().S("pk", "a"));
  auto wrong_key_type = client->Put("events", Item().N("pk", 7).S("v", "bad"));
  auto missing_key = client->Put("users", Item().S("name", "no id"));

  // Rejections come back at once, while the valid ops still wait in the
  // sidecar's buffer (nothing else on the stream is affected).
  for (auto* f : {&unknown_table, &wrong_key_type, &missing_key}) {
    ASSERT_TRUE(Ready(*f, absl::Seconds(8))) << "a rejection must not wait for the linger";
    WriteOutcome o = f->get();
    EXPECT_TRUE(o.status.ok()) << o.DebugString();
    EXPECT_EQ(o.outcome, v1::REJECTED) << o.DebugString();
    EXPECT_FALSE(o.error_code.empty());
    EXPECT_FALSE(o.message.empty());
    EXPECT_FALSE(o.ok());
  }
  EXPECT_FALSE(Ready(other)) << "the valid put must still be buffered (10 s linger)";

  ASSERT_TRUE(client->Flush().ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Ready(same_key[i])) << "Flush returned before op " << i << " resolved";
    WriteOutcome o = same_key[i].get();
    EXPECT_TRUE(o.ok()) << o.DebugString();
    EXPECT_EQ(o.outcome, i < 4 ? v1::COALESCED : v1::WRITTEN) << i << ": " << o.DebugString();
  }
  WriteOutcome o = other.get();
  EXPECT_EQ(o.outcome, v1::WRITTEN) << o.DebugString();
  EXPECT_GE(o.attempts, 1u);
  o = deleted.get();
  EXPECT_EQ(o.outcome, v1::WRITTEN) << o.DebugString();

  auto events = ReadTable(dynalite_.endpoint(), "events", "pk");
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(*events, (std::map<std::string, std::string>{{"other", "x"}, {"same", "v4"}}));

  Client::Stats s = client->stats();
  EXPECT_EQ(s.ops_submitted, 10u);
  EXPECT_EQ(s.ops_resolved, 10u);
  EXPECT_EQ(s.written, 3u);
  EXPECT_EQ(s.coalesced, 4u);
  EXPECT_EQ(s.rejected, 3u);
  EXPECT_EQ(s.client_errors, 0u);
  EXPECT_TRUE(client->Close(absl::Seconds(10)).ok());
}

TEST_F(ClientIntegration, FlushReturnsOnlyWhenEveryEarlierOpIsResolvedAndStored) {
  auto sidecar = Start("2s");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto client = MakeClient(*sidecar);
  ASSERT_NE(client, nullptr);

  for (int round = 0; round < 3; ++round) {
    constexpr int kOps = 310;  // not a multiple of 25: a partial batch lingers
    std::atomic<int> resolved{0}, ok{0};
    std::vector<std::future<WriteOutcome>> futures;
    for (int i = 0; i < kOps; ++i) {
      const std::string key = absl::StrCat("r", round, "-", i);
      if (i % 2 == 0) {
        client->Put("events", Item().S("pk", key).S("v", "cb"), [&](WriteOutcome o) {
          ok += o.ok();
          ++resolved;
        });
      } else {
        futures.push_back(client->Put("events", Item().S("pk", key).S("v", "f")));
      }
    }
    const absl::Status flushed = client->Flush("", absl::Seconds(60));
    ASSERT_TRUE(flushed.ok()) << flushed;
    // No waiting here: Flush has returned, so every callback has run and
    // every future is ready.
    EXPECT_EQ(resolved.load(), kOps / 2);
    EXPECT_EQ(ok.load(), kOps / 2);
    for (auto& f : futures) {
      ASSERT_TRUE(Ready(f));
      EXPECT_EQ(f.get().outcome, v1::WRITTEN);
    }
    auto events = ReadTable(dynalite_.endpoint(), "events", "pk");
    ASSERT_TRUE(events.ok()) << events.status();
    EXPECT_EQ(events->size(), static_cast<size_t>((round + 1) * kOps));
  }
  EXPECT_EQ(client->stats().inflight, 0u);
}

TEST_F(ClientIntegration, EightThreadsPuttingAtOnceAllResolveAndLastWriteWins) {
  auto sidecar = Start("5ms");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ClientOptions options;
  options.streams = 2;  // both tables, possibly different streams
  auto client = MakeClient(*sidecar, options);
  ASSERT_NE(client, nullptr);

  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 2000;
  constexpr int kKeysPerThread = 250;  // each key written ~8 times per thread
  std::atomic<int> resolved{0}, not_ok{0};
  absl::Mutex mu;
  std::vector<std::string> problems;
  // Expected table state: thread t owns keys "t<t>-k<j>" in both tables.
  std::vector<std::map<std::string, std::string>> expect_events(kThreads), expect_users(kThreads);
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOpsPerThread; ++i) {
        const int k = (i * 7919 + t) % kKeysPerThread;
        const std::string key = absl::StrCat("t", t, "-k", k);
        const std::string value = absl::StrCat("t", t, "-op", i);
        auto cb = [&](WriteOutcome o) {
          if (!o.ok()) {
            ++not_ok;
            absl::MutexLock lock(&mu);
            if (problems.size() < 10) problems.push_back(o.DebugString());
          }
          ++resolved;
        };
        if (i % 3 == 0) {
          client->Put("users", Item().S("id", key).S("v", value), cb);
          expect_users[t][key] = value;
        } else if (i % 11 == 0) {
          client->Delete("events", Item().S("pk", key), cb);
          expect_events[t].erase(key);
        } else {
          client->Put("events", Item().S("pk", key).S("v", value), cb);
          expect_events[t][key] = value;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const absl::Status flushed = client->Flush("", absl::Seconds(180));
  ASSERT_TRUE(flushed.ok()) << flushed;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_EQ(resolved.load(), kThreads * kOpsPerThread);
  EXPECT_EQ(not_ok.load(), 0) << ::testing::PrintToString(problems);
  Client::Stats s = client->stats();
  EXPECT_EQ(s.ops_resolved, static_cast<uint64_t>(kThreads * kOpsPerThread));
  EXPECT_EQ(s.written + s.coalesced, static_cast<uint64_t>(kThreads * kOpsPerThread));
  EXPECT_EQ(s.inflight, 0u);
  // Packing: far fewer messages than ops.
  EXPECT_LT(s.messages_sent, s.ops_sent / 2) << s.messages_sent << " messages";

  std::map<std::string, std::string> want_events, want_users;
  for (int t = 0; t < kThreads; ++t) {
    want_events.insert(expect_events[t].begin(), expect_events[t].end());
    want_users.insert(expect_users[t].begin(), expect_users[t].end());
  }
  auto events = ReadTable(dynalite_.endpoint(), "events", "pk");
  auto users = ReadTable(dynalite_.endpoint(), "users", "id");
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_TRUE(users.ok()) << users.status();
  EXPECT_EQ(*events, want_events);
  EXPECT_EQ(*users, want_users);
  std::cout << "16000 ops from 8 threads in " << seconds << " s, " << s.messages_sent
            << " messages, " << s.coalesced << " coalesced\n";
  EXPECT_TRUE(client->Close(absl::Seconds(10)).ok());
}

TEST_F(ClientIntegration, SidecarRestartMidFlightLosesNothingAndDoublesNothing) {
  // The first sidecar picks a port; the second takes over the same one.
  auto first = Start("20ms");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string target = first->target();
  const std::string second_dir = TestDir("client-restart-second");

  ClientOptions options;
  options.op_deadline = absl::Seconds(120);  // generous: nothing should expire
  options.reconnect_backoff = absl::Milliseconds(50);
  options.max_reconnect_backoff = absl::Milliseconds(500);
  auto client = MakeClient(*first, options);
  ASSERT_NE(client, nullptr);

  constexpr int kOps = 8000;
  constexpr int kKeys = 400;
  std::vector<std::future<WriteOutcome>> futures;
  futures.reserve(kOps);
  std::map<std::string, std::string> want;
  std::atomic<int> submitted{0};
  std::atomic<bool> keep_pacing{true};
  std::thread producer([&] {
    for (int i = 0; i < kOps; ++i) {
      const std::string key = absl::StrCat("k", (i * 31) % kKeys);
      if (i % 13 == 0) {
        futures.push_back(client->Delete("events", Item().S("pk", key)));
        want.erase(key);
      } else {
        const std::string value = absl::StrCat("op", i);
        futures.push_back(client->Put("events", Item().S("pk", key).S("v", value)));
        want[key] = value;
      }
      ++submitted;
      // Spread the ops out so that many are in flight across the restart.
      if (keep_pacing && i % 100 == 99) absl::SleepFor(absl::Milliseconds(15));
    }
  });
  // Joined on every path (the producer never blocks: the budget is larger
  // than kOps).
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{producer};

  // Kill once a good part is in flight and some results have come back.
  const absl::Time wait_until = absl::Now() + absl::Seconds(60);
  while (absl::Now() < wait_until &&
         (submitted.load() < kOps / 4 || client->stats().ops_resolved < 200)) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  Client::Stats before = client->stats();
  ASSERT_GT(before.ops_resolved, 0u);
  first->process->Signal(SIGKILL);
  ASSERT_EQ(first->process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  const Client::Stats after_kill = client->stats();
  auto second = Start("20ms", target, second_dir);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->target(), target);
  const uint64_t submitted_while_down = client->stats().ops_submitted - after_kill.ops_submitted;
  keep_pacing = false;
  producer.join();

  const absl::Status flushed = client->Flush("", absl::Seconds(180));
  ASSERT_TRUE(flushed.ok()) << flushed;
  int written = 0, coalesced = 0, bad = 0;
  std::vector<std::string> problems;
  for (auto& f : futures) {
    ASSERT_TRUE(Ready(f)) << "Flush returned with an op unresolved";
    WriteOutcome o = f.get();
    if (o.outcome == v1::WRITTEN && o.status.ok()) {
      ++written;
    } else if (o.outcome == v1::COALESCED && o.status.ok()) {
      ++coalesced;
    } else {
      ++bad;
      if (problems.size() < 10) problems.push_back(o.DebugString());
    }
  }
  EXPECT_EQ(bad, 0) << ::testing::PrintToString(problems);
  EXPECT_EQ(written + coalesced, kOps);
  Client::Stats s = client->stats();
  EXPECT_GE(s.reconnects, 1u);
  EXPECT_EQ(s.ops_resolved, static_cast<uint64_t>(kOps));
  std::cout << "killed after " << before.ops_resolved << " resolved / " << before.ops_submitted
            << " submitted; " << submitted_while_down << " submitted while down; re-sent "
            << s.ops_resent << ", reconnects " << s.reconnects << "\n";

  // Last write per key, in call order; a re-sent old write never shadows a
  // newer one.
  auto events = ReadTable(dynalite_.endpoint(), "events", "pk");
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(*events, want);
  // The second sidecar answered the re-sent and the later ops.
  auto m = ScrapeMetrics(*second);
  ASSERT_TRUE(m.ok()) << m.status();
  // Each op reaches the second sidecar at most once, and only if the first
  // one never answered it: those answered before the kill are not re-sent,
  // those submitted after it are sent once.
  const double received_second = MetricSum(*m, "dynamo_batcher_ops_received_total");
  EXPECT_LE(received_second, kOps - before.ops_resolved);
  EXPECT_GE(received_second, kOps - after_kill.ops_submitted);
  EXPECT_TRUE(client->Close(absl::Seconds(10)).ok());
}

TEST_F(ClientIntegration, FullBudgetFailsAtOnceInFailMode) {
  auto sidecar = Start("10s");  // results withheld until Flush
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ClientOptions options;
  options.max_inflight_ops = 8;
  options.when_full = ClientOptions::WhenFull::kFail;
  auto client = MakeClient(*sidecar, options);
  ASSERT_NE(client, nullptr);

  std::vector<std::future<WriteOutcome>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(client->Put("events", Item().S("pk", absl::StrCat("held", i)).S("v", "x")));
  }
  EXPECT_FALSE(Ready(held[0], absl::Milliseconds(300)));
  // The budget is full: the next op resolves before Put returns.
  const absl::Time t0 = absl::Now();
  auto refused = client->Put("events", Item().S("pk", "refused").S("v", "x"));
  ASSERT_TRUE(Ready(refused)) << "kFail must not wait";
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  WriteOutcome o = refused.get();
  EXPECT_EQ(o.status.code(), absl::StatusCode::kResourceExhausted) << o.DebugString();
  EXPECT_THAT(std::string(o.status.message()), HasSubstr("max_inflight_ops"));
  EXPECT_FALSE(o.ok());

  ASSERT_TRUE(client->Flush().ok());
  for (auto& f : held) EXPECT_EQ(f.get().outcome, v1::WRITTEN);
  // Results flowed: room again.
  auto later = client->Put("events", Item().S("pk", "later").S("v", "x"));
  ASSERT_TRUE(client->Flush().ok());
  EXPECT_EQ(later.get().outcome, v1::WRITTEN);
  auto events = ReadTable(dynalite_.endpoint(), "events", "pk");
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 9u);
  EXPECT_EQ(events->count("refused"), 0u);
  EXPECT_EQ(client->stats().client_errors, 1u);
}

TEST_F(ClientIntegration, FullBudgetBlocksPutUntilResultsFlowInBlockMode) {
  auto sidecar = Start("10s");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ClientOptions options;
  options.max_inflight_ops = 8;
  options.when_full = ClientOptions::WhenFull::kBlock;
  auto client = MakeClient(*sidecar, options);
  ASSERT_NE(client, nullptr);

  std::vector<std::future<WriteOutcome>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(client->Put("events", Item().S("pk", absl::StrCat("held", i)).S("v", "x")));
  }
  std::atomic<bool> returned{false};
  std::future<WriteOutcome> blocked_future;
  std::thread blocked([&] {
    blocked_future = client->Put("events", Item().S("pk", "blocked").S("v", "x"));
    returned = true;
  });
  // The sidecar holds every result for 10 s, so the Put cannot return yet.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(returned.load()) << "Put must block while the budget is full";
  EXPECT_EQ(client->stats().inflight, 8u);

  // Flush makes the sidecar send; results free the budget; Put returns.
  ASSERT_TRUE(client->Flush().ok());
  for (auto& f : held) EXPECT_EQ(f.get().outcome, v1::WRITTEN);
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (!returned.load() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(10));
  const bool unblocked = returned.load();
  if (!unblocked) (void)client->Close(absl::Seconds(1));  // releases the blocked Put
  blocked.join();
  ASSERT_TRUE(unblocked) << "Put still blocked after results flowed";
  ASSERT_TRUE(client->Flush().ok());
  ASSERT_TRUE(Ready(blocked_future));
  WriteOutcome o = blocked_future.get();
  EXPECT_EQ(o.outcome, v1::WRITTEN) << o.DebugString();
  auto events = ReadTable(dynalite_.endpoint(), "events", "pk");
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 9u);
  EXPECT_EQ(events->count("blocked"), 1u);
}

// An op the sidecar cannot parse (a list nested 60 deep passes the client
// but exceeds protobuf's recursion limit) ends the stream with
// INVALID_ARGUMENT. Before the fix the stream ended OK and the client
// re-sent the op on every new stream until op_deadline; now that op fails
// at once with the sidecar's status, and the client keeps working.
TEST_F(ClientIntegration, UnparseableOpFailsWithInvalidArgumentInsteadOfBeingResent) {
  auto sidecar = Start("5ms");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ClientOptions options;
  options.op_deadline = absl::Seconds(30);
  auto client = MakeClient(*sidecar, options);
  ASSERT_NE(client, nullptr);

  auto before = client->Put("events", Item().S("pk", "before").S("v", "1"));
  ASSERT_TRUE(Ready(before, absl::Seconds(10)));
  EXPECT_EQ(before.get().outcome, v1::WRITTEN);

  v1::AttributeValue deep = Value::S("bottom");
  for (int i = 0; i < 60; ++i) deep = Value::L({deep});
  Item item = Item().S("pk", "deep");
  item.Set("deep", deep);
  const absl::Time start = absl::Now();
  auto bad = client->Put("events", std::move(item));
  ASSERT_TRUE(Ready(bad, absl::Seconds(10)))
      << "the op must fail, not be re-sent until its deadline";
  WriteOutcome o = bad.get();
  EXPECT_EQ(o.status.code(), absl::StatusCode::kInvalidArgument) << o.DebugString();
  EXPECT_THAT(o.status.message(), HasSubstr("nested more than")) << o.DebugString();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  auto after = client->Put("events", Item().S("pk", "after").S("v", "2"));
  ASSERT_TRUE(Ready(after, absl::Seconds(10)));
  EXPECT_EQ(after.get().outcome, v1::WRITTEN);
  Client::Stats s = client->stats();
  EXPECT_EQ(s.client_errors, 1u);
  EXPECT_TRUE(client->Close(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace dynamo_batcher::testing
