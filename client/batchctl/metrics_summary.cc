#include "client/batchctl/metrics_summary.h"

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace dynamo_batcher::batchctl {

namespace {

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// Parses one exposition-format sample line; false for anything else.
bool ParseSample(absl::string_view line, Sample& out) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  out.name = std::string(line.substr(0, i));
  out.labels.clear();
  if (out.name.empty()) return false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find('=', i);
      if (eq == absl::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
        return false;
      }
      std::string key(absl::StripAsciiWhitespace(line.substr(i, eq - i)));
      std::string value;
      size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value.push_back(line[j] == 'n' ? '\n' : line[j]);
        } else {
          value.push_back(line[j]);
        }
      }
      if (j >= line.size()) return false;
      out.labels.emplace_back(std::move(key), std::move(value));
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  std::vector<absl::string_view> rest = absl::StrSplit(line.substr(i), ' ', absl::SkipEmpty());
  if (rest.empty()) return false;
  if (rest[0] == "+Inf" || rest[0] == "-Inf" || rest[0] == "NaN") return false;
  return absl::SimpleAtod(rest[0], &out.value);
}

const std::string* Label(const Sample& s, absl::string_view key) {
  for (const auto& [k, v] : s.labels) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<MetricsSummary> SummarizeMetrics(absl::string_view text) {
  MetricsSummary summary;
  bool any = false;
  Sample s;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    if (!ParseSample(line, s)) continue;
    absl::string_view name = s.name;
    constexpr absl::string_view kPrefix = "dynamo_batcher_";
    if (!absl::ConsumePrefix(&name, kPrefix)) continue;
    any = true;
    if (name == "active_streams") {
      summary.active_streams += s.value;
      continue;
    }
    if (name == "inflight_requests") {
      summary.inflight_requests += s.value;
      continue;
    }
    const std::string* table = Label(s, "table");
    if (table == nullptr) continue;
    TableSummary& t = summary.tables[*table];
    if (name == "ops_received_total") {
      t.received += s.value;
    } else if (name == "ops_written_total") {
      t.written += s.value;
    } else if (name == "ops_coalesced_total") {
      t.coalesced += s.value;
    } else if (name == "ops_rejected_total") {
      t.rejected += s.value;
    } else if (name == "ops_failed_total") {
      t.failed += s.value;
    } else if (name == "batches_sent_total") {
      t.batches += s.value;
    } else if (name == "batch_size_sum") {
      t.batch_size_sum += s.value;
    } else if (name == "batch_size_count") {
      t.batch_size_count += s.value;
    } else if (name == "throttle_events_total") {
      t.throttle_events += s.value;
    } else if (name == "queue_items") {
      t.queue_items += s.value;
    }
  }
  if (!any) {
    return absl::InvalidArgumentError(
        "no dynamo_batcher_ metrics in the response (is this the sidecar's /metrics?)");
  }
  return summary;
}

std::string FormatSummary(const MetricsSummary& summary) {
  std::string out = absl::StrFormat("%-24s %12s %12s %10s %9s %8s %10s %7s %9s %8s\n", "table",
                                    "received", "written", "coalesced", "rejected", "failed",
                                    "batches", "mean", "throttle", "queued");
  for (const auto& [name, t] : summary.tables) {
    absl::StrAppendFormat(&out, "%-24s %12.0f %12.0f %10.0f %9.0f %8.0f %10.0f %7.2f %9.0f %8.0f\n",
                          name, t.received, t.written, t.coalesced, t.rejected, t.failed, t.batches,
                          t.MeanBatchSize(), t.throttle_events, t.queue_items);
  }
  absl::StrAppendFormat(&out, "active streams: %.0f  in-flight requests: %.0f\n",
                        summary.active_streams, summary.inflight_requests);
  return out;
}

}  // namespace dynamo_batcher::batchctl
