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
  // Several sidecars (the pods of a Deployment) write the same tables and
  // share their capacity. One sidecar cannot tell that from a loss that does
  // not depend on its rate: its own decrease barely changes what the table
  // sees. With `fleet`, probing is gentle and additive (kFleetIncrease, not
  // increase_per_second: N sidecars probe N times as hard; no climb back to
  // the rate a sidecar was cut from; CUBIC's convex probe only after
  // kFleetQuietItems items without a loss) and a decrease never goes below
  // kFleetGuard of the items/s this sidecar delivered recently, so the fleet
  // converges to a fair share with few throttled calls. The cost: after a
  // rate-independent loss at a low rate the rate climbs back slowly (see
  // docs/throttling.md for both, measured).
  bool fleet = false;
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
//    floor + kLossMargin counts as throttling; the floor follows the
//    smoothed loss down when it falls. A whole-call throttle of nearly
//    every call (lost >= 80%) is never taken as rate-independent;
//  - repeated throttles at the same level probe more gently (see
//    kSameLevel): a sender that shares the capacity with others (a fleet of
//    sidecars on one table) overshoots less often;
//  - options.fleet (RateLimiterOptions::fleet): gentle additive probing (no
//    CUBIC climb-back after a guarded decrease; CUBIC's convex probe after
//    kFleetQuietItems items without a loss), a decrease never below
//    kFleetGuard of the recently delivered items/s, and one experiment at a
//    time (while a decrease is being verified, a loss no higher than before
//    it does not compound it; a random loss every few calls would otherwise
//    cut faster than any verification can judge).
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

  // Gentler probing: a decrease within kSameLevel of the previous one's base
  // (and within kRepeatMemory of it) counts as a repeat; each repeat, up to
  // kMaxRepeats, doubles CUBIC's recovery time and halves the additive step.
  static constexpr double kSameLevel = 0.2;
  static constexpr absl::Duration kRepeatMemory = absl::Seconds(30);
  static constexpr uint32_t kMaxRepeats = 3;
  uint32_t repeats() const { return repeats_; }

  // Fleet mode (RateLimiterOptions::fleet): the additive probe, items/s per
  // second; the share of the recently delivered items/s a decrease keeps;
  // the time constant of that measurement.
  static constexpr double kFleetIncrease = 4.0;
  static constexpr double kFleetGuard = 0.95;
  static constexpr absl::Duration kDeliveredTau = absl::Seconds(10);
  // Fleet mode: after this many items sent in a row without a loss, probe
  // beyond the current rate with CUBIC's convex curve (the capacity may
  // have grown). 100 full calls.
  static constexpr double kFleetQuietItems = 2500;
  // Items/s accepted by DynamoDB recently (kDeliveredTau); 0 until measured
  // for 2 s.
  double DeliveredRate(absl::Time now) const;

  // Rate-independent lost fraction currently assumed (0 = none known).
  double loss_floor() const { return loss_floor_; }
  // A rate-independent loss is known and the recent loss is within it: what
  // is being lost does not depend on how fast (or how late) it is re-sent.
  bool LossIsRateIndependent() const {
    return loss_floor_ > 0 && SmoothedLoss() <= loss_floor_ + kLossMargin;
  }
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
  // Fleet mode: the last decrease was limited by kFleetGuard (the delivered
  // rate was known).
  bool cut_guarded_ = false;
  // Items answered in a row without a loss, and when that count reached
  // kFleetQuietItems.
  double items_since_loss_ = 0;
  absl::Time quiet_since_;
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
  absl::Time reverted_at_ = absl::InfinitePast();
  int strikes_ = 0;
  double strike_base_ = 0;  // rate before the first useless decrease

  uint32_t repeats_ = 0;
  double last_base_ = 0;
  // Accepted items, decayed (kDeliveredTau), since delivered_first_.
  double delivered_sum_ = 0;
  absl::Time delivered_last_ = absl::InfinitePast();
  absl::Time delivered_first_ = absl::InfinitePast();
  double CubicSeconds() const;

  double SmoothedLoss() const { return loss_sent_ > 0 ? loss_lost_ / loss_sent_ : 0; }
  // Updates the verification with one result; may undo the decrease.
  void Verify(double sent, double lost, absl::Time now);
};

}  // namespace dynamo_batcher
