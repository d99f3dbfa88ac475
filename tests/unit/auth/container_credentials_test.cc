#include "service/auth/container_credentials.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using namespace testing_auth;  // NOLINT

TEST(ContainerConfig, RelativeUriGoesToTheEcsAgent) {
  FakeEnv env;
  env.Set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
  auto c = ContainerConfigFromEnvironment(env.Fn());
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->url, "http://169.254.170.2/v2/credentials/abc");
}

TEST(ContainerConfig, UnsetMeansNotConfigured) {
  FakeEnv env;
  auto c = ContainerConfigFromEnvironment(env.Fn());
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
}

TEST(ContainerConfig, FullUriAllowsHttpsAnywhereButHttpOnlyToLoopbackOrAgents) {
  for (const char* ok : {"https://creds.example.com/x", "http://127.0.0.1:8080/creds",
                         "http://localhost/creds", "http://169.254.170.23/v1/credentials",
                         "http://[fd00:ec2::23]/v1/credentials", "http://[::1]:9/c"}) {
    FakeEnv env;
    env.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", ok);
    auto c = ContainerConfigFromEnvironment(env.Fn());
    ASSERT_TRUE(c.ok()) << ok << " " << c.status();
    EXPECT_EQ((*c)->url, ok);
  }
  for (const char* bad : {"http://10.0.0.1/creds", "http://evil.example.com/c", "ftp://x/y",
                          "http://127.0.0.1@evil.example.com/"}) {
    FakeEnv env;
    env.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad);
    auto c = ContainerConfigFromEnvironment(env.Fn());
    EXPECT_FALSE(c.ok()) << bad;
  }
}

TEST(ContainerConfig, NameThatMerelyStartsWith127IsNotLoopback) {
  // Formerly accepted by a "127." prefix match: the token would have gone in
  // clear text to whatever the name resolves to.
  FakeEnv env;
  env.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.example.invalid:8080/creds");
  auto c = ContainerConfigFromEnvironment(env.Fn());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "AWS_CONTAINER_CREDENTIALS_FULL_URI"))
      << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "127.example.invalid")) << c.status();
}

TEST(ContainerConfig, NamesAreJudgedByEveryAddressTheyResolveTo) {
  auto resolver = [](const std::string& host) -> absl::StatusOr<std::vector<std::string>> {
    if (host == "local.test") return std::vector<std::string>{"127.0.0.1", "::1"};
    if (host == "mixed.test") return std::vector<std::string>{"127.0.0.1", "10.1.2.3"};
    if (host == "127.0.0.1.attacker.test") return std::vector<std::string>{"203.0.113.9"};
    return absl::NotFoundError("Name or service not known");
  };
  EXPECT_TRUE(CheckPlainHttpCredentialsHost("local.test", resolver).ok());
  absl::Status mixed = CheckPlainHttpCredentialsHost("mixed.test", resolver);
  EXPECT_FALSE(mixed.ok());
  EXPECT_TRUE(absl::StrContains(mixed.message(), "10.1.2.3")) << mixed;
  EXPECT_FALSE(CheckPlainHttpCredentialsHost("127.0.0.1.attacker.test", resolver).ok());
  EXPECT_FALSE(CheckPlainHttpCredentialsHost("nowhere.test", resolver).ok());
  // Literals: loopback and the agents pass, their neighbours do not.
  for (const char* ok : {"127.0.0.1", "127.255.0.9", "[::1]", "169.254.170.2", "169.254.170.23",
                         "[fd00:ec2::23]", "[FD00:EC2:0::23]"}) {
    EXPECT_TRUE(CheckPlainHttpCredentialsHost(ok).ok()) << ok;
  }
  for (const char* bad :
       {"169.254.170.3", "169.254.169.254", "[fd00:ec2::24]", "128.0.0.1", "0.0.0.0", "[::]"}) {
    EXPECT_FALSE(CheckPlainHttpCredentialsHost(bad).ok()) << bad;
  }
}

TEST(ContainerConfig, FullUriWithUserInfoIsRefused) {
  FakeEnv env;
  env.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://user:pw@creds.example.com/x");
  EXPECT_FALSE(ContainerConfigFromEnvironment(env.Fn()).ok());
}

TEST(ContainerCredentials, SendsTheAuthorizationTokenAndParsesJson) {
  FakeTransport t([](const HttpRequest&) {
    return Answer(
        200,
        R"({"AccessKeyId":"ASIAC","SecretAccessKey":"S","Token":"T","Expiration":"2024-05-01T13:00:00Z"})");
  });
  ContainerCredentialsConfig c;
  c.url = "http://127.0.0.1:1/creds";
  c.authorization_token = "Basic abc";
  auto creds = FetchContainerCredentials(c, t);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->access_key_id, "ASIAC");
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].url, "http://127.0.0.1:1/creds");
  ASSERT_NE(FindHeader(reqs[0], "Authorization"), nullptr);
  EXPECT_EQ(*FindHeader(reqs[0], "Authorization"), "Basic abc");
  EXPECT_EQ(reqs[0].timeout, absl::Seconds(2));
}

TEST(ContainerCredentials, TokenFileWinsAndIsReReadEachTime) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/tok", "file-token-1\n");
  FakeTransport t([](const HttpRequest&) {
    return Answer(
        200,
        R"({"AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2024-05-01T13:00:00Z"})");
  });
  ContainerCredentialsConfig c;
  c.url = "http://169.254.170.23/v1/credentials";
  c.authorization_token = "env-token";
  c.authorization_token_file = dir + "/tok";
  ASSERT_TRUE(FetchContainerCredentials(c, t).ok());
  WriteFile(dir + "/tok", "file-token-2");
  ASSERT_TRUE(FetchContainerCredentials(c, t).ok());
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(*FindHeader(reqs[0], "Authorization"), "file-token-1");
  EXPECT_EQ(*FindHeader(reqs[1], "Authorization"), "file-token-2");
}

TEST(ContainerCredentials, TokenWithLineBreakIsRefused) {
  FakeTransport t;
  ContainerCredentialsConfig c;
  c.url = "http://127.0.0.1:1/creds";
  c.authorization_token = "a\r\nX-Injected: 1";
  EXPECT_FALSE(FetchContainerCredentials(c, t).ok());
  EXPECT_TRUE(t.requests().empty());
}

TEST(ContainerCredentials, ForbiddenIsPermissionDeniedAndServerErrorsAreRetriedOnce) {
  FakeTransport forbidden([](const HttpRequest&) { return Answer(403, "denied"); });
  ContainerCredentialsConfig c;
  c.url = "http://127.0.0.1:1/creds";
  auto r = FetchContainerCredentials(c, forbidden);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "HTTP 403")) << r.status();
  FakeTransport failing([](const HttpRequest&) { return Answer(500, "oops"); });
  EXPECT_EQ(FetchContainerCredentials(c, failing).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failing.requests().size(), 2u);
}

TEST(ContainerCredentials, ProviderIsNamedContainer) {
  FakeTransport t;
  ContainerCredentialsConfig c;
  c.url = "http://127.0.0.1:1/creds";
  auto p = MakeContainerCredentialsProvider(c, &t, RefreshOptions{});
  EXPECT_EQ(p->Name(), "container");
  EXPECT_FALSE(p->GetCredentials().ok());
}

TEST(ContainerCredentials, EndlessTokenFileFailsWithoutReadingItAll) {
  FakeTransport t([](const HttpRequest&) { return Answer(200, "{}"); });
  ContainerCredentialsConfig c;
  c.url = "http://127.0.0.1:1/creds";
  c.authorization_token_file = "/dev/zero";
  auto creds = FetchContainerCredentials(c, t);
  ASSERT_FALSE(creds.ok());
  EXPECT_TRUE(absl::StrContains(creds.status().message(), "larger than")) << creds.status();
  EXPECT_TRUE(t.requests().empty());
}

}  // namespace
}  // namespace dynamo_batcher
