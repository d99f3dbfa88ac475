#include "service/auth/credentials_json.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

TEST(CredentialsJson, ParsesContainerAnswer) {
  auto c = ParseCredentialsJson(
      R"({"AccessKeyId":"ASIA1","SecretAccessKey":"s/ec+ret","Token":"tok","Expiration":"2024-05-01T13:00:00Z","RoleArn":"arn:x"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIA1");
  EXPECT_EQ(c->secret_access_key, "s/ec+ret");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ(*c->expiration, absl::FromUnixSeconds(1714568400));
}

TEST(CredentialsJson, ParsesImdsAnswerWithSuccessCode) {
  auto c =
      ParseCredentialsJson(testing_auth::CredentialsJson("A", "S", "T", "2024-05-01T13:00:00Z"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "A");
}

TEST(CredentialsJson, LongTermKeysHaveNoExpiration) {
  auto c = ParseCredentialsJson(R"({"AccessKeyId":"A","SecretAccessKey":"S"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->expiration.has_value());
  EXPECT_TRUE(c->session_token.empty());
}

TEST(CredentialsJson, FailureCodeAndErrorObjectsAreErrors) {
  auto c = ParseCredentialsJson(R"({"Code":"AssumeRoleUnauthorizedAccess","Message":"no"})");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StrContains(c.status().message(), "AssumeRoleUnauthorizedAccess"));
  auto e = ParseCredentialsJson(R"({"code":"AccessDenied","message":"bad token"})");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(e.status().message(), "bad token"));
}

TEST(CredentialsJson, RejectsWrongTypesAndNonJson) {
  for (const char* bad :
       {"", "[]", "nope", R"({"AccessKeyId":1,"SecretAccessKey":"S"})", R"({"AccessKeyId":"A"})",
        R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"later"})",
        R"({"AccessKeyId":"A","SecretAccessKey":"S","Token":{}})"}) {
    EXPECT_FALSE(ParseCredentialsJson(bad).ok()) << bad;
  }
}

// ---- STS AssumeRoleWithWebIdentity (JSON) ---------------------------------

std::string StsWithCredentials(const std::string& credentials_members) {
  return R"({"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":{"Credentials":{)" +
         credentials_members + R"(}},"ResponseMetadata":{"RequestId":"r"}}})";
}

TEST(StsCredentialsJson, ParsesTheAnswerWithEpochSecondsExpiration) {
  auto c = ParseStsCredentialsJson(testing_auth::StsJson("ASIAEXAMPLE", "wJalr/K7MDENG+bPxRfiCY",
                                                         "FwoGZXIvYXdzEJr//////",
                                                         absl::FromUnixSeconds(1714568400)));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c->secret_access_key, "wJalr/K7MDENG+bPxRfiCY");
  EXPECT_EQ(c->session_token, "FwoGZXIvYXdzEJr//////");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_EQ(*c->expiration, absl::FromUnixSeconds(1714568400));
}

TEST(StsCredentialsJson, ExpirationMayBeAFloatOrAnIsoString) {
  // STS writes epoch seconds in exponent form (1.514869445E9).
  auto c = ParseStsCredentialsJson(StsWithCredentials(
      R"("AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":1.7145684005E9)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c->expiration, absl::FromUnixMillis(1714568400500));
  c = ParseStsCredentialsJson(StsWithCredentials(
      R"("AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":"2024-05-01T13:00:00Z")"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c->expiration, absl::FromUnixSeconds(1714568400));
}

TEST(StsCredentialsJson, AcceptsAssumeRoleAnswersAndUnicodeEscapes) {
  auto c = ParseStsCredentialsJson(
      R"({"AssumeRoleResponse":{"AssumeRoleResult":{"Credentials":{"AccessKeyId":"AK&ID",)"
      R"("SecretAccessKey":"se<cr>et","SessionToken":"tAB","Expiration":1714568400}}}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AK&ID");
  EXPECT_EQ(c->secret_access_key, "se<cr>et");
}

TEST(StsCredentialsJson, ErrorDocumentBecomesPermissionDeniedWithStsCode) {
  for (const std::string& body :
       {std::string(R"({"Error":{"Code":"InvalidIdentityToken","Message":"Token is expired",)"
                    R"("Type":"Sender"},"RequestId":"abc"})"),
        std::string(R"({"ErrorResponse":{"Error":{"Code":"InvalidIdentityToken",)"
                    R"("Message":"Token is expired"}}})")}) {
    auto c = ParseStsCredentialsJson(body);
    ASSERT_FALSE(c.ok()) << body;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(c.status().message(), "STS InvalidIdentityToken: Token is expired");
  }
}

TEST(StsCredentialsJson, ErrorsNameTheFieldThatIsMissingOrMistyped) {
  struct Case {
    std::string body;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"", "not JSON"},
      {"<AssumeRoleWithWebIdentityResponse/>", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {"{}", "AssumeRoleWithWebIdentityResponse"},
      {R"({"AssumeRoleWithWebIdentityResponse":[]})", "AssumeRoleWithWebIdentityResponse"},
      {R"({"AssumeRoleWithWebIdentityResponse":{}})", "AssumeRoleWithWebIdentityResult"},
      {R"({"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":{"Credentials":""}}})",
       "Credentials"},
      {StsWithCredentials(R"("AccessKeyId":"A")"), "SecretAccessKey, SessionToken, Expiration"},
      {StsWithCredentials(
           R"("AccessKeyId":1,"SecretAccessKey":"S","SessionToken":"T","Expiration":1)"),
       "Credentials.AccessKeyId is not a string"},
      {StsWithCredentials(
           R"("AccessKeyId":"A","SecretAccessKey":" ","SessionToken":"T","Expiration":1)"),
       "SecretAccessKey"},
      {StsWithCredentials(
           R"("AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":"soon")"),
       "Expiration"},
      {StsWithCredentials(
           R"("AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":-5)"),
       "Expiration"},
      {StsWithCredentials(
           R"("AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":1e300)"),
       "Expiration"},
      {StsWithCredentials(
           R"("AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":true)"),
       "Expiration"},
  };
  for (const Case& k : cases) {
    auto c = ParseStsCredentialsJson(k.body);
    ASSERT_FALSE(c.ok()) << k.body;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << k.body;
    EXPECT_TRUE(absl::StrContains(c.status().message(), k.names)) << k.body << " -> " << c.status();
  }
}

TEST(StsCredentialsJson, DeepNestingIsAnErrorNotACrash) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "[";
  EXPECT_FALSE(ParseStsCredentialsJson(deep).ok());
  deep = std::string(100000, '{');
  EXPECT_FALSE(ParseStsCredentialsJson(deep).ok());
}

}  // namespace
}  // namespace dynamo_batcher
