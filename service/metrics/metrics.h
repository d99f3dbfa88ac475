#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/common/types.h"

struct mg_connection;
struct mg_context;

namespace dynamo_batcher {

// Every metric, declared once here. Per-table series are created
// up front (tables are fixed at start-up), so the hot path is a pointer
// dereference and an atomic add, never a label lookup.
//
// Thread-safety: all members may be used from any thread.
class Metrics {
 public:
  struct Table {
    prometheus::Counter* received_put;
    prometheus::Counter* received_delete;
    prometheus::Counter* coalesced;
    prometheus::Counter* written_put;
    prometheus::Counter* written_delete;
    prometheus::Counter* batches_sent;
    prometheus::Counter* unprocessed_items;
    prometheus::Counter* retries;
    prometheus::Counter* dead_lettered;
    prometheus::Counter* consumed_wcu;
    prometheus::Histogram* batch_size;
    prometheus::Histogram* batch_write_seconds;
    prometheus::Histogram* op_latency_seconds;
    prometheus::Histogram* backoff_seconds;
    prometheus::Gauge* queue_items;
    prometheus::Gauge* queue_bytes;
    prometheus::Gauge* queue_budget_bytes;
    prometheus::Gauge* send_rate_limit;
    prometheus::Gauge* paced_keys;
  };

  explicit Metrics(const std::vector<std::string>& tables);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  Table& table(size_t index) { return tables_[index]; }

  // Labelled series created on first use (label sets are bounded: reasons and
  // error names come from fixed lists or DynamoDB's error names).
  prometheus::Counter& Rejected(const std::string& table, const std::string& reason);
  prometheus::Counter& Failed(const std::string& table, const std::string& reason);
  prometheus::Counter& ThrottleEvents(const std::string& table, const std::string& error);
  prometheus::Counter& HttpErrors(const std::string& error_class);
  // `reason`: one of ThrottleReasonLabels() (service/common/types.h).
  prometheus::Counter& ThrottleReasons(const std::string& table, const std::string& reason);
  prometheus::Gauge& inflight_requests() { return *inflight_requests_; }
  prometheus::Gauge& active_streams() { return *active_streams_; }
  prometheus::Gauge& ready() { return *ready_; }
  prometheus::Gauge& BuildInfo(const std::string& version);
  prometheus::Gauge& CredentialsProvider(const std::string& name);
  prometheus::Counter& CredentialsRefreshFailures() { return *refresh_failures_; }
  // dynamo_batcher_config_hash{hash} 1 for the configuration in use (the
  // previous hash's series is removed).
  void SetConfigHash(const std::string& hash);
  prometheus::Gauge& config_reload_success() { return *config_reload_success_; }
  prometheus::Gauge& config_last_reload_timestamp() { return *config_reload_time_; }
  prometheus::Counter& ConfigReloads(const std::string& result);

  static const std::vector<double>& OpLatencyBuckets();

  // Label values known in advance. Their series exist at 0 from start-up
  // (for every configured table), so a dashboard shows 0 rather than "No
  // data" before the first event; other values still appear on first use.
  static const std::vector<std::string>& KnownRejectReasons();
  static const std::vector<std::string>& KnownFailReasons();
  static const std::vector<std::string>& KnownThrottleErrors();
  static const std::vector<std::string>& KnownHttpErrorClasses();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* received_;
  prometheus::Family<prometheus::Counter>* coalesced_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Counter>* written_;
  prometheus::Family<prometheus::Counter>* failed_;
  prometheus::Family<prometheus::Counter>* batches_;
  prometheus::Family<prometheus::Counter>* unprocessed_;
  prometheus::Family<prometheus::Counter>* throttle_;
  prometheus::Family<prometheus::Counter>* throttle_reasons_;
  prometheus::Family<prometheus::Counter>* retries_;
  prometheus::Family<prometheus::Counter>* dead_lettered_;
  prometheus::Family<prometheus::Counter>* wcu_;
  prometheus::Family<prometheus::Counter>* http_errors_;
  prometheus::Family<prometheus::Histogram>* batch_size_;
  prometheus::Family<prometheus::Histogram>* batch_seconds_;
  prometheus::Family<prometheus::Histogram>* op_latency_;
  prometheus::Family<prometheus::Histogram>* backoff_;
  prometheus::Family<prometheus::Gauge>* queue_items_;
  prometheus::Family<prometheus::Gauge>* queue_bytes_;
  prometheus::Family<prometheus::Gauge>* queue_budget_;
  prometheus::Family<prometheus::Gauge>* rate_;
  prometheus::Family<prometheus::Gauge>* paced_keys_;
  prometheus::Family<prometheus::Gauge>* build_info_;
  prometheus::Family<prometheus::Gauge>* credentials_;
  prometheus::Gauge* inflight_requests_;
  prometheus::Gauge* active_streams_;
  prometheus::Gauge* ready_;
  prometheus::Counter* refresh_failures_;
  prometheus::Family<prometheus::Gauge>* config_hash_;
  prometheus::Family<prometheus::Counter>* config_reloads_;
  prometheus::Gauge* config_hash_series_ = nullptr;
  prometheus::Gauge* config_reload_success_;
  prometheus::Gauge* config_reload_time_;
  std::vector<Table> tables_;
};

// Accumulates histogram observations on one thread and hands them to the
// prometheus histogram in one ObserveMultiple call, so a hot loop does not
// take the histogram's mutex per observation.
// Thread-safety: none (one owner thread).
class LocalHistogram {
 public:
  LocalHistogram(prometheus::Histogram* target, const std::vector<double>& bounds)
      : target_(target), bounds_(bounds), counts_(bounds.size() + 1, 0.0) {}
  void Observe(double v);
  void Publish();

 private:
  prometheus::Histogram* target_;
  const std::vector<double>& bounds_;
  std::vector<double> counts_;
  double sum_ = 0;
  bool dirty_ = false;
};

// Serves /metrics (Prometheus text format), /healthz (process alive) and
// /readyz (ready for traffic) over HTTP/1.1 with civetweb, the embedded server
// prometheus-cpp's own Exposer is built on (the Exposer cannot add probe paths
// with real status codes). Paths match exactly; everything else is 404, and
// methods other than GET and HEAD are 405.
//
// Hostile clients cannot starve the probes: each connection gets a worker
// thread from a fixed pool (the connection cap; more wait in a bounded queue
// and then the kernel backlog), a request must arrive whole within
// `request_timeout_ms` of the wait for it (a client trickling bytes is cut
// off), and a request line plus headers over `max_request_bytes` (or more
// than 63 header fields) is answered 431; civetweb itself answers 400 and
// closes the connection beyond twice that size, the size of its buffer.
// Idle workers block on a condition variable (no polling).
//
// Thread-safety: Start/Stop from one thread; handlers run on the pool's
// threads and only read the registry and the callbacks' atomics.
// Usage: MetricsHttpServer http(registry, is_ready, is_live);
//        if (auto s = http.Start("127.0.0.1:9464"); !s.ok()) ...
class MetricsHttpServer {
 public:
  struct Options {
    // Connections served at once; each holds one worker thread.
    int worker_threads = 256;
    // Accepted connections waiting for a worker.
    int accept_queue = 64;
    // The whole request (line and headers) must arrive within this time.
    int request_timeout_ms = 2000;
    // Request line plus headers; larger requests get 431 (400 from civetweb
    // beyond twice this, its buffer size).
    int max_request_bytes = 8192;
  };

  MetricsHttpServer(std::shared_ptr<prometheus::Registry> registry, std::function<bool()> ready,
                    std::function<bool()> live, Options options);
  MetricsHttpServer(std::shared_ptr<prometheus::Registry> registry, std::function<bool()> ready,
                    std::function<bool()> live)
      : MetricsHttpServer(std::move(registry), std::move(ready), std::move(live), Options()) {}
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // `listen` is host:port (a name or an IPv4 address; a [bracketed] IPv6
  // address only if civetweb was built with IPv6, which Debian 12's is not);
  // port 0 picks a free port (see port()).
  absl::Status Start(const std::string& listen);
  void Stop();
  int port() const { return port_; }

 private:
  static int OnRequest(mg_connection* conn);
  int Handle(mg_connection* conn);

  std::shared_ptr<prometheus::Registry> registry_;
  std::function<bool()> ready_;
  std::function<bool()> live_;
  Options options_;
  mg_context* context_ = nullptr;
  std::string bound_host_;
  int port_ = 0;
};

}  // namespace dynamo_batcher
