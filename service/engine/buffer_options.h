#pragma once

#include <cstdint>

namespace dynamo_batcher {

// Budgets of bytes held by unanswered ops (G6): when one is full, streams
// stop being read and unary calls wait. Apart from engine.h so the config
// (buffer.*) can fill it without depending on the engine.
struct BufferOptions {
  uint64_t max_bytes = 256ull << 20;        // all tables
  uint64_t max_table_bytes = 128ull << 20;  // one table
};

}  // namespace dynamo_batcher
