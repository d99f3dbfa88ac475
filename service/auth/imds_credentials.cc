#include "service/auth/imds_credentials.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/auth/credentials_json.h"

namespace dynamo_batcher {
namespace {

using auth_internal::Env;

constexpr char kTokenPath[] = "/latest/api/token";
constexpr char kCredentialsPath[] = "/latest/meta-data/iam/security-credentials/";

absl::Status Failure(absl::string_view step, const HttpResponse& resp) {
  const absl::StatusCode code =
      resp.status == 404 ? absl::StatusCode::kNotFound : absl::StatusCode::kUnavailable;
  return absl::Status(code,
                      absl::StrCat("IMDS ", step, ": ", auth_internal::DescribeHttpFailure(resp)));
}

}  // namespace

std::optional<ImdsConfig> ImdsConfigFromEnvironment(const GetenvFunction& getenv_fn) {
  if (auth_internal::IsTrue(Env(getenv_fn, "AWS_EC2_METADATA_DISABLED"))) return std::nullopt;
  ImdsConfig c;
  std::string endpoint = Env(getenv_fn, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (!endpoint.empty()) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    c.endpoint = endpoint;
  } else if (absl::AsciiStrToLower(Env(getenv_fn, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")) ==
             "ipv6") {
    c.endpoint = "http://[fd00:ec2::254]";
  }
  return c;
}

absl::StatusOr<AwsCredentials> FetchImdsCredentials(const ImdsConfig& config,
                                                    HttpTransport& transport) {
  HttpRequest put;
  put.method = "PUT";
  put.url = absl::StrCat(config.endpoint, kTokenPath);
  put.timeout = config.timeout;
  put.max_response_bytes = auth_internal::kMaxCredentialsResponseBytes;
  put.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", absl::StrCat(config.token_ttl_seconds)},
                 {"Content-Length", "0"}};
  HttpResponse token_resp = transport.SendSync(put);
  if (!token_resp.transport_error.empty() || token_resp.status != 200) {
    return Failure("token (PUT /latest/api/token)", token_resp);
  }
  const std::string token(absl::StripAsciiWhitespace(token_resp.body));
  if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
    return absl::UnavailableError("IMDS token: empty or malformed");
  }

  HttpRequest get;
  get.method = "GET";
  get.timeout = config.timeout;
  get.max_response_bytes = auth_internal::kMaxCredentialsResponseBytes;
  get.headers = {{"X-aws-ec2-metadata-token", token}};
  get.url = absl::StrCat(config.endpoint, kCredentialsPath);
  HttpResponse role_resp = transport.SendSync(get);
  if (!role_resp.transport_error.empty() || role_resp.status != 200) {
    // 404 here: the instance has no IAM role attached.
    return Failure("role name", role_resp);
  }
  std::string role;
  for (absl::string_view line : absl::StrSplit(role_resp.body, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) {
      role = std::string(line);
      break;
    }
  }
  if (role.empty()) return absl::NotFoundError("IMDS: no IAM role attached to the instance");
  if (role.find_first_of("/?#% ") != std::string::npos) {
    return absl::UnavailableError("IMDS: malformed role name");
  }
  get.url = absl::StrCat(config.endpoint, kCredentialsPath, role);
  HttpResponse creds_resp = transport.SendSync(get);
  if (!creds_resp.transport_error.empty() || creds_resp.status != 200) {
    return Failure(absl::StrCat("credentials for role ", role), creds_resp);
  }
  absl::StatusOr<AwsCredentials> creds = ParseCredentialsJson(creds_resp.body);
  if (!creds.ok()) {
    return absl::Status(creds.status().code(),
                        absl::StrCat("IMDS role ", role, ": ", creds.status().message()));
  }
  return creds;
}

std::unique_ptr<CredentialsProvider> MakeImdsCredentialsProvider(ImdsConfig config,
                                                                 HttpTransport* transport,
                                                                 RefreshOptions options) {
  auto fetch = [config = std::move(config), transport]() {
    return FetchImdsCredentials(config, *transport);
  };
  return std::make_unique<RefreshingCredentialsProvider>("imds", std::move(fetch),
                                                         std::move(options));
}

}  // namespace dynamo_batcher
