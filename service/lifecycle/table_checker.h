#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "service/common/types.h"

namespace dynamo_batcher {

// The DynamoDB calls start-up and readiness need (DescribeTable, and
// CreateTable for development setups), behind an interface so the lifecycle
// is tested with a fake instead of a network. The sidecar's implementation
// forwards to DynamoDbClient.
//
// Thread-safety: implementations must allow calls from any thread.
class TableChecker {
 public:
  virtual ~TableChecker() = default;
  // The table's key schema; NOT_FOUND / PERMISSION_DENIED are final, other
  // errors are worth retrying.
  virtual absl::StatusOr<TableSchema> DescribeTable(const std::string& table) = 0;
  // Creates the table (on-demand) unless it exists.
  virtual absl::Status CreateTableIfMissing(const TableSchema& schema) = 0;
};

}  // namespace dynamo_batcher
