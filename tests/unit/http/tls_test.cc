// CurlTransport's TLS verification against a local HTTPS server whose
// certificate is signed by a CA generated at test time with the openssl CLI
// (tests/tools/aws_standins.py tls serves it on 127.0.0.1). Skipped when
// openssl or python3 is missing.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {
namespace {

bool Shell(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

// A CA, a second unrelated CA, and a server certificate for IP 127.0.0.1
// (no DNS name) signed by the first.
bool MakePki(const std::string& d) {
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::ofstream(d + "/server.cnf") << "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                      "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
  const std::string q = " >/dev/null 2>&1";
  for (const char* ca : {"ca", "other-ca"}) {
    if (!Shell(absl::StrCat("openssl req -x509 ", ec, " -keyout ", d, "/", ca, ".key -out ", d, "/",
                            ca, ".pem -days 2 -subj '/CN=dynamo-batcher test ", ca,
                            "' -addext basicConstraints=critical,CA:TRUE"
                            " -addext keyUsage=critical,keyCertSign,cRLSign",
                            q))) {
      return false;
    }
  }
  return Shell(absl::StrCat("openssl req ", ec, " -keyout ", d, "/server.key -out ", d,
                            "/server.csr -subj /CN=127.0.0.1", q)) &&
         Shell(absl::StrCat("openssl x509 -req -in ", d, "/server.csr -CA ", d, "/ca.pem -CAkey ",
                            d, "/ca.key -CAcreateserial -out ", d, "/server.pem -days 2 -extfile ",
                            d, "/server.cnf", q));
}

// Runs on both transports: "curl" and "framed" (see GetParam).
class TlsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!Shell("command -v openssl >/dev/null 2>&1") ||
        !Shell("command -v python3 >/dev/null 2>&1")) {
      GTEST_SKIP() << "openssl or python3 missing";
    }
    std::string tmpl = ::testing::TempDir() + "/tlstestXXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(MakePki(dir_));
    const std::string log = dir_ + "/server.log";
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = freopen(log.c_str(), "w", stdout);
      (void)f;
      const std::string script =
          std::string(DYNAMO_BATCHER_SOURCE_DIR) + "/tests/tools/aws_standins.py";
      const std::string cert = dir_ + "/server.pem", key = dir_ + "/server.key";
      execlp("python3", "python3", "-u", script.c_str(), "tls", "--cert", cert.c_str(), "--key",
             key.c_str(), "--lifetime", "120", static_cast<char*>(nullptr));
      _exit(127);
    }
    // Bounded wait for "READY port=N".
    for (int i = 0; i < 200 && port_ == 0; ++i) {
      std::ifstream in(log);
      std::string line;
      while (std::getline(in, line)) {
        if (absl::StartsWith(line, "READY port=")) (void)absl::SimpleAtoi(line.substr(11), &port_);
      }
      if (port_ == 0) absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_NE(port_, 0) << "TLS stand-in did not start";
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  HttpResponse Get(TlsOptions tls, const std::string& host = "127.0.0.1") {
    CurlTransportOptions o;
    o.tls = std::move(tls);
    auto t = GetParam() == "framed" ? MakeFramedTransport(o) : MakeCurlTransport(o);
    HttpRequest r;
    r.method = "GET";
    r.url = absl::StrCat("https://", host, ":", port_, "/");
    r.timeout = absl::Seconds(10);
    return t->SendSync(r);
  }

  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST(TlsOptions, VerificationIsOnByDefault) {
  EXPECT_TRUE(TlsOptions{}.verify);
  EXPECT_TRUE(CurlTransportOptions{}.tls.verify);
  EXPECT_TRUE(CurlTransportOptions{}.tls.ca_file.empty());
}

TEST_P(TlsTest, TheRightCaFileIsAccepted) {
  TlsOptions tls;
  tls.ca_file = dir_ + "/ca.pem";
  HttpResponse r = Get(tls);
  EXPECT_EQ(r.transport_error, "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
}

TEST_P(TlsTest, AnotherCaIsRefusedWithATlsError) {
  TlsOptions tls;
  tls.ca_file = dir_ + "/other-ca.pem";
  HttpResponse r = Get(tls);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StartsWith(r.transport_error, "tls: ")) << r.transport_error;
}

TEST_P(TlsTest, TheSystemStoreDoesNotTrustTheTestCa) {
  HttpResponse r = Get(TlsOptions{});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StartsWith(r.transport_error, "tls: ")) << r.transport_error;
}

TEST_P(TlsTest, HostNameMustMatchTheCertificate) {
  // Right CA, but the certificate names only IP 127.0.0.1, not "localhost".
  TlsOptions tls;
  tls.ca_file = dir_ + "/ca.pem";
  HttpResponse r = Get(tls, "localhost");
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StartsWith(r.transport_error, "tls: ")) << r.transport_error;
}

TEST_P(TlsTest, MissingCaFileIsATlsError) {
  TlsOptions tls;
  tls.ca_file = dir_ + "/does-not-exist.pem";
  HttpResponse r = Get(tls);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StartsWith(r.transport_error, "tls: ")) << r.transport_error;
}

TEST_P(TlsTest, VerificationOffAcceptsAnyCertificate) {
  TlsOptions tls;
  tls.verify = false;
  HttpResponse r = Get(tls);
  EXPECT_EQ(r.status, 200) << r.transport_error;
}

INSTANTIATE_TEST_SUITE_P(Both, TlsTest, ::testing::Values("curl", "framed"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dynamo_batcher
