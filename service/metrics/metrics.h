#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/common/types.h"

namespace dynamo_batcher {

// Every metric of design.md, declared once here. Per-table series are created
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

  static const std::vector<double>& OpLatencyBuckets();

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

// Minimal HTTP/1.1 server for /metrics (Prometheus text format), /healthz
// (process alive) and /readyz (ready for traffic). prometheus-cpp's Exposer
// cannot serve custom paths, and probes need real status codes.
// Thread-safety: Start/Stop from one thread; handlers run on its own thread.
class MetricsHttpServer {
 public:
  MetricsHttpServer(std::shared_ptr<prometheus::Registry> registry,
                    std::function<bool()> ready, std::function<bool()> live);
  ~MetricsHttpServer();
  // `listen` is host:port; port 0 picks a free port (see port()).
  absl::Status Start(const std::string& listen);
  void Stop();
  int port() const { return port_; }

 private:
  void Serve();
  void Handle(int fd);

  std::shared_ptr<prometheus::Registry> registry_;
  std::function<bool()> ready_;
  std::function<bool()> live_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace dynamo_batcher
