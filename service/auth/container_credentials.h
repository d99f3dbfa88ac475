#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"
#include "service/auth/refreshing_credentials.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {

// ECS task role / EKS Pod Identity credentials endpoint.
struct ContainerCredentialsConfig {
  std::string url;
  std::string authorization_token;       // AWS_CONTAINER_AUTHORIZATION_TOKEN
  std::string authorization_token_file;  // wins over the token; re-read each refresh
  absl::Duration timeout = absl::Seconds(2);
};

// A host name's addresses (IPv4 and IPv6 text); an IP literal gives itself.
using HostResolver =
    std::function<absl::StatusOr<std::vector<std::string>>(const std::string& host)>;

// getaddrinfo.
absl::StatusOr<std::vector<std::string>> ResolveHostAddresses(const std::string& host);

// OK when plain http may carry the authorization token to `host` (as in a
// URL: IPv6 in brackets): the ECS/EKS agent addresses 169.254.170.2,
// 169.254.170.23 and fd00:ec2::23, or a host whose every address is
// loopback (127.0.0.0/8, ::1). A name that does not resolve is refused.
// `resolve` defaults to ResolveHostAddresses.
absl::Status CheckPlainHttpCredentialsHost(const std::string& host,
                                           const HostResolver& resolve = nullptr);

// From AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2 + it) or
// AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; plain http only where
// CheckPlainHttpCredentialsHost allows, as the AWS SDKs require; no user
// info), plus the authorization token variables. nullopt when neither URI is
// set; INVALID_ARGUMENT for a FULL_URI the SDKs would refuse (a start-up
// error: the chain never skips it).
absl::StatusOr<std::optional<ContainerCredentialsConfig>> ContainerConfigFromEnvironment(
    const GetenvFunction& getenv_fn, const HostResolver& resolve = nullptr);

// One GET (one retry on 5xx or transport error) and ParseCredentialsJson.
absl::StatusOr<AwsCredentials> FetchContainerCredentials(const ContainerCredentialsConfig& config,
                                                         HttpTransport& transport);

std::unique_ptr<CredentialsProvider> MakeContainerCredentialsProvider(
    ContainerCredentialsConfig config, HttpTransport* transport, RefreshOptions options);

}  // namespace dynamo_batcher
