#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/backoff.h"
#include "service/config/config.h"
#include "service/lifecycle/table_checker.h"

namespace dynamo_batcher {

struct StartupOptions {
  // dynamodb.create_tables: create tables whose schema the config gives.
  bool create_tables = false;
  // DescribeTable retries for tables without a schema in the config.
  ExponentialBackoff describe_backoff{absl::Milliseconds(200), absl::Seconds(5), 2.0,
                                      ExponentialBackoff::kNoJitter};
  int max_describe_attempts = 30;
};

// Start-up's DynamoDB step: creates configured tables when asked to and
// fills in the key schema of every table that has none in the config, by
// DescribeTable, retried with backoff (the sidecar is useless without the
// schemas). Returns whether DynamoDB answered at all (readiness may then
// start SERVING at once).
//
// Errors: CANCELLED when `stop_requested` turned true while waiting to retry
// (a signal during start-up; exit 1); otherwise the failure that makes
// start-up impossible (CreateTable failed, the table does not exist or
// cannot be read, or max_describe_attempts ran out; exit 3). Each is logged.
//
// `sleep` waits between attempts (tests pass a fake that advances a
// FakeClock); `stop_requested` is checked before each wait.
//
// Thread-safety: a plain function; `tables` is the caller's.
absl::StatusOr<bool> ResolveKeySchemas(std::vector<TableConfig>* tables,
                                       const StartupOptions& options, TableChecker* checker,
                                       const std::function<void(absl::Duration)>& sleep,
                                       const std::function<bool()>& stop_requested);

}  // namespace dynamo_batcher
