#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dynamo_batcher {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;             // empty for long-term keys
  std::optional<absl::Time> expiration;  // wall-clock; none for static keys
};

// Source of AWS credentials. Implementations cache and refresh ahead of
// expiry; GetCredentials is cheap on the hot path.
//
// Thread-safety: GetCredentials may be called from any thread.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  virtual absl::StatusOr<AwsCredentials> GetCredentials() = 0;
  // Like GetCredentials, but waits for a fetch when nothing is cached even
  // if the provider was made never to block (start-up only: never on the
  // engine or transport threads).
  virtual absl::StatusOr<AwsCredentials> GetCredentialsBlocking() { return GetCredentials(); }
  // For the start-up log and the credentials metric, e.g. "environment".
  virtual std::string Name() const = 0;
  // Failed refreshes so far (for dynamo_batcher_credentials_refresh_failures_total);
  // always 0 for providers that never refresh.
  virtual uint64_t RefreshFailures() const { return 0; }
};

// Fixed credentials (config or environment).
class StaticCredentialsProvider : public CredentialsProvider {
 public:
  StaticCredentialsProvider(AwsCredentials credentials, std::string name)
      : credentials_(std::move(credentials)), name_(std::move(name)) {}
  absl::StatusOr<AwsCredentials> GetCredentials() override { return credentials_; }
  std::string Name() const override { return name_; }

 private:
  AwsCredentials credentials_;
  std::string name_;
};

}  // namespace dynamo_batcher
