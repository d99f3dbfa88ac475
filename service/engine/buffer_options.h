#pragma once

#include <cstdint>

namespace dynamo_batcher {

// Budgets of bytes held by unanswered ops (G6): when one is full, streams
// stop being read and unary calls wait. Apart from engine.h so the config
// (buffer.*) can fill it without depending on the engine.
//
// Defaults as in deploy/kubernetes: at saturation the sidecar's RSS stays
// under 96 MiB (docs/benchmarks.md); more buffer adds latency, not
// throughput, since at most max_inflight_calls x 25 items per table fly.
struct BufferOptions {
  uint64_t max_bytes = 64ull << 20;        // all tables
  uint64_t max_table_bytes = 32ull << 20;  // one table
};

}  // namespace dynamo_batcher
