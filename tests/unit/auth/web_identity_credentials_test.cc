#include "service/auth/web_identity_credentials.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using namespace testing_auth;  // NOLINT

class WebIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    token_file_ = dir_ + "/token";
    WriteFile(token_file_, "eyJhbGciOi.first-token\n");
    config_.role_arn = "arn:aws:iam::123456789012:role/writer";
    config_.token_file = token_file_;
    config_.session_name = "sess";
    config_.sts_endpoint = "https://sts.eu-west-1.amazonaws.com";
  }
  std::string dir_, token_file_;
  WebIdentityConfig config_;
  FakeWallClock clock_;
};

TEST(StsEndpoint, IsRegionalAndOverridable) {
  FakeEnv env;
  EXPECT_EQ(StsEndpoint("eu-west-1", env.Fn()), "https://sts.eu-west-1.amazonaws.com");
  EXPECT_EQ(StsEndpoint("cn-north-1", env.Fn()), "https://sts.cn-north-1.amazonaws.com.cn");
  env.Set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000/");
  EXPECT_EQ(StsEndpoint("eu-west-1", env.Fn()), "http://127.0.0.1:5000");
}

TEST(WebIdentityConfigFromEnvironment, NeedsRoleAndTokenFile) {
  FakeEnv env;
  EXPECT_FALSE(WebIdentityConfigFromEnvironment(env.Fn(), "us-east-1").has_value());
  env.Set("AWS_ROLE_ARN", "arn:aws:iam::1:role/r");
  EXPECT_FALSE(WebIdentityConfigFromEnvironment(env.Fn(), "us-east-1").has_value());
  env.Set("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token");
  env.Set("AWS_ROLE_SESSION_NAME", "pod-1");
  auto c = WebIdentityConfigFromEnvironment(env.Fn(), "us-west-2");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->role_arn, "arn:aws:iam::1:role/r");
  EXPECT_EQ(c->token_file, "/var/run/secrets/token");
  EXPECT_EQ(c->session_name, "pod-1");
  EXPECT_EQ(c->sts_endpoint, "https://sts.us-west-2.amazonaws.com");
}

TEST_F(WebIdentityTest, PostsTheFormToStsAndParsesTheAnswer) {
  FakeTransport t([](const HttpRequest&) {
    return Answer(200, StsJson("ASIA1", "SECRET1", "TOKEN1", absl::FromUnixSeconds(1714568400)));
  });
  auto c = FetchWebIdentityCredentials(config_, t, clock_.Now());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIA1");
  EXPECT_EQ(c->session_token, "TOKEN1");
  EXPECT_EQ(c->expiration, absl::FromUnixSeconds(1714568400));
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].url, "https://sts.eu-west-1.amazonaws.com/");
  EXPECT_EQ(reqs[0].body,
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
            "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fwriter"
            "&RoleSessionName=sess&WebIdentityToken=eyJhbGciOi.first-token");
  ASSERT_NE(FindHeader(reqs[0], "Content-Type"), nullptr);
  EXPECT_TRUE(
      absl::StartsWith(*FindHeader(reqs[0], "Content-Type"), "application/x-www-form-urlencoded"));
  EXPECT_EQ(FindHeader(reqs[0], "Authorization"), nullptr) << "the call is unsigned";
  ASSERT_NE(FindHeader(reqs[0], "Accept"), nullptr);
  EXPECT_EQ(*FindHeader(reqs[0], "Accept"), "application/json");
  EXPECT_EQ(reqs[0].max_response_bytes, auth_internal::kMaxCredentialsResponseBytes);
}

TEST_F(WebIdentityTest, DefaultSessionNameIsDerivedFromTime) {
  config_.session_name.clear();
  FakeTransport t([](const HttpRequest&) {
    return Answer(200, StsJson("A", "S", "T", absl::FromUnixSeconds(1714568400)));
  });
  ASSERT_TRUE(FetchWebIdentityCredentials(config_, t, clock_.Now()).ok());
  EXPECT_TRUE(absl::StrContains(t.requests()[0].body, "RoleSessionName=dynamo-batcher-1714564800"));
}

TEST_F(WebIdentityTest, StsErrorIsPermissionDeniedAndNeverShowsTheToken) {
  FakeTransport t([](const HttpRequest&) {
    return Answer(400,
                  R"({"Error":{"Code":"InvalidIdentityToken","Message":"Incorrect token audience",)"
                  R"("Type":"Sender"},"RequestId":"c6104cbe"})");
  });
  auto c = FetchWebIdentityCredentials(config_, t, clock_.Now());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "InvalidIdentityToken")) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "role/writer")) << c.status();
  EXPECT_FALSE(absl::StrContains(c.status().message(), "first-token"));
  EXPECT_EQ(t.requests().size(), 1u) << "4xx is not retried";
}

TEST_F(WebIdentityTest, StsThrottlingIsUnavailableAfterOneRetry) {
  FakeTransport t([](const HttpRequest&) {
    return Answer(503, R"({"Error":{"Code":"Throttling","Message":"Rate exceeded"}})");
  });
  auto c = FetchWebIdentityCredentials(config_, t, clock_.Now());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "STS Throttling: Rate exceeded"))
      << c.status();
  EXPECT_EQ(t.requests().size(), 2u);
}

TEST_F(WebIdentityTest, UnusableAnswerNamesTheMissingField) {
  FakeTransport t([](const HttpRequest&) {
    return Answer(200,
                  R"({"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":)"
                  R"({"Credentials":{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":1}}}})");
  });
  auto c = FetchWebIdentityCredentials(config_, t, clock_.Now());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "SessionToken")) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "role/writer")) << c.status();
}

TEST_F(WebIdentityTest, TransportErrorIsRetriedOnceThenUnavailable) {
  FakeTransport t;  // connection refused
  auto c = FetchWebIdentityCredentials(config_, t, clock_.Now());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(t.requests().size(), 2u);
}

TEST_F(WebIdentityTest, MissingTokenFileIsFailedPrecondition) {
  config_.token_file = dir_ + "/nope";
  FakeTransport t;
  auto c = FetchWebIdentityCredentials(config_, t, clock_.Now());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(t.requests().empty());
}

TEST_F(WebIdentityTest, TokenFileIsReReadOnEveryRefresh) {
  int calls = 0;
  FakeTransport t([&](const HttpRequest&) {
    ++calls;
    // Each answer lives one hour from the fake now.
    const absl::Time exp = absl::FromUnixSeconds(calls == 1 ? 1714568400 : 1714572000);
    return Answer(200, StsJson("ASIA" + std::to_string(calls), "S", "T", exp));
  });
  RefreshOptions o;
  o.wall_now = clock_.Fn();
  std::vector<std::function<void()>> tasks;
  o.run_async = [&](std::function<void()> f) { tasks.push_back(std::move(f)); };
  auto p = MakeWebIdentityCredentialsProvider(config_, &t, o);
  EXPECT_EQ(p->Name(), "web_identity");
  ASSERT_EQ(p->GetCredentials()->access_key_id, "ASIA1");
  WriteFile(token_file_, "rotated-token");
  clock_.Advance(absl::Minutes(56));
  EXPECT_EQ(p->GetCredentials()->access_key_id, "ASIA1");
  ASSERT_EQ(tasks.size(), 1u);
  tasks[0]();
  EXPECT_EQ(p->GetCredentials()->access_key_id, "ASIA2");
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(absl::EndsWith(reqs[1].body, "WebIdentityToken=rotated-token"));
}

}  // namespace
}  // namespace dynamo_batcher
