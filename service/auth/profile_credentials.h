#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"
#include "service/auth/refreshing_credentials.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {

// section -> key -> value, as the AWS shared files are read: '#' and ';'
// start comment lines, keys are lower-cased, indented lines under a key
// (nested settings such as "s3 =\n  max_concurrent_requests = 2") are
// skipped, a later duplicate key wins. Pure; malformed lines are an error
// naming the line number.
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
absl::StatusOr<IniFile> ParseIni(absl::string_view text);

// Where the shared files and the profile come from.
struct ProfileLocation {
  std::string profile = "default";  // AWS_PROFILE, else AWS_DEFAULT_PROFILE
  std::string credentials_file;     // AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials
  std::string config_file;          // AWS_CONFIG_FILE, else ~/.aws/config
};
ProfileLocation ProfileLocationFromEnvironment(const GetenvFunction& getenv_fn);

// The named profile from the credentials file (section "[name]") merged over
// the config file ("[profile name]", or "[default]"). Supported:
//   aws_access_key_id + aws_secret_access_key (+ aws_session_token): static;
//   role_arn + web_identity_token_file (+ role_session_name): STS
//     AssumeRoleWithWebIdentity, refreshed.
// NOT_FOUND when neither file has the profile, or the profile holds no
// credentials settings (only a region, say); FAILED_PRECONDITION for
// credentials settings the sidecar cannot use (names the keys): the chain
// stops there rather than use another identity.
// The provider's Name() is "profile:<name>". `transport` must outlive it.
absl::StatusOr<std::unique_ptr<CredentialsProvider>> MakeProfileCredentialsProvider(
    const ProfileLocation& location, const std::string& region, const GetenvFunction& getenv_fn,
    HttpTransport* transport, RefreshOptions options);

}  // namespace dynamo_batcher
