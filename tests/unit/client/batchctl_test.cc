// Runs the batchctl binary (path from the build) against an in-process fake
// sidecar on loopback and checks output and exit codes.

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fake_write_batcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::dynamo_batcher::testing::FakeServer;
using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

RunResult Batchctl(const std::vector<std::string>& args) {
  std::vector<std::string> quoted;
  for (const auto& a : args) quoted.push_back(Quote(a));
  const std::string cmd = absl::StrCat("env -u DYNAMO_BATCHER_TARGET timeout 60 ", BATCHCTL_PATH,
                                       " ", absl::StrJoin(quoted, " "), " 2>&1 </dev/null");
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string WriteTempFile(const std::string& name, const std::string& content) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path) << content;
  return path;
}

TEST(Batchctl, HelpForEveryCommandExitsZero) {
  for (const char* cmd :
       {"", "put", "delete", "load", "replay", "flush", "health", "stats", "bench"}) {
    std::vector<std::string> args;
    if (*cmd != '\0') args.push_back(cmd);
    args.push_back("--help");
    RunResult r = Batchctl(args);
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("usage: batchctl")) << cmd;
  }
  EXPECT_THAT(Batchctl({"--help"}).output, HasSubstr("3  could not reach the sidecar"));
}

TEST(Batchctl, BadUsageExitsTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"--nope", "health"},
      {"put"},
      {"put", "t"},
      {"put", "t", "novalue"},
      {"put", "t", "n:N="},
      {"delete", "t", R"({"pk":"a"})"},
      {"load"},
      {"load", "a", "b"},
      {"load", "/nonexistent/file"},
      {"replay"},
      {"health", "extra"},
      {"flush", "--table"},
      {"bench", "--ops", "ten"},
      {"bench", "--dup-ratio", "2"},
      {"put", "--timeout", "soon", "t", "pk=a"},
  };
  for (const auto& args : cases) {
    RunResult r = Batchctl(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << ": " << r.output;
  }
}

TEST(Batchctl, UnreachableSidecarExitsThree) {
  int port;
  {
    FakeServer gone;
    ASSERT_TRUE(gone.ok());
    port = gone.port();
  }
  const std::string target = absl::StrCat("127.0.0.1:", port);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"put", "t", "pk=a"}, {"health"}, {"flush"}, {"bench", "--ops", "10"}}) {
    std::vector<std::string> full = {"--target", target, "--connect-timeout", "300ms"};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = Batchctl(full);
    EXPECT_EQ(r.exit_code, 3) << absl::StrJoin(args, " ") << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("could not reach"));
  }
  RunResult stats = Batchctl({"stats", "--metrics", absl::StrCat("http://", target, "/metrics")});
  EXPECT_EQ(stats.exit_code, 3) << stats.output;
}

TEST(Batchctl, PutAndDeletePrintTheOutcome) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  RunResult put = Batchctl({"--target", server.target(), "put", "t", "pk=a", "n:N=3"});
  EXPECT_EQ(put.exit_code, 0) << put.output;
  EXPECT_THAT(put.output, HasSubstr("WRITTEN"));
  RunResult json = Batchctl({"put", "--target", server.target(), "t", R"({"pk":{"S":"b"}})"});
  EXPECT_EQ(json.exit_code, 0) << json.output;
  RunResult rejected = Batchctl({"--target", server.target(), "delete", "reject", "pk=a"});
  EXPECT_EQ(rejected.exit_code, 1) << rejected.output;
  EXPECT_THAT(rejected.output, HasSubstr("REJECTED UnknownTable"));

  std::vector<dynamobatcher::v1::WriteOp> ops = server.service().received_ops();
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].put().attributes().at("n").n(), "3");
  EXPECT_EQ(ops[1].put().attributes().at("pk").s(), "b");
  EXPECT_TRUE(ops[2].has_delete_key());
}

TEST(Batchctl, LoadCountsOutcomesAndSkipsBadLines) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  const std::string path = WriteTempFile(
      "load.jsonl",
      "{\"table\":\"t\",\"put\":{\"pk\":{\"S\":\"a\"}}}\n"
      "\n"
      "# a comment\n"
      "{\"table\":\"t\",\"put\":{\"pk\":{\"S\":\"b\"},\"coalesce\":{\"BOOL\":true}}}\n"
      "{\"table\":\"t\",\"delete\":{\"pk\":{\"S\":\"c\"}}}\n"
      "this is not json\n"
      "{\"table\":\"reject\",\"put\":{\"pk\":{\"S\":\"d\"}}}\n");
  RunResult r = Batchctl({"--target", server.target(), "load", path});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("line 6: skipped"));
  EXPECT_THAT(r.output, HasSubstr("line 7: REJECTED"));
  EXPECT_THAT(r.output, HasSubstr("ops 4  written 2  coalesced 1  failed 0  rejected 2 "
                                  "(bad lines 1)"));
  EXPECT_EQ(server.service().ops(), 4u);

  const std::string good =
      WriteTempFile("good.jsonl", "{\"table\":\"t\",\"put\":{\"pk\":{\"S\":\"a\"}}}\n");
  RunResult ok = Batchctl({"--target", server.target(), "load", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

TEST(Batchctl, ReplayResendsDeadLetterRecords) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  const std::string path = WriteTempFile(
      "dead.jsonl",
      "{\"table\":\"t\",\"op\":\"put\",\"item\":{\"pk\":{\"S\":\"a\"}},"
      "\"error_code\":\"RetriesExhausted\",\"message\":\"m\",\"attempts\":8,"
      "\"first_seen\":\"2024-01-01T00:00:00Z\",\"failed_at\":\"2024-01-01T00:01:00Z\"}\n"
      "{\"table\":\"t\",\"op\":\"delete\",\"key\":{\"pk\":{\"S\":\"b\"}},"
      "\"error_code\":\"ShuttingDown\",\"message\":\"m\",\"attempts\":1}\n");
  RunResult r = Batchctl({"--target", server.target(), "replay", path});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ops 2  written 2"));
  std::vector<dynamobatcher::v1::WriteOp> ops = server.service().received_ops();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_TRUE(ops[0].has_put());
  EXPECT_TRUE(ops[1].has_delete_key());
}

TEST(Batchctl, HealthAndFlushTalkToTheSidecar) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  RunResult health = Batchctl({"--target", server.target(), "health"});
  EXPECT_EQ(health.exit_code, 0) << health.output;
  EXPECT_THAT(health.output, HasSubstr("SERVING"));
  RunResult flush = Batchctl({"--target", server.target(), "flush", "--table", "t"});
  EXPECT_EQ(flush.exit_code, 0) << flush.output;
  EXPECT_THAT(flush.output, HasSubstr("flushed 0 ops"));
  EXPECT_EQ(server.service().flushes(), 1u);
}

TEST(Batchctl, BenchReportsThroughputAndJson) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  RunResult r = Batchctl({"--target", server.target(), "bench", "--ops", "3000", "--streams", "2",
                          "--tables", "a,b", "--ops-per-message", "50", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"ops_per_s\":"));
  EXPECT_THAT(r.output, HasSubstr("\"results\":3000"));
  EXPECT_EQ(server.service().ops(), 3000u);
  EXPECT_LE(server.service().max_ops_in_a_message(), 50u);

  RunResult client = Batchctl({"--target", server.target(), "bench", "--ops", "1000", "--client"});
  EXPECT_EQ(client.exit_code, 0) << client.output;
  EXPECT_THAT(client.output, HasSubstr("client: 1000 ops sent, 1000 results"));
}

}  // namespace
}  // namespace dynamo_batcher
