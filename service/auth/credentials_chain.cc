#include "service/auth/credentials_chain.h"

#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "service/auth/container_credentials.h"
#include "service/auth/env_credentials.h"
#include "service/auth/imds_credentials.h"
#include "service/auth/profile_credentials.h"
#include "service/auth/web_identity_credentials.h"
#include "service/common/log.h"

namespace dynamo_batcher {
namespace {

// Keeps the credentials transport alive behind the chosen provider.
class OwningProvider : public CredentialsProvider {
 public:
  OwningProvider(std::shared_ptr<HttpTransport> transport,
                 std::unique_ptr<CredentialsProvider> inner)
      : transport_(std::move(transport)), inner_(std::move(inner)) {}
  absl::StatusOr<AwsCredentials> GetCredentials() override { return inner_->GetCredentials(); }
  absl::StatusOr<AwsCredentials> GetCredentialsBlocking() override {
    return inner_->GetCredentialsBlocking();
  }
  std::string Name() const override { return inner_->Name(); }
  uint64_t RefreshFailures() const override { return inner_->RefreshFailures(); }

 private:
  // Declared first: destroyed after `inner_`, whose refresh thread uses it.
  std::shared_ptr<HttpTransport> transport_;
  std::unique_ptr<CredentialsProvider> inner_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CredentialsProvider>> MakeDefaultCredentialsChain(
    const CredentialsChainOptions& options) {
  if (!options.static_credentials.access_key_id.empty()) {
    if (options.static_credentials.secret_access_key.empty()) {
      return absl::FailedPreconditionError(
          "config credentials: access_key_id is set but secret_access_key is empty");
    }
    return std::unique_ptr<CredentialsProvider>(
        std::make_unique<StaticCredentialsProvider>(options.static_credentials, "config"));
  }
  GetenvFunction getenv_fn = options.getenv;
  if (!getenv_fn) getenv_fn = [](const char* n) -> const char* { return std::getenv(n); };
  HttpTransport* transport =
      options.transport != nullptr ? options.transport : options.owned_transport.get();
  std::shared_ptr<HttpTransport> keep_alive =
      options.transport != nullptr ? nullptr : options.owned_transport;

  RefreshOptions refresh;
  refresh.wall_now = options.wall_now ? options.wall_now : [] { return absl::Now(); };
  refresh.on_failure = options.on_refresh_failure;
  refresh.run_async = options.run_async;
  refresh.never_block = options.never_block;

  auto wrap = [&](std::unique_ptr<CredentialsProvider> p) -> std::unique_ptr<CredentialsProvider> {
    if (keep_alive) return std::make_unique<OwningProvider>(keep_alive, std::move(p));
    return p;
  };
  // A configured provider is the one used: its first fetch is tried once
  // here; when it fails the provider is still returned (it retries with
  // backoff) rather than letting a weaker identity (the node's instance
  // role, a default profile) take over.
  auto commit =
      [&](std::unique_ptr<CredentialsProvider> p) -> std::unique_ptr<CredentialsProvider> {
    absl::StatusOr<AwsCredentials> c = p->GetCredentialsBlocking();
    if (!c.ok()) {
      Log(LogLevel::kWarn,
          "configured credentials provider has no credentials yet; retrying it with backoff "
          "(no fallback to another provider); writes wait and readiness stays NOT_SERVING",
          {{"provider", p->Name()}, {"error", std::string(c.status().message())}});
    }
    return wrap(std::move(p));
  };
  auto configured_error = [](const std::string& name, const absl::Status& s) {
    return absl::FailedPreconditionError(
        absl::StrCat("credentials provider ", name,
                     " is configured but unusable (not skipped, so that no "
                     "weaker identity is used instead): ",
                     s.message()));
  };
  const absl::Status no_transport = absl::FailedPreconditionError("no HTTP transport given");

  // 2. Environment: configured when a key variable is set; both must be.
  if (!auth_internal::Env(getenv_fn, "AWS_ACCESS_KEY_ID").empty() ||
      !auth_internal::Env(getenv_fn, "AWS_SECRET_ACCESS_KEY").empty()) {
    std::unique_ptr<CredentialsProvider> p = MakeEnvironmentCredentialsProvider(getenv_fn);
    absl::StatusOr<AwsCredentials> c = p->GetCredentials();
    if (!c.ok()) return configured_error("environment", c.status());
    return wrap(std::move(p));
  }
  // 3. Web identity.
  if (std::optional<WebIdentityConfig> wi =
          WebIdentityConfigFromEnvironment(getenv_fn, options.region)) {
    if (transport == nullptr) return configured_error("web_identity", no_transport);
    return commit(MakeWebIdentityCredentialsProvider(*std::move(wi), transport, refresh));
  }
  // 4. Container. An invalid URI is a start-up error, never skipped.
  absl::StatusOr<std::optional<ContainerCredentialsConfig>> container =
      ContainerConfigFromEnvironment(getenv_fn, options.resolve_host);
  if (!container.ok()) return configured_error("container", container.status());
  if (container->has_value()) {
    if (transport == nullptr) return configured_error("container", no_transport);
    return commit(MakeContainerCredentialsProvider(**std::move(container), transport, refresh));
  }
  // 5. Shared files: configured when the profile holds credentials
  // settings. A profile named explicitly (AWS_PROFILE / AWS_DEFAULT_PROFILE)
  // that exists in neither file is an error too.
  const ProfileLocation where = ProfileLocationFromEnvironment(getenv_fn);
  const std::string profile_name = absl::StrCat("profile:", where.profile);
  const bool profile_named = !auth_internal::Env(getenv_fn, "AWS_PROFILE").empty() ||
                             !auth_internal::Env(getenv_fn, "AWS_DEFAULT_PROFILE").empty();
  absl::StatusOr<std::unique_ptr<CredentialsProvider>> profile =
      MakeProfileCredentialsProvider(where, options.region, getenv_fn, transport, refresh);
  if (profile.ok()) return commit(*std::move(profile));
  const bool profile_missing = absl::StartsWith(profile.status().message(), "no profile");
  if (profile.status().code() != absl::StatusCode::kNotFound ||
      (profile_named && profile_missing)) {
    return configured_error(profile_name, profile.status());
  }
  std::vector<std::string> tried = {"environment: not set", "web_identity: not set",
                                    "container: not set",
                                    absl::StrCat(profile_name, ": ", profile.status().message())};
  // 6. IMDS: the last resort, so it is probed (off EC2 it cannot answer, and
  // start-up fails with the list of what was looked for).
  if (std::optional<ImdsConfig> imds = ImdsConfigFromEnvironment(getenv_fn)) {
    imds->timeout = options.imds_timeout;
    if (transport == nullptr) {
      tried.push_back(absl::StrCat("imds: ", no_transport.message()));
    } else {
      std::unique_ptr<CredentialsProvider> p =
          MakeImdsCredentialsProvider(*std::move(imds), transport, refresh);
      absl::StatusOr<AwsCredentials> c = p->GetCredentialsBlocking();
      if (c.ok()) return wrap(std::move(p));
      tried.push_back(absl::StrCat("imds: ", c.status().message()));
    }
  } else {
    tried.push_back("imds: disabled by AWS_EC2_METADATA_DISABLED");
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "no AWS credentials found (tried ", absl::StrJoin(tried, "; "),
      "). Set dynamodb.credentials in the config, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
      "IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), container credentials, a profile, "
      "or run on EC2 with an instance role"));
}

}  // namespace dynamo_batcher
