#include "service/auth/container_credentials.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <utility>
#include <vector>

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

bool IsLoopbackAddress(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return v6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

// The ECS agent (169.254.170.2) and the EKS Pod Identity agent
// (169.254.170.23, fd00:ec2::23), compared as addresses, not text.
bool IsContainerAgentLiteral(const std::string& host) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    in_addr ecs, eks;
    inet_pton(AF_INET, "169.254.170.2", &ecs);
    inet_pton(AF_INET, "169.254.170.23", &eks);
    return a4.s_addr == ecs.s_addr || a4.s_addr == eks.s_addr;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    in6_addr eks6;
    inet_pton(AF_INET6, "fd00:ec2::23", &eks6);
    return memcmp(&a6, &eks6, sizeof(a6)) == 0;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveHostAddresses(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return absl::NotFoundError(gai_strerror(rc));
  std::vector<std::string> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf,
                sizeof(buf));
    } else {
      continue;
    }
    out.emplace_back(buf);
  }
  freeaddrinfo(res);
  return out;
}

absl::Status CheckPlainHttpCredentialsHost(const std::string& bracketed_host,
                                           const HostResolver& resolve) {
  std::string host = absl::AsciiStrToLower(bracketed_host);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string rule =
      "plain http is allowed only to loopback (127.0.0.0/8, ::1, or a name that resolves only to "
      "them) or the ECS/EKS agent addresses 169.254.170.2, 169.254.170.23, fd00:ec2::23; use "
      "https otherwise";
  if (host.empty()) {
    return absl::InvalidArgumentError("AWS_CONTAINER_CREDENTIALS_FULL_URI: has no host");
  }
  if (IsContainerAgentLiteral(host)) return absl::OkStatus();
  // An IP literal is judged as is; a name by every address it resolves to,
  // so "127.example.com" is not loopback just because of its spelling.
  absl::StatusOr<std::vector<std::string>> addresses =
      resolve ? resolve(host) : ResolveHostAddresses(host);
  if (!addresses.ok() || addresses->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI: host ", bracketed_host, " does not resolve (",
        addresses.ok() ? "no addresses" : addresses.status().message(), "); ", rule));
  }
  for (const std::string& a : *addresses) {
    sockaddr_storage ss{};
    auto* sa = reinterpret_cast<sockaddr*>(&ss);
    if (inet_pton(AF_INET, a.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
      sa->sa_family = AF_INET;
    } else if (inet_pton(AF_INET6, a.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) ==
               1) {
      sa->sa_family = AF_INET6;
    } else {
      sa->sa_family = AF_UNSPEC;
    }
    if (!IsLoopbackAddress(sa)) {
      return absl::InvalidArgumentError(absl::StrCat("AWS_CONTAINER_CREDENTIALS_FULL_URI: host ",
                                                     bracketed_host, " resolves to ", a,
                                                     ", which is not loopback; ", rule));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ContainerCredentialsConfig>> ContainerConfigFromEnvironment(
    const GetenvFunction& getenv_fn, const HostResolver& resolve) {
  ContainerCredentialsConfig c;
  const std::string relative = Env(getenv_fn, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = Env(getenv_fn, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!relative.empty()) {
    c.url = absl::StrCat(kEcsAgent, absl::StartsWith(relative, "/") ? "" : "/", relative);
  } else if (!full.empty()) {
    const std::string lower = absl::AsciiStrToLower(full);
    const size_t authority = lower.find("://");
    if (authority != std::string::npos &&
        lower.substr(authority + 3, lower.find_first_of("/?#", authority + 3) - authority - 3)
                .find('@') != std::string::npos) {
      return absl::InvalidArgumentError(
          "AWS_CONTAINER_CREDENTIALS_FULL_URI: must not contain user info (user@host)");
    }
    if (absl::StartsWith(lower, "http://")) {
      if (absl::Status s = CheckPlainHttpCredentialsHost(HostOf(full), resolve); !s.ok()) {
        return s;
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
    absl::StatusOr<std::string> t =
        auth_internal::ReadFileToString(config.authorization_token_file);
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
  req.max_response_bytes = auth_internal::kMaxCredentialsResponseBytes;
  req.headers = {{"Accept", "application/json"}};
  if (!token.empty()) req.headers.emplace_back("Authorization", token);
  HttpResponse resp;
  for (int attempt = 0; attempt < 2; ++attempt) {
    resp = transport.SendSync(req);
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
