#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace dynamo_batcher {

struct RateLimiterOptions {
  double initial_rate = 1e9;  // items/s; effectively unlimited until throttled
  double max_rate = 1e9;      // static ceiling (config), items/s
  // The defaults below are the sidecar's: the config (rate_limit.*) fills
  // this struct and states no defaults of its own.
  double min_rate = 25.0;              // never below this
  double decrease_factor = 0.7;        // multiplicative decrease on throttling
  double increase_per_second = 500.0;  // additive recovery, items/s per second
  double burst_seconds = 0.1;          // bucket depth as seconds of the current rate
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
//  - increase (a call with nothing unprocessed): CUBIC by default (`recovery`); kAdditive:
//    increase_per_second * time since the last change, up to max_rate.
//  - only throttling signals lower the rate; the caller reports 5xx and
//    timeouts as not throttled (they say nothing about table capacity, and
//    backoff already spaces those retries);
//  - a decrease persists only while it helps. Each decrease opens a
//    verification over the next results (at least kVerifyItems items and
//    kVerifyMin after the decrease window): if the items/s sent fell (by
//    kVerifyMinRateRatio), the lost fraction (items unprocessed or
//    throttled) did not fall by half, and the accepted items/s did not hold
//    up as the send rate fell -- what a capacity limit does -- the decrease
//    did not help. kStrikes such verdicts in a row: the loss does not
//    depend on the rate (random UnprocessedItems, a
//    throttling storm elsewhere): the rate goes back to where the decrease
//    started and that loss fraction becomes the loss floor. While a floor is
//    known, only a smoothed lost fraction (item-weighted, kLossTau) above
//    floor + a margin (kLossMargin, less for a small floor: see
//    kMinFloorMargin) counts as throttling; the floor follows the
//    smoothed loss down when it falls. A whole-call throttle of nearly
//    every call (lost >= 80%) is never taken as rate-independent;
//  - repeated throttles make probing gentler (see kTargetDecreasesPerSecond):
//    a sender that shares the capacity with others (a fleet of sidecars on
//    one table) cannot know its share except by exceeding it, so it keeps
//    the rate at which that happens near one decrease per 10 s: smaller
//    additive steps (the same for every sidecar that is cut as often, which
//    evens out their rates), a slower climb back, no probing beyond the rate
//    last cut from. Without this, a fleet's probes add up: 8 sidecars had
//    ~30% and 32 sidecars ~60% of their calls throttled.
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
  // Verification of a decrease (see the class comment).
  static constexpr double kVerifyItems = 500;
  static constexpr absl::Duration kVerifyMin = absl::Milliseconds(300);
  static constexpr absl::Duration kVerifyMax = absl::Seconds(3);
  static constexpr absl::Duration kLossTau = absl::Seconds(1);
  static constexpr double kLossMargin = 0.15;
  // A decrease is judged only if the items/s sent fell at least this much.
  static constexpr double kVerifyMinRateRatio = 1.15;
  // Consecutive verifications that must find a decrease useless before it
  // is undone.
  static constexpr int kStrikes = 2;

  // Gentler probing after repeated throttles (CUBIC recovery only). The
  // gentleness g (0 .. kMaxGentleness, continuous) follows how often this
  // sender's rate is cut (decreases per second, smoothed over kGentleTau):
  // above kTargetDecreasesPerSecond it rises, below it falls, by
  // kGentlenessRate levels per second per doubling (up to two doublings
  // when rising); it only rises once two or more decreases fall within
  // kGentleTau. At g: the additive step is increase_per_second / 2^g,
  // CUBIC's climb back is stretched by 2^min(g, kMaxCubicStretch), and
  // there is no probing beyond the rate last cut from while g >= 1. A
  // sidecar sharing its table with others is cut about as often as they
  // are, so a fleet settles on similar g: the same small absolute step for
  // each (AIMD, which evens out their rates), smaller the more of them
  // there are. Measured on the fleet model (rate_limiter_test FleetSim):
  // 8 sidecars settle near g = 6, 32 at the cap.
  static constexpr double kTargetDecreasesPerSecond = 0.1;
  static constexpr absl::Duration kGentleTau = absl::Seconds(10);
  static constexpr double kGentlenessRate = 0.5;
  static constexpr double kMaxGentleness = 9;
  static constexpr double kMaxCubicStretch = 3;
  // Gentleness does not rise while the smoothed lost share is above this.
  static constexpr double kMaxGentleLoss = 0.3;
  double gentleness() const { return gentleness_; }
  // While a loss floor is known, loss counts as throttling above
  // floor + min(kLossMargin, max(kMinFloorMargin, kFloorMarginShare * floor)).
  static constexpr double kMinFloorMargin = 0.03;
  static constexpr double kFloorMarginShare = 0.5;

  // Rate-independent lost fraction currently assumed (0 = none known).
  double loss_floor() const { return loss_floor_; }
  // Decreases undone because they did not lower the lost fraction.
  uint64_t reverted_decreases() const { return reverted_; }

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
  // Smoothed lost fraction (item-weighted, kLossTau).
  double loss_sent_ = 0;
  double loss_lost_ = 0;
  absl::Time loss_last_ = absl::InfinitePast();
  double loss_floor_ = 0;
  // Pending verification of the decreases since verify_start_.
  bool verifying_ = false;
  absl::Time verify_start_;
  double verify_base_ = 0;          // rate before the first decrease
  double verify_before_ = 0;        // smoothed lost fraction then
  double verify_before_items_ = 0;  // items that measurement rests on
  double verify_sent_ = 0;          // results counted since verify_start_
  double verify_lost_ = 0;
  absl::Time verify_first_ = absl::InfinitePast();  // first counted result
  uint64_t reverted_ = 0;
  int strikes_ = 0;
  double strike_base_ = 0;  // rate before the first useless decrease

  // Gentleness (see kTargetLossyCalls) and the decayed counts it rests on.
  double gentleness_ = 0;
  double gentle_decreases_ = 0;
  absl::Time gentle_last_ = absl::InfinitePast();
  double cubic_stretch_ = 1;  // of the current CUBIC curve
  double CubicSeconds() const;
  void UpdateGentleness(bool decreased, absl::Time now);

  double SmoothedLoss() const { return loss_sent_ > 0 ? loss_lost_ / loss_sent_ : 0; }
  // Updates the verification with one result; may undo the decrease.
  void Verify(double sent, double lost, absl::Time now);
};

}  // namespace dynamo_batcher
