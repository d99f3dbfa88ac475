#include "service/auth/credentials_json.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "service/auth/sts_xml.h"

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

}  // namespace

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
    return absl::UnavailableError(absl::StrCat("credentials endpoint says Code=", code.substr(0, 100)));
  }
  if (id.empty() || secret.empty()) {
    std::string detail;
    StringMember(doc, "message", &detail);
    if (!message.empty() || !detail.empty()) {
      return absl::PermissionDeniedError(absl::StrCat("credentials endpoint error: ", message.substr(0, 100),
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
    if (!t.ok()) return absl::InvalidArgumentError("credentials answer: Expiration is not an ISO 8601 time");
    c.expiration = *t;
  }
  return c;
}

}  // namespace dynamo_batcher
