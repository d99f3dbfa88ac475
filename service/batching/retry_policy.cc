#include "service/batching/retry_policy.h"

#include "service/common/backoff.h"

namespace dynamo_batcher {

absl::Duration RetryPolicy::Backoff(uint32_t attempts, double u01) const {
  return ExponentialBackoff(options_.base, options_.cap, 2.0, ExponentialBackoff::kFullJitter)
      .Delay(attempts, u01);
}

bool RetryPolicy::MayRetry(uint32_t attempts, absl::Time arrival,
                           absl::Time retry_at, const char** code) const {
  const char* why = nullptr;
  if (attempts >= options_.max_attempts) {
    why = "RetriesExhausted";
  } else if (retry_at > arrival + options_.op_deadline) {
    why = "DeadlineExceeded";
  }
  if (why != nullptr && code != nullptr) *code = why;
  return why == nullptr;
}

}  // namespace dynamo_batcher
