#pragma once

// Turns batchctl's ITEM / KEY command-line arguments into an Item.
//
// Accepted forms:
//   - one argument holding DynamoDB JSON: '{"pk":{"S":"a"},"n":{"N":"3"}}'
//   - key=value pairs: pk=a n:N=3 ok:BOOL=true gone:NULL= tags:SS=a,b
//     The type after ':' is one of S (default), N, B (base64), BOOL, NULL,
//     SS, NS, BS (comma-separated). An attribute name containing ':' or '='
//     needs the JSON form.
// Pure functions; thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dynamo_batcher/item.h"

namespace dynamo_batcher::batchctl {

absl::StatusOr<Item> ParseItemArgs(const std::vector<std::string>& args);

// One `name[:TYPE]=value` pair added to `item`.
absl::Status ParseKeyValue(absl::string_view arg, Item& item);

}  // namespace dynamo_batcher::batchctl
