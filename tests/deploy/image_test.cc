// The built container image (./dev image -> dynamo-batcher:dev), run the way
// this machine can run it: `buildah run --isolation chroot` (host network),
// as uid 65532, with the image's own baked-in config; only the addresses and
// the local credentials come from the environment. Against a real dynalite
// on the host it checks: the process really runs as 65532, writes land and
// read back, /healthz and /readyz answer, and SIGTERM during a stream drains
// (every op read gets its result, every WRITTEN op is in the table) and the
// process exits 0. The lifecycle hooks of the manifests (batchctl
// wait-healthy, batchctl sleep) run in it, and it has no shell.
//
// Skips (ctest reports it as skipped) when the image was not built, buildah
// is missing, or not root (buildah's chroot isolation needs it). Build the
// image with `./dev image`, or `DEV_IMAGE=1 ./dev test`.

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;

std::string Image() {
  const char* e = std::getenv("DYNAMO_BATCHER_IMAGE");
  return e != nullptr && *e != '\0' ? e : "dynamo-batcher:dev";
}

// Runs a shell command; returns its stdout (trailing newline stripped) and
// exit code.
int Shell(const std::string& cmd, std::string* out = nullptr) {
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  int rc = pclose(f);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (out != nullptr) *out = text;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The first port after `key` in the "dynamo-batcher listening" log line.
int PortAfter(const std::string& line, const std::string& key) {
  auto k = line.find(key);
  if (k == std::string::npos) return 0;
  auto colon = line.find("127.0.0.1:", k);
  if (colon == std::string::npos) return 0;
  std::string digits;
  for (size_t i = colon + 10; i < line.size() && isdigit(static_cast<unsigned char>(line[i]));
       ++i) {
    digits += line[i];
  }
  int port = 0;
  (void)absl::SimpleAtoi(digits, &port);
  return port;
}

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

pid_t ParentOf(pid_t pid) {
  std::string stat = ReadFileText(absl::StrCat("/proc/", pid, "/stat"));
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return 0;
  // ") S PPID ..."
  int ppid = 0;
  std::string rest = stat.substr(close_paren + 4);
  (void)absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &ppid);
  return ppid;
}

// The dynamo-batcher process that `ancestor` (the buildah run process)
// started, found through /proc.
pid_t FindDescendantSidecar(pid_t ancestor) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return 0;
  pid_t found = 0;
  while (dirent* e = readdir(d)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::string comm = ReadFileText(absl::StrCat("/proc/", pid, "/comm"));
    if (!absl::StartsWith(comm, "dynamo-batcher")) continue;
    for (pid_t p = pid; p > 1; p = ParentOf(p)) {
      if (p == ancestor) {
        found = pid;
        break;
      }
    }
    if (found != 0) break;
  }
  closedir(d);
  return found;
}

// "Uid:\treal\teffective\tsaved\tfs" of /proc/PID/status.
std::string UidLine(pid_t pid) {
  std::string status = ReadFileText(absl::StrCat("/proc/", pid, "/status"));
  auto u = status.find("Uid:");
  if (u == std::string::npos) return "";
  return status.substr(u, status.find('\n', u) - u);
}

v1::AttributeValue S(const std::string& s) {
  v1::AttributeValue v;
  v.set_s(s);
  return v;
}
v1::AttributeValue N(int n) {
  v1::AttributeValue v;
  v.set_n(std::to_string(n));
  return v;
}

v1::WriteRequest Puts(uint64_t first_id, int count) {
  v1::WriteRequest req;
  for (int i = 0; i < count; ++i) {
    v1::WriteOp* op = req.add_ops();
    const uint64_t id = first_id + i;
    op->set_id(id);
    op->set_table("events");
    auto& attrs = *op->mutable_put()->mutable_attributes();
    attrs["pk"] = S(absl::StrCat("img-", id));
    attrs["sk"] = N(1);
    attrs["v"] = S(absl::StrCat("value-", id));
  }
  return req;
}

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "buildah's chroot isolation needs root";
    if (Shell("command -v buildah >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "buildah is not installed (./dev image installs it)";
    }
    if (Shell(absl::StrCat("buildah inspect --type image ", Image(), " >/dev/null 2>&1")) != 0) {
      GTEST_SKIP() << "image " << Image()
                   << " not built: run ./dev image (or DEV_IMAGE=1 ./dev test)";
    }
  }
  void TearDown() override {
    if (!container_.empty()) Shell(absl::StrCat("buildah rm ", container_, " >/dev/null 2>&1"));
  }
  std::string container_;
};

TEST_F(ImageTest, RunsAsNonRootWritesAnswersHealthAndDrainsOnSigterm) {
  const std::string dir = TestDir("image_test");
  auto ddb = StartDynalite(dir);
  ASSERT_TRUE(ddb.ok()) << ddb.status();
  ASSERT_TRUE(CreateTable(ddb->endpoint(), "events", "pk:S", "sk:N").ok());

  ASSERT_EQ(Shell(absl::StrCat("buildah from --quiet ", Image()), &container_), 0) << container_;
  // The image's baked-in config (/etc/dynamo-batcher/config.yaml): table
  // `events`, dead-letter file on the volume. Only what differs on a shared
  // host network comes from the environment: loopback, free ports, dynalite.
  std::vector<std::string> argv = {"buildah",
                                   "run",
                                   "--isolation",
                                   "chroot",
                                   "--network",
                                   "host",
                                   "--user",
                                   "65532:65532",
                                   "--env",
                                   "DYNAMO_BATCHER_LISTEN=127.0.0.1:0",
                                   "--env",
                                   "DYNAMO_BATCHER_METRICS_LISTEN=127.0.0.1:0",
                                   "--env",
                                   absl::StrCat("DYNAMO_BATCHER_ENDPOINT=", ddb->endpoint()),
                                   "--env",
                                   "DYNAMO_BATCHER_REGION=us-east-1",
                                   "--env",
                                   "AWS_ACCESS_KEY_ID=local",
                                   "--env",
                                   "AWS_SECRET_ACCESS_KEY=local",
                                   container_,
                                   "--",
                                   "/usr/local/bin/dynamo-batcher",
                                   "--config",
                                   "/etc/dynamo-batcher/config.yaml"};
  ChildProcess run(argv, dir + "/image-sidecar.log");
  auto log = run.WaitForLog("dynamo-batcher listening", absl::Seconds(60));
  ASSERT_TRUE(log.ok()) << log.status() << "\n" << run.ReadLog();
  auto at = log->find("dynamo-batcher listening");
  const std::string line = log->substr(at, log->find('\n', at) - at);
  const int grpc_port = PortAfter(line, "\"grpc\":\"");
  const int metrics_port = PortAfter(line, "\"metrics\":\"");
  ASSERT_GT(grpc_port, 0) << line;
  ASSERT_GT(metrics_port, 0) << line;

  // It really runs as 65532 (not root mapped to something else).
  const pid_t sidecar = FindDescendantSidecar(run.pid());
  ASSERT_GT(sidecar, 0) << "no dynamo-batcher process under buildah run (pid " << run.pid() << ")";
  EXPECT_EQ(UidLine(sidecar), "Uid:\t65532\t65532\t65532\t65532");

  // The hooks the Kubernetes manifests use run in the image (no shell there).
  const std::string run_in = absl::StrCat("buildah run --isolation chroot --network host --user ",
                                          "65532:65532 ", container_, " -- ");
  EXPECT_EQ(Shell(absl::StrCat(run_in, "/usr/local/bin/batchctl --metrics http://127.0.0.1:",
                               metrics_port, " wait-healthy --timeout 10s 2>&1")),
            0);
  EXPECT_EQ(Shell(absl::StrCat(run_in, "/usr/local/bin/batchctl sleep 10ms 2>&1")), 0);
  EXPECT_NE(Shell(absl::StrCat(run_in, "/bin/sh -c true 2>&1")), 0) << "the image has a shell";

  long status = 0;
  auto healthz = HttpGet(absl::StrCat("http://127.0.0.1:", metrics_port, "/healthz"), &status);
  ASSERT_TRUE(healthz.ok()) << healthz.status();
  EXPECT_EQ(status, 200);

  // Default client limits (no raised receive size).
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::WriteBatcher::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto stream = stub->Write(&ctx);
    ASSERT_TRUE(stream->Write(Puts(1, 50)));
    stream->WritesDone();
    std::set<uint64_t> written;
    v1::WriteResponse resp;
    while (stream->Read(&resp)) {
      for (const auto& r : resp.results()) {
        EXPECT_EQ(r.outcome(), v1::WRITTEN)
            << r.id() << " " << r.error_code() << " " << r.message();
        written.insert(r.id());
      }
    }
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_EQ(written.size(), 50u);
  }
  // /readyz turns 200 once DynamoDB answered (it has, above).
  auto readyz = HttpGet(absl::StrCat("http://127.0.0.1:", metrics_port, "/readyz"), &status);
  ASSERT_TRUE(readyz.ok()) << readyz.status();
  EXPECT_EQ(status, 200);

  // SIGTERM while a stream is sending: what was read is flushed and answered.
  std::set<uint64_t> written_late;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto stream = stub->Write(&ctx);
    uint64_t next = 1000;
    for (int m = 0; m < 20; ++m, next += 25) {
      if (!stream->Write(Puts(next, 25))) break;
    }
    ASSERT_EQ(kill(sidecar, SIGTERM), 0);
    stream->WritesDone();
    v1::WriteResponse resp;
    while (stream->Read(&resp)) {
      for (const auto& r : resp.results()) {
        EXPECT_EQ(r.outcome(), v1::WRITTEN)
            << r.id() << " " << r.error_code() << " " << r.message();
        if (r.outcome() == v1::WRITTEN) written_late.insert(r.id());
      }
    }
    stream->Finish();  // OK, or UNAVAILABLE for what the drain no longer read
  }
  EXPECT_EQ(run.Wait(absl::Seconds(60)), 0) << run.ReadLog();
  EXPECT_TRUE(absl::StrContains(run.ReadLog(), "\"clean\":\"true\"")) << run.ReadLog();

  auto items = ScanTable(ddb->endpoint(), "events");
  ASSERT_TRUE(items.ok()) << items.status();
  std::set<std::string> keys;
  for (const auto& item : *items) {
    for (uint64_t id = 1; id <= 50; ++id) {
      if (absl::StrContains(item, absl::StrCat("\"img-", id, "\""))) keys.insert(absl::StrCat(id));
    }
    for (uint64_t id : written_late) {
      if (absl::StrContains(item, absl::StrCat("\"img-", id, "\""))) keys.insert(absl::StrCat(id));
    }
  }
  EXPECT_EQ(keys.size(), 50u + written_late.size());
}

}  // namespace
}  // namespace dynamo_batcher::testing
