#pragma once

// Parsing the JSON-lines files batchctl streams to the sidecar.
//
//   load:   {"table":"t","put":{<DynamoDB JSON item>}}
//           {"table":"t","delete":{<DynamoDB JSON key>}}
//   replay: the sidecar's dead-letter records,
//           {"table":"t","op":"put","item":{..},"error_code":..,...}
//           {"table":"t","op":"delete","key":{..},...}
// Pure functions; thread-safe. Errors are INVALID_ARGUMENT values.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dynamo_batcher/item.h"

namespace dynamo_batcher::batchctl {

struct FileOp {
  std::string table;
  bool is_delete = false;
  Item item;  // the item for a put, the key for a delete
};

absl::StatusOr<FileOp> ParseLoadLine(absl::string_view line);
absl::StatusOr<FileOp> ParseDeadLetterLine(absl::string_view line);

// True for lines to skip silently (blank, or starting with '#').
bool IsBlankLine(absl::string_view line);

}  // namespace dynamo_batcher::batchctl
