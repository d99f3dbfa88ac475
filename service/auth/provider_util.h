#pragma once

// Small helpers shared by the credentials providers: file reading,
// environment access, form encoding, failure descriptions.

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {

// getenv as injected into the providers (std::getenv by default).
using GetenvFunction = std::function<const char*(const char*)>;
// Wall-clock "now" (credential expiry times are wall-clock, unlike Clock).
using WallClockFunction = std::function<absl::Time()>;

namespace auth_internal {

// Credentials answers (STS, the container endpoint, IMDS) are a few KiB; a
// bigger one is aborted rather than buffered (HttpRequest::max_response_bytes
// of every credentials request).
inline constexpr size_t kMaxCredentialsResponseBytes = 64 << 10;

// The variable's value, or "" when unset (or no getenv was given).
std::string Env(const GetenvFunction& getenv_fn, const char* name);

// Token and shared credentials/config files are read up to this size.
inline constexpr size_t kMaxCredentialsFileBytes = 1 << 20;

// Whole file; NOT_FOUND / PERMISSION_DENIED style errors name the path only.
// FAILED_PRECONDITION beyond kMaxCredentialsFileBytes.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// application/x-www-form-urlencoded value encoding (RFC 3986 unreserved kept).
std::string FormEncode(absl::string_view value);

// "true"/"1"/"yes" in any case.
bool IsTrue(absl::string_view value);

// A short, secret-free description of a failed HTTP exchange for messages:
// "transport: timeout" or "HTTP 403: <first 200 bytes of body>".
std::string DescribeHttpFailure(const HttpResponse& response);

}  // namespace auth_internal
}  // namespace dynamo_batcher
