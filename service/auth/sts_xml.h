#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/auth/credentials.h"

namespace dynamo_batcher {

// Parses the XML body of an STS AssumeRoleWithWebIdentity (or AssumeRole)
// answer into credentials. Pure and total: any byte string gives either
// credentials with non-empty key id, secret, session token and an
// expiration, or an error; an STS <ErrorResponse> becomes an error whose
// message is "<Code>: <Message>" (STS's own words, no secrets). Fuzzed by
// tests/fuzz/sts_xml_fuzz.cc.
//
// Only what STS sends is understood: elements, attributes (ignored), text,
// the five predefined entities and numeric character references, CDATA,
// comments, <?xml?> and <!DOCTYPE> (skipped). Namespace prefixes are ignored.
absl::StatusOr<AwsCredentials> ParseStsCredentialsXml(absl::string_view xml);

// ISO 8601 / RFC 3339 time as STS, IMDS and the container endpoints write it:
// "2024-05-01T12:00:00Z", with optional fraction and numeric offset.
absl::StatusOr<absl::Time> ParseIso8601(absl::string_view text);

}  // namespace dynamo_batcher
