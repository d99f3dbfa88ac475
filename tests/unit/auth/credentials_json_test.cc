#include "service/auth/credentials_json.h"

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
  auto c = ParseCredentialsJson(testing_auth::CredentialsJson("A", "S", "T", "2024-05-01T13:00:00Z"));
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
  for (const char* bad : {"", "[]", "nope", R"({"AccessKeyId":1,"SecretAccessKey":"S"})",
                          R"({"AccessKeyId":"A"})",
                          R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"later"})",
                          R"({"AccessKeyId":"A","SecretAccessKey":"S","Token":{}})"}) {
    EXPECT_FALSE(ParseCredentialsJson(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace dynamo_batcher
