#pragma once

#include <functional>
#include <memory>

#include "service/auth/credentials.h"

namespace dynamo_batcher {

// Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the optional
// AWS_SESSION_TOKEN, read at each GetCredentials call so a changed
// environment is picked up. A missing variable is FAILED_PRECONDITION naming
// it; values are never logged or put into messages.
//
// Thread-safety: safe from any thread as long as nobody calls setenv
// concurrently (POSIX getenv's own limitation).
//
// Usage:
//   auto creds = MakeEnvironmentCredentialsProvider();
//   absl::StatusOr<AwsCredentials> c = creds->GetCredentials();
std::unique_ptr<CredentialsProvider> MakeEnvironmentCredentialsProvider();
// Same, reading variables through `getenv_fn` (tests, the chain).
std::unique_ptr<CredentialsProvider> MakeEnvironmentCredentialsProvider(
    std::function<const char*(const char*)> getenv_fn);

}  // namespace dynamo_batcher
