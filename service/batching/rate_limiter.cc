#include "service/batching/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace dynamo_batcher {
namespace {

// A full BatchWriteItem must always fit in the bucket.
constexpr double kMinCapacityItems = 25.0;
// Floating-point slack so that waiting exactly until ReadyAt() is enough.
constexpr double kTokenEpsilon = 1e-6;
// Shortest window the send rate is averaged over right after start-up (or
// after an idle gap), so a single batch does not read as an infinite rate.
// Small on purpose: overestimating only makes the first decrease milder (the
// next windows correct it), underestimating collapses the rate.
constexpr double kMinMeasureWindowSeconds = 0.01;
// Smallest share of a full decrease that a partial UnprocessedItems answer
// causes (see OnResult).
constexpr double kMinThrottleFraction = 0.3;

// What an exponentially decayed sum last updated at `last` is worth at
// `now` (time constant `tau`); 1 if it was never updated or time did not
// move forward.
double DecayFactor(absl::Time last, absl::Time now, absl::Duration tau) {
  if (last == absl::InfinitePast() || now <= last) return 1.0;
  return std::exp(-absl::FDivDuration(now - last, tau));
}

}  // namespace

RateLimiter::RateLimiter(RateLimiterOptions options) : options_(options) {
  Sanitize(&options_);
  rate_ = std::clamp(options_.initial_rate, options_.min_rate, options_.max_rate);
  if (std::isnan(rate_)) rate_ = options_.max_rate;
  tokens_ = Capacity();
  last_refill_ = absl::InfinitePast();
  last_decrease_ = absl::InfinitePast();
  last_increase_ = absl::InfinitePast();
}

void RateLimiter::Sanitize(RateLimiterOptions* o) {
  if (!(o->min_rate > 0)) o->min_rate = 1.0;
  if (!(o->max_rate >= o->min_rate)) o->max_rate = o->min_rate;
  if (!(o->decrease_factor > 0 && o->decrease_factor < 1)) o->decrease_factor = 0.7;
  if (!(o->increase_per_second >= 0)) o->increase_per_second = 0;
  if (!(o->burst_seconds > 0)) o->burst_seconds = 0.1;
}

void RateLimiter::UpdateOptions(const RateLimiterOptions& options, absl::Time now) {
  Refill(now);
  const bool at_ceiling = rate_ >= options_.max_rate;
  options_ = options;
  Sanitize(&options_);
  rate_ = at_ceiling ? options_.max_rate : std::clamp(rate_, options_.min_rate, options_.max_rate);
  tokens_ = std::min(tokens_, Capacity());
}

double RateLimiter::Capacity() const {
  return std::max(options_.burst_seconds * rate_, kMinCapacityItems);
}

void RateLimiter::Refill(absl::Time now) const {
  if (last_refill_ == absl::InfinitePast()) {
    last_refill_ = now;
    return;
  }
  if (now <= last_refill_) return;  // time never runs backwards for us
  const double dt = absl::ToDoubleSeconds(now - last_refill_);
  tokens_ = std::min(Capacity(), tokens_ + rate_ * dt);
  last_refill_ = now;
}

bool RateLimiter::TryAcquire(double items, absl::Time now, absl::Time* ready_at) {
  if (!started_) {
    started_ = true;
    last_increase_ = now;
  }
  Refill(now);
  if (!(items > 0)) return true;
  // More than the bucket holds can never be available at once: a full bucket
  // lets it through and the rest is borrowed from the future.
  const double need = std::min(items, Capacity());
  if (tokens_ + kTokenEpsilon >= need) {
    tokens_ -= items;
    if (!measured_ || now - ewma_last_ > kMeasureTau) {
      // First send, or first after an idle gap: start a new measurement so a
      // burst after idling is not averaged with the silence before it.
      measured_ = true;
      first_acquire_ = now;
      ewma_last_ = now;
      ewma_items_ = 0;
    }
    ewma_items_ *= DecayFactor(ewma_last_, now, kMeasureTau);
    if (now > ewma_last_) ewma_last_ = now;
    ewma_items_ += items;
    return true;
  }
  if (ready_at != nullptr) *ready_at = ReadyAt(items, now);
  return false;
}

absl::Time RateLimiter::ReadyAt(double items, absl::Time now) const {
  Refill(now);
  const double need = std::min(items, Capacity());
  if (tokens_ + kTokenEpsilon >= need) return now;
  const double seconds = (need - tokens_) / rate_;
  // Round up to the next microsecond so the caller never wakes a hair early.
  return now + absl::Ceil(absl::Seconds(seconds), absl::Microseconds(1));
}

double RateLimiter::MeasuredRate() const {
  if (!measured_) return 0;
  // Evaluated at the last send, not decayed to "now": a throttle answer that
  // arrives after sending stopped is about the rate we were sending at.
  // Bias correction for a young measurement: the sum has only been
  // collecting for `age`, so divide by the weight it could have collected.
  const double tau = absl::ToDoubleSeconds(kMeasureTau);
  const double age = std::max(0.0, absl::ToDoubleSeconds(ewma_last_ - first_acquire_));
  const double window = std::max(tau * (1.0 - std::exp(-age / tau)), kMinMeasureWindowSeconds);
  return ewma_items_ / window;
}

double RateLimiter::CubicSeconds() const {
  return std::max(options_.cubic_recovery_seconds, 0.05) * static_cast<double>(1u << repeats_);
}

double RateLimiter::DeliveredRate(absl::Time now) const {
  if (delivered_first_ == absl::InfinitePast()) return 0;
  const double age = absl::ToDoubleSeconds(now - delivered_first_);
  if (age < 2.0) return 0;
  const double tau = absl::ToDoubleSeconds(kDeliveredTau);
  const double sum = delivered_sum_ * DecayFactor(delivered_last_, now, kDeliveredTau);
  return sum / (tau * (1.0 - std::exp(-age / tau)));
}

double RateLimiter::IncreasedRate(double rate, absl::Duration elapsed, absl::Time now) const {
  // The additive step is also the floor of CUBIC's curve, so recovery is
  // never slower than the additive mode. In a fleet it is small and the
  // same for every sidecar: what makes the shares converge (AIMD).
  const double gentle = static_cast<double>(1u << repeats_);
  const double step = options_.fleet ? kFleetIncrease : options_.increase_per_second;
  double next = rate + step / gentle * absl::ToDoubleSeconds(elapsed);
  if (options_.recovery != RateLimiterOptions::Recovery::kCubic || !(decrease_base_ > 0) ||
      last_decrease_ == absl::InfinitePast()) {
    return std::min(options_.max_rate, std::max(rate, next));
  }
  // W(t) = W_max * (1 + c * (t - K)^3), c chosen so that a full cut
  // (1 - decrease_factor) takes cubic_recovery_seconds to recover.
  const double tk = CubicSeconds();
  const double c = (1.0 - options_.decrease_factor) / (tk * tk * tk);
  const double since = absl::ToDoubleSeconds(now - last_decrease_);
  if (!options_.fleet || !cut_guarded_) {
    const double t = since - cubic_k_;
    next = std::max(next, decrease_base_ * (1.0 + c * t * t * t));
  } else {
    // Fleet mode after a guarded decrease: no climb back to the rate this
    // sidecar was cut from. Each sidecar returning to its own level in a
    // few seconds is what kept a fleet unfair (the shares only converge
    // through the equal additive step). After kFleetQuietItems items sent
    // in a row without a loss, the capacity may have grown (or sidecars
    // left): probe with CUBIC's convex curve, added to the current rate.
    // Counted in items, not seconds or calls: a sidecar with a small share
    // goes seconds without a throttle while the table is still full, and
    // one whose limit is above its load sends many 1-item calls (measured
    // with 32 sidecars: either let a sidecar race from its share to its
    // whole offered rate).
    const double t2 = items_since_loss_ >= kFleetQuietItems
                          ? std::min(since - cubic_k_, absl::ToDoubleSeconds(now - quiet_since_))
                          : 0.0;
    if (t2 > 0) {
      const double t1 = std::max(0.0, t2 - absl::ToDoubleSeconds(elapsed));
      next = std::max(next, rate + decrease_base_ * c * (t2 * t2 * t2 - t1 * t1 * t1));
    }
  }
  return std::min(options_.max_rate, std::max(rate, next));
}

void RateLimiter::Verify(double sent, double lost, absl::Time now) {
  if (!verifying_ || now < verify_start_) return;
  if (verify_first_ == absl::InfinitePast()) verify_first_ = now;
  verify_sent_ += sent;
  verify_lost_ += lost;
  const absl::Duration span = now - verify_start_;
  const bool enough = verify_sent_ >= kVerifyItems && span >= kVerifyMin;
  const bool timed_out = span >= kVerifyMax;
  if (!enough && !timed_out) return;
  verifying_ = false;
  if (verify_sent_ < kMinCapacityItems) return;  // too little to judge: keep the decrease
  const double after = verify_lost_ / verify_sent_;
  // In fleet mode a low-rate stream must be judged too (500 items can take
  // longer than a verification lasts there); the default mode keeps its
  // measured behaviour.
  if (verify_before_items_ < (options_.fleet ? kVerifyItems / 4 : kVerifyItems)) {
    // The loss before the decrease was measured on too few items (right
    // after start): this window becomes the baseline and the next one
    // decides, against the same starting rate.
    verifying_ = true;
    verify_before_ = after;
    verify_before_items_ = verify_sent_;
    verify_start_ = now;
    verify_sent_ = 0;
    verify_lost_ = 0;
    verify_first_ = absl::InfinitePast();
    return;
  }
  const double before = verify_before_;
  // Items/s sent during the verification, against the rate before it.
  const double seconds = std::max(absl::ToDoubleSeconds(now - verify_first_), 0.05);
  const double sent_rate = verify_sent_ / seconds;
  const double rate_ratio = sent_rate > 0 ? std::max(1.0, verify_base_ / sent_rate) : 1.0;
  // Under a capacity limit the accepted items/s stay put while the send
  // rate falls, so the accepted share rises by the same ratio; under
  // rate-independent loss it does not move.
  const double accepted_ratio = before < 1.0 ? (1.0 - after) / (1.0 - before) : 0.0;
  // A decrease that did not lower what was sent (others' traffic, a
  // backlog) proves nothing either way.
  if (rate_ratio < kVerifyMinRateRatio) return;
  const bool accepted_rose = accepted_ratio >= 1.0 + 0.5 * (rate_ratio - 1.0);
  if (after < 0.5 * before || (after <= before + kLossMargin && accepted_rose)) {
    strikes_ = 0;  // it helped: a capacity limit
    return;
  }
  // A loss that grew says the decrease was too small (or noise), not that
  // it did not matter; a near-total loss is never taken as benign.
  if (after > before + kLossMargin || after <= 0.02 || after >= 0.8) return;
  // Didn't help. Once may be noise (other senders sharing the capacity
  // moved at the same time); twice in a row is a rate-independent loss.
  if (strikes_ == 0) strike_base_ = verify_base_;
  if (++strikes_ >= kStrikes) {
    strikes_ = 0;
    rate_ = std::min(options_.max_rate, std::max(rate_, strike_base_));
    tokens_ = std::min(tokens_, Capacity());
    loss_floor_ = std::max(loss_floor_, after);
    decrease_base_ = 0;  // no CUBIC target below the restored rate
    last_decrease_ = absl::InfinitePast();
    last_increase_ = now;
    // The measured send rate still reflects the useless decreases: a loss
    // right after must not cut from it (that would undo the revert), and
    // the repeated cuts were not a capacity to probe gently around.
    reverted_at_ = now;
    if (!options_.fleet) repeats_ = 0;
    ++reverted_;
  }
}

void RateLimiter::OnResult(double sent, double unprocessed, bool throttled, absl::Time now) {
  if (!started_) {
    started_ = true;
    last_increase_ = now;
  }
  Refill(now);
  if (!(sent > 0)) return;  // nothing was sent: no signal either way
  const double lost = throttled ? sent : std::clamp(unprocessed, 0.0, sent);
  // Smoothed lost fraction, item-weighted.
  const double d = DecayFactor(loss_last_, now, kLossTau);
  loss_sent_ *= d;
  loss_lost_ *= d;
  if (now > loss_last_) loss_last_ = now;
  loss_sent_ += sent;
  loss_lost_ += lost;
  const double smoothed = SmoothedLoss();
  // Delivered items/s (accepted by DynamoDB).
  if (delivered_first_ == absl::InfinitePast()) delivered_first_ = now;
  delivered_sum_ *= DecayFactor(delivered_last_, now, kDeliveredTau);
  if (now > delivered_last_) delivered_last_ = now;
  delivered_sum_ += sent - lost;
  if (loss_floor_ > 0 && smoothed < loss_floor_) {
    loss_floor_ = smoothed < 0.02 ? 0 : smoothed;  // the loss went away: follow it down
  }
  if (lost > 0) {
    items_since_loss_ = 0;
  } else if (items_since_loss_ < kFleetQuietItems) {
    items_since_loss_ += sent;
    if (items_since_loss_ >= kFleetQuietItems) quiet_since_ = now;
  }
  const uint64_t reverted_before = reverted_;
  Verify(sent, lost, now);
  if (reverted_ != reverted_before) return;

  double fraction = 0;
  if (loss_floor_ > 0) {
    // A known rate-independent loss: only loss beyond it is throttling.
    if (lost > 0 && smoothed > loss_floor_ + kLossMargin) {
      fraction = std::max(kMinThrottleFraction,
                          std::min(1.0, (smoothed - loss_floor_) / (1.0 - loss_floor_)));
    }
  } else if (throttled) {
    fraction = 1.0;
  } else if (unprocessed > 0) {
    // Scaled by the unprocessed fraction, but never a token cut: a rate
    // that only ever shaves a few percent rides the table's capacity edge
    // and gets throttled on call after call (measured: ~21% of calls at a
    // 2,000 WCU/s table vs ~6% with this floor).
    fraction = std::max(kMinThrottleFraction, std::min(1.0, unprocessed / sent));
  }
  const bool in_window =
      last_decrease_ != absl::InfinitePast() && now - last_decrease_ < kDecreaseWindow;
  // Fleet mode: one experiment at a time; a loss no higher than before the
  // decrease under verification does not compound it.
  if (options_.fleet && fraction > 0 && !in_window && verifying_ && smoothed <= verify_before_) {
    last_increase_ = now;
    return;
  }
  if (fraction > 0) {
    if (!in_window) {
      double base = rate_;
      const double measured = MeasuredRate();
      const bool just_reverted = !options_.fleet && reverted_at_ != absl::InfinitePast() &&
                                 now - reverted_at_ < 2 * kMeasureTau;
      if (measured > 0 && !just_reverted) base = std::min(base, measured);
      // Throttled again near the level of the last decrease: the capacity
      // is there (shared with other senders, as in a fleet of sidecars).
      // Probe more gently each time: CUBIC's curve stretched and the
      // additive step divided by 2^repeats.
      const bool same_level = last_base_ > 0 && last_decrease_ != absl::InfinitePast() &&
                              now - last_decrease_ < kRepeatMemory &&
                              std::abs(base - last_base_) <= kSameLevel * last_base_;
      repeats_ = same_level ? std::min(repeats_ + 1, kMaxRepeats) : 0;
      last_base_ = base;
      decrease_base_ = base;
      window_fraction_ = 0;
      last_decrease_ = now;
      if (!verifying_) {
        verifying_ = true;
        verify_start_ = now + kDecreaseWindow;  // calls sent at the old rate answer first
        verify_base_ = base;
        verify_before_ = smoothed;
        verify_before_items_ = loss_sent_;
        verify_sent_ = 0;
        verify_lost_ = 0;
        verify_first_ = absl::InfinitePast();
      }
    }
    if (fraction > window_fraction_) {
      window_fraction_ = fraction;
      const double k = 1.0 - options_.decrease_factor;
      rate_ = std::max(options_.min_rate, decrease_base_ * (1.0 - k * fraction));
      if (options_.fleet) {
        // Never far below what this sidecar delivered lately (more if a
        // rate-independent loss is known): the fleet's sum stays near the
        // capacity, and a random loss cannot ratchet the rate down. Until
        // that is measured (start-up), the cut is unguarded and CUBIC may
        // climb back from it.
        const double delivered = DeliveredRate(now);
        cut_guarded_ = delivered > 0;
        const double guard = kFleetGuard * delivered / (1.0 - std::min(loss_floor_, 0.8));
        rate_ = std::min(decrease_base_, std::max(rate_, guard));
      }
      tokens_ = std::min(tokens_, Capacity());
      // K: when CUBIC's curve is back at decrease_base_ (cube root of the
      // relative drop over c).
      const double tk = CubicSeconds();
      const double c = (1.0 - options_.decrease_factor) / (tk * tk * tk);
      const double drop = decrease_base_ > 0 ? (decrease_base_ - rate_) / decrease_base_ : 0;
      cubic_k_ = std::cbrt(std::max(0.0, drop) / c);
    }
    last_increase_ = now;  // recovery is measured from the last decrease
    return;
  }
  // Success. Calls sent before a decrease keep answering for a moment; they
  // do not count as evidence that the lower rate is fine yet.
  if (in_window) return;
  if (now > last_increase_) {
    rate_ = IncreasedRate(rate_, now - last_increase_, now);
    last_increase_ = now;
  }
}

}  // namespace dynamo_batcher
