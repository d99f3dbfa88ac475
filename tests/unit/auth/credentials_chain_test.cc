#include "service/auth/credentials_chain.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using namespace testing_auth;  // NOLINT

class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    env_.Set("HOME", dir_);  // no ~/.aws here
    options_.region = "eu-west-1";
    options_.transport = &transport_;
    options_.getenv = env_.Fn();
    options_.wall_now = clock_.Fn();
    options_.run_async = [](std::function<void()>) {};
    // Any request the test did not plan for fails like an absent endpoint.
    transport_.set_handler([this](const HttpRequest& r) {
      if (absl::StartsWith(r.url, "http://sts.test/")) {
        return Answer(200, StsJson("ASIASTS", "S", "T", absl::FromUnixSeconds(1714568400)));
      }
      if (absl::StartsWith(r.url, "http://127.0.0.1:7/creds")) {
        return Answer(200, CredentialsJson("ASIACONT", "S", "T", "2024-05-01T13:00:00Z"));
      }
      if (absl::StartsWith(r.url, "http://127.0.0.1:8/")) {
        if (r.method == "PUT") return Answer(200, "TOK");
        if (absl::EndsWith(r.url, "/security-credentials/")) return Answer(200, "role");
        return Answer(200, CredentialsJson("ASIAIMDS", "S", "T", "2024-05-01T13:00:00Z"));
      }
      HttpResponse refused;
      refused.transport_error = "connection refused";
      return refused;
    });
    // Never the real link-local IMDS address from a unit test.
    env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
  }
  void UseWebIdentity() {
    WriteFile(dir_ + "/jwt", "jwt");
    env_.Set("AWS_ROLE_ARN", "arn:aws:iam::1:role/r");
    env_.Set("AWS_WEB_IDENTITY_TOKEN_FILE", dir_ + "/jwt");
    env_.Set("AWS_ENDPOINT_URL_STS", "http://sts.test");
  }
  std::string dir_;
  FakeEnv env_;
  FakeWallClock clock_;
  FakeTransport transport_;
  CredentialsChainOptions options_;
};

TEST_F(ChainTest, ConfigKeysComeFirst) {
  env_.Set("AWS_ACCESS_KEY_ID", "ENVKEY");
  env_.Set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
  options_.static_credentials.access_key_id = "CFG";
  options_.static_credentials.secret_access_key = "CFGS";
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "config");
  EXPECT_EQ((*p)->GetCredentials()->access_key_id, "CFG");
}

TEST_F(ChainTest, EnvironmentBeforeWebIdentity) {
  UseWebIdentity();
  env_.Set("AWS_ACCESS_KEY_ID", "ENVKEY");
  env_.Set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "environment");
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(ChainTest, WebIdentityWhenItsVariablesAreSet) {
  UseWebIdentity();
  env_.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:7/creds");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "web_identity");
  EXPECT_EQ((*p)->GetCredentials()->access_key_id, "ASIASTS");
  EXPECT_EQ(transport_.requests().size(), 1u) << "probed once, then cached";
}

TEST_F(ChainTest, FailingWebIdentityIsKeptNeverReplacedByAWeakerIdentity) {
  // STS refuses at start-up; container credentials, a default profile and
  // IMDS would all answer. The sidecar must not run as any of them.
  UseWebIdentity();
  env_.Set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1");  // refused
  env_.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:7/creds");
  env_.Set("AWS_SHARED_CREDENTIALS_FILE", dir_ + "/credentials");
  WriteFile(dir_ + "/credentials", "[default]\naws_access_key_id=PK\naws_secret_access_key=PS\n");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "web_identity");
  EXPECT_FALSE((*p)->GetCredentials().ok());
  for (const HttpRequest& r : transport_.requests()) {
    EXPECT_TRUE(absl::StartsWith(r.url, "http://127.0.0.1:1")) << "asked " << r.url;
  }
}

TEST_F(ChainTest, WebIdentityThatFailsAtStartIsRetriedAndThenUsed) {
  UseWebIdentity();
  bool sts_up = false;
  transport_.set_handler([&](const HttpRequest& r) {
    if (sts_up && absl::StartsWith(r.url, "http://sts.test/")) {
      return Answer(200, StsJson("ASIASTS", "S", "T", absl::FromUnixSeconds(1714568400)));
    }
    HttpResponse refused;
    refused.transport_error = "connection refused";
    return refused;
  });
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "web_identity");
  EXPECT_FALSE((*p)->GetCredentials().ok());
  sts_up = true;
  clock_.Advance(absl::Seconds(11));  // past the backoff
  auto c = (*p)->GetCredentials();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIASTS");
}

TEST_F(ChainTest, InvalidContainerUriIsAnErrorNotSkipped) {
  env_.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");  // would answer
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_FALSE(p.ok()) << (*p)->Name();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "AWS_CONTAINER_CREDENTIALS_FULL_URI"))
      << p.status();
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(ChainTest, FailingContainerEndpointIsKept) {
  env_.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:5/creds");  // refused
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "container");
}

TEST_F(ChainTest, HalfSetEnvironmentKeysAreAnError) {
  env_.Set("AWS_ACCESS_KEY_ID", "ENVKEY");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "environment")) << p.status();
}

TEST_F(ChainTest, NamedProfileThatIsMissingIsAnErrorNotImds) {
  env_.Set("AWS_PROFILE", "prod");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_FALSE(p.ok()) << (*p)->Name();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "profile:prod")) << p.status();
}

TEST_F(ChainTest, ProfileBeforeImds) {
  env_.Set("AWS_PROFILE", "dev");
  env_.Set("AWS_SHARED_CREDENTIALS_FILE", dir_ + "/credentials");
  WriteFile(dir_ + "/credentials", "[dev]\naws_access_key_id=PK\naws_secret_access_key=PS\n");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "profile:dev");
  EXPECT_EQ((*p)->GetCredentials()->access_key_id, "PK");
}

TEST_F(ChainTest, ImdsLast) {
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "imds");
  EXPECT_EQ((*p)->GetCredentials()->access_key_id, "ASIAIMDS");
}

TEST_F(ChainTest, ProfileWithoutCredentialsSettingsLeavesItToImds) {
  // ~/.aws/config with only a region, as on many EC2 hosts.
  env_.Set("AWS_CONFIG_FILE", dir_ + "/config");
  WriteFile(dir_ + "/config", "[default]\nregion = eu-west-1\n");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Name(), "imds");
}

TEST_F(ChainTest, UnusableProfileCredentialsAreAnErrorNotImds) {
  env_.Set("AWS_SHARED_CREDENTIALS_FILE", dir_ + "/credentials");
  WriteFile(dir_ + "/credentials", "[default]\naws_access_key_id=A\n");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_FALSE(p.ok()) << (*p)->Name();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "profile:default")) << p.status();
}

TEST_F(ChainTest, NothingFoundListsWhatWasTried) {
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(p.status().message());
  EXPECT_TRUE(absl::StrContains(msg, "web_identity: not set")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "profile:default:")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "imds:")) << msg;
}

TEST_F(ChainTest, ImdsCanBeDisabled) {
  env_.Set("AWS_EC2_METADATA_DISABLED", "true");
  env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8");
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::StrContains(p.status().message(), "disabled")) << p.status();
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(ChainTest, OwnedTransportIsKeptAlive) {
  auto owned = std::make_shared<FakeTransport>();
  owned->set_handler([](const HttpRequest& r) {
    if (r.method == "PUT") return Answer(200, "TOK");
    if (absl::EndsWith(r.url, "/security-credentials/")) return Answer(200, "role");
    return Answer(200, CredentialsJson("ASIAOWN", "S", "T", "2024-05-01T13:00:00Z"));
  });
  options_.transport = nullptr;
  options_.owned_transport = owned;
  std::weak_ptr<FakeTransport> weak = owned;
  owned.reset();
  auto p = MakeDefaultCredentialsChain(options_);
  ASSERT_TRUE(p.ok()) << p.status();
  options_.owned_transport.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ((*p)->Name(), "imds");
  p->reset();
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace dynamo_batcher
