#include "service/auth/env_credentials.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

// Saves and restores the AWS variables so tests do not leak into each other.
class EnvCredentialsTest : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* n : kNames) {
      const char* v = std::getenv(n);
      saved_.push_back(v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(n);
    }
  }
  void TearDown() override {
    for (size_t i = 0; i < std::size(kNames); ++i) {
      if (saved_[i])
        setenv(kNames[i], saved_[i]->c_str(), 1);
      else
        unsetenv(kNames[i]);
    }
  }
  static constexpr const char* kNames[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_SESSION_TOKEN"};
  std::vector<std::optional<std::string>> saved_;
};

TEST_F(EnvCredentialsTest, ReadsKeysAndOptionalSessionToken) {
  setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
  auto provider = MakeEnvironmentCredentialsProvider();
  EXPECT_EQ(provider->Name(), "environment");
  auto c = provider->GetCredentials();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKID");
  EXPECT_EQ(c->secret_access_key, "SECRET");
  EXPECT_EQ(c->session_token, "");
  EXPECT_FALSE(c->expiration.has_value());

  setenv("AWS_SESSION_TOKEN", "TOKEN", 1);
  c = provider->GetCredentials();  // read at call time, not at construction
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->session_token, "TOKEN");
}

TEST_F(EnvCredentialsTest, MissingAccessKeyIsFailedPreconditionNamingIt) {
  setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
  auto c = MakeEnvironmentCredentialsProvider()->GetCredentials();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "AWS_ACCESS_KEY_ID"));
  EXPECT_FALSE(absl::StrContains(c.status().message(), "SECRET"));
}

TEST_F(EnvCredentialsTest, MissingSecretIsFailedPreconditionWithoutLeakingTheKeyId) {
  setenv("AWS_ACCESS_KEY_ID", "AKIDVALUE", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "", 1);  // empty counts as missing
  auto c = MakeEnvironmentCredentialsProvider()->GetCredentials();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "AWS_SECRET_ACCESS_KEY"));
  EXPECT_FALSE(absl::StrContains(c.status().message(), "AKIDVALUE"));
}

}  // namespace
}  // namespace dynamo_batcher
