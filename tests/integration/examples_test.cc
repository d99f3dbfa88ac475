// The Python and Node client examples (client/python/example.py,
// client/node/example.js) end to end: dynalite + the sidecar, the example
// process must exit 0, and its rows must be in the table.

#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";
constexpr absl::Duration kExampleTimeout = absl::Seconds(120);

// Row key -> "value/source" of what the example must leave behind with
// --items 100: PREFIX#0..4 overwritten with v2, #5..94 v1, #95..99 deleted.
std::map<std::string, std::string> ExpectedRows(const std::string& prefix,
                                                const std::string& source) {
  std::map<std::string, std::string> rows;
  for (int n = 0; n < 95; ++n) {
    rows[absl::StrCat(prefix, "#", n)] = absl::StrCat(n < 5 ? "v2" : "v1", "/", source);
  }
  return rows;
}

absl::StatusOr<std::map<std::string, std::string>> ReadRows(const std::string& endpoint) {
  auto items = ScanTable(endpoint, "events");
  if (!items.ok()) return items.status();
  std::map<std::string, std::string> rows;
  for (const std::string& line : *items) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("pk") || !d.HasMember("value") ||
        !d.HasMember("source") || !d.HasMember("n")) {
      return absl::InternalError(absl::StrCat("unexpected row: ", line));
    }
    rows[d["pk"]["S"].GetString()] =
        absl::StrCat(d["value"]["S"].GetString(), "/", d["source"]["S"].GetString());
  }
  return rows;
}

class Examples : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(
        absl::StrCat("examples-", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
    auto s = StartSidecar(dir_, absl::StrCat(R"(dynamodb:
  region: us-east-1
  endpoint: )",
                                             dynalite_.endpoint(), R"(
  credentials: {access_key_id: local, secret_access_key: local}
  create_tables: true
tables:
  - name: events
    partition_key: {name: pk, type: S}
batching:
  linger: 5ms
)"));
    ASSERT_TRUE(s.ok()) << s.status();
    sidecar_ = std::move(*s);
  }
  // Runs argv; returns the exit code (-1 on timeout) and the output.
  int RunExample(std::vector<std::string> argv, const std::string& name, std::string* output) {
    ChildProcess p(std::move(argv), dir_ + "/" + name + ".log");
    const int rc = p.Wait(kExampleTimeout);
    *output = p.ReadLog();
    return rc;
  }
  std::string dir_;
  Dynalite dynalite_;
  Sidecar sidecar_;
};

TEST_F(Examples, PythonExampleExitsZeroAndItsRowsLand) {
  ASSERT_EQ(access(kPython, X_OK), 0) << kPython << " is needed (Debian python3-grpcio, "
                                      << "python3-grpc-tools)";
  std::string output;
  // Stubs are generated into this test's directory, not the source tree.
  const int rc = RunExample(
      {kPython, SourceDir() + "/client/python/example.py", "--target", sidecar_.target(), "--table",
       "events", "--prefix", "pytest", "--items", "100", "--gen-dir", dir_ + "/pygen"},
      "python", &output);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_THAT(output, HasSubstr("python example: 110 ops"));
  EXPECT_THAT(output, HasSubstr("0 unexpected"));
  auto rows = ReadRows(dynalite_.endpoint());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, ExpectedRows("pytest", "python"));
}

TEST_F(Examples, NodeExampleExitsZeroAndItsRowsLand) {
  std::string output;
  const int rc =
      RunExample({"node", SourceDir() + "/client/node/example.js", "--target", sidecar_.target(),
                  "--table", "events", "--prefix", "nodetest", "--items", "100"},
                 "node", &output);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_THAT(output, HasSubstr("node example: 110 ops"));
  EXPECT_THAT(output, HasSubstr("0 unexpected"));
  auto rows = ReadRows(dynalite_.endpoint());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, ExpectedRows("nodetest", "node"));
}

TEST_F(Examples, BothExamplesExitOneWhenTheSidecarRejectsTheirOps) {
  // A table the sidecar does not know: every op is REJECTED.
  std::string output;
  int rc =
      RunExample({kPython, SourceDir() + "/client/python/example.py", "--target", sidecar_.target(),
                  "--table", "unknown", "--items", "10", "--gen-dir", dir_ + "/pygen"},
                 "python-rejected", &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_THAT(output, HasSubstr("REJECTED"));
  rc = RunExample({"node", SourceDir() + "/client/node/example.js", "--target", sidecar_.target(),
                   "--table", "unknown", "--items", "10"},
                  "node-rejected", &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_THAT(output, HasSubstr("REJECTED"));
  auto rows = ReadRows(dynalite_.endpoint());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_TRUE(rows->empty());
}

}  // namespace
}  // namespace dynamo_batcher::testing
