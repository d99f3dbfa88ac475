#include "client/batchctl/metrics_summary.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher::batchctl {
namespace {

constexpr char kMetrics[] = R"(# HELP dynamo_batcher_ops_received_total Ops received.
# TYPE dynamo_batcher_ops_received_total counter
dynamo_batcher_ops_received_total{table="events",op="put"} 90
dynamo_batcher_ops_received_total{table="events",op="delete"} 10
dynamo_batcher_ops_written_total{table="events",op="put"} 80
dynamo_batcher_ops_coalesced_total{table="events"} 5
dynamo_batcher_ops_rejected_total{table="events",reason="KeyMissing"} 2
dynamo_batcher_ops_failed_total{table="events",reason="RetriesExhausted"} 1
dynamo_batcher_batches_sent_total{table="events"} 4
dynamo_batcher_batch_size_bucket{table="events",le="+Inf"} 4
dynamo_batcher_batch_size_sum{table="events"} 80
dynamo_batcher_batch_size_count{table="events"} 4
dynamo_batcher_throttle_events_total{table="events",error="UnprocessedItems"} 3
dynamo_batcher_queue_items{table="events"} 7
dynamo_batcher_queue_items{table="other \"quoted\""} 1
dynamo_batcher_active_streams 2
process_cpu_seconds_total 1.5
)";

TEST(MetricsSummary, SumsSamplesPerTable) {
  absl::StatusOr<MetricsSummary> s = SummarizeMetrics(kMetrics);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->tables.count("events"), 1u);
  const TableSummary& t = s->tables.at("events");
  EXPECT_EQ(t.received, 100);
  EXPECT_EQ(t.written, 80);
  EXPECT_EQ(t.coalesced, 5);
  EXPECT_EQ(t.rejected, 2);
  EXPECT_EQ(t.failed, 1);
  EXPECT_EQ(t.batches, 4);
  EXPECT_DOUBLE_EQ(t.MeanBatchSize(), 20);
  EXPECT_EQ(t.throttle_events, 3);
  EXPECT_EQ(t.queue_items, 7);
  EXPECT_EQ(s->tables.at("other \"quoted\"").queue_items, 1);
  EXPECT_EQ(s->active_streams, 2);
  EXPECT_THAT(FormatSummary(*s), ::testing::HasSubstr("events"));
}

TEST(MetricsSummary, RefusesTextWithoutSidecarMetrics) {
  EXPECT_FALSE(SummarizeMetrics("process_cpu_seconds_total 1\n").ok());
  EXPECT_FALSE(SummarizeMetrics("<html>not found</html>").ok());
}

}  // namespace
}  // namespace dynamo_batcher::batchctl
