#pragma once

// Header-only on purpose: the installable client library (client/) uses it
// too and must not link anything from service/ (see service/CMakeLists.txt,
// target dynamo_batcher::backoff).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace dynamo_batcher {

// Capped exponential backoff with jitter, the one backoff every retry loop
// uses (the batching retry policy, start-up DescribeTable, the readiness
// probe, the client's reconnects), as google-cloud-cpp keeps one backoff
// policy for all of its retry loops.
//
//   bound(n) = min(max, initial * multiplier^(n-1))      n = failures so far, >= 1
//   delay(n) = bound(n) * (1 - jitter + jitter * u)      u uniform in [0, 1)
//
// jitter = 1 is "full jitter" (U(0, bound), AWS Architecture Blog,
// "Exponential Backoff And Jitter"); jitter = 0 is the plain doubling
// sequence; jitter = 0.5 is "equal jitter" (U(bound/2, bound)).
//
// Pure: the randomness comes in as `u01`, or from a generator the caller
// owns (Next). It never reads a clock and never sleeps.
//
// Thread-safety: immutable after construction; const methods may be called
// from any thread (a generator passed to Next is the caller's to guard).
//
// Usage:
//   ExponentialBackoff backoff(absl::Milliseconds(200), absl::Seconds(5));
//   for (uint32_t failures = 1;; ++failures) {
//     if (TryOnce()) break;
//     Sleep(backoff.Next(failures, rng));
//   }
class ExponentialBackoff {
 public:
  static constexpr double kFullJitter = 1.0;
  static constexpr double kNoJitter = 0.0;

  // `initial` and `max` <= 0 give no delay; `multiplier` below 1 is taken as
  // 1; `jitter` is clamped to [0, 1].
  ExponentialBackoff(absl::Duration initial, absl::Duration max, double multiplier = 2.0,
                     double jitter = kFullJitter)
      : initial_(initial),
        max_(max),
        multiplier_(multiplier >= 1.0 ? multiplier : 1.0),
        jitter_(jitter > 0.0 ? std::min(jitter, 1.0) : 0.0) {}

  absl::Duration initial() const { return initial_; }
  absl::Duration max() const { return max_; }
  double multiplier() const { return multiplier_; }
  double jitter() const { return jitter_; }

  // The largest delay after `failures` failed attempts (0 is taken as 1).
  // Grows by repeated multiplication and stops at `max`, so it cannot
  // overflow however large `failures` is.
  absl::Duration Bound(uint32_t failures) const {
    if (initial_ <= absl::ZeroDuration() || max_ <= absl::ZeroDuration()) {
      return absl::ZeroDuration();
    }
    absl::Duration bound = initial_;
    if (multiplier_ > 1.0) {
      for (uint32_t i = 1; i < failures && bound < max_; ++i) bound *= multiplier_;
    }
    return std::min(bound, max_);
  }

  // The delay after `failures` failed attempts, for `u01` in [0, 1) (values
  // outside are clamped; NaN counts as 0).
  absl::Duration Delay(uint32_t failures, double u01) const {
    const absl::Duration bound = Bound(failures);
    if (jitter_ == 0.0) return bound;
    if (!(u01 > 0.0)) u01 = 0.0;
    if (u01 >= 1.0) u01 = std::nextafter(1.0, 0.0);
    const double scale = 1.0 - jitter_ + jitter_ * u01;
    if (scale <= 0.0) return absl::ZeroDuration();
    return bound * scale;
  }

  // Delay with `u01` drawn from `rng` (any UniformRandomBitGenerator).
  template <typename Rng>
  absl::Duration Next(uint32_t failures, Rng& rng) const {
    if (jitter_ == 0.0) return Bound(failures);
    return Delay(failures, std::uniform_real_distribution<double>(0.0, 1.0)(rng));
  }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  double multiplier_;
  double jitter_;
};

}  // namespace dynamo_batcher
