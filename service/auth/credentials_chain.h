#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"
#include "service/auth/refreshing_credentials.h"
#include "service/dynamodb/http_transport.h"

namespace dynamo_batcher {

struct CredentialsChainOptions {
  // Keys from the config file; used first when access_key_id is set.
  AwsCredentials static_credentials;
  // For the regional STS endpoint.
  std::string region = "us-east-1";
  // For STS, the container endpoint and IMDS. Required unless only static
  // or environment credentials are to be found. Not the DynamoDB transport's
  // I/O thread's caller: GetCredentials may block on it.
  HttpTransport* transport = nullptr;
  // Optional: kept alive as long as the chain (for callers like main that
  // make a transport just for credentials). Used when `transport` is null.
  std::shared_ptr<HttpTransport> owned_transport;
  GetenvFunction getenv;       // default std::getenv
  WallClockFunction wall_now;  // default absl::Now
  // Every failed refresh of the chosen provider.
  RefreshFailureCallback on_refresh_failure;
  // Per-request timeout towards IMDS (never stalls start-up off EC2).
  absl::Duration imds_timeout = absl::Seconds(1);
  // Tests: run background refreshes here instead of a thread.
  std::function<void(std::function<void()>)> run_async;
};

// The AWS SDKs' default chain, in the order of the product contract:
//   1. "config"        static keys from the config file
//   2. "environment"   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN)
//   3. "web_identity"  AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE -> STS (EKS IRSA)
//   4. "container"     AWS_CONTAINER_CREDENTIALS_{RELATIVE,FULL}_URI (ECS, EKS Pod Identity)
//   5. "profile:<p>"   shared credentials/config files, AWS_PROFILE
//   6. "imds"          EC2 instance metadata (IMDSv2), unless AWS_EC2_METADATA_DISABLED=true
// Each configured provider is asked once, in order; the first that yields
// credentials is returned (already holding them, refreshing them from then
// on), and its Name() says which it is. A provider whose variables are unset
// is not asked. When none works, FAILED_PRECONDITION lists every provider
// tried and why it failed (no secrets).
//
// Usage (main):
//   CredentialsChainOptions o;
//   o.static_credentials = {config.dynamodb.access_key_id, ...};
//   o.region = config.dynamodb.region;
//   o.owned_transport = MakeCurlTransport({});
//   auto creds = MakeDefaultCredentialsChain(o);  // (*creds)->Name() == "web_identity"
absl::StatusOr<std::unique_ptr<CredentialsProvider>> MakeDefaultCredentialsChain(
    const CredentialsChainOptions& options);

}  // namespace dynamo_batcher
