#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/container_credentials.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"
#include "service/auth/refreshing_credentials.h"
#include "service/http/http_transport.h"

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
  // The chosen provider's GetCredentials never waits for I/O (see
  // RefreshOptions::never_block): set for callers on the engine thread.
  bool never_block = false;
  // Tests: name resolution for the container-credentials host check.
  HostResolver resolve_host;
};

// The AWS SDKs' default chain, in the order of the product contract:
//   1. "config"        static keys from the config file
//   2. "environment"   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN)
//   3. "web_identity"  AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE -> STS (EKS IRSA)
//   4. "container"     AWS_CONTAINER_CREDENTIALS_{RELATIVE,FULL}_URI (ECS, EKS Pod Identity)
//   5. "profile:<p>"   shared credentials/config files, AWS_PROFILE
//   6. "imds"          EC2 instance metadata (IMDSv2), unless AWS_EC2_METADATA_DISABLED=true
// The first provider whose configuration is present is the one used, for
// the life of the process: the identity never silently downgrades. If its
// first fetch fails (STS down, agent not up yet) it is still returned, and
// it retries with backoff (a warning is logged); callers see UNAVAILABLE
// meanwhile. A configuration that is present but unusable (one key variable
// without the other, an invalid container URI, a named profile that is
// missing or unusable) is FAILED_PRECONDITION, never skipped. IMDS, the last
// resort, is probed once; when nothing is configured and IMDS does not
// answer, FAILED_PRECONDITION lists what was looked for (no secrets).
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
