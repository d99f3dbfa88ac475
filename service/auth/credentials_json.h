#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/auth/credentials.h"

namespace dynamo_batcher {

// Parses the JSON that the container credentials endpoint (ECS, EKS Pod
// Identity) and IMDS's security-credentials/<role> answer:
//   {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "...",
//    "Expiration": "2024-05-01T12:00:00Z", "Code": "Success", ...}
// "Code" other than "Success" and error objects ({"code","message"}) become
// errors. Token and Expiration are optional (long-term keys). Pure; never
// throws or asserts on any input.
absl::StatusOr<AwsCredentials> ParseCredentialsJson(absl::string_view json);

// Parses the JSON body of an STS AssumeRoleWithWebIdentity (or AssumeRole)
// answer, as STS sends it to a request with "Accept: application/json":
//   {"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":{
//      "Credentials":{"AccessKeyId":"...","SecretAccessKey":"...",
//                     "SessionToken":"...","Expiration":1714568400}, ...}, ...}}
// Expiration is epoch seconds (a number, possibly fractional, as STS writes
// it) or an ISO 8601 string. STS's error document
// {"Error":{"Code":"...","Message":"..."},"RequestId":"..."} becomes
// PERMISSION_DENIED "STS <Code>: <Message>" (STS's own words, no secrets).
// Anything else that is not usable credentials is INVALID_ARGUMENT naming
// the field that is missing or mistyped. Pure and total: never throws or
// asserts on any input. Fuzzed by tests/fuzz/credentials_json_fuzz.cc.
absl::StatusOr<AwsCredentials> ParseStsCredentialsJson(absl::string_view json);

}  // namespace dynamo_batcher
