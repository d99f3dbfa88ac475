#include "service/auth/profile_credentials.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using namespace testing_auth;  // NOLINT

TEST(Ini, ParsesSectionsCommentsAndNestedSettings) {
  auto ini = ParseIni(
      "# comment\n"
      "[default]\r\n"
      "aws_access_key_id = AKID\n"
      "AWS_Secret_Access_Key=se#cret  ; trailing comment\n"
      "\n"
      "[profile dev]\n"
      "region = eu-west-1\n"
      "s3 =\n"
      "  max_concurrent_requests = 20\n"
      "role_arn = arn:aws:iam::1:role/r\n");
  ASSERT_TRUE(ini.ok()) << ini.status();
  EXPECT_EQ((*ini)["default"]["aws_access_key_id"], "AKID");
  EXPECT_EQ((*ini)["default"]["aws_secret_access_key"], "se#cret");
  EXPECT_EQ((*ini)["profile dev"]["region"], "eu-west-1");
  EXPECT_EQ((*ini)["profile dev"].count("max_concurrent_requests"), 0u);
  EXPECT_EQ((*ini)["profile dev"]["role_arn"], "arn:aws:iam::1:role/r");
}

TEST(Ini, MalformedLinesAreErrorsNamingTheLine) {
  auto a = ParseIni("[default\nx=1\n");
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(absl::StrContains(a.status().message(), "line 1"));
  auto b = ParseIni("[default]\njunk\n");
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(absl::StrContains(b.status().message(), "line 2"));
  EXPECT_FALSE(ParseIni("x = 1\n").ok());
}

class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    env_.Set("HOME", dir_ + "/home");
    env_.Set("AWS_SHARED_CREDENTIALS_FILE", dir_ + "/credentials");
    env_.Set("AWS_CONFIG_FILE", dir_ + "/config");
  }
  absl::StatusOr<std::unique_ptr<CredentialsProvider>> Make(HttpTransport* t = nullptr) {
    RefreshOptions o;
    o.wall_now = clock_.Fn();
    o.run_async = [](std::function<void()>) {};
    return MakeProfileCredentialsProvider(ProfileLocationFromEnvironment(env_.Fn()), "us-east-1",
                                          env_.Fn(), t, o);
  }
  std::string dir_;
  FakeEnv env_;
  FakeWallClock clock_;
};

TEST_F(ProfileTest, LocationDefaultsToHomeAndAwsProfile) {
  FakeEnv env;
  env.Set("HOME", "/home/u");
  auto l = ProfileLocationFromEnvironment(env.Fn());
  EXPECT_EQ(l.profile, "default");
  EXPECT_EQ(l.credentials_file, "/home/u/.aws/credentials");
  EXPECT_EQ(l.config_file, "/home/u/.aws/config");
  env.Set("AWS_PROFILE", "dev");
  EXPECT_EQ(ProfileLocationFromEnvironment(env.Fn()).profile, "dev");
}

TEST_F(ProfileTest, DefaultProfileStaticKeys) {
  WriteFile(dir_ + "/credentials", "[default]\naws_access_key_id=AKID\naws_secret_access_key=S\n");
  auto p = Make();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "profile:default");
  auto c = (*p)->GetCredentials();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKID");
  EXPECT_TRUE(c->session_token.empty());
}

TEST_F(ProfileTest, NamedProfileFromConfigFileAndCredentialsFileWins) {
  env_.Set("AWS_PROFILE", "dev");
  WriteFile(dir_ + "/config",
            "[default]\naws_access_key_id=WRONG\naws_secret_access_key=WRONG\n"
            "[profile dev]\naws_access_key_id=CFG\naws_secret_access_key=CFGS\n"
            "aws_session_token=CFGT\n");
  {
    auto p = Make();
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ((*p)->Name(), "profile:dev");
    EXPECT_EQ((*p)->GetCredentials()->access_key_id, "CFG");
    EXPECT_EQ((*p)->GetCredentials()->session_token, "CFGT");
  }
  WriteFile(dir_ + "/credentials", "[dev]\naws_access_key_id=CRED\naws_secret_access_key=CREDS\n");
  auto p = Make();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->GetCredentials()->access_key_id, "CRED");
  EXPECT_EQ((*p)->GetCredentials()->secret_access_key, "CREDS");
}

TEST_F(ProfileTest, MissingProfileIsNotFound) {
  env_.Set("AWS_PROFILE", "nope");
  WriteFile(dir_ + "/credentials", "[default]\naws_access_key_id=A\naws_secret_access_key=S\n");
  auto p = Make();
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ProfileTest, HalfKeysOrUnsupportedRoleSourcesAreFailedPrecondition) {
  WriteFile(dir_ + "/credentials", "[default]\naws_access_key_id=A\n");
  EXPECT_EQ(Make().status().code(), absl::StatusCode::kFailedPrecondition);
  WriteFile(dir_ + "/credentials", "");
  WriteFile(dir_ + "/config", "[default]\nrole_arn=arn:aws:iam::1:role/r\nsource_profile=base\n");
  auto p = Make();
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "source_profile")) << p.status();
}

TEST_F(ProfileTest, RoleArnWithWebIdentityTokenFileAssumesTheRole) {
  env_.Set("AWS_PROFILE", "irsa");
  env_.Set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1");
  WriteFile(dir_ + "/jwt", "the-jwt");
  WriteFile(dir_ + "/config",
            "[profile irsa]\nrole_arn = arn:aws:iam::1:role/r\n"
            "web_identity_token_file = " +
                dir_ +
                "/jwt\n"
                "role_session_name = s1\n");
  FakeTransport t([](const HttpRequest&) {
    return Answer(200, StsJson("ASIAP", "S", "T", absl::FromUnixSeconds(1714568400)));
  });
  auto p = Make(&t);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "profile:irsa");
  auto c = (*p)->GetCredentials();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAP");
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].url, "http://127.0.0.1:1/");
  EXPECT_TRUE(absl::StrContains(reqs[0].body, "RoleSessionName=s1"));
  EXPECT_TRUE(absl::StrContains(reqs[0].body, "WebIdentityToken=the-jwt"));
}

}  // namespace
}  // namespace dynamo_batcher
