#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"

namespace dynamo_batcher {

// The parts of an HTTP request that SigV4 covers.
struct SigV4Request {
  std::string method = "POST";
  // As sent (already URI-encoded). The canonical URI is this path with dot
  // segments and empty segments removed, URI-encoded once more (the rule for
  // every service but S3; "/" for DynamoDB).
  std::string path = "/";
  // Raw query string without '?', as sent (already encoded: it is not
  // re-encoded, only its parameters sorted); may be empty.
  std::string query;
  // Headers to sign (Host included). Names any case; values trimmed by the signer.
  std::vector<std::pair<std::string, std::string>> headers;
  // Hex SHA-256 of the payload; if empty, the signer hashes `payload`.
  std::string payload_sha256;
  absl::string_view payload;
};

// Every intermediate step, so tests can check them one by one.
struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // hex
  std::string authorization;  // the Authorization header value
  std::string amz_date;       // YYYYMMDD'T'HHMMSS'Z', for X-Amz-Date
  std::string signed_headers;
};

// AWS Signature Version 4. Pure: `now` is an argument. The caller must add
// X-Amz-Date (and X-Amz-Security-Token when a session token is used) to
// `request.headers` before signing; SignV4 signs what it is given.
SigV4Signature SignV4(const SigV4Request& request, const AwsCredentials& credentials,
                      absl::string_view region, absl::string_view service, absl::Time now);

// AWS's UriEncode: unreserved characters (A-Z a-z 0-9 - _ . ~) kept, and
// '/' when `keep_slash`; everything else %XX with upper-case hex.
std::string UriEncode(absl::string_view value, bool keep_slash);

// YYYYMMDD'T'HHMMSS'Z' in UTC.
std::string AmzDate(absl::Time now);
// Lower-case hex SHA-256.
std::string Sha256Hex(absl::string_view data);

}  // namespace dynamo_batcher
