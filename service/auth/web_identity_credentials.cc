#include "service/auth/web_identity_credentials.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "service/auth/credentials_json.h"

namespace dynamo_batcher {

using auth_internal::Env;

std::string StsEndpoint(const std::string& region, const GetenvFunction& getenv_fn) {
  std::string override_url = Env(getenv_fn, "AWS_ENDPOINT_URL_STS");
  if (!override_url.empty()) {
    while (absl::EndsWith(override_url, "/")) override_url.pop_back();
    return override_url;
  }
  const std::string r = region.empty() ? "us-east-1" : region;
  return absl::StrCat("https://sts.", r, ".amazonaws.com", absl::StartsWith(r, "cn-") ? ".cn" : "");
}

std::optional<WebIdentityConfig> WebIdentityConfigFromEnvironment(const GetenvFunction& getenv_fn,
                                                                  const std::string& region) {
  WebIdentityConfig c;
  c.role_arn = Env(getenv_fn, "AWS_ROLE_ARN");
  c.token_file = Env(getenv_fn, "AWS_WEB_IDENTITY_TOKEN_FILE");
  if (c.role_arn.empty() || c.token_file.empty()) return std::nullopt;
  c.session_name = Env(getenv_fn, "AWS_ROLE_SESSION_NAME");
  c.sts_endpoint = StsEndpoint(region, getenv_fn);
  return c;
}

absl::StatusOr<AwsCredentials> FetchWebIdentityCredentials(const WebIdentityConfig& config,
                                                           HttpTransport& transport,
                                                           absl::Time now) {
  absl::StatusOr<std::string> token = auth_internal::ReadFileToString(config.token_file);
  if (!token.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("web identity token file: ", token.status().message()));
  }
  const absl::string_view jwt = absl::StripAsciiWhitespace(*token);
  if (jwt.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("web identity token file ", config.token_file, " is empty"));
  }
  const std::string session = config.session_name.empty()
                                  ? absl::StrCat("dynamo-batcher-", absl::ToUnixSeconds(now))
                                  : config.session_name;
  HttpRequest req;
  req.method = "POST";
  req.url = absl::StrCat(config.sts_endpoint, "/");
  req.timeout = config.timeout;
  req.max_response_bytes = auth_internal::kMaxCredentialsResponseBytes;
  // STS answers JSON when asked (as Envoy asks), so RapidJSON reads it.
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                 {"Accept", "application/json"}};
  req.body = absl::StrCat("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=",
                          auth_internal::FormEncode(config.role_arn),
                          "&RoleSessionName=", auth_internal::FormEncode(session),
                          "&WebIdentityToken=", auth_internal::FormEncode(jwt));
  HttpResponse resp;
  for (int attempt = 0; attempt < 2; ++attempt) {
    resp = transport.SendSync(req);
    const bool transient = !resp.transport_error.empty() || resp.status >= 500;
    if (!transient) break;
  }
  const std::string where = absl::StrCat("STS AssumeRoleWithWebIdentity (", config.role_arn, ")");
  if (!resp.transport_error.empty()) {
    return absl::UnavailableError(absl::StrCat(where, ": transport: ", resp.transport_error));
  }
  absl::StatusOr<AwsCredentials> creds = ParseStsCredentialsJson(resp.body);
  if (resp.status == 200 && creds.ok()) return creds;
  if (creds.status().code() == absl::StatusCode::kPermissionDenied) {
    // STS's own error document: access denied, invalid token, throttling.
    // (Only that yields PERMISSION_DENIED; an unreadable answer is
    // INVALID_ARGUMENT.)
    const absl::StatusCode code = resp.status >= 500 || resp.status == 429 || resp.status == 503
                                      ? absl::StatusCode::kUnavailable
                                      : absl::StatusCode::kPermissionDenied;
    return absl::Status(
        code, absl::StrCat(where, ": HTTP ", resp.status, ": ", creds.status().message()));
  }
  if (resp.status != 200) {
    return absl::UnavailableError(
        absl::StrCat(where, ": ", auth_internal::DescribeHttpFailure(resp)));
  }
  return absl::Status(creds.status().code(), absl::StrCat(where, ": ", creds.status().message()));
}

std::unique_ptr<CredentialsProvider> MakeWebIdentityCredentialsProvider(WebIdentityConfig config,
                                                                        HttpTransport* transport,
                                                                        RefreshOptions options,
                                                                        std::string name) {
  WallClockFunction now = options.wall_now ? options.wall_now : [] { return absl::Now(); };
  auto fetch = [config = std::move(config), transport, now]() {
    return FetchWebIdentityCredentials(config, *transport, now());
  };
  return std::make_unique<RefreshingCredentialsProvider>(std::move(name), std::move(fetch),
                                                         std::move(options));
}

}  // namespace dynamo_batcher
