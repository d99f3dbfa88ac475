#include "service/auth/imds_credentials.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using namespace testing_auth;  // NOLINT

// IMDSv2 stand-in: token required on the GETs.
HttpResponse Imds(const HttpRequest& r) {
  const std::string base = "http://127.0.0.1:1";
  if (r.method == "PUT" && r.url == base + "/latest/api/token") {
    const std::string* ttl = FindHeader(r, "X-aws-ec2-metadata-token-ttl-seconds");
    if (ttl == nullptr) return Answer(400, "");
    return Answer(200, "IMDSTOKEN");
  }
  const std::string* token = FindHeader(r, "X-aws-ec2-metadata-token");
  if (token == nullptr || *token != "IMDSTOKEN") return Answer(401, "");
  if (r.method == "GET" && r.url == base + "/latest/meta-data/iam/security-credentials/") {
    return Answer(200, "writer-role\n");
  }
  if (r.method == "GET" &&
      r.url == base + "/latest/meta-data/iam/security-credentials/writer-role") {
    return Answer(200, CredentialsJson("ASIAIMDS", "S", "T", "2024-05-01T18:00:00Z"));
  }
  return Answer(404, "");
}

TEST(ImdsConfig, DisabledByEnvironmentAndEndpointOverridable) {
  FakeEnv env;
  ASSERT_TRUE(ImdsConfigFromEnvironment(env.Fn()).has_value());
  EXPECT_EQ(ImdsConfigFromEnvironment(env.Fn())->endpoint, "http://169.254.169.254");
  EXPECT_EQ(ImdsConfigFromEnvironment(env.Fn())->timeout, absl::Seconds(1));
  env.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9999/");
  EXPECT_EQ(ImdsConfigFromEnvironment(env.Fn())->endpoint, "http://127.0.0.1:9999");
  env.Set("AWS_EC2_METADATA_DISABLED", "TRUE");
  EXPECT_FALSE(ImdsConfigFromEnvironment(env.Fn()).has_value());
  FakeEnv v6;
  v6.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6");
  EXPECT_EQ(ImdsConfigFromEnvironment(v6.Fn())->endpoint, "http://[fd00:ec2::254]");
}

TEST(ImdsCredentials, FollowsTheV2TokenFlow) {
  FakeTransport t(Imds);
  ImdsConfig c;
  c.endpoint = "http://127.0.0.1:1";
  auto creds = FetchImdsCredentials(c, t);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->access_key_id, "ASIAIMDS");
  EXPECT_EQ(*creds->expiration, absl::FromUnixSeconds(1714586400));
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(*FindHeader(reqs[0], "X-aws-ec2-metadata-token-ttl-seconds"), "21600");
  for (const auto& r : reqs) EXPECT_EQ(r.timeout, absl::Seconds(1)) << r.url;
  EXPECT_EQ(*FindHeader(reqs[2], "X-aws-ec2-metadata-token"), "IMDSTOKEN");
}

TEST(ImdsCredentials, NoRoleIsNotFound) {
  FakeTransport t([](const HttpRequest& r) {
    if (r.method == "PUT") return Answer(200, "TOK");
    return Answer(404, "");
  });
  ImdsConfig c;
  c.endpoint = "http://127.0.0.1:1";
  auto creds = FetchImdsCredentials(c, t);
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kNotFound);
}

TEST(ImdsCredentials, UnreachableFailsAfterOneRequest) {
  FakeTransport t([](const HttpRequest&) {
    HttpResponse r;
    r.transport_error = "timeout";
    r.timed_out = true;
    return r;
  });
  ImdsConfig c;
  auto creds = FetchImdsCredentials(c, t);
  ASSERT_FALSE(creds.ok());
  EXPECT_TRUE(absl::StrContains(creds.status().message(), "timeout")) << creds.status();
  EXPECT_EQ(t.requests().size(), 1u);
}

TEST(ImdsCredentials, ProviderIsNamedImds) {
  FakeTransport t(Imds);
  ImdsConfig c;
  c.endpoint = "http://127.0.0.1:1";
  auto p = MakeImdsCredentialsProvider(c, &t, RefreshOptions{});
  EXPECT_EQ(p->Name(), "imds");
  ASSERT_TRUE(p->GetCredentials().ok());
}

}  // namespace
}  // namespace dynamo_batcher
