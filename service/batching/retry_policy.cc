#include "service/batching/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace dynamo_batcher {

absl::Duration RetryPolicy::Backoff(uint32_t attempts, double u01) const {
  if (options_.base <= absl::ZeroDuration() || options_.cap <= absl::ZeroDuration()) {
    return absl::ZeroDuration();
  }
  // bound = min(cap, base * 2^(attempts-1)), by doubling so it cannot
  // overflow: the loop stops as soon as the cap is reached (at most ~64
  // doublings for any finite base/cap, however large `attempts` is).
  absl::Duration bound = options_.base;
  for (uint32_t i = 1; i < attempts && bound < options_.cap; ++i) bound *= 2;
  bound = std::min(bound, options_.cap);
  if (!(u01 > 0.0)) return absl::ZeroDuration();  // also catches NaN
  if (u01 >= 1.0) u01 = std::nextafter(1.0, 0.0);
  return bound * u01;
}

RetryDecision RetryPolicy::MayRetry(uint32_t attempts, absl::Time arrival,
                                   absl::Time retry_at) const {
  if (attempts >= options_.max_attempts) return {RetryDecision::Stop::kRetriesExhausted};
  if (retry_at > arrival + options_.op_deadline) return {RetryDecision::Stop::kDeadlineExceeded};
  return {};
}

}  // namespace dynamo_batcher
