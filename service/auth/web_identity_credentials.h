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

// What STS AssumeRoleWithWebIdentity needs (EKS IRSA and similar).
struct WebIdentityConfig {
  std::string role_arn;
  std::string token_file;    // re-read at every refresh (kubelet rotates it)
  std::string session_name;  // empty: "dynamo-batcher-<unix seconds>"
  std::string sts_endpoint;  // e.g. "https://sts.us-east-1.amazonaws.com"
  absl::Duration timeout = absl::Seconds(5);
};

// https://sts.<region>.amazonaws.com (".com.cn" for cn-* regions), or the
// AWS_ENDPOINT_URL_STS override.
std::string StsEndpoint(const std::string& region, const GetenvFunction& getenv_fn);

// From AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (+ AWS_ROLE_SESSION_NAME);
// nullopt when either of the first two is unset.
std::optional<WebIdentityConfig> WebIdentityConfigFromEnvironment(const GetenvFunction& getenv_fn,
                                                                  const std::string& region);

// One AssumeRoleWithWebIdentity call: reads the token file, POSTs the
// (unsigned) form to STS asking for JSON, parses the JSON answer. One retry on 5xx or a
// transport error. Errors name the role and STS's error code, never the token.
absl::StatusOr<AwsCredentials> FetchWebIdentityCredentials(const WebIdentityConfig& config,
                                                           HttpTransport& transport,
                                                           absl::Time now);

// Refreshing provider around FetchWebIdentityCredentials. `transport` must
// outlive it.
std::unique_ptr<CredentialsProvider> MakeWebIdentityCredentialsProvider(
    WebIdentityConfig config, HttpTransport* transport, RefreshOptions options,
    std::string name = "web_identity");

}  // namespace dynamo_batcher
