#pragma once

// Test harness for integration tests: real processes on loopback (dynalite,
// the fault proxy, the sidecar binary), and small clients to inspect them.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dynamobatcher/v1/batcher.grpc.pb.h"

namespace dynamo_batcher::testing {

// A child process with stdout+stderr captured to a file. Killed (SIGKILL) on
// destruction if still running.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::string log_path,
               std::vector<std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;
  // Waits until the log contains `needle`; returns the log or an error.
  absl::StatusOr<std::string> WaitForLog(const std::string& needle, absl::Duration timeout) const;
  void Signal(int sig);
  // Waits for exit; returns the exit code, or -1 on timeout, or 128+signal.
  int Wait(absl::Duration timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  int status_ = 0;
  bool exited_ = false;
};

// Directory for this test's files (under the build tree).
std::string TestDir(const std::string& name);

struct Dynalite {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }
};
absl::StatusOr<Dynalite> StartDynalite(const std::string& dir);

struct FaultProxy {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }
};
absl::StatusOr<FaultProxy> StartFaultProxy(const std::string& dir, const std::string& target,
                                           const std::string& config_json);
// POST /__proxy/config and GET /__proxy/stats.
absl::Status ConfigureProxy(const FaultProxy& proxy, const std::string& config_json);
absl::StatusOr<std::string> ProxyStats(const FaultProxy& proxy);

struct Sidecar {
  std::unique_ptr<ChildProcess> process;
  int grpc_port = 0;
  int metrics_port = 0;
  std::string config_path;
  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port); }
  std::shared_ptr<grpc::Channel> Channel() const;
};
// The YAML of a sidecar config for these tests, so the common part is written
// once: DynamoDB at `endpoint` (region us-east-1, the local test credentials,
// create_tables), the tables added with Table() (none added: `events` with
// partition key pk (S)), batching with linger 5ms, max_items 25 and
// max_inflight_calls 8. Other sections (buffer:, server:, retry:,
// dead_letter:, drain_timeout, ...) go in Append, verbatim, at the end.
//
// Usage:
//   StartSidecar(dir, SidecarConfig(dynalite.endpoint()).Linger("1s").Append(extra));
class SidecarConfig {
 public:
  explicit SidecarConfig(std::string endpoint) : endpoint_(std::move(endpoint)) {}

  SidecarConfig& Listen(std::string listen) {
    listen_ = std::move(listen);
    return *this;
  }
  SidecarConfig& CallTimeout(std::string duration) {
    call_timeout_ = std::move(duration);
    return *this;
  }
  SidecarConfig& CreateTables(bool on) {
    create_tables_ = on;
    return *this;
  }
  // Key types: S, N or B. An empty `sort_key` means none.
  SidecarConfig& Table(const std::string& name, const std::string& partition_key,
                       const std::string& partition_type = "S", const std::string& sort_key = "",
                       const std::string& sort_type = "N");
  SidecarConfig& Linger(std::string duration) {
    linger_ = std::move(duration);
    return *this;
  }
  SidecarConfig& MaxItems(int n) {
    max_items_ = n;
    return *this;
  }
  SidecarConfig& Append(const std::string& yaml);

  std::string Yaml() const;
  operator std::string() const { return Yaml(); }  // NOLINT: pass it as the YAML

 private:
  std::string endpoint_;
  std::string listen_;
  std::string call_timeout_;
  bool create_tables_ = true;
  std::string tables_;
  std::string linger_ = "5ms";
  int max_items_ = 25;
  std::string extra_;
};

// Writes `config_yaml` (listen/metrics_listen forced to port 0 unless given)
// and starts the sidecar binary; waits for its "listening" log line.
absl::StatusOr<Sidecar> StartSidecar(const std::string& dir, const std::string& config_yaml,
                                     std::vector<std::string> env = {});

// HTTP GET on loopback; returns the body (status code in *status).
absl::StatusOr<std::string> HttpGet(const std::string& url, long* status = nullptr);
absl::StatusOr<std::string> HttpPost(const std::string& url, const std::string& body,
                                     long* status = nullptr);

// Parses Prometheus text format into "name{labels}" -> value, with labels
// sorted, e.g. `dynamo_batcher_ops_written_total{op="put",table="events"}`.
std::map<std::string, double> ParseMetrics(const std::string& text);
absl::StatusOr<std::map<std::string, double>> ScrapeMetrics(const Sidecar& sidecar);
// Sum of all series of `name` whose labels contain every `label=value` pair.
double MetricSum(const std::map<std::string, double>& m, const std::string& name,
                 const std::map<std::string, std::string>& labels = {});

// Scans a table through tests/tools/ddb.js; returns one DynamoDB-JSON item
// string per line.
absl::StatusOr<std::vector<std::string>> ScanTable(const std::string& endpoint,
                                                   const std::string& table);
absl::Status CreateTable(const std::string& endpoint, const std::string& table,
                         const std::string& pk, const std::string& sk = "");

// Paths.
std::string SourceDir();
std::string SidecarBinary();
std::string BatchctlBinary();

}  // namespace dynamo_batcher::testing
