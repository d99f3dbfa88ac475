#pragma once

// Summarizes the sidecar's Prometheus /metrics text per table for
// `batchctl stats`. Pure functions; thread-safe.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dynamo_batcher::batchctl {

struct TableSummary {
  double received = 0;
  double written = 0;
  double coalesced = 0;
  double rejected = 0;
  double failed = 0;
  double batches = 0;
  double batch_size_sum = 0;
  double batch_size_count = 0;
  double throttle_events = 0;
  double queue_items = 0;

  double MeanBatchSize() const {
    return batch_size_count > 0 ? batch_size_sum / batch_size_count : 0;
  }
};

struct MetricsSummary {
  std::map<std::string, TableSummary> tables;
  double active_streams = 0;
  double inflight_requests = 0;
};

// INVALID_ARGUMENT when the text holds no dynamo_batcher_ sample at all
// (wrong URL, not the sidecar).
absl::StatusOr<MetricsSummary> SummarizeMetrics(absl::string_view text);

// A fixed-width table, one row per table.
std::string FormatSummary(const MetricsSummary& summary);

}  // namespace dynamo_batcher::batchctl
