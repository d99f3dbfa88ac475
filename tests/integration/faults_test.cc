// Throttling and faults through the fault proxy in front of a real dynalite:
// retries with backoff, adaptive rate, bisection of poison items, dead-letter
// file and replay. Every op gets exactly one result, and the tables end up
// with the last write per key.

#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

std::string Config(const std::string& endpoint, const std::string& dir, const std::string& retry) {
  return SidecarConfig(endpoint)
      .CallTimeout("5s")
      .Table("events", "pk")
      .Table("users", "id")
      .Append(retry)
      .Append(absl::StrCat("dead_letter:\n  path: ", dir, "/dead-letter.jsonl\n"));
}

v1::AttributeValue S(const std::string& s) {
  v1::AttributeValue v;
  v.set_s(s);
  return v;
}

struct StreamRun {
  std::map<uint64_t, int> count;
  std::map<uint64_t, v1::WriteResult> last;
  grpc::Status status;
};

// Writes `ops` (already split into messages) on one stream and collects
// every result. `pace` > 0 sleeps between messages.
StreamRun RunStream(const Sidecar& sidecar, const std::vector<v1::WriteRequest>& msgs,
                    absl::Duration pace = absl::ZeroDuration()) {
  StreamRun run;
  auto stub = v1::WriteBatcher::NewStub(sidecar.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  auto stream = stub->Write(&ctx);
  std::thread reader([&] {
    v1::WriteResponse resp;
    while (stream->Read(&resp)) {
      for (const auto& r : resp.results()) {
        ++run.count[r.id()];
        run.last[r.id()] = r;
      }
    }
  });
  absl::Time next = absl::Now();
  for (const auto& m : msgs) {
    if (pace > absl::ZeroDuration()) {
      next += pace;
      absl::Duration wait = next - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    }
    if (!stream->Write(m)) break;
  }
  stream->WritesDone();
  reader.join();
  run.status = stream->Finish();
  return run;
}

double StatNumber(const rapidjson::Value& v, const char* a, const char* b = nullptr) {
  if (!v.HasMember(a)) return 0;
  const rapidjson::Value& x = v[a];
  if (b == nullptr) return x.IsNumber() ? x.GetDouble() : 0;
  if (!x.IsObject() || !x.HasMember(b) || !x[b].IsNumber()) return 0;
  return x[b].GetDouble();
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
  }
  std::string dir_;
  Dynalite dynalite_;
};

TEST_F(Faults, HundredThousandOpsUnderMixedFaultsAllWrittenAndCountersAgree) {
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), R"({"seed": 7})");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(dir_, Config(proxy->endpoint(), dir_, R"(
retry:
  base: 5ms
  cap: 250ms
  max_attempts: 200
  op_deadline: 600s
# The proxy throttles at random, whatever the rate: recover fast so the test
# measures correctness, not the limiter's patience.
rate_limit:
  increase_per_second: 50000
  cubic_recovery: 200ms
)"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  // Faults on only after the tables exist.
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({
    "unprocessed_fraction": 0.3,
    "throttle_fraction": {"ProvisionedThroughputExceededException": 0.04,
                          "ThrottlingException": 0.03, "RequestLimitExceeded": 0.03},
    "error_500_fraction": 0.02,
    "reset_fraction": 0.01
  })")
                  .ok());

  constexpr int kStreams = 4;
  constexpr int kOpsPerStream = 25000;
  constexpr int kKeys = 15000;  // per stream: >= 20% of ops hit repeated keys
  std::vector<std::vector<v1::WriteRequest>> msgs(kStreams);
  std::map<std::string, std::string> expected;  // table/key -> value, "" = deleted
  uint64_t id = 1;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  auto rnd = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  std::set<std::string> seen;
  int repeats = 0;
  for (int s = 0; s < kStreams; ++s) {
    v1::WriteRequest req;
    for (int i = 0; i < kOpsPerStream; ++i) {
      const bool users = rnd() % 2;
      const std::string table = users ? "users" : "events";
      const std::string key = absl::StrCat("s", s, "-", rnd() % kKeys);
      const bool del = rnd() % 10 == 0;
      v1::WriteOp* op = req.add_ops();
      op->set_id(id++);
      op->set_table(table);
      auto* attrs = del ? op->mutable_delete_key()->mutable_attributes()
                        : op->mutable_put()->mutable_attributes();
      (*attrs)[users ? "id" : "pk"] = S(key);
      const std::string value = absl::StrCat("v", i);
      if (!del) (*attrs)["v"] = S(value);
      const std::string k = table + "/" + key;
      if (!seen.insert(k).second) ++repeats;
      expected[k] = del ? "" : value;
      if (req.ops_size() == 200) {
        msgs[s].push_back(std::move(req));
        req = v1::WriteRequest();
      }
    }
    if (req.ops_size() > 0) msgs[s].push_back(std::move(req));
  }
  const int total = kStreams * kOpsPerStream;
  ASSERT_GE(repeats, total / 5);

  const absl::Time start = absl::Now();
  std::vector<StreamRun> runs(kStreams);
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] { runs[s] = RunStream(*sidecar, msgs[s]); });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  std::map<v1::Outcome, int> outcomes;
  int answered = 0;
  for (int s = 0; s < kStreams; ++s) {
    EXPECT_TRUE(runs[s].status.ok()) << runs[s].status.error_message();
    for (const auto& [op_id, n] : runs[s].count) {
      ASSERT_EQ(n, 1) << "op " << op_id << " got " << n << " results";
      ++outcomes[runs[s].last[op_id].outcome()];
      if (runs[s].last[op_id].outcome() == v1::FAILED) {
        ADD_FAILURE() << "op " << op_id << " FAILED: " << runs[s].last[op_id].error_code() << " "
                      << runs[s].last[op_id].message();
      }
    }
    answered += runs[s].count.size();
  }
  ASSERT_EQ(answered, total) << "every op must get exactly one result";
  EXPECT_EQ(outcomes[v1::FAILED], 0);

  // Final state equals the last acknowledged write per key.
  std::map<std::string, std::string> actual;
  for (const char* table : {"events", "users"}) {
    auto items = ScanTable(dynalite_.endpoint(), table);
    ASSERT_TRUE(items.ok()) << items.status();
    for (const auto& line : *items) {
      rapidjson::Document d;
      d.Parse(line.c_str());
      ASSERT_FALSE(d.HasParseError());
      const char* pk = std::string(table) == "users" ? "id" : "pk";
      actual[absl::StrCat(table, "/", d[pk]["S"].GetString())] = d["v"]["S"].GetString();
    }
  }
  int bad = 0;
  for (const auto& [k, v] : expected) {
    auto it = actual.find(k);
    const std::string got = it == actual.end() ? "" : it->second;
    if (got != v && ++bad <= 5)
      ADD_FAILURE() << k << ": table has \"" << got << "\", expected \"" << v << "\"";
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(actual.size(), std::count_if(expected.begin(), expected.end(),
                                         [](const auto& kv) { return !kv.second.empty(); }));

  // The sidecar's counters agree with what the proxy injected.
  auto stats_json = ProxyStats(*proxy);
  ASSERT_TRUE(stats_json.ok());
  rapidjson::Document st;
  st.Parse(stats_json->c_str());
  ASSERT_FALSE(st.HasParseError());
  auto m = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(m.ok());
  for (const char* err :
       {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}) {
    const double injected = StatNumber(st, "throttles_injected", err);
    EXPECT_GT(injected, 0) << err;
    EXPECT_EQ(MetricSum(*m, "dynamo_batcher_throttle_events_total", {{"error", err}}), injected)
        << err;
  }
  const double unprocessed_injected = StatNumber(st, "unprocessed_injected_items");
  EXPECT_GT(unprocessed_injected, 0);
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_unprocessed_items_total"), unprocessed_injected);
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_throttle_events_total", {{"error", "UnprocessedItems"}}),
            StatNumber(st, "unprocessed_injected_calls"));
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_http_errors_total", {{"class", "5xx"}}),
            StatNumber(st, "errors_500"));
  const double resets =
      StatNumber(st, "resets_before_forward") + StatNumber(st, "resets_after_forward");
  EXPECT_GT(resets, 0);
  // libcurl silently re-sends a request whose reused connection died before
  // any answer, so some resets never reach the sidecar as errors.
  EXPECT_LE(MetricSum(*m, "dynamo_batcher_http_errors_total", {{"class", "connection"}}), resets);
  const double retries = MetricSum(*m, "dynamo_batcher_retries_total");
  EXPECT_GE(retries, unprocessed_injected) << "every unprocessed item is retried";
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_ops_failed_total"), 0);
  std::printf(
      "[figures] %d ops, 4 streams, faults: 30%% partial unprocessed, 10%% throttled, 2%% 500, "
      "1%% resets: %.1f s (%.0f ops/s); written %d, coalesced %d, failed %d; retries %.0f; "
      "unprocessed injected %.0f; throttles injected %.0f/%.0f/%.0f; resets %.0f\n",
      total, seconds, total / seconds, outcomes[v1::WRITTEN], outcomes[v1::COALESCED],
      outcomes[v1::FAILED], retries, unprocessed_injected,
      StatNumber(st, "throttles_injected", "ProvisionedThroughputExceededException"),
      StatNumber(st, "throttles_injected", "ThrottlingException"),
      StatNumber(st, "throttles_injected", "RequestLimitExceeded"), resets);
}

class Capacity : public Faults, public ::testing::WithParamInterface<const char*> {};

TEST_P(Capacity, RateAdaptsToTableCapacityAndOtherTableKeepsItsThroughput) {
  const std::string recovery = GetParam();
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), R"({"seed": 11})");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(dir_, Config(proxy->endpoint(), dir_,
                                           absl::StrCat(R"(
retry:
  base: 10ms
  cap: 1s
  max_attempts: 1000
  op_deadline: 600s
rate_limit:
  recovery: )",
                                                        recovery, "\n")));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  // WCU/s for events; items are < 1 KB. Well below what the sidecar and
  // dynalite move per table on a 2-core machine (~2,100 items/s): at 2,000
  // some runs never overflowed the bucket, the limiter never engaged, and
  // the test measured nothing.
  constexpr double kCapacity = 1000;
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"capacity": {"events": {"wcu_per_second": 1000,
                                                                  "burst_seconds": 1}}})")
                  .ok());
  // Offered: events at 6x capacity, users (uncapped) at 2000/s, for 8 s, as
  // messages of 60 ops every 10 ms on each stream.
  constexpr int kSeconds = 8;
  constexpr int kPerMsg = 60;
  auto make = [&](const std::string& table, const char* pk, int stream) {
    std::vector<v1::WriteRequest> msgs;
    uint64_t id = static_cast<uint64_t>(stream) << 40;
    for (int m = 0; m < kSeconds * 100; ++m) {
      v1::WriteRequest req;
      for (int i = 0; i < kPerMsg; ++i) {
        v1::WriteOp* op = req.add_ops();
        op->set_id(++id);
        op->set_table(table);
        (*op->mutable_put()->mutable_attributes())[pk] = S(absl::StrCat(stream, "-", m, "-", i));
        (*op->mutable_put()->mutable_attributes())["v"] = S(std::string(100, 'x'));
      }
      msgs.push_back(std::move(req));
    }
    return msgs;
  };
  // 3 streams x 60 ops / 10 ms = 18,000/s would be 9x; use pacing per stream:
  // events: 1 stream of 60 ops / 10 ms = 6,000/s; users: 1 stream of 60 ops / 30 ms.
  auto events_msgs = make("events", "pk", 1);
  auto users_msgs = make("users", "id", 2);
  users_msgs.resize(users_msgs.size() / 3);

  StreamRun events_run, users_run;
  const absl::Time start = absl::Now();
  std::thread te([&] { events_run = RunStream(*sidecar, events_msgs, absl::Milliseconds(10)); });
  std::thread tu([&] { users_run = RunStream(*sidecar, users_msgs, absl::Milliseconds(30)); });

  // Measure over the adapted window [3 s, 8 s).
  absl::SleepFor(start + absl::Seconds(3) - absl::Now());
  auto m1 = ScrapeMetrics(*sidecar);
  auto s1 = ProxyStats(*proxy);
  const absl::Time t1 = absl::Now();
  absl::SleepFor(start + absl::Seconds(kSeconds) - absl::Now());
  auto m2 = ScrapeMetrics(*sidecar);
  auto s2 = ProxyStats(*proxy);
  const absl::Time t2 = absl::Now();
  te.join();
  tu.join();
  ASSERT_TRUE(m1.ok() && m2.ok() && s1.ok() && s2.ok());
  rapidjson::Document p1, p2;
  p1.Parse(s1->c_str());
  p2.Parse(s2->c_str());
  const double window = absl::ToDoubleSeconds(t2 - t1);
  auto table_written = [](const rapidjson::Document& d, const char* t) {
    if (!d.HasMember("tables") || !d["tables"].HasMember(t)) return 0.0;
    return StatNumber(d["tables"], t, "items_written");
  };
  const double goodput = (table_written(p2, "events") - table_written(p1, "events")) / window;
  const double users_rate = (table_written(p2, "users") - table_written(p1, "users")) / window;
  auto d = [&](const char* name, std::map<std::string, std::string> labels) {
    return MetricSum(*m2, name, labels) - MetricSum(*m1, name, labels);
  };
  const double calls = d("dynamo_batcher_batches_sent_total", {{"table", "events"}});
  const double throttled_calls = d("dynamo_batcher_throttle_events_total", {{"table", "events"}});
  const double users_throttled =
      MetricSum(*m2, "dynamo_batcher_throttle_events_total", {{"table", "users"}});
  const double rate_limit = MetricSum(*m2, "dynamo_batcher_send_rate_limit", {{"table", "events"}});
  std::printf(
      "[figures] recovery=%s: capacity %.0f WCU/s, offered 6000/s: goodput %.0f items/s (%.0f%%), "
      "%.0f calls, "
      "%.0f throttled (%.1f%%), send_rate_limit %.0f/s; users (uncapped, offered 2000/s): %.0f "
      "items/s, %.0f throttle events\n",
      recovery.c_str(), kCapacity, goodput, 100 * goodput / kCapacity, calls, throttled_calls,
      calls > 0 ? 100 * throttled_calls / calls : 0, rate_limit, users_rate, users_throttled);
  EXPECT_GE(users_rate, 0.9 * 2000) << "a throttled table must not slow another";
  EXPECT_EQ(users_throttled, 0);
  if (recovery == "cubic") {  // the default; the alternative is measured, not held to it
    EXPECT_GE(goodput, 0.9 * kCapacity);
    EXPECT_LT(throttled_calls, 0.2 * calls);
    EXPECT_GT(rate_limit, 0);
    EXPECT_LT(rate_limit, 3 * kCapacity);
  }

  // Every op still ends WRITTEN (the queue drains at capacity).
  for (auto* run : {&events_run, &users_run}) {
    EXPECT_TRUE(run->status.ok()) << run->status.error_message();
    for (const auto& [op_id, r] : run->last) {
      if (r.outcome() != v1::WRITTEN) {
        ADD_FAILURE() << op_id << " " << v1::Outcome_Name(r.outcome()) << " " << r.message();
        break;
      }
    }
  }
  EXPECT_EQ(events_run.count.size(), events_msgs.size() * kPerMsg);
  EXPECT_EQ(users_run.count.size(), users_msgs.size() * kPerMsg);
}

INSTANTIATE_TEST_SUITE_P(Recovery, Capacity, ::testing::Values("cubic", "additive"));

TEST_F(Faults, PoisonItemIsIsolatedDeadLetteredAndReplayedAfterFix) {
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), R"({"seed": 3})");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(dir_, Config(proxy->endpoint(), dir_, ""));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"validation_error_keys": ["poison"]})").ok());

  v1::WriteRequest req;
  for (int i = 0; i < 25; ++i) {
    v1::WriteOp* op = req.add_ops();
    op->set_id(i + 1);
    op->set_table("events");
    (*op->mutable_put()->mutable_attributes())["pk"] =
        S(i == 13 ? "poison" : absl::StrCat("good-", i));
    (*op->mutable_put()->mutable_attributes())["v"] = S("x");
  }
  StreamRun run = RunStream(*sidecar, {req});
  ASSERT_TRUE(run.status.ok());
  ASSERT_EQ(run.count.size(), 25u);
  for (const auto& [op_id, r] : run.last) {
    if (op_id == 14) {
      EXPECT_EQ(r.outcome(), v1::FAILED);
      EXPECT_EQ(r.error_code(), "ValidationException");
      EXPECT_THAT(r.message(), HasSubstr("poison item"));
    } else {
      EXPECT_EQ(r.outcome(), v1::WRITTEN) << op_id << " " << r.message();
    }
  }
  auto items = ScanTable(dynalite_.endpoint(), "events");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 24u);
  auto m = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_ops_failed_total", {{"reason", "ValidationException"}}),
            1);
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_dead_lettered_total"), 1);
  EXPECT_THAT(sidecar->process->ReadLog(), HasSubstr("write FAILED"));

  // The dead-letter line names table, op, item, error and attempts.
  std::string dl_path = dir_ + "/dead-letter.jsonl";
  std::string line;
  for (int i = 0; i < 100 && line.empty(); ++i) {
    std::ifstream in(dl_path);
    std::getline(in, line);
    if (line.empty()) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE(line.empty());
  rapidjson::Document dl;
  dl.Parse(line.c_str());
  ASSERT_FALSE(dl.HasParseError()) << line;
  EXPECT_STREQ(dl["table"].GetString(), "events");
  EXPECT_STREQ(dl["op"].GetString(), "put");
  EXPECT_STREQ(dl["item"]["pk"]["S"].GetString(), "poison");
  EXPECT_STREQ(dl["error_code"].GetString(), "ValidationException");
  EXPECT_GE(dl["attempts"].GetInt(), 1);

  // Replay as-is fails again (the item is still poison): exit code 1.
  ChildProcess again({BatchctlBinary(), "--target", sidecar->target(), "replay", dl_path},
                     dir_ + "/replay1.log");
  EXPECT_EQ(again.Wait(absl::Seconds(30)), 1) << again.ReadLog();
  // Fix the item up, replay: written.
  std::string fixed = absl::StrReplaceAll(line, {{"\"poison\"", "\"poison-fixed\""}});
  std::string fixed_path = dir_ + "/fixed.jsonl";
  { std::ofstream(fixed_path) << fixed << "\n"; }
  ChildProcess replay({BatchctlBinary(), "--target", sidecar->target(), "replay", fixed_path},
                      dir_ + "/replay2.log");
  EXPECT_EQ(replay.Wait(absl::Seconds(30)), 0) << replay.ReadLog();
  items = ScanTable(dynalite_.endpoint(), "events");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 25u);
  bool found = false;
  for (const auto& it : *items) found |= it.find("poison-fixed") != std::string::npos;
  EXPECT_TRUE(found);
}

TEST_F(Faults, NonRetryableErrorFailsFastWithServiceMessage) {
  // A table the sidecar is configured for but DynamoDB does not have.
  auto sidecar = StartSidecar(dir_, absl::StrCat(R"(
dynamodb:
  endpoint: )",
                                                 dynalite_.endpoint(), R"(
  credentials: {access_key_id: local, secret_access_key: local}
tables:
  - name: missing_table
    partition_key: {name: pk, type: S}
)"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  v1::WriteRequest req;
  v1::WriteOp* op = req.add_ops();
  op->set_id(1);
  op->set_table("missing_table");
  (*op->mutable_put()->mutable_attributes())["pk"] = S("a");
  const absl::Time t0 = absl::Now();
  StreamRun run = RunStream(*sidecar, {req});
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5)) << "must not retry";
  ASSERT_EQ(run.last.size(), 1u);
  EXPECT_EQ(run.last[1].outcome(), v1::FAILED);
  EXPECT_EQ(run.last[1].error_code(), "ResourceNotFoundException");
  EXPECT_EQ(run.last[1].attempts(), 1u);
  EXPECT_FALSE(run.last[1].message().empty());
}

}  // namespace
}  // namespace dynamo_batcher::testing
