// Unknown fate through the fault proxy in front of a real dynalite: a call
// whose connection is reset before DynamoDB applies it may still land later.
// The proxy resets the sidecar's connection and forwards the write 1.5 s
// afterwards; a newer write to the same key, answered WRITTEN in between,
// must not be overwritten by that late landing.

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;

double StatNumber(const std::string& json, const char* name) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember(name) || !d[name].IsNumber()) return -1;
  return d[name].GetDouble();
}

v1::WriteRequest Put(uint64_t id, const std::string& key, const std::string& value) {
  v1::WriteRequest req;
  v1::WriteOp* op = req.add_ops();
  op->set_id(id);
  op->set_table("events");
  auto* attrs = op->mutable_put()->mutable_attributes();
  (*attrs)["pk"].set_s(key);
  (*attrs)["v"].set_s(value);
  return req;
}

// Polls `pred` every 5 ms for up to `timeout`.
template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

TEST(UnknownFate, LateLandingOfAResetCallNeverOverwritesANewerWrittenWrite) {
  const std::string dir = TestDir("UnknownFate");
  auto dynalite = StartDynalite(dir);
  ASSERT_TRUE(dynalite.ok()) << dynalite.status();
  auto proxy = StartFaultProxy(dir, dynalite->endpoint(), R"({"seed": 3})");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(dir, absl::StrCat(R"(
dynamodb:
  endpoint: )",
                                                proxy->endpoint(), R"(
  credentials: {access_key_id: local, secret_access_key: local}
  create_tables: true
  call_timeout: 5s
tables:
  - name: events
    partition_key: {name: pk, type: S}
batching:
  linger: 1ms
  unknown_fate_hold: 3s
retry:
  base: 25ms
  cap: 100ms
  max_attempts: 100
  op_deadline: 60s
)"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  // Every BatchWriteItem: reset the sidecar's connection, apply it 1.5 s later.
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"reset_fraction": 1, "reset_after_forward_share": 1,
                                         "reset_late_forward_ms": 1500})")
                  .ok());

  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());  // gRPC's default limits
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Write(&ctx);
  std::mutex mu;
  std::map<uint64_t, v1::WriteResult> results;
  std::map<uint64_t, absl::Time> answered_at;
  std::thread reader([&] {
    v1::WriteResponse resp;
    while (stream->Read(&resp)) {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& r : resp.results()) {
        results[r.id()] = r;
        answered_at[r.id()] = absl::Now();
      }
    }
  });

  ASSERT_TRUE(stream->Write(Put(1, "k", "old")));
  // The sidecar saw the reset (libcurl may re-send once on its own first).
  ASSERT_TRUE(WaitFor(
      [&] {
        auto m = ScrapeMetrics(*sidecar);
        return m.ok() &&
               MetricSum(*m, "dynamo_batcher_http_errors_total", {{"class", "connection"}}) >= 1;
      },
      absl::Seconds(10)));
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"reset_fraction": 0})").ok());
  const absl::Time sent_new = absl::Now();
  ASSERT_TRUE(stream->Write(Put(2, "k", "new")));
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return results.count(2) > 0;
      },
      absl::Seconds(30)));
  stream->WritesDone();
  reader.join();
  ASSERT_TRUE(stream->Finish().ok());

  // Every late forward has landed by now or soon: wait for the proxy to say so.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = ProxyStats(*proxy);
        return s.ok() && StatNumber(*s, "late_forwards") >= 1 &&
               StatNumber(*s, "late_forwards") == StatNumber(*s, "resets_after_forward");
      },
      absl::Seconds(10)));
  auto stats = ProxyStats(*proxy);
  ASSERT_TRUE(stats.ok());

  EXPECT_EQ(results[2].outcome(), v1::WRITTEN) << results[2].message();
  EXPECT_EQ(results[1].outcome(), v1::COALESCED) << results[1].message();
  auto items = ScanTable(dynalite->endpoint(), "events");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 1u);
  rapidjson::Document d;
  d.Parse((*items)[0].c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["v"]["S"].GetString(), "new")
      << "the reset call's write landed after the newer write was answered WRITTEN";
  std::printf(
      "[figures] late forwards %.0f; newer write answered %.2f s after it was sent "
      "(hold 3 s from the reset, late landing 1.5 s after it)\n",
      StatNumber(*stats, "late_forwards"), absl::ToDoubleSeconds(answered_at[2] - sent_new));
}

}  // namespace
}  // namespace dynamo_batcher::testing
