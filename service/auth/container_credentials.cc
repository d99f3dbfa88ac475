#include "service/auth/container_credentials.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/auth/credentials_json.h"

namespace dynamo_batcher {
namespace {

using auth_internal::Env;

constexpr char kEcsAgent[] = "http://169.254.170.2";

// Host part of scheme://[user@]host[:port]/..., brackets kept for IPv6.
std::string HostOf(absl::string_view url) {
  const size_t start = url.find("://");
  if (start == absl::string_view::npos) return "";
  absl::string_view rest = url.substr(start + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  const size_t at = rest.rfind('@');
  if (at != absl::string_view::npos) rest = rest.substr(at + 1);
  if (absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    return std::string(close == absl::string_view::npos ? rest : rest.substr(0, close + 1));
  }
  return std::string(rest.substr(0, rest.find(':')));
}

bool AllowedPlainHttpHost(const std::string& host) {
  const std::string h = absl::AsciiStrToLower(host);
  return absl::StartsWith(h, "127.") || h == "localhost" || h == "[::1]" ||
         h == "169.254.170.2" || h == "169.254.170.23" || h == "[fd00:ec2::23]";
}

}  // namespace

absl::StatusOr<std::optional<ContainerCredentialsConfig>> ContainerConfigFromEnvironment(
    const GetenvFunction& getenv_fn) {
  ContainerCredentialsConfig c;
  const std::string relative = Env(getenv_fn, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = Env(getenv_fn, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!relative.empty()) {
    c.url = absl::StrCat(kEcsAgent, absl::StartsWith(relative, "/") ? "" : "/", relative);
  } else if (!full.empty()) {
    const std::string lower = absl::AsciiStrToLower(full);
    if (absl::StartsWith(lower, "http://")) {
      if (!AllowedPlainHttpHost(HostOf(full))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is allowed only to loopback or the "
            "ECS/EKS agent addresses (host ", HostOf(full), ")"));
      }
    } else if (!absl::StartsWith(lower, "https://")) {
      return absl::InvalidArgumentError("AWS_CONTAINER_CREDENTIALS_FULL_URI: must be http(s)://");
    }
    c.url = full;
  } else {
    return std::optional<ContainerCredentialsConfig>();
  }
  c.authorization_token = Env(getenv_fn, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
  c.authorization_token_file = Env(getenv_fn, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  return std::optional<ContainerCredentialsConfig>(std::move(c));
}

absl::StatusOr<AwsCredentials> FetchContainerCredentials(const ContainerCredentialsConfig& config,
                                                         HttpTransport& transport) {
  std::string token = config.authorization_token;
  if (!config.authorization_token_file.empty()) {
    absl::StatusOr<std::string> t = auth_internal::ReadFileToString(config.authorization_token_file);
    if (!t.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("container authorization token file: ", t.status().message()));
    }
    token = std::string(absl::StripAsciiWhitespace(*t));
  }
  if (absl::StrContains(token, "\r") || absl::StrContains(token, "\n")) {
    return absl::InvalidArgumentError("container authorization token contains a line break");
  }
  HttpRequest req;
  req.method = "GET";
  req.url = config.url;
  req.timeout = config.timeout;
  req.headers = {{"Accept", "application/json"}};
  if (!token.empty()) req.headers.emplace_back("Authorization", token);
  HttpResponse resp;
  for (int attempt = 0; attempt < 2; ++attempt) {
    resp = auth_internal::SendAndWait(transport, req);
    if (resp.transport_error.empty() && resp.status < 500) break;
  }
  if (!resp.transport_error.empty() || resp.status != 200) {
    const absl::StatusCode code = (resp.status == 401 || resp.status == 403)
                                      ? absl::StatusCode::kPermissionDenied
                                      : absl::StatusCode::kUnavailable;
    return absl::Status(code, absl::StrCat("container credentials endpoint: ",
                                           auth_internal::DescribeHttpFailure(resp)));
  }
  absl::StatusOr<AwsCredentials> creds = ParseCredentialsJson(resp.body);
  if (!creds.ok()) {
    return absl::Status(creds.status().code(),
                        absl::StrCat("container credentials endpoint: ", creds.status().message()));
  }
  return creds;
}

std::unique_ptr<CredentialsProvider> MakeContainerCredentialsProvider(
    ContainerCredentialsConfig config, HttpTransport* transport, RefreshOptions options) {
  auto fetch = [config = std::move(config), transport]() {
    return FetchContainerCredentials(config, *transport);
  };
  return std::make_unique<RefreshingCredentialsProvider>("container", std::move(fetch),
                                                         std::move(options));
}

}  // namespace dynamo_batcher
