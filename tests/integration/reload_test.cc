// SIGHUP reload against the real sidecar and dynalite: live keys (linger,
// max_items) take effect on ops already buffered, an invalid file is refused
// with the old configuration kept, restart-only changes are logged as such,
// and the config metrics say what happened.

#include <signal.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;

std::string Config(const std::string& endpoint, const std::string& batching,
                   const std::string& listen = "127.0.0.1:0") {
  return absl::StrReplaceAll(R"(listen: LISTEN
metrics_listen: 127.0.0.1:0
dynamodb:
  region: us-east-1
  endpoint: ENDPOINT
  credentials: {access_key_id: local, secret_access_key: local}
  create_tables: true
tables:
  - name: events
    partition_key: {name: pk, type: S}
batching:
BATCHING
drain_timeout: 10s
)",
                             {{"ENDPOINT", endpoint}, {"BATCHING", batching}, {"LISTEN", listen}});
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

v1::WriteRequest Puts(uint64_t first_id, int count) {
  v1::WriteRequest req;
  for (int i = 0; i < count; ++i) {
    v1::WriteOp* op = req.add_ops();
    op->set_id(first_id + i);
    op->set_table("events");
    (*op->mutable_put()->mutable_attributes())["pk"].set_s(absl::StrCat("r", first_id + i));
  }
  return req;
}

double Metric(const Sidecar& s, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  auto m = ScrapeMetrics(s);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? MetricSum(*m, name, labels) : -1;
}

// The hash label of dynamo_batcher_config_hash (exactly one series).
std::string ConfigHash(const Sidecar& s) {
  auto m = ScrapeMetrics(s);
  if (!m.ok()) return "";
  std::string hash;
  int series = 0;
  for (const auto& [k, v] : *m) {
    if (absl::StartsWith(k, "dynamo_batcher_config_hash{hash=\"") && v == 1) {
      hash = k.substr(33, k.size() - 35);
      ++series;
    }
  }
  return series == 1 ? hash : absl::StrCat("(", series, " series)");
}

// Counts occurrences of `needle` in the sidecar's log.
int LogCount(const Sidecar& s, const std::string& needle) {
  const std::string log = s.process->ReadLog();
  int n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

bool WaitForLogCount(const Sidecar& s, const std::string& needle, int count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (LogCount(s, needle) >= count) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// Sends `count` puts on one stream and reads every result (all WRITTEN).
void WriteAll(v1::WriteBatcher::Stub* stub, uint64_t first_id, int count) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub->Write(&ctx);
  ASSERT_TRUE(stream->Write(Puts(first_id, count)));
  stream->WritesDone();
  int n = 0;
  v1::WriteResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) {
      EXPECT_EQ(r.outcome(), v1::WRITTEN) << r.error_code() << " " << r.message();
      ++n;
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(n, count);
}

TEST(Reload, SighupAppliesLingerAndMaxItemsKeepsOldConfigOnErrorAndNamesRestartOnlyKeys) {
  const std::string dir = TestDir("reload_test");
  auto ddb = StartDynalite(dir);
  ASSERT_TRUE(ddb.ok()) << ddb.status();
  // Start: a linger so long that nothing is sent unless the reload works.
  auto sidecar = StartSidecar(dir, Config(ddb->endpoint(), "  linger: 10s\n  max_items: 25\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  const std::map<std::string, std::string> events = {{"table", "events"}};
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_config_reload_success"), 1);
  EXPECT_GT(Metric(*sidecar, "dynamo_batcher_config_last_reload_timestamp_seconds"), 1.6e9);
  const std::string hash0 = ConfigHash(*sidecar);
  ASSERT_EQ(hash0.size(), 16u) << hash0;

  auto channel = grpc::CreateChannel(sidecar->target(), grpc::InsecureChannelCredentials());
  auto stub = v1::WriteBatcher::NewStub(channel);

  // 10 puts wait out the 10 s linger...
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->Write(&ctx);
  ASSERT_TRUE(stream->Write(Puts(1, 10)));
  stream->WritesDone();
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_batches_sent_total", events), 0);

  // ...until SIGHUP brings linger 5ms and max_items 3: the buffered ten go
  // out at once, as 3 + 3 + 3 + 1.
  WriteFile(sidecar->config_path, Config(ddb->endpoint(), "  linger: 5ms\n  max_items: 3\n"));
  sidecar->process->Signal(SIGHUP);
  std::set<uint64_t> written;
  v1::WriteResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) {
      EXPECT_EQ(r.outcome(), v1::WRITTEN) << r.error_code() << " " << r.message();
      written.insert(r.id());
    }
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(written.size(), 10u);
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_batch_size_count", events), 4);
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_batch_size_sum", events), 10);
  ASSERT_TRUE(WaitForLogCount(*sidecar, "\"msg\":\"config reloaded\"", 1))
      << sidecar->process->ReadLog();
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_config_reload_success"), 1);
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_config_reloads_total", {{"result", "success"}}), 1);
  const std::string hash1 = ConfigHash(*sidecar);
  EXPECT_EQ(hash1.size(), 16u) << hash1;
  EXPECT_NE(hash1, hash0);

  // An invalid file is refused, with the file, key and rule in the log; the
  // running config (max_items 3) stays: 7 puts go as 3 + 3 + 1.
  WriteFile(sidecar->config_path, Config(ddb->endpoint(), "  linger: 5ms\n  max_items: 30\n"));
  sidecar->process->Signal(SIGHUP);
  ASSERT_TRUE(WaitForLogCount(*sidecar, "config reload refused", 1)) << sidecar->process->ReadLog();
  EXPECT_TRUE(absl::StrContains(sidecar->process->ReadLog(), "batching.max_items"));
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_config_reload_success"), 0);
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_config_reloads_total", {{"result", "failure"}}), 1);
  EXPECT_EQ(ConfigHash(*sidecar), hash1);
  WriteAll(stub.get(), 100, 7);
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_batch_size_count", events), 7);

  // A listener change needs a restart: said so, not applied (still serving
  // where it was), while the live key in the same file (max_items 5) is.
  WriteFile(sidecar->config_path,
            Config(ddb->endpoint(), "  linger: 5ms\n  max_items: 5\n", "127.0.0.1:1"));
  sidecar->process->Signal(SIGHUP);
  ASSERT_TRUE(WaitForLogCount(*sidecar, "need a restart", 1)) << sidecar->process->ReadLog();
  EXPECT_TRUE(absl::StrContains(sidecar->process->ReadLog(), "\"keys\":\"listen\""))
      << sidecar->process->ReadLog();
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_config_reload_success"), 1);
  WriteAll(stub.get(), 200, 10);  // on the old port: the listener did not move
  EXPECT_EQ(Metric(*sidecar, "dynamo_batcher_batch_size_count", events), 9);

  sidecar->process->Signal(SIGTERM);
  EXPECT_EQ(sidecar->process->Wait(absl::Seconds(30)), 0) << sidecar->process->ReadLog();
}

}  // namespace
}  // namespace dynamo_batcher::testing
