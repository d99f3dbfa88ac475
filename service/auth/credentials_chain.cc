#include "service/auth/credentials_chain.h"

#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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

  std::vector<std::string> tried;
  auto note = [&](const std::string& name, const absl::Status& s) {
    tried.push_back(absl::StrCat(name, ": ", s.message()));
    Log(LogLevel::kDebug, "credentials provider skipped",
        {{"provider", name}, {"error", std::string(s.message())}});
  };
  // Asks `p` once; returns it (wrapped to own the transport) when it works.
  auto probe = [&](std::unique_ptr<CredentialsProvider> p)
      -> std::optional<std::unique_ptr<CredentialsProvider>> {
    absl::StatusOr<AwsCredentials> c = p->GetCredentials();
    if (!c.ok()) {
      note(p->Name(), c.status());
      return std::nullopt;
    }
    if (keep_alive) {
      return std::unique_ptr<CredentialsProvider>(
          std::make_unique<OwningProvider>(keep_alive, std::move(p)));
    }
    return p;
  };
  const absl::Status no_transport = absl::FailedPreconditionError("no HTTP transport given");

  // 2. Environment: asked only when a key variable is set.
  if (!auth_internal::Env(getenv_fn, "AWS_ACCESS_KEY_ID").empty() ||
      !auth_internal::Env(getenv_fn, "AWS_SECRET_ACCESS_KEY").empty()) {
    if (auto p = probe(MakeEnvironmentCredentialsProvider(getenv_fn))) return std::move(*p);
  }
  // 3. Web identity.
  if (std::optional<WebIdentityConfig> wi =
          WebIdentityConfigFromEnvironment(getenv_fn, options.region)) {
    if (transport == nullptr) {
      note("web_identity", no_transport);
    } else if (auto p = probe(MakeWebIdentityCredentialsProvider(*std::move(wi), transport, refresh))) {
      return std::move(*p);
    }
  }
  // 4. Container.
  absl::StatusOr<std::optional<ContainerCredentialsConfig>> container =
      ContainerConfigFromEnvironment(getenv_fn);
  if (!container.ok()) {
    note("container", container.status());
  } else if (container->has_value()) {
    if (transport == nullptr) {
      note("container", no_transport);
    } else if (auto p = probe(MakeContainerCredentialsProvider(**std::move(container), transport,
                                                                refresh))) {
      return std::move(*p);
    }
  }
  // 5. Shared files.
  const ProfileLocation where = ProfileLocationFromEnvironment(getenv_fn);
  absl::StatusOr<std::unique_ptr<CredentialsProvider>> profile =
      MakeProfileCredentialsProvider(where, options.region, getenv_fn, transport, refresh);
  if (!profile.ok()) {
    note(absl::StrCat("profile:", where.profile), profile.status());
  } else if (auto p = probe(*std::move(profile))) {
    return std::move(*p);
  }
  // 6. IMDS.
  if (std::optional<ImdsConfig> imds = ImdsConfigFromEnvironment(getenv_fn)) {
    imds->timeout = options.imds_timeout;
    if (transport == nullptr) {
      note("imds", no_transport);
    } else if (auto p = probe(MakeImdsCredentialsProvider(*std::move(imds), transport, refresh))) {
      return std::move(*p);
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
