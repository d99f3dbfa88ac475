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

}  // namespace dynamo_batcher
