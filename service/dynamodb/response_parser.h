#pragma once

// Pure parsing and classification of DynamoDB's answers: no I/O, no clock.
// Every input, however malformed, yields a value or a Status. Used by
// DynamoDbClient (dynamodb_client.h); fuzzed by
// tests/fuzz/response_parser_fuzz.cc.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/batch_result.h"
#include "service/common/types.h"
#include "service/dynamodb/batch_writer.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {

// How the batching core treats one whole-call failure.
struct ErrorClass {
  BatchResult::Kind kind = BatchResult::Kind::kFatal;
  bool throttled = false;  // kRetryable because DynamoDB throttled the call
};

// Classification of one whole-call failure (pure).
// Throttling -> RESOURCE_EXHAUSTED-like retry, 5xx/network -> retry,
// ValidationException / 413 -> bisect, the rest -> fatal.
ErrorClass ClassifyError(long http_status, absl::string_view error_type, bool transport_error);

// Parses an HTTP answer to BatchWriteItem for `schema`'s table (pure).
// UnprocessedItems are mapped back to canonical keys.
BatchWriteResponse ParseBatchWriteResponse(const HttpResponse& response, const TableSchema& schema);

// Parses a DescribeTable answer into a TableSchema (pure).
absl::StatusOr<TableSchema> ParseDescribeTableResponse(absl::string_view table,
                                                       const HttpResponse& response);

// The short error type of a non-200 answer ("ValidationException"), from the
// JSON body's __type or the x-amzn-ErrorType header; "" if none.
std::string ErrorTypeOf(const HttpResponse& response);

// A non-200 answer or transport failure as a Status for the blocking calls,
// mapped the Abseil way: throttling -> RESOURCE_EXHAUSTED, 5xx/network ->
// UNAVAILABLE, ValidationException -> INVALID_ARGUMENT, ResourceNotFound ->
// NOT_FOUND, credential/permission errors -> PERMISSION_DENIED, other 4xx ->
// FAILED_PRECONDITION. `operation` prefixes the message ("DescribeTable t").
absl::Status StatusFromErrorResponse(absl::string_view operation, const HttpResponse& response);

// Table.TableStatus of a 200 DescribeTable answer ("ACTIVE", "CREATING", ...).
absl::StatusOr<std::string> ParseTableStatus(const HttpResponse& response);

}  // namespace dynamo_batcher
