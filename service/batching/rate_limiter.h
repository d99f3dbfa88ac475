#pragma once

#include "absl/time/time.h"

namespace dynamo_batcher {

struct RateLimiterOptions {
  double initial_rate = 1e9;    // items/s; effectively unlimited until throttled
  double max_rate = 1e9;        // static ceiling (config), items/s
  double min_rate = 1.0;        // never below this
  double decrease_factor = 0.7; // multiplicative decrease on throttling
  double increase_per_second = 200.0;  // additive recovery, items/s per second
  double burst_seconds = 0.1;   // bucket depth as seconds of the current rate
};

// Token bucket per table whose rate adapts to throttling (AIMD): a whole-call
// throttle or the unprocessed fraction of a batch lowers it, success raises it.
//
// "This class does not sleep. It is the responsibility of the caller to
// sleep": TryAcquire says how long to wait instead.
//
// Thread-safety: none; owned by one TableBatcher.
class RateLimiter {
 public:
  explicit RateLimiter(RateLimiterOptions options = {});

  // Takes `items` tokens if available at `now` and returns true; otherwise
  // returns false and sets `*ready_at` to when they will be.
  bool TryAcquire(double items, absl::Time now, absl::Time* ready_at);
  // When `items` tokens would be available (no side effect).
  absl::Time ReadyAt(double items, absl::Time now) const;

  // Feedback from one call: `sent` items, of which `unprocessed` came back,
  // `throttled` if the whole call was refused for throttling.
  void OnResult(double sent, double unprocessed, bool throttled, absl::Time now);

  double rate() const { return rate_; }

 private:
  void Refill(absl::Time now) const;

  RateLimiterOptions options_;
  double rate_;
  mutable double tokens_;
  mutable absl::Time last_refill_;
  absl::Time last_decrease_;
  absl::Time last_increase_;
  bool started_ = false;
};

}  // namespace dynamo_batcher
