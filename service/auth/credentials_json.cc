#include "service/auth/credentials_json.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "service/auth/iso8601.h"

namespace dynamo_batcher {
namespace {

// The member's string value, "" when absent; false when present but not a string.
bool StringMember(const rapidjson::Value& obj, const char* name, std::string* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return true;
  if (!it->value.IsString()) return false;
  out->assign(it->value.GetString(), it->value.GetStringLength());
  return true;
}

const rapidjson::Value* ObjectMember(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsObject()) return nullptr;
  return &it->value;
}

// Latest accepted expiration: 9999-12-31T23:59:59Z. Beyond it (or negative,
// NaN) an Expiration is garbage, not a time.
constexpr double kMaxEpochSeconds = 253402300799.0;

// STS's Expiration: epoch seconds as a JSON number, or an ISO 8601 string.
absl::StatusOr<absl::Time> ExpirationOf(const rapidjson::Value& v) {
  if (v.IsNumber()) {
    const double seconds = v.GetDouble();
    if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxEpochSeconds) {
      return absl::InvalidArgumentError(
          "STS answer: Credentials.Expiration is out of range (epoch seconds expected)");
    }
    return absl::UnixEpoch() + absl::Seconds(seconds);
  }
  if (v.IsString()) {
    absl::StatusOr<absl::Time> t =
        ParseIso8601(absl::string_view(v.GetString(), v.GetStringLength()));
    if (t.ok()) return t;
  }
  return absl::InvalidArgumentError(
      "STS answer: Credentials.Expiration is neither epoch seconds nor an ISO 8601 time");
}

// STS's error document, with or without the XML-style ErrorResponse wrapper.
const rapidjson::Value* StsError(const rapidjson::Document& doc) {
  if (const rapidjson::Value* e = ObjectMember(doc, "Error")) return e;
  if (const rapidjson::Value* wrapper = ObjectMember(doc, "ErrorResponse")) {
    return ObjectMember(*wrapper, "Error");
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<AwsCredentials> ParseStsCredentialsJson(absl::string_view json) {
  rapidjson::Document doc;
  // Iterative: deep nesting in a hostile body cannot overflow the stack.
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseStopWhenDoneFlag>(json.data(),
                                                                                json.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("STS answer is not JSON: ", rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return absl::InvalidArgumentError("STS answer is not a JSON object");
  if (const rapidjson::Value* error = StsError(doc)) {
    std::string code, message;
    StringMember(*error, "Code", &code);
    StringMember(*error, "Message", &message);
    if (code.empty()) code = "UnknownError";
    // STS's message, cut to a sane length; it never carries the token.
    return absl::PermissionDeniedError(
        absl::StrCat("STS ", code.substr(0, 100), ": ", message.substr(0, 300)));
  }
  const rapidjson::Value* response = ObjectMember(doc, "AssumeRoleWithWebIdentityResponse");
  const char* result_name = "AssumeRoleWithWebIdentityResult";
  if (response == nullptr) {
    response = ObjectMember(doc, "AssumeRoleResponse");
    result_name = "AssumeRoleResult";
  }
  if (response == nullptr) {
    return absl::InvalidArgumentError("STS answer: no AssumeRoleWithWebIdentityResponse object");
  }
  const rapidjson::Value* result = ObjectMember(*response, result_name);
  if (result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("STS answer: no ", result_name, " object"));
  }
  const rapidjson::Value* creds = ObjectMember(*result, "Credentials");
  if (creds == nullptr) return absl::InvalidArgumentError("STS answer: no Credentials object");

  std::string id, secret, token;
  std::vector<std::string> bad;
  if (!StringMember(*creds, "AccessKeyId", &id)) bad.push_back("AccessKeyId");
  if (!StringMember(*creds, "SecretAccessKey", &secret)) bad.push_back("SecretAccessKey");
  if (!StringMember(*creds, "SessionToken", &token)) bad.push_back("SessionToken");
  if (!bad.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("STS answer: Credentials.", absl::StrJoin(bad, ", Credentials."),
                     bad.size() == 1 ? " is" : " are", " not a string"));
  }
  AwsCredentials c;
  c.access_key_id = std::string(absl::StripAsciiWhitespace(id));
  c.secret_access_key = std::string(absl::StripAsciiWhitespace(secret));
  c.session_token = std::string(absl::StripAsciiWhitespace(token));
  std::vector<std::string> missing;
  if (c.access_key_id.empty()) missing.push_back("AccessKeyId");
  if (c.secret_access_key.empty()) missing.push_back("SecretAccessKey");
  if (c.session_token.empty()) missing.push_back("SessionToken");
  auto expiration = creds->FindMember("Expiration");
  if (expiration == creds->MemberEnd() || expiration->value.IsNull()) {
    missing.push_back("Expiration");
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("STS answer: Credentials lacks ", absl::StrJoin(missing, ", ")));
  }
  absl::StatusOr<absl::Time> t = ExpirationOf(expiration->value);
  if (!t.ok()) return t.status();
  c.expiration = *t;
  return c;
}

absl::StatusOr<AwsCredentials> ParseCredentialsJson(absl::string_view json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseStopWhenDoneFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "credentials answer is not JSON: ", rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return absl::InvalidArgumentError("credentials answer is not a JSON object");
  std::string code, message, id, secret, token, expiration;
  if (!StringMember(doc, "Code", &code) || !StringMember(doc, "code", &message) ||
      !StringMember(doc, "AccessKeyId", &id) || !StringMember(doc, "SecretAccessKey", &secret) ||
      !StringMember(doc, "Token", &token) || !StringMember(doc, "Expiration", &expiration)) {
    return absl::InvalidArgumentError("credentials answer: a field is not a string");
  }
  if (!code.empty() && code != "Success") {
    return absl::UnavailableError(
        absl::StrCat("credentials endpoint says Code=", code.substr(0, 100)));
  }
  if (id.empty() || secret.empty()) {
    std::string detail;
    StringMember(doc, "message", &detail);
    if (!message.empty() || !detail.empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("credentials endpoint error: ", message.substr(0, 100),
                       message.empty() ? "" : " ", detail.substr(0, 200)));
    }
    return absl::InvalidArgumentError("credentials answer lacks AccessKeyId or SecretAccessKey");
  }
  AwsCredentials c;
  c.access_key_id = std::move(id);
  c.secret_access_key = std::move(secret);
  c.session_token = std::move(token);
  if (!expiration.empty()) {
    absl::StatusOr<absl::Time> t = ParseIso8601(expiration);
    if (!t.ok())
      return absl::InvalidArgumentError("credentials answer: Expiration is not an ISO 8601 time");
    c.expiration = *t;
  }
  return c;
}

}  // namespace dynamo_batcher
