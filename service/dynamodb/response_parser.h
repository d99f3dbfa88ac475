#pragma once

// Internal to service/dynamodb: helpers shared by the client and the parser.
// The public parse functions are declared in dynamodb_client.h.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/dynamodb/http_transport.h"

namespace dynamo_batcher {

// The short error type of a non-200 answer ("ValidationException"), from the
// JSON body's __type or the x-amzn-ErrorType header; "" if none.
std::string ErrorTypeOf(const HttpResponse& response);

// A non-200 answer or transport failure as a Status for the blocking calls,
// mapped the Abseil way: throttling -> RESOURCE_EXHAUSTED, 5xx/network ->
// UNAVAILABLE, ValidationException -> INVALID_ARGUMENT, ResourceNotFound ->
// NOT_FOUND, credential/permission errors -> PERMISSION_DENIED, other 4xx ->
// FAILED_PRECONDITION. `operation` prefixes the message ("DescribeTable t").
absl::Status StatusFromErrorResponse(absl::string_view operation,
                                     const HttpResponse& response);

// Table.TableStatus of a 200 DescribeTable answer ("ACTIVE", "CREATING", ...).
absl::StatusOr<std::string> ParseTableStatus(const HttpResponse& response);

}  // namespace dynamo_batcher
