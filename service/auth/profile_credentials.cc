#include "service/auth/profile_credentials.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/auth/web_identity_credentials.h"

namespace dynamo_batcher {
namespace {

using auth_internal::Env;

// Reads one file; a missing file is an empty one.
absl::StatusOr<IniFile> LoadIni(const std::string& path) {
  if (path.empty()) return IniFile();
  absl::StatusOr<std::string> text = auth_internal::ReadFileToString(path);
  if (!text.ok()) return IniFile();
  absl::StatusOr<IniFile> ini = ParseIni(*text);
  if (!ini.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", ini.status().message()));
  }
  return ini;
}

std::string ExpandHome(const std::string& path, const GetenvFunction& getenv_fn) {
  if (absl::StartsWith(path, "~/")) return absl::StrCat(Env(getenv_fn, "HOME"), path.substr(1));
  return path;
}

}  // namespace

absl::StatusOr<IniFile> ParseIni(absl::string_view text) {
  IniFile out;
  std::string section;
  bool in_section = false;
  bool last_key_empty_value = false;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    const bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    const absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (indented && in_section && last_key_empty_value) continue;  // nested sub-setting
    if (line[0] == '[') {
      if (line.back() != ']') {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_no, ": unterminated section header"));
      }
      section = std::string(absl::StripAsciiWhitespace(line.substr(1, line.size() - 2)));
      in_section = true;
      last_key_empty_value = false;
      out[section];
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": expected key = value"));
    }
    if (!in_section) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": setting outside a section"));
    }
    const std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, eq)));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    // Inline comments need whitespace before them; secrets may contain '#'.
    for (const char* marker : {" #", "\t#", " ;", "\t;"}) {
      const size_t c = value.find(marker);
      if (c != absl::string_view::npos) value = absl::StripAsciiWhitespace(value.substr(0, c));
    }
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": empty key"));
    }
    last_key_empty_value = value.empty();
    out[section][key] = std::string(value);
  }
  return out;
}

ProfileLocation ProfileLocationFromEnvironment(const GetenvFunction& getenv_fn) {
  ProfileLocation l;
  std::string profile = Env(getenv_fn, "AWS_PROFILE");
  if (profile.empty()) profile = Env(getenv_fn, "AWS_DEFAULT_PROFILE");
  if (!profile.empty()) l.profile = profile;
  l.credentials_file = Env(getenv_fn, "AWS_SHARED_CREDENTIALS_FILE");
  if (l.credentials_file.empty()) l.credentials_file = "~/.aws/credentials";
  l.credentials_file = ExpandHome(l.credentials_file, getenv_fn);
  l.config_file = Env(getenv_fn, "AWS_CONFIG_FILE");
  if (l.config_file.empty()) l.config_file = "~/.aws/config";
  l.config_file = ExpandHome(l.config_file, getenv_fn);
  return l;
}

absl::StatusOr<std::unique_ptr<CredentialsProvider>> MakeProfileCredentialsProvider(
    const ProfileLocation& location, const std::string& region, const GetenvFunction& getenv_fn,
    HttpTransport* transport, RefreshOptions options) {
  absl::StatusOr<IniFile> creds_file = LoadIni(location.credentials_file);
  if (!creds_file.ok()) return creds_file.status();
  absl::StatusOr<IniFile> config_file = LoadIni(location.config_file);
  if (!config_file.ok()) return config_file.status();

  std::map<std::string, std::string> settings;
  bool found = false;
  const std::string config_section =
      location.profile == "default" ? "default" : absl::StrCat("profile ", location.profile);
  for (const std::string& name : {config_section, std::string("profile ") + location.profile}) {
    auto it = config_file->find(name);
    if (it != config_file->end()) {
      found = true;
      for (const auto& [k, v] : it->second) settings[k] = v;
      break;
    }
  }
  if (auto it = creds_file->find(location.profile); it != creds_file->end()) {
    found = true;  // the credentials file wins
    for (const auto& [k, v] : it->second) settings[k] = v;
  }
  const std::string name = absl::StrCat("profile:", location.profile);
  if (!found) {
    return absl::NotFoundError(absl::StrCat("no profile \"", location.profile, "\" in ",
                                            location.credentials_file, " or ",
                                            location.config_file));
  }
  auto get = [&](const char* key) {
    auto it = settings.find(key);
    return it == settings.end() ? std::string() : it->second;
  };
  const std::string key_id = get("aws_access_key_id");
  const std::string secret = get("aws_secret_access_key");
  const std::string role_arn = get("role_arn");
  if (!role_arn.empty()) {
    const std::string token_file = get("web_identity_token_file");
    if (token_file.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          name,
          ": role_arn is supported only with web_identity_token_file (source_profile and "
          "credential_source are not supported)"));
    }
    if (transport == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(name, ": no HTTP transport for STS"));
    }
    WebIdentityConfig c;
    c.role_arn = role_arn;
    c.token_file = ExpandHome(token_file, getenv_fn);
    c.session_name = get("role_session_name");
    const std::string profile_region = get("region");
    c.sts_endpoint = StsEndpoint(region.empty() ? profile_region : region, getenv_fn);
    return MakeWebIdentityCredentialsProvider(std::move(c), transport, std::move(options), name);
  }
  if (!key_id.empty() || !secret.empty()) {
    if (key_id.empty() || secret.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, ": needs both aws_access_key_id and aws_secret_access_key"));
    }
    AwsCredentials c;
    c.access_key_id = key_id;
    c.secret_access_key = secret;
    c.session_token = get("aws_session_token");
    return std::unique_ptr<CredentialsProvider>(
        std::make_unique<StaticCredentialsProvider>(std::move(c), name));
  }
  // A profile that only sets e.g. the region configures no credentials: the
  // chain moves on (to IMDS), as the AWS SDKs do.
  return absl::NotFoundError(
      absl::StrCat(name,
                   ": has neither aws_access_key_id/aws_secret_access_key nor "
                   "role_arn/web_identity_token_file"));
}

}  // namespace dynamo_batcher
