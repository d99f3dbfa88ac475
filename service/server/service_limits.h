#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace dynamo_batcher {

// Per-server limits of the WriteBatcher service. Apart from the service's
// own header so the config (server.*) can fill it without depending on gRPC.
struct ServiceLimits {
  int max_ops_per_message = 10000;
  int max_streams = 1024;
  // Concurrent unary calls (Put, Delete, Flush); more: RESOURCE_EXHAUSTED.
  int max_unary_calls = 1024;
  // A stream stops being read while this many of its ops have no result
  // written to the client yet (results queued for a slow reader count).
  int64_t max_inflight_ops_per_stream = 100000;
  // Largest WriteResponse sent: results are split into messages of at most
  // this size, well under gRPC's default 4 MiB receive limit.
  size_t max_response_bytes = 1 << 20;
  // Unary calls without a deadline wait at most this long for buffer space.
  absl::Duration default_unary_wait = absl::Seconds(30);
};

}  // namespace dynamo_batcher
