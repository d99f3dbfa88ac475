// The sidecar's AWS identity paths end to end against a server that really
// verifies SigV4: moto with IAM-like access control on (every DynamoDB call's
// signature is recomputed with botocore from the secret of a known access
// key, session tokens of assumed roles are checked, policies are evaluated).
// Stand-ins for STS (moto's own), the container credentials endpoint and
// IMDSv2 are tests/tools/aws_standins.py. Skipped when no python3 with moto
// and boto3 is installed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

// A python3 that can import moto and boto3, or "".
std::string Python() {
  static const std::string found = [] {
    for (const char* py : {"python3", "/usr/bin/python3"}) {
      const std::string cmd = absl::StrCat(py, " -c 'import moto, boto3' >/dev/null 2>&1");
      if (std::system(cmd.c_str()) == 0) return std::string(py);
    }
    return std::string();
  }();
  return found;
}

std::string Standins() { return SourceDir() + "/tests/tools/aws_standins.py"; }

struct Standin {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port); }
};

absl::StatusOr<Standin> StartStandin(const std::string& dir, const std::string& name,
                                     std::vector<std::string> args) {
  std::vector<std::string> argv = {Python(), "-u", Standins()};
  argv.insert(argv.end(), args.begin(), args.end());
  Standin s;
  s.process = std::make_unique<ChildProcess>(argv, dir + "/" + name + ".log");
  auto log = s.process->WaitForLog("READY port=", absl::Seconds(60));
  if (!log.ok()) return absl::UnavailableError(absl::StrCat(name, ": ", s.process->ReadLog()));
  const size_t pos = log->find("READY port=") + 11;
  std::string digits;
  for (size_t i = pos; i < log->size() && isdigit((*log)[i]); ++i) digits += (*log)[i];
  if (!absl::SimpleAtoi(digits, &s.port)) return absl::InternalError("bad READY line");
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string JsonField(const std::string& json, const char* name) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  if (!d.IsObject() || !d.HasMember(name) || !d[name].IsString()) return "";
  return d[name].GetString();
}

class AwsIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Python().empty()) GTEST_SKIP() << "no python3 with moto and boto3";
    dir_ = TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto moto = StartStandin(dir_, "moto", {"moto", "--out", dir_ + "/moto.json"});
    ASSERT_TRUE(moto.ok()) << moto.status();
    moto_ = std::move(*moto);
    const std::string creds = ReadFile(dir_ + "/moto.json");
    key_id_ = JsonField(creds, "access_key_id");
    secret_ = JsonField(creds, "secret_access_key");
    role_arn_ = JsonField(creds, "role_arn");
    ASSERT_FALSE(key_id_.empty());
    ASSERT_FALSE(role_arn_.empty());
  }

  // The sidecar's config; `credentials` is a YAML line or "".
  std::string Config(const std::string& credentials) const {
    return absl::StrCat("dynamodb:\n  region: us-east-1\n  endpoint: ", moto_.url(), "\n",
                        credentials,
                        "tables:\n  - name: events\n    partition_key: {name: pk, type: S}\n"
                        "batching:\n  linger: 5ms\n"
                        "retry:\n  base: 10ms\n  cap: 200ms\n  max_attempts: 5\n");
  }

  // Environment that hides the machine's own AWS settings from the sidecar
  // (and keeps it away from the real link-local IMDS address).
  std::vector<std::string> BaseEnv() const {
    return {"AWS_ACCESS_KEY_ID=",
            "AWS_SECRET_ACCESS_KEY=",
            "AWS_SESSION_TOKEN=",
            "AWS_ROLE_ARN=",
            "AWS_WEB_IDENTITY_TOKEN_FILE=",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
            "AWS_PROFILE=",
            "AWS_SHARED_CREDENTIALS_FILE=" + dir_ + "/none",
            "AWS_CONFIG_FILE=" + dir_ + "/none",
            "HOME=" + dir_,
            "AWS_EC2_METADATA_DISABLED=true"};
  }

  // Puts `n` items through the sidecar (unary Put); returns the results.
  std::vector<v1::WriteResult> PutItems(const Sidecar& sidecar, int n, const std::string& prefix) {
    auto stub = v1::WriteBatcher::NewStub(sidecar.Channel());
    std::vector<v1::WriteResult> out;
    for (int i = 0; i < n; ++i) {
      v1::PutRequest req;
      req.set_table("events");
      req.set_id(static_cast<uint64_t>(i + 1));
      v1::AttributeValue pk;
      pk.set_s(absl::StrCat(prefix, i));
      (*req.mutable_item()->mutable_attributes())["pk"] = pk;
      v1::AttributeValue v;
      v.set_n(absl::StrCat(i));
      (*req.mutable_item()->mutable_attributes())["v"] = v;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::WriteResult r;
      grpc::Status s = stub->Put(&ctx, req, &r);
      EXPECT_TRUE(s.ok()) << s.error_message();
      out.push_back(r);
    }
    return out;
  }

  // Items in "events", read back with the IAM user's keys (verified too).
  std::vector<std::string> Scan() {
    const std::string out_path = dir_ + "/scan.out";
    const std::string cmd =
        absl::StrCat(Python(), " ", Standins(), " scan --endpoint ", moto_.url(), " --creds ", dir_,
                     "/moto.json --table events > ", out_path, " 2>&1");
    EXPECT_EQ(std::system(cmd.c_str()), 0) << ReadFile(out_path);
    std::vector<std::string> items;
    std::ifstream in(out_path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) items.push_back(line);
    }
    return items;
  }

  void ExpectWrittenAndReadBack(const Sidecar& sidecar, const std::string& prefix) {
    auto results = PutItems(sidecar, 5, prefix);
    for (const auto& r : results) {
      EXPECT_EQ(r.outcome(), v1::WRITTEN) << r.error_code() << ": " << r.message();
    }
    int found = 0;
    for (const auto& item : Scan()) {
      if (absl::StrContains(item, "\"" + prefix)) ++found;
    }
    EXPECT_EQ(found, 5);
  }

  std::string dir_;
  Standin moto_;
  std::string key_id_, secret_, role_arn_;
};

TEST_F(AwsIdentityTest, ConfigKeysAreVerifiedAndWritesSucceed) {
  auto sidecar = StartSidecar(dir_,
                              Config(absl::StrCat("  credentials: {access_key_id: ", key_id_,
                                                  ", secret_access_key: \"", secret_, "\"}\n")),
                              BaseEnv());
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ExpectWrittenAndReadBack(*sidecar, "config-");
  EXPECT_THAT(ReadFile(sidecar->process->log_path()), HasSubstr("\"credentials\":\"config\""));
}

TEST_F(AwsIdentityTest, WrongSecretFailsFastWithTheServicesError) {
  auto sidecar = StartSidecar(dir_,
                              Config(absl::StrCat("  credentials: {access_key_id: ", key_id_,
                                                  ", secret_access_key: wrong-secret}\n")),
                              BaseEnv());
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  const absl::Time start = absl::Now();
  auto results = PutItems(*sidecar, 2, "bad-");
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "not retried on and on";
  for (const auto& r : results) {
    EXPECT_EQ(r.outcome(), v1::FAILED);
    EXPECT_EQ(r.attempts(), 1u) << "bad credentials are not retried";
    EXPECT_THAT(r.error_code() + " " + r.message(), HasSubstr("SignatureDoesNotMatch"));
  }
  EXPECT_TRUE(Scan().empty());
  // The secret never reaches the log.
  EXPECT_THAT(ReadFile(sidecar->process->log_path()), ::testing::Not(HasSubstr("wrong-secret")));
}

TEST_F(AwsIdentityTest, UnknownAccessKeyFailsFast) {
  auto sidecar = StartSidecar(
      dir_, Config("  credentials: {access_key_id: AKIAUNKNOWN0000000000, secret_access_key: x}\n"),
      BaseEnv());
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto results = PutItems(*sidecar, 1, "unknown-");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome(), v1::FAILED);
  EXPECT_THAT(results[0].error_code() + " " + results[0].message(),
              HasSubstr("InvalidClientTokenId"));
}

TEST_F(AwsIdentityTest, WebIdentityAssumesTheRoleThroughStsThenWrites) {
  std::ofstream(dir_ + "/jwt") << "eyJhbGciOiJSUzI1NiJ9.test.token\n";
  std::vector<std::string> env = BaseEnv();
  env.push_back("AWS_ROLE_ARN=" + role_arn_);
  env.push_back("AWS_WEB_IDENTITY_TOKEN_FILE=" + dir_ + "/jwt");
  env.push_back("AWS_ROLE_SESSION_NAME=irsa-test");
  env.push_back("AWS_ENDPOINT_URL_STS=" + moto_.url());
  auto sidecar = StartSidecar(dir_, Config(""), env);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_THAT(ReadFile(sidecar->process->log_path()),
              HasSubstr("\"credentials\":\"web_identity\""));
  ExpectWrittenAndReadBack(*sidecar, "irsa-");
  // One unsigned STS call asking for JSON (answered as real STS does, with
  // Expiration in epoch seconds), then signed DynamoDB calls with auth on.
  const std::string moto_log = moto_.process->ReadLog();
  EXPECT_THAT(moto_log, HasSubstr("REQUEST POST / target=- auth=off accept=json"));
  EXPECT_THAT(moto_log, HasSubstr("target=DynamoDB_20120810.BatchWriteItem auth=on"));
}

TEST_F(AwsIdentityTest, ContainerCredentialsEndpointWithTokenFile) {
  auto container = StartStandin(
      dir_, "container",
      {"container", "--creds", dir_ + "/moto.json", "--auth-token", "Bearer pod-identity-token"});
  ASSERT_TRUE(container.ok()) << container.status();
  std::ofstream(dir_ + "/auth-token") << "Bearer pod-identity-token\n";
  std::vector<std::string> env = BaseEnv();
  env.push_back("AWS_CONTAINER_CREDENTIALS_FULL_URI=" + container->url() + "/creds");
  env.push_back("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" + dir_ + "/auth-token");
  auto sidecar = StartSidecar(dir_, Config(""), env);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_THAT(ReadFile(sidecar->process->log_path()), HasSubstr("\"credentials\":\"container\""));
  ExpectWrittenAndReadBack(*sidecar, "container-");
  EXPECT_THAT(container->process->ReadLog(), HasSubstr("GET /creds authorization=ok"));
}

TEST_F(AwsIdentityTest, ImdsV2TokenFlowThenWrites) {
  auto imds = StartStandin(dir_, "imds", {"imds", "--creds", dir_ + "/moto.json"});
  ASSERT_TRUE(imds.ok()) << imds.status();
  std::vector<std::string> env = BaseEnv();
  env.push_back("AWS_EC2_METADATA_DISABLED=false");
  env.push_back("AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds->url());
  auto sidecar = StartSidecar(dir_, Config(""), env);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_THAT(ReadFile(sidecar->process->log_path()), HasSubstr("\"credentials\":\"imds\""));
  ExpectWrittenAndReadBack(*sidecar, "imds-");
  const std::string log = imds->process->ReadLog();
  EXPECT_THAT(log, HasSubstr("PUT /latest/api/token ttl=21600"));
  EXPECT_THAT(log,
              HasSubstr("GET /latest/meta-data/iam/security-credentials/writer-role token=ok"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("token=missing")));
}

TEST_F(AwsIdentityTest, NoCredentialsAnywhereExitsWithAClearError) {
  const std::string config_path = dir_ + "/none.yaml";
  std::ofstream(config_path) << "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n" << Config("");
  ChildProcess p({SidecarBinary(), "--config", config_path}, dir_ + "/none.log", BaseEnv());
  EXPECT_EQ(p.Wait(absl::Seconds(20)), 3);
  const std::string log = p.ReadLog();
  EXPECT_THAT(log, HasSubstr("no AWS credentials found"));
  EXPECT_THAT(log, HasSubstr("imds: disabled"));
}

// A port that was free a moment ago (nothing listens: connections are refused).
int RefusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(AwsIdentityTest, FailingStsNeverDowngradesToAWeakerIdentity) {
  // IRSA is configured but STS refuses connections. A default profile with
  // working keys (the weaker identity, like a node role) is right there:
  // the sidecar must keep to web identity, stay NOT_SERVING and write
  // nothing, rather than start as the profile.
  std::ofstream(dir_ + "/jwt") << "eyJhbGciOiJSUzI1NiJ9.test.token\n";
  std::ofstream(dir_ + "/credentials") << "[default]\naws_access_key_id = " << key_id_
                                       << "\naws_secret_access_key = " << secret_ << "\n";
  std::vector<std::string> env = BaseEnv();
  env.push_back("AWS_SHARED_CREDENTIALS_FILE=" + dir_ + "/credentials");
  env.push_back("AWS_ROLE_ARN=" + role_arn_);
  env.push_back("AWS_WEB_IDENTITY_TOKEN_FILE=" + dir_ + "/jwt");
  env.push_back(absl::StrCat("AWS_ENDPOINT_URL_STS=http://127.0.0.1:", RefusedPort()));
  std::string config = Config("");
  config.replace(config.find("max_attempts: 5\n"), 16, "max_attempts: 5\n  op_deadline: 3s\n");
  auto sidecar = StartSidecar(dir_, config, env);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  const std::string log = ReadFile(sidecar->process->log_path());
  EXPECT_THAT(log, HasSubstr("\"credentials\":\"web_identity\""));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("profile:default")));
  EXPECT_THAT(log, HasSubstr("no fallback to another provider"));
  auto results = PutItems(*sidecar, 1, "downgrade-");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome(), v1::FAILED);
  EXPECT_THAT(results[0].message(), HasSubstr("CredentialsUnavailable"));
  long status = 0;
  auto ready =
      HttpGet(absl::StrCat("http://127.0.0.1:", sidecar->metrics_port, "/readyz"), &status);
  EXPECT_NE(status, 200) << (ready.ok() ? *ready : ready.status().ToString());
  EXPECT_TRUE(Scan().empty()) << "nothing written with the profile's keys";
  EXPECT_THAT(moto_.process->ReadLog(), ::testing::Not(HasSubstr("BatchWriteItem auth=on")));
}

TEST_F(AwsIdentityTest, InvalidContainerCredentialsUriStopsStartUp) {
  // Formerly skipped (and the chain moved on); a name that merely starts
  // with "127." is not loopback.
  std::ofstream(dir_ + "/credentials") << "[default]\naws_access_key_id = " << key_id_
                                       << "\naws_secret_access_key = " << secret_ << "\n";
  const std::string config_path = dir_ + "/c.yaml";
  std::ofstream(config_path) << "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n" << Config("");
  std::vector<std::string> env = BaseEnv();
  env.push_back("AWS_SHARED_CREDENTIALS_FILE=" + dir_ + "/credentials");
  env.push_back("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.example.invalid:1/creds");
  ChildProcess p({SidecarBinary(), "--config", config_path}, dir_ + "/c.log", env);
  EXPECT_EQ(p.Wait(absl::Seconds(20)), 3);
  const std::string log = p.ReadLog();
  EXPECT_THAT(log, HasSubstr("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
  EXPECT_THAT(log, HasSubstr("127.example.invalid"));
}

}  // namespace
}  // namespace dynamo_batcher::testing
