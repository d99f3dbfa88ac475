#include "service/auth/env_credentials.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dynamo_batcher {
namespace {

class EnvironmentCredentialsProvider : public CredentialsProvider {
 public:
  explicit EnvironmentCredentialsProvider(std::function<const char*(const char*)> getenv_fn)
      : getenv_(std::move(getenv_fn)) {}

  absl::StatusOr<AwsCredentials> GetCredentials() override {
    const char* id = NonEmptyEnv("AWS_ACCESS_KEY_ID");
    if (id == nullptr) {
      return absl::FailedPreconditionError("environment credentials: AWS_ACCESS_KEY_ID is not set");
    }
    const char* secret = NonEmptyEnv("AWS_SECRET_ACCESS_KEY");
    if (secret == nullptr) {
      return absl::FailedPreconditionError(
          "environment credentials: AWS_SECRET_ACCESS_KEY is not set");
    }
    AwsCredentials creds;
    creds.access_key_id = id;
    creds.secret_access_key = secret;
    if (const char* token = NonEmptyEnv("AWS_SESSION_TOKEN")) {
      creds.session_token = token;
    }
    return creds;
  }
  std::string Name() const override { return "environment"; }

 private:
  const char* NonEmptyEnv(const char* name) const {
    const char* v = getenv_(name);
    return (v != nullptr && *v != '\0') ? v : nullptr;
  }

  const std::function<const char*(const char*)> getenv_;
};

}  // namespace

std::unique_ptr<CredentialsProvider> MakeEnvironmentCredentialsProvider() {
  return std::make_unique<EnvironmentCredentialsProvider>(
      [](const char* name) -> const char* { return std::getenv(name); });
}

std::unique_ptr<CredentialsProvider> MakeEnvironmentCredentialsProvider(
    std::function<const char*(const char*)> getenv_fn) {
  if (!getenv_fn) return MakeEnvironmentCredentialsProvider();
  return std::make_unique<EnvironmentCredentialsProvider>(std::move(getenv_fn));
}

}  // namespace dynamo_batcher
