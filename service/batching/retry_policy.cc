#include "service/batching/retry_policy.h"

#include "service/common/backoff.h"

namespace dynamo_batcher {

absl::Duration RetryPolicy::Backoff(uint32_t attempts, double u01) const {
  return ExponentialBackoff(options_.base, options_.cap, 2.0, ExponentialBackoff::kFullJitter)
      .Delay(attempts, u01);
}

RetryDecision RetryPolicy::MayRetry(uint32_t attempts, absl::Time arrival,
                                    absl::Time retry_at) const {
  if (attempts >= options_.max_attempts) return {RetryDecision::Stop::kRetriesExhausted};
  if (retry_at > arrival + options_.op_deadline) return {RetryDecision::Stop::kDeadlineExceeded};
  return {};
}

}  // namespace dynamo_batcher
