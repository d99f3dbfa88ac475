#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"
#include "service/auth/refreshing_credentials.h"
#include "service/dynamodb/http_transport.h"

namespace dynamo_batcher {

// ECS task role / EKS Pod Identity credentials endpoint.
struct ContainerCredentialsConfig {
  std::string url;
  std::string authorization_token;       // AWS_CONTAINER_AUTHORIZATION_TOKEN
  std::string authorization_token_file;  // wins over the token; re-read each refresh
  absl::Duration timeout = absl::Seconds(2);
};

// From AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2 + it) or
// AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; plain http only to
// loopback or the ECS/EKS link-local agents, as the AWS SDKs require), plus
// the authorization token variables. nullopt when neither URI is set;
// INVALID_ARGUMENT for a FULL_URI host the SDKs would refuse.
absl::StatusOr<std::optional<ContainerCredentialsConfig>> ContainerConfigFromEnvironment(
    const GetenvFunction& getenv_fn);

// One GET (one retry on 5xx or transport error) and ParseCredentialsJson.
absl::StatusOr<AwsCredentials> FetchContainerCredentials(const ContainerCredentialsConfig& config,
                                                         HttpTransport& transport);

std::unique_ptr<CredentialsProvider> MakeContainerCredentialsProvider(
    ContainerCredentialsConfig config, HttpTransport* transport, RefreshOptions options);

}  // namespace dynamo_batcher
