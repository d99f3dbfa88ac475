#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"
#include "service/auth/refreshing_credentials.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {

// EC2 instance metadata service, version 2 only (session token first).
struct ImdsConfig {
  std::string endpoint = "http://169.254.169.254";
  // Per request; short so that start-up off EC2 is not stalled.
  absl::Duration timeout = absl::Seconds(1);
  int token_ttl_seconds = 21600;
};

// nullopt when AWS_EC2_METADATA_DISABLED=true. Endpoint from
// AWS_EC2_METADATA_SERVICE_ENDPOINT, or http://[fd00:ec2::254] when
// AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6.
std::optional<ImdsConfig> ImdsConfigFromEnvironment(const GetenvFunction& getenv_fn);

// PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds), then
// GET /latest/meta-data/iam/security-credentials/ for the role name and
// GET .../<role> for the JSON, both with X-aws-ec2-metadata-token.
absl::StatusOr<AwsCredentials> FetchImdsCredentials(const ImdsConfig& config,
                                                    HttpTransport& transport);

std::unique_ptr<CredentialsProvider> MakeImdsCredentialsProvider(ImdsConfig config,
                                                                 HttpTransport* transport,
                                                                 RefreshOptions options);

}  // namespace dynamo_batcher
