// The Go and Java clients (client/go, client/java) end to end, through their
// example programs: dynalite + the real sidecar, each example process must
// exit 0, and the table must hold exactly what it wrote last per key.
//
// Each test runs once per language. The examples' modes:
//   example   the Python/Node-like walk-through (110 ops)
//   stress    8 threads, shared keys, 1 in 10 a delete; writes the expected
//             rows (last write per key in call order) to a file
//   outcomes  unknown table, missing key, 10 puts to one key
// The kill test SIGKILLs the sidecar while a paced stress run has ops in
// flight and restarts it on the same port.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kRunTimeout = absl::Seconds(180);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The example's command line for `lang` with the common flags.
std::vector<std::string> Command(const std::string& lang, std::vector<std::string> args) {
  std::vector<std::string> argv;
  if (lang == "go") {
    argv = {DYNAMO_BATCHER_GO_EXAMPLE};
  } else {
    std::string cp = ReadFile(DYNAMO_BATCHER_JAVA_CLASSPATH);
    while (!cp.empty() && (cp.back() == '\n' || cp.back() == ' ')) cp.pop_back();
    argv = {"java", "-cp", cp, "dev.dynamobatcher.client.Example"};
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// pk -> attribute `attr` (S) of every row of `table`.
absl::StatusOr<std::map<std::string, std::string>> ReadRows(const std::string& endpoint,
                                                            const std::string& attr) {
  auto items = ScanTable(endpoint, "events");
  if (!items.ok()) return items.status();
  std::map<std::string, std::string> rows;
  for (const std::string& line : *items) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("pk") || !d.HasMember(attr.c_str())) {
      return absl::InternalError(absl::StrCat("unexpected row: ", line));
    }
    rows[d["pk"]["S"].GetString()] = d[attr.c_str()]["S"].GetString();
  }
  return rows;
}

// The stress mode's --expect-out file: "key TAB value" lines.
std::map<std::string, std::string> ReadExpected(const std::string& path) {
  std::map<std::string, std::string> rows;
  for (absl::string_view line : absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(line, '\t');
    if (kv.size() == 2) rows[kv[0]] = kv[1];
  }
  return rows;
}

std::string Config(const std::string& endpoint, const std::string& listen) {
  return SidecarConfig(endpoint).Listen(listen);
}

class LanguageClients : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string lang = GetParam();
    if (lang == "go") {
      ASSERT_EQ(access(DYNAMO_BATCHER_GO_EXAMPLE, X_OK), 0)
          << "the Go example was not built (Debian golang-go and friends, see ./dev)";
    } else {
      ASSERT_EQ(access(DYNAMO_BATCHER_JAVA_CLASSPATH, R_OK), 0)
          << "the Java client was not built (Debian default-jdk, libgrpc-java, see ./dev)";
    }
    name_ = absl::StrCat("lang-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::replace(name_.begin(), name_.end(), '/', '-');  // "Test/go"
    dir_ = TestDir(name_);
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
    auto s = StartSidecar(dir_, Config(dynalite_.endpoint(), ""));
    ASSERT_TRUE(s.ok()) << s.status();
    sidecar_ = std::move(*s);
  }
  int Run(std::vector<std::string> args, const std::string& name, std::string* output) {
    ChildProcess p(Command(GetParam(), std::move(args)), dir_ + "/" + name + ".log");
    const int rc = p.Wait(kRunTimeout);
    *output = p.ReadLog();
    return rc;
  }
  std::string name_;
  std::string dir_;
  Dynalite dynalite_;
  Sidecar sidecar_;
};

TEST_P(LanguageClients, ExampleExitsZeroAndItsRowsLand) {
  const std::string lang = GetParam();
  std::string output;
  ASSERT_EQ(Run({"--target", sidecar_.target(), "--table", "events", "--prefix", lang + "x",
                 "--items", "100"},
                "example", &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr(lang + " example: 110 ops"));
  EXPECT_THAT(output, HasSubstr("0 unexpected"));
  auto rows = ReadRows(dynalite_.endpoint(), "value");
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::map<std::string, std::string> want;
  for (int n = 0; n < 95; ++n) want[absl::StrCat(lang, "x#", n)] = n < 5 ? "v2" : "v1";
  EXPECT_EQ(*rows, want);
}

TEST_P(LanguageClients, ThreadsWritingSharedKeysLeaveTheLastWritePerKey) {
  const std::string lang = GetParam();
  const std::string expect = dir_ + "/expected.tsv";
  std::string output;
  ASSERT_EQ(Run({"--target", sidecar_.target(), "--mode", "stress", "--prefix", lang, "--workers",
                 "8", "--keys", "60", "--ops", "6000", "--seed", "7", "--expect-out", expect},
                "stress", &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat(lang, " stress: 6000 ops")));
  EXPECT_THAT(output, HasSubstr("0 unexpected"));
  const auto want = ReadExpected(expect);
  // 60 keys, 6000 ops with 1 in 10 a delete: nearly all keys end as puts.
  ASSERT_GT(want.size(), 40u) << ReadFile(expect);
  auto rows = ReadRows(dynalite_.endpoint(), "v");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, want);
}

TEST_P(LanguageClients, RejectedAndCoalescedComeBackAsSuch) {
  std::string output;
  ASSERT_EQ(Run({"--target", sidecar_.target(), "--mode", "outcomes", "--prefix", GetParam()},
                "outcomes", &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("unknown table: REJECTED UnknownTable"));
  EXPECT_THAT(output, HasSubstr("missing key: REJECTED KeyMissing"));
  EXPECT_THAT(output, HasSubstr("same key: 9 COALESCED, 1 WRITTEN"));
  auto rows = ReadRows(dynalite_.endpoint(), "v");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, (std::map<std::string, std::string>{{GetParam() + "#same", "s9"}}));
}

TEST_P(LanguageClients, SidecarKilledMidStreamLosesNothing) {
  const std::string lang = GetParam();
  const std::string expect = dir_ + "/expected.tsv";
  const std::string target = sidecar_.target();
  // ~4 s of paced writes; the sidecar dies about a third of the way in.
  ChildProcess client(Command(lang, {"--target", target, "--mode", "stress", "--prefix", lang,
                                     "--workers", "8", "--keys", "300", "--ops", "6000", "--rate",
                                     "1500", "--seed", "11", "--expect-out", expect}),
                      dir_ + "/client.log");
  double received = 0;
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (received < 1000 && absl::Now() < until && client.running()) {
    absl::SleepFor(absl::Milliseconds(20));
    auto m = ScrapeMetrics(sidecar_);
    if (m.ok()) received = MetricSum(*m, "dynamo_batcher_ops_received_total");
  }
  ASSERT_GE(received, 1000) << client.ReadLog();
  sidecar_.process->Signal(SIGKILL);
  ASSERT_EQ(sidecar_.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  ASSERT_TRUE(client.running()) << "the client finished before the kill: " << client.ReadLog();
  absl::SleepFor(absl::Milliseconds(300));  // the client sees the break, retries in vain
  auto second = StartSidecar(TestDir(name_ + "-second"), Config(dynalite_.endpoint(), target));
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->target(), target);

  const int rc = client.Wait(kRunTimeout);
  const std::string output = client.ReadLog();
  ASSERT_EQ(rc, 0) << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat(lang, " stress: 6000 ops")));
  EXPECT_THAT(output, HasSubstr("0 unexpected"));
  // The break was seen and unanswered ops went out again.
  int resent = -1, reconnects = -1;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (line.find(" stress: ") == absl::string_view::npos) continue;
    for (absl::string_view part : absl::StrSplit(line, ", ")) {
      std::vector<std::string> w = absl::StrSplit(part, ' ');
      if (w.size() == 2 && w[1] == "resent") resent = std::stoi(w[0]);
      if (w.size() == 2 && w[1] == "reconnects") reconnects = std::stoi(w[0]);
    }
  }
  EXPECT_GE(reconnects, 1) << output;
  EXPECT_GE(resent, 1) << output;
  auto rows = ReadRows(dynalite_.endpoint(), "v");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, ReadExpected(expect));
  std::cout << lang << ": " << received << " ops received before the kill; " << output;
}

INSTANTIATE_TEST_SUITE_P(GoAndJava, LanguageClients, ::testing::Values("go", "java"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dynamo_batcher::testing
