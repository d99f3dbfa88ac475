// batchctl against the real sidecar and dynalite on loopback: load, replay,
// exit codes and stats.

#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kCommandTimeout = absl::Seconds(300);

std::string Config(const std::string& endpoint) {
  return SidecarConfig(endpoint).Table("events", "pk", "S", "sk", "N").Table("users", "id");
}

// Table contents: "<key>" (events: "<pk>/<sk>") -> attribute "v" (S).
absl::StatusOr<std::map<std::string, std::string>> ReadTable(const std::string& endpoint,
                                                             const std::string& table) {
  auto items = ScanTable(endpoint, table);
  if (!items.ok()) return items.status();
  std::map<std::string, std::string> out;
  for (const std::string& line : *items) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject()) {
      return absl::InternalError(absl::StrCat("bad scan line: ", line));
    }
    std::string key;
    if (table == "events") {
      key = absl::StrCat(d["pk"]["S"].GetString(), "/", d["sk"]["N"].GetString());
    } else {
      key = d["id"]["S"].GetString();
    }
    out[key] = d.HasMember("v") ? d["v"]["S"].GetString() : "<no v>";
  }
  return out;
}

// The numbers of one table's row in `batchctl stats` output, by column name.
std::map<std::string, double> StatsRow(const std::string& output, const std::string& table) {
  std::vector<std::string> header;
  std::map<std::string, double> row;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (cols.empty()) continue;
    if (cols[0] == "table") header = cols;
    if (cols[0] == table && cols.size() == header.size()) {
      for (size_t i = 1; i < cols.size(); ++i) {
        double v = 0;
        if (absl::SimpleAtod(cols[i], &v)) row[header[i]] = v;
      }
    }
  }
  return row;
}

class Batchctl : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(
        absl::StrCat("batchctl-", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
    auto s = StartSidecar(dir_, Config(dynalite_.endpoint()));
    ASSERT_TRUE(s.ok()) << s.status();
    sidecar_ = std::move(*s);
  }

  struct Run {
    int exit_code;
    std::string output;  // stdout and stderr
  };
  Run RunBatchctl(std::vector<std::string> args, const std::string& log_name) {
    std::vector<std::string> argv = {BatchctlBinary(), "--target", sidecar_.target()};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess p(argv, dir_ + "/" + log_name + ".log");
    const int rc = p.Wait(kCommandTimeout);
    return {rc, p.ReadLog()};
  }
  std::string WriteFile(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  std::string dir_;
  Dynalite dynalite_;
  Sidecar sidecar_;
};

TEST_F(Batchctl, LoadOfFiftyThousandLinesLeavesLastWritePerKey) {
  constexpr int kLines = 50000;
  constexpr int kEventKeys = 1500;  // (pk, sk) pairs
  constexpr int kUserKeys = 1000;
  std::map<std::string, std::string> want_events, want_users;
  std::string file = "# generated: puts and deletes over a small key space, two tables\n";
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  auto rnd = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  int deletes = 0;
  for (int i = 0; i < kLines; ++i) {
    const bool is_delete = rnd() % 100 < 15;
    deletes += is_delete;
    const std::string value = absl::StrCat("line", i);
    if (rnd() % 2 == 0) {
      const int k = static_cast<int>(rnd() % kEventKeys);
      const std::string pk = absl::StrCat("e", k / 3);
      const int sk = k % 3;
      const std::string key = absl::StrCat(R"("pk":{"S":")", pk, R"("},"sk":{"N":")", sk, R"("})");
      if (is_delete) {
        absl::StrAppend(&file, R"({"table":"events","delete":{)", key, "}}\n");
        want_events.erase(absl::StrCat(pk, "/", sk));
      } else {
        absl::StrAppend(&file, R"({"table":"events","put":{)", key, R"(,"v":{"S":")", value,
                        R"("},"n":{"N":")", i, R"("}}})", "\n");
        want_events[absl::StrCat(pk, "/", sk)] = value;
      }
    } else {
      const std::string id = absl::StrCat("u", rnd() % kUserKeys);
      if (is_delete) {
        absl::StrAppend(&file, R"({"table":"users","delete":{"id":{"S":")", id, "\"}}}\n");
        want_users.erase(id);
      } else {
        absl::StrAppend(&file, R"({"table":"users","put":{"id":{"S":")", id, R"("},"v":{"S":")",
                        value, R"("},"tags":{"SS":["a","b"]}}})", "\n");
        want_users[id] = value;
      }
    }
  }
  ASSERT_GT(deletes, kLines / 10);
  const std::string path = WriteFile("load.jsonl", file);

  const absl::Time start = absl::Now();
  Run run = RunBatchctl({"load", "--quiet", path}, "load");
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr(absl::StrCat("ops ", kLines, " ")));
  EXPECT_THAT(run.output, HasSubstr("failed 0  rejected 0 (bad lines 0)  client errors 0"));
  std::cout << "load of " << kLines << " lines: " << seconds << " s; " << run.output;

  auto events = ReadTable(dynalite_.endpoint(), "events");
  auto users = ReadTable(dynalite_.endpoint(), "users");
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_TRUE(users.ok()) << users.status();
  EXPECT_EQ(events->size(), want_events.size());
  EXPECT_EQ(*events, want_events);
  EXPECT_EQ(users->size(), want_users.size());
  EXPECT_EQ(*users, want_users);

  auto m = ScrapeMetrics(sidecar_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(MetricSum(*m, "dynamo_batcher_ops_received_total"), kLines);
  EXPECT_GT(MetricSum(*m, "dynamo_batcher_ops_coalesced_total"), 0);
}

TEST_F(Batchctl, ReplayOfDeadLetterFileWritesTheRows) {
  // A row the replayed delete removes.
  Run put = RunBatchctl({"put", "events", "pk=doomed", "sk:N=1", "v=old"}, "put");
  ASSERT_EQ(put.exit_code, 0) << put.output;
  EXPECT_THAT(put.output, HasSubstr("WRITTEN"));

  // The sidecar's dead-letter format (service/engine/dead_letter.cc).
  const std::string dead_letter =
      R"({"table":"events","op":"put","item":{"pk":{"S":"dl-1"},"sk":{"N":"1"},"v":{"S":"replayed"}},"id":7,"error_code":"ThrottlingException","message":"retries ran out","attempts":15,"first_seen":"2024-05-01T10:00:00.000Z","failed_at":"2024-05-01T10:01:00.000Z"})"
      "\n"
      R"({"table":"users","op":"put","item":{"id":{"S":"dl-2"},"v":{"S":"replayed"},"n":{"N":"2.50"}},"id":8,"error_code":"DeadlineExceeded","message":"op_deadline","attempts":9,"first_seen":"2024-05-01T10:00:00.000Z","failed_at":"2024-05-01T10:02:00.000Z"})"
      "\n"
      R"({"table":"events","op":"delete","key":{"pk":{"S":"doomed"},"sk":{"N":"1"}},"id":9,"error_code":"InternalServerError","message":"500","attempts":15,"first_seen":"2024-05-01T10:00:00.000Z","failed_at":"2024-05-01T10:03:00.000Z"})"
      "\n";
  const std::string path = WriteFile("dead-letter.jsonl", dead_letter);
  Run replay = RunBatchctl({"replay", "--quiet", path}, "replay");
  ASSERT_EQ(replay.exit_code, 0) << replay.output;
  EXPECT_THAT(replay.output, HasSubstr("ops 3  written 3"));

  auto events = ReadTable(dynalite_.endpoint(), "events");
  auto users = ReadTable(dynalite_.endpoint(), "users");
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_TRUE(users.ok()) << users.status();
  EXPECT_EQ(*events, (std::map<std::string, std::string>{{"dl-1/1", "replayed"}}));
  EXPECT_EQ(*users, (std::map<std::string, std::string>{{"dl-2", "replayed"}}));
}

TEST_F(Batchctl, LoadExitsOneWhenSomeOpsAreRejected) {
  const std::string file = R"({"table":"users","put":{"id":{"S":"good-1"},"v":{"S":"a"}}})"
                           "\n"
                           R"({"table":"no_such_table","put":{"id":{"S":"x"}}})"
                           "\n"
                           R"({"table":"users","put":{"id":{"N":"5"},"v":{"S":"wrong key type"}}})"
                           "\n"
                           R"({"table":"events","put":{"pk":{"S":"no sort key"}}})"
                           "\n"
                           "this line is not JSON\n"
                           R"({"table":"users","put":{"id":{"S":"good-2"},"v":{"S":"b"}}})"
                           "\n";
  const std::string path = WriteFile("mixed.jsonl", file);
  Run run = RunBatchctl({"load", "--quiet", path}, "load");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  // Each problem is reported with its line number.
  EXPECT_THAT(run.output, HasSubstr("line 2: REJECTED"));
  EXPECT_THAT(run.output, HasSubstr("line 3: REJECTED"));
  EXPECT_THAT(run.output, HasSubstr("line 4: REJECTED"));
  EXPECT_THAT(run.output, HasSubstr("line 5: skipped"));
  EXPECT_THAT(run.output, HasSubstr("written 2"));
  EXPECT_THAT(run.output, HasSubstr("rejected 4 (bad lines 1)"));

  // The good lines are not affected by the bad ones.
  auto users = ReadTable(dynalite_.endpoint(), "users");
  ASSERT_TRUE(users.ok()) << users.status();
  EXPECT_EQ(*users, (std::map<std::string, std::string>{{"good-1", "a"}, {"good-2", "b"}}));

  // A clean file exits 0; `put` of a rejected item exits 1 too.
  Run clean =
      RunBatchctl({"load", "--quiet",
                   WriteFile("clean.jsonl", R"({"table":"users","put":{"id":{"S":"good-3"}}})"
                                            "\n")},
                  "clean");
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  Run bad_put = RunBatchctl({"put", "users", "id:N=3"}, "bad_put");
  EXPECT_EQ(bad_put.exit_code, 1) << bad_put.output;
  EXPECT_THAT(bad_put.output, HasSubstr("REJECTED"));
}

TEST_F(Batchctl, StatsPrintsPerTableNumbersOfTheLiveSidecar) {
  std::string file;
  for (int i = 0; i < 40; ++i) {
    absl::StrAppend(&file, R"({"table":"events","put":{"pk":{"S":"p)", i, R"("},"sk":{"N":"0"}}})",
                    "\n");
  }
  for (int i = 0; i < 20; ++i) {
    absl::StrAppend(&file, R"({"table":"users","put":{"id":{"S":"u)", i, R"("}}})", "\n");
  }
  absl::StrAppend(&file, R"({"table":"users","put":{"id":{"B":"AAEC"}}})", "\n");
  Run load = RunBatchctl({"load", "--quiet", WriteFile("ops.jsonl", file)}, "load");
  ASSERT_EQ(load.exit_code, 1) << load.output;  // the one rejected op

  const std::string metrics_url =
      absl::StrCat("http://127.0.0.1:", sidecar_.metrics_port, "/metrics");
  Run stats = RunBatchctl({"--metrics", metrics_url, "stats"}, "stats");
  ASSERT_EQ(stats.exit_code, 0) << stats.output;
  std::map<std::string, double> events = StatsRow(stats.output, "events");
  std::map<std::string, double> users = StatsRow(stats.output, "users");
  ASSERT_FALSE(events.empty()) << stats.output;
  ASSERT_FALSE(users.empty()) << stats.output;
  EXPECT_EQ(events["received"], 40) << stats.output;
  EXPECT_EQ(events["written"], 40) << stats.output;
  EXPECT_EQ(events["rejected"], 0) << stats.output;
  EXPECT_EQ(events["failed"], 0) << stats.output;
  EXPECT_GE(events["batches"], 2) << stats.output;  // 40 items: at least two calls
  EXPECT_GT(events["mean"], 1) << stats.output;
  EXPECT_LE(events["mean"], 25) << stats.output;
  EXPECT_EQ(users["written"], 20) << stats.output;
  EXPECT_EQ(users["rejected"], 1) << stats.output;
  EXPECT_EQ(users["queued"], 0) << stats.output;

  // The same numbers as the metrics themselves.
  auto m = ScrapeMetrics(sidecar_);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(events["batches"],
            MetricSum(*m, "dynamo_batcher_batches_sent_total", {{"table", "events"}}));

  // Not the sidecar's metrics endpoint: exit 3.
  Run wrong = RunBatchctl({"--metrics", "http://127.0.0.1:1/metrics", "stats"}, "wrong");
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output;
}

}  // namespace
}  // namespace dynamo_batcher::testing
