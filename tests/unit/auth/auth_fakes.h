#pragma once

// Fakes for the credentials provider tests: an HTTP transport answering
// from a handler, an environment map, a wall clock and temp files.

#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/auth/provider_util.h"
#include "service/common/clock.h"
#include "service/dynamodb/http_transport.h"

namespace dynamo_batcher::testing_auth {

// Answers every request inline from `handler`; records what was sent.
class FakeTransport : public HttpTransport {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  explicit FakeTransport(Handler handler = nullptr) : handler_(std::move(handler)) {}
  void set_handler(Handler h) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(h);
  }
  void Send(HttpRequest request, Callback done) override {
    Handler h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
      h = handler_;
    }
    HttpResponse r;
    if (h) {
      r = h(request);
    } else {
      r.transport_error = "connection refused";
    }
    done(std::move(r));
  }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  Handler handler_;
  std::vector<HttpRequest> requests_;
};

inline HttpResponse Answer(long status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

inline const std::string* FindHeader(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() && strncasecmp(k.c_str(), name.c_str(), k.size()) == 0) return &v;
  }
  return nullptr;
}

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

inline std::string StsXml(const std::string& key_id, const std::string& secret,
                          const std::string& token, const std::string& expiration) {
  return "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
         "  <AssumeRoleWithWebIdentityResult>\n"
         "    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n"
         "    <Audience>sts.amazonaws.com</Audience>\n"
         "    <AssumedRoleUser>\n"
         "      <Arn>arn:aws:sts::123456789012:assumed-role/writer/s</Arn>\n"
         "      <AssumedRoleId>AROA:s</AssumedRoleId>\n"
         "    </AssumedRoleUser>\n"
         "    <Credentials>\n"
         "      <SessionToken>" + token + "</SessionToken>\n"
         "      <SecretAccessKey>" + secret + "</SecretAccessKey>\n"
         "      <Expiration>" + expiration + "</Expiration>\n"
         "      <AccessKeyId>" + key_id + "</AccessKeyId>\n"
         "    </Credentials>\n"
         "    <Provider>arn:aws:iam::123456789012:oidc-provider/example</Provider>\n"
         "  </AssumeRoleWithWebIdentityResult>\n"
         "  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>\n"
         "</AssumeRoleWithWebIdentityResponse>\n";
}

inline std::string CredentialsJson(const std::string& key_id, const std::string& secret,
                                   const std::string& token, const std::string& expiration) {
  return "{\"Code\":\"Success\",\"LastUpdated\":\"2024-05-01T11:00:00Z\",\"Type\":\"AWS-HMAC\","
         "\"AccessKeyId\":\"" + key_id + "\",\"SecretAccessKey\":\"" + secret +
         "\",\"Token\":\"" + token + "\",\"Expiration\":\"" + expiration + "\"}";
}

}  // namespace dynamo_batcher::testing_auth
