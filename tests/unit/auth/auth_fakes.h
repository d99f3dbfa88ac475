#pragma once

// Fakes for the credentials provider tests: an environment map, a wall
// clock, temp files and STS/IMDS answer bodies. The HTTP transport is the
// shared one of tests/support.

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/auth/provider_util.h"
#include "service/common/clock.h"
#include "service/http/http_transport.h"
#include "tests/support/fake_transport.h"

namespace dynamo_batcher::testing_auth {

using test_support::Answer;
using test_support::FakeTransport;
using test_support::FindHeader;

// Environment variables as a map.
class FakeEnv {
 public:
  void Set(const std::string& k, const std::string& v) { vars_[k] = v; }
  GetenvFunction Fn() const {
    return [this](const char* n) -> const char* {
      auto it = vars_.find(n);
      return it == vars_.end() ? nullptr : it->second.c_str();
    };
  }

 private:
  std::map<std::string, std::string> vars_;
};

// A wall clock that moves only when told to (starts at a realistic date).
class FakeWallClock {
 public:
  FakeWallClock() : clock_(absl::FromUnixSeconds(1714564800)) {}  // 2024-05-01T12:00:00Z
  absl::Time Now() const { return clock_.Now(); }
  void Advance(absl::Duration d) { clock_.AdvanceTime(d); }
  WallClockFunction Fn() const {
    return [this] { return clock_.Now(); };
  }

 private:
  FakeClock clock_;
};

// A fresh directory under the test temp dir.
inline std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "/authtestXXXXXX";
  char* d = mkdtemp(tmpl.data());
  return d == nullptr ? "" : std::string(d);
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// An STS AssumeRoleWithWebIdentity answer as STS writes it for
// "Accept: application/json": Expiration in epoch seconds, as a number.
inline std::string StsJson(const std::string& key_id, const std::string& secret,
                           const std::string& token, absl::Time expiration) {
  return "{\"AssumeRoleWithWebIdentityResponse\":{\"AssumeRoleWithWebIdentityResult\":{"
         "\"Audience\":\"sts.amazonaws.com\","
         "\"AssumedRoleUser\":{\"Arn\":\"arn:aws:sts::123456789012:assumed-role/writer/s\","
         "\"AssumedRoleId\":\"AROA:s\"},"
         "\"Credentials\":{\"AccessKeyId\":\"" +
         key_id + "\",\"Expiration\":" + std::to_string(absl::ToUnixSeconds(expiration)) +
         ",\"SecretAccessKey\":\"" + secret + "\",\"SessionToken\":\"" + token +
         "\"},"
         "\"PackedPolicySize\":null,"
         "\"Provider\":\"arn:aws:iam::123456789012:oidc-provider/example\","
         "\"SubjectFromWebIdentityToken\":\"system:serviceaccount:ns:sa\"},"
         "\"ResponseMetadata\":{\"RequestId\":\"c6104cbe-af31-11e0-8154-cbc7ccf896c7\"}}}";
}

inline std::string CredentialsJson(const std::string& key_id, const std::string& secret,
                                   const std::string& token, const std::string& expiration) {
  return "{\"Code\":\"Success\",\"LastUpdated\":\"2024-05-01T11:00:00Z\",\"Type\":\"AWS-HMAC\","
         "\"AccessKeyId\":\"" +
         key_id + "\",\"SecretAccessKey\":\"" + secret + "\",\"Token\":\"" + token +
         "\",\"Expiration\":\"" + expiration + "\"}";
}

}  // namespace dynamo_batcher::testing_auth
