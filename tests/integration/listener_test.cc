// The locked-down listener: Unix socket with file mode, TLS and mTLS on the
// gRPC port, stream limits. Real sidecar + dynalite on loopback; certificates
// made with the openssl CLI at test time.

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

std::string Base(const std::string& endpoint) { return SidecarConfig(endpoint); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

grpc::Status PutOne(std::shared_ptr<grpc::Channel> channel, const std::string& pk,
                    v1::WriteResult* result) {
  auto stub = v1::WriteBatcher::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::PutRequest req;
  req.set_table("events");
  (*req.mutable_item()->mutable_attributes())["pk"].set_s(pk);
  return stub->Put(&ctx, req, result);
}

class Listener : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
  }
  std::string dir_;
  Dynalite dynalite_;
};

TEST_F(Listener, UnixSocketWithFileMode) {
  const std::string sock = dir_ + "/grpc.sock";
  auto sidecar =
      StartSidecar(dir_, absl::StrCat("listen: unix://", sock, "\n", Base(dynalite_.endpoint()),
                                      "server:\n  unix_socket_mode: \"0600\"\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  v1::WriteResult r;
  auto channel = grpc::CreateChannel("unix://" + sock, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(PutOne(channel, "via-socket", &r).ok());
  EXPECT_EQ(r.outcome(), v1::WRITTEN) << r.message();
}

TEST_F(Listener, MutualTlsAcceptsOnlyClientsWithACertificateFromTheClientCa) {
  const std::string d = dir_;
  // CA, server cert for 127.0.0.1, client cert from the same CA, and a
  // client cert from an unrelated CA.
  std::string cmd =
      absl::StrCat("cd '", d, "' && set -e && ",
                   "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                   "-subj /CN=test-ca 2>/dev/null && ",
                   "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem "
                   "-days 2 -subj /CN=other-ca 2>/dev/null && ",
                   "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "
                   "/CN=127.0.0.1 2>/dev/null && ",
                   "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && ",
                   "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
                   "server.pem -days 2 -extfile san.ext 2>/dev/null && ",
                   "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "
                   "/CN=client 2>/dev/null && ",
                   "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
                   "client.pem -days 2 2>/dev/null && ",
                   "openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr -subj "
                   "/CN=rogue 2>/dev/null && ",
                   "openssl x509 -req -in rogue.csr -CA other.pem -CAkey other.key -CAcreateserial "
                   "-out rogue.pem -days 2 2>/dev/null");
  ASSERT_EQ(system(cmd.c_str()), 0) << "openssl failed";
  auto sidecar =
      StartSidecar(dir_, absl::StrCat(Base(dynalite_.endpoint()), "server:\n  tls:\n",
                                      "    cert_file: ", d, "/server.pem\n", "    key_file: ", d,
                                      "/server.key\n", "    client_ca_file: ", d, "/ca.pem\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();

  auto channel_with = [&](const std::string& key, const std::string& cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Slurp(d + "/ca.pem");
    if (!key.empty()) {
      o.pem_private_key = Slurp(d + "/" + key);
      o.pem_cert_chain = Slurp(d + "/" + cert);
    }
    return grpc::CreateChannel(sidecar->target(), grpc::SslCredentials(o));
  };
  v1::WriteResult r;
  grpc::Status ok = PutOne(channel_with("client.key", "client.pem"), "mtls", &r);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(r.outcome(), v1::WRITTEN);
  EXPECT_FALSE(PutOne(channel_with("", ""), "no-client-cert", &r).ok());
  EXPECT_FALSE(PutOne(channel_with("rogue.key", "rogue.pem"), "rogue", &r).ok());
  EXPECT_FALSE(PutOne(grpc::CreateChannel(sidecar->target(), grpc::InsecureChannelCredentials()),
                      "plaintext", &r)
                   .ok());
  auto items = ScanTable(dynalite_.endpoint(), "events");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 1u);
}

TEST_F(Listener, StreamStopsBeingReadAtItsInflightCap) {
  // A slow DynamoDB (2 s per call) keeps the first message's ops unanswered.
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), "{}");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(
      dir_, absl::StrCat(Base(proxy->endpoint()), "server:\n  max_inflight_ops_per_stream: 100\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"latency_ms": 2000})").ok());
  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());
  grpc::ClientContext ctx;
  auto stream = stub->Write(&ctx);
  for (int m = 0; m < 10; ++m) {
    v1::WriteRequest req;
    for (int i = 0; i < 100; ++i) {
      v1::WriteOp* op = req.add_ops();
      op->set_id(m * 100 + i + 1);
      op->set_table("events");
      (*op->mutable_put()->mutable_attributes())["pk"].set_s(absl::StrCat("k", m * 100 + i));
    }
    ASSERT_TRUE(stream->Write(req));  // buffered by gRPC flow control
  }
  stream->WritesDone();
  absl::SleepFor(absl::Milliseconds(500));
  auto m1 = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(m1.ok());
  // One message read, then paused until its ops are answered.
  EXPECT_EQ(MetricSum(*m1, "dynamo_batcher_ops_received_total"), 100);
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"latency_ms": 0})").ok());
  // Answers come, the stream resumes, and everything arrives.
  int results = 0;
  v1::WriteResponse resp;
  while (stream->Read(&resp)) results += resp.results_size();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(results, 1000);
}

TEST_F(Listener, StreamsBeyondMaxStreamsAreRefused) {
  auto sidecar =
      StartSidecar(dir_, absl::StrCat(Base(dynalite_.endpoint()), "server:\n  max_streams: 2\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());
  grpc::ClientContext c1, c2, c3;
  auto s1 = stub->Write(&c1);
  auto s2 = stub->Write(&c2);
  absl::SleepFor(absl::Milliseconds(200));
  auto s3 = stub->Write(&c3);
  v1::WriteResponse resp;
  EXPECT_FALSE(s3->Read(&resp));
  grpc::Status st = s3->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("max_streams"));
  for (auto* s : {s1.get(), s2.get()}) {
    s->WritesDone();
    while (s->Read(&resp)) {
    }
    EXPECT_TRUE(s->Finish().ok());
  }
}

TEST_F(Listener, RemoteListenerWithoutTlsIsRefusedUnlessOptedInThenWarned) {
  // 192.0.2.1 (TEST-NET-1) is not loopback and not an address of this host,
  // so nothing ever listens beyond loopback in this test.
  const std::string refused_path = dir_ + "/refused.yaml";
  std::ofstream(refused_path) << "listen: 192.0.2.1:0\nmetrics_listen: 127.0.0.1:0\n"
                              << Base(dynalite_.endpoint());
  ChildProcess refused({SidecarBinary(), "--config", refused_path}, dir_ + "/refused.log",
                       {"DYNAMO_BATCHER_LISTEN="});
  EXPECT_EQ(refused.Wait(absl::Seconds(20)), 2);
  EXPECT_THAT(refused.ReadLog(), HasSubstr("refused.yaml: listen: \"192.0.2.1:0\""));
  EXPECT_THAT(refused.ReadLog(), HasSubstr("server.allow_insecure_remote"));

  const std::string opted_path = dir_ + "/opted.yaml";
  std::ofstream(opted_path) << "listen: 192.0.2.1:0\nmetrics_listen: 127.0.0.1:0\n"
                            << Base(dynalite_.endpoint())
                            << "server:\n  allow_insecure_remote: true\n";
  ChildProcess opted({SidecarBinary(), "--config", opted_path}, dir_ + "/opted.log",
                     {"DYNAMO_BATCHER_LISTEN="});
  auto warned = opted.WaitForLog("gRPC listens beyond loopback without TLS", absl::Seconds(20));
  EXPECT_TRUE(warned.ok()) << opted.ReadLog();
  opted.Wait(absl::Seconds(20));  // binding 192.0.2.1 then fails: exit 3
}

}  // namespace
}  // namespace dynamo_batcher::testing
