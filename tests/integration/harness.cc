#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace dynamo_batcher::testing {

std::string SourceDir() { return DYNAMO_BATCHER_SOURCE_DIR; }
// DYNAMO_BATCHER_TEST_SIDECAR_BIN runs the tests against another build (e.g.
// an older one, to check that a regression test fails there).
std::string SidecarBinary() {
  const char* other = getenv("DYNAMO_BATCHER_TEST_SIDECAR_BIN");
  return other != nullptr && *other != '\0' ? other : DYNAMO_BATCHER_SIDECAR_BIN;
}
std::string BatchctlBinary() { return DYNAMO_BATCHER_BATCHCTL_BIN; }

std::string TestDir(const std::string& name) {
  std::string dir = absl::StrCat(DYNAMO_BATCHER_TEST_TMP, "/", name, "-", getpid());
  std::string cmd = absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'");
  if (system(cmd.c_str()) != 0) abort();
  return dir;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_path,
                           std::vector<std::string> env)
    : log_path_(std::move(log_path)) {
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    // A new process group, so a test's signals never reach ctest.
    setpgid(0, 0);
    for (const auto& e : env) putenv(strdup(e.c_str()));
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    perror("execvp");
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

std::string ChildProcess::ReadLog() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::string> ChildProcess::WaitForLog(const std::string& needle,
                                                     absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::string log = ReadLog();
    if (absl::StrContains(log, needle)) return log;
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      return absl::FailedPreconditionError(
          absl::StrCat("process exited before \"", needle, "\"; log:\n", log));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "no \"", needle, "\" within ", absl::FormatDuration(timeout), "; log:\n", ReadLog()));
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !exited_) kill(pid_, sig);
}

bool ChildProcess::running() {
  if (exited_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

int ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!exited_ && absl::Now() < deadline) {
    if (waitpid(pid_, &status_, WNOHANG) == pid_) {
      exited_ = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (!exited_) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

namespace {

absl::StatusOr<int> ReadyPort(const ChildProcess& p) {
  auto log = p.WaitForLog("READY port=", absl::Seconds(20));
  if (!log.ok()) return log.status();
  auto pos = log->find("READY port=");
  int port = 0;
  std::string digits;
  for (size_t i = pos + 11; i < log->size() && isdigit((*log)[i]); ++i) digits += (*log)[i];
  if (!absl::SimpleAtoi(digits, &port)) return absl::InternalError("bad READY line");
  return port;
}

size_t Collect(char* ptr, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(ptr, size * n);
  return size * n;
}

absl::StatusOr<std::string> Http(const std::string& url, const std::string* body, long* status) {
  CURL* c = curl_easy_init();
  std::string out;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  struct curl_slist* headers = nullptr;
  if (body != nullptr) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  }
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat(url, ": ", curl_easy_strerror(rc)));
  }
  if (status != nullptr) *status = code;
  return out;
}

absl::StatusOr<std::string> RunCapture(const std::string& cmd) {
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return absl::InternalError("popen failed");
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int rc = pclose(f);
  if (rc != 0) return absl::InternalError(absl::StrCat("`", cmd, "` failed (", rc, "): ", out));
  return out;
}

}  // namespace

absl::StatusOr<std::string> HttpGet(const std::string& url, long* status) {
  return Http(url, nullptr, status);
}
absl::StatusOr<std::string> HttpPost(const std::string& url, const std::string& body,
                                     long* status) {
  return Http(url, &body, status);
}

absl::StatusOr<Dynalite> StartDynalite(const std::string& dir) {
  Dynalite d;
  d.process = std::make_unique<ChildProcess>(
      std::vector<std::string>{"node", SourceDir() + "/tests/tools/dynalite.js", "--port", "0"},
      dir + "/dynalite.log");
  auto port = ReadyPort(*d.process);
  if (!port.ok()) return port.status();
  d.port = *port;
  return d;
}

absl::StatusOr<FaultProxy> StartFaultProxy(const std::string& dir, const std::string& target,
                                           const std::string& config_json) {
  std::string cfg = dir + "/proxy.json";
  { std::ofstream(cfg) << config_json; }
  FaultProxy p;
  p.process = std::make_unique<ChildProcess>(
      std::vector<std::string>{"node", SourceDir() + "/tests/tools/fault_proxy.js", "--port", "0",
                               "--target", target, "--config", cfg},
      dir + "/proxy.log");
  auto port = ReadyPort(*p.process);
  if (!port.ok()) return port.status();
  p.port = *port;
  return p;
}

absl::Status ConfigureProxy(const FaultProxy& proxy, const std::string& config_json) {
  long status = 0;
  auto r = HttpPost(proxy.endpoint() + "/__proxy/config", config_json, &status);
  if (!r.ok()) return r.status();
  if (status != 200) return absl::InternalError(absl::StrCat("proxy config: ", status, " ", *r));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ProxyStats(const FaultProxy& proxy) {
  return HttpGet(proxy.endpoint() + "/__proxy/stats");
}

std::shared_ptr<grpc::Channel> Sidecar::Channel() const {
  // gRPC's default limits (4 MiB receive), as a user's client has: every
  // WriteResponse must fit them.
  return grpc::CreateChannel(target(), grpc::InsecureChannelCredentials());
}

SidecarConfig& SidecarConfig::Table(const std::string& name, const std::string& partition_key,
                                    const std::string& partition_type, const std::string& sort_key,
                                    const std::string& sort_type) {
  absl::StrAppend(&tables_, "  - name: ", name, "\n    partition_key: {name: ", partition_key,
                  ", type: ", partition_type, "}\n");
  if (!sort_key.empty()) {
    absl::StrAppend(&tables_, "    sort_key: {name: ", sort_key, ", type: ", sort_type, "}\n");
  }
  return *this;
}

SidecarConfig& SidecarConfig::Append(const std::string& yaml) {
  absl::StrAppend(&extra_, yaml);
  if (!extra_.empty() && extra_.back() != '\n') extra_.push_back('\n');
  return *this;
}

std::string SidecarConfig::Yaml() const {
  std::string y;
  if (!listen_.empty()) absl::StrAppend(&y, "listen: ", listen_, "\n");
  absl::StrAppend(&y, "dynamodb:\n  region: us-east-1\n  endpoint: ", endpoint_, "\n");
  if (!call_timeout_.empty()) absl::StrAppend(&y, "  call_timeout: ", call_timeout_, "\n");
  absl::StrAppend(&y, "  credentials: {access_key_id: local, secret_access_key: local}\n",
                  "  create_tables: ", create_tables_ ? "true" : "false", "\n");
  absl::StrAppend(
      &y, "tables:\n",
      tables_.empty() ? "  - name: events\n    partition_key: {name: pk, type: S}\n" : tables_);
  absl::StrAppend(&y, "batching:\n  linger: ", linger_, "\n  max_items: ", max_items_,
                  "\n  max_inflight_calls: 8\n");
  return y + extra_;
}

absl::StatusOr<Sidecar> StartSidecar(const std::string& dir, const std::string& config_yaml,
                                     std::vector<std::string> env) {
  Sidecar s;
  s.config_path = dir + "/config.yaml";
  std::string yaml = config_yaml;
  if (!absl::StrContains(yaml, "\nlisten:") && !absl::StartsWith(yaml, "listen:")) {
    yaml = "listen: 127.0.0.1:0\n" + yaml;
  }
  if (!absl::StrContains(yaml, "metrics_listen:")) yaml = "metrics_listen: 127.0.0.1:0\n" + yaml;
  { std::ofstream(s.config_path) << yaml; }
  s.process = std::make_unique<ChildProcess>(
      std::vector<std::string>{SidecarBinary(), "--config", s.config_path}, dir + "/sidecar.log",
      std::move(env));
  auto log = s.process->WaitForLog("dynamo-batcher listening", absl::Seconds(30));
  if (!log.ok()) return log.status();
  // {"...","msg":"dynamo-batcher
  // listening","grpc":"127.0.0.1:NNN","metrics":"http://127.0.0.1:MMM/metrics",...}
  auto line_start = log->find("dynamo-batcher listening");
  std::string line = log->substr(line_start, log->find('\n', line_start) - line_start);
  auto grab_port = [&](const std::string& key, const std::string& after) -> int {
    auto k = line.find(key);
    if (k == std::string::npos) return 0;
    auto colon = line.find(after, k + key.size());
    std::string digits;
    for (size_t i = colon + after.size(); i < line.size() && isdigit(line[i]); ++i) {
      digits += line[i];
    }
    int port = 0;
    (void)absl::SimpleAtoi(digits, &port);
    return port;
  };
  s.grpc_port = grab_port("\"grpc\":\"", "127.0.0.1:");
  s.metrics_port = grab_port("\"metrics\":\"", "127.0.0.1:");
  if (s.metrics_port == 0) {
    return absl::InternalError(absl::StrCat("cannot read ports from: ", line));
  }
  return s;
}

std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == absl::string_view::npos) continue;
    std::string series(line.substr(0, sp));
    double v = 0;
    std::string value(line.substr(sp + 1));
    if (value == "+Inf") {
      v = INFINITY;
    } else if (!absl::SimpleAtod(value, &v)) {
      continue;
    }
    // Sort labels for stable lookups.
    auto brace = series.find('{');
    if (brace != std::string::npos) {
      std::string name = series.substr(0, brace);
      std::string labels = series.substr(brace + 1, series.size() - brace - 2);
      std::vector<std::string> parts = absl::StrSplit(labels, "\",", absl::SkipEmpty());
      for (auto& p : parts) {
        if (!absl::EndsWith(p, "\"")) p += "\"";
      }
      std::sort(parts.begin(), parts.end());
      series = absl::StrCat(name, "{", absl::StrJoin(parts, ","), "}");
    }
    out[series] = v;
  }
  return out;
}

absl::StatusOr<std::map<std::string, double>> ScrapeMetrics(const Sidecar& sidecar) {
  auto body = HttpGet(absl::StrCat("http://127.0.0.1:", sidecar.metrics_port, "/metrics"));
  if (!body.ok()) return body.status();
  return ParseMetrics(*body);
}

double MetricSum(const std::map<std::string, double>& m, const std::string& name,
                 const std::map<std::string, std::string>& labels) {
  double sum = 0;
  for (const auto& [series, v] : m) {
    if (!absl::StartsWith(series, name)) continue;
    absl::string_view rest = absl::string_view(series).substr(name.size());
    if (!rest.empty() && rest[0] != '{') continue;
    bool match = true;
    for (const auto& [k, val] : labels) {
      if (!absl::StrContains(rest, absl::StrCat(k, "=\"", val, "\""))) {
        match = false;
        break;
      }
    }
    if (match) sum += v;
  }
  return sum;
}

absl::StatusOr<std::vector<std::string>> ScanTable(const std::string& endpoint,
                                                   const std::string& table) {
  auto out = RunCapture(absl::StrCat("node '", SourceDir(), "/tests/tools/ddb.js' --endpoint ",
                                     endpoint, " scan ", table));
  if (!out.ok()) return out.status();
  std::vector<std::string> items;
  for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
    items.emplace_back(line);
  }
  return items;
}

absl::Status CreateTable(const std::string& endpoint, const std::string& table,
                         const std::string& pk, const std::string& sk) {
  std::string cmd = absl::StrCat("node '", SourceDir(), "/tests/tools/ddb.js' --endpoint ",
                                 endpoint, " create-table ", table, " --pk ", pk);
  if (!sk.empty()) absl::StrAppend(&cmd, " --sk ", sk);
  auto out = RunCapture(cmd + " 2>&1");
  return out.ok() ? absl::OkStatus() : out.status();
}

}  // namespace dynamo_batcher::testing
