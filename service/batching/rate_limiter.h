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
  // Recovery after a decrease. kCubic (default): the rate climbs back fast
  // towards the rate it was cut from, flattens out near it, then probes
  // beyond it ever faster (CUBIC's window curve, in items/s). kAdditive: a
  // constant increase_per_second. Measured by the capacity-model test: CUBIC
  // spends less time above a table's capacity (fewer throttled calls) for
  // the same goodput.
  enum class Recovery { kCubic, kAdditive };
  Recovery recovery = Recovery::kCubic;
  // CUBIC: seconds to climb back to the pre-decrease rate after a full
  // decrease_factor cut.
  double cubic_recovery_seconds = 2.0;
};

// Token bucket per table whose rate adapts to throttling (AIMD): a whole-call
// throttle or the unprocessed fraction of a batch lowers it, success raises it.
//
// Algorithm:
//  - bucket depth = max(burst_seconds * rate, 25 items), so a full
//    BatchWriteItem (25 items) can always pass eventually;
//  - decrease (whole-call throttle, or a 200 with UnprocessedItems):
//      rate = max(min_rate, min(rate, measured) * (1 - (1 - decrease_factor) * f))
//    with f = unprocessed / sent (1 for a whole-call throttle) and `measured`
//    the items/s recently acquired. Starting from the measured rate matters
//    when the rate is "unlimited" (1e9): the first throttle lands near what
//    was really being sent, not at 7e8. At most one decrease per
//    kDecreaseWindow: a later, larger fraction in the same window deepens
//    that decrease (from the same base) instead of compounding;
//  - increase (a call with nothing unprocessed): additive,
//    increase_per_second * time since the last change, up to max_rate.
//  - only throttling signals lower the rate; the caller reports 5xx and
//    timeouts as not throttled (they say nothing about table capacity, and
//    backoff already spaces those retries).
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
  const RateLimiterOptions& options() const { return options_; }

  // New options (a config reload), keeping the adaptive state. A rate that
  // sat at the old ceiling moves to the new one; a lower (throttled) rate is
  // kept, clamped to the new [min_rate, max_rate]. initial_rate is ignored.
  void UpdateOptions(const RateLimiterOptions& options, absl::Time now);
  // Items/s acquired during the recent sending period (exponentially
  // weighted, kMeasureTau time constant, as of the last acquisition; a gap
  // longer than kMeasureTau starts a new period). 0 before the first send.
  // What a throttle decreases from when it is below rate().
  double MeasuredRate() const;

  // At most one multiplicative decrease per window: concurrent calls that
  // were all sent at the old rate come back throttled together and must not
  // compound into a collapse.
  static constexpr absl::Duration kDecreaseWindow = absl::Milliseconds(100);
  // Time constant of the send-rate measurement.
  static constexpr absl::Duration kMeasureTau = absl::Seconds(1);

 private:
  static void Sanitize(RateLimiterOptions* options);
  void Refill(absl::Time now) const;
  double Capacity() const;
  // Recovery after a quiet period (additive increase). Kept apart from the
  // decrease so another growth curve (e.g. CUBIC) can be swapped in.
  double IncreasedRate(double rate, absl::Duration elapsed, absl::Time now) const;

  RateLimiterOptions options_;
  double rate_;
  mutable double tokens_;
  mutable absl::Time last_refill_;
  absl::Time last_decrease_;
  absl::Time last_increase_;
  bool started_ = false;  // last_increase_/last_decrease_ are meaningful
  // Send-rate measurement: decayed sum of acquired items.
  double ewma_items_ = 0;
  absl::Time ewma_last_;
  absl::Time first_acquire_;
  bool measured_ = false;
  // The current decrease window: the rate it started from and the largest
  // throttled fraction applied in it.
  double decrease_base_ = 0;
  double cubic_k_ = 0;  // seconds from the last decrease back to decrease_base_
  double window_fraction_ = 0;
};

}  // namespace dynamo_batcher
