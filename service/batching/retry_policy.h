#pragma once

#include <cstdint>
#include <optional>

#include "absl/time/time.h"

namespace dynamo_batcher {

// Whether an op may have another attempt, and if not, why. The reason's
// code() is the op's error_code when it fails.
struct RetryDecision {
  enum class Stop {
    kNone,              // may retry
    kRetriesExhausted,  // max_attempts calls already carried it
    kDeadlineExceeded,  // the next attempt would start after op_deadline
  };
  Stop stop = Stop::kNone;

  bool may_retry() const { return stop == Stop::kNone; }
  // "", "RetriesExhausted" or "DeadlineExceeded".
  const char* code() const {
    switch (stop) {
      case Stop::kNone:
        return "";
      case Stop::kRetriesExhausted:
        return "RetriesExhausted";
      case Stop::kDeadlineExceeded:
        return "DeadlineExceeded";
    }
    return "";
  }
};

struct RetryOptions {
  absl::Duration base = absl::Milliseconds(25);
  absl::Duration cap = absl::Seconds(5);
  uint32_t max_attempts = 15;                       // calls per op, first one included
  absl::Duration op_deadline = absl::Seconds(120);  // from arrival
};

// Capped exponential backoff with full jitter (AWS Architecture Blog,
// "Exponential Backoff And Jitter"): delay = U(0, min(cap, base * 2^n)),
// computed by the shared ExponentialBackoff (service/common/backoff.h).
// Pure: randomness comes in as `u01` in [0, 1).
//
// Thread-safety: immutable after construction.
class RetryPolicy {
 public:
  explicit RetryPolicy(RetryOptions options = {}) : options_(options) {}
  const RetryOptions& options() const { return options_; }

  // Delay before the attempt after `attempts` calls already made (>= 1).
  absl::Duration Backoff(uint32_t attempts, double u01) const;

  // Whether an op that arrived at `arrival` and was carried by `attempts`
  // calls may be tried again at `retry_at`.
  RetryDecision MayRetry(uint32_t attempts, absl::Time arrival, absl::Time retry_at) const;

 private:
  RetryOptions options_;
};

}  // namespace dynamo_batcher
