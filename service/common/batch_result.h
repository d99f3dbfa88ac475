#pragma once

// What DynamoDB (or the network) said about one BatchWriteItem call, in the
// terms the batching core acts on. Produced by service/dynamodb's parser,
// consumed by service/batching and the engine; plain data.

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace dynamo_batcher {

struct BatchResult {
  enum class Kind {
    kSuccess,     // HTTP 200; `unprocessed_keys` went unwritten
    kRetryable,   // whole call: throttling, 5xx, timeout, connection error
    kValidation,  // whole call rejected for its content: bisect
    kFatal,       // non-retryable (ResourceNotFound, AccessDenied, ...)
  };
  Kind kind = Kind::kSuccess;
  std::vector<std::string> unprocessed_keys;  // canonical keys, kSuccess only
  bool throttled = false;                     // kRetryable: a throttling error
  // kRetryable: the call may still be applied by DynamoDB (timeout or
  // connection lost after sending); its keys are held (unknown_fate_hold).
  bool unknown_fate = false;
  // kRetryable and throttled: DynamoDB's ThrottlingReasons, each one of
  // ThrottleReasonLabels() (unknown ones as "Other"); empty when none was given.
  std::vector<std::string> throttle_reasons;
  std::string error_code;  // DynamoDB __type or transport
  std::string message;
  std::optional<absl::Duration> retry_after;  // x-amz-retry-after, if sent
  // kRetryable: the call never left (e.g. credentials not available yet), so
  // it does not count toward max_attempts; op_deadline still bounds the wait.
  bool never_sent = false;
};

}  // namespace dynamo_batcher
