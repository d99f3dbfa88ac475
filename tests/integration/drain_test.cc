// Graceful drain (docs/guarantees.md, G7) and health, against real processes on
// loopback: dynalite, the fault proxy, the sidecar binary.
//
// Drain semantics checked here (see WriteBatcherService::BeginDrain): on
// SIGTERM the sidecar stops reading open streams; every op it did read gets
// exactly one result, the answered ops of a stream are whole messages, a
// prefix of what the client sent; the stream then ends with UNAVAILABLE, so
// the client knows that the ops without a result were never read. Buffered
// ops are flushed and retried until drain_timeout; what is left then is
// FAILED "ShuttingDown" and dead-lettered. Exit 0 when nothing failed.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

constexpr char kServiceName[] = "dynamobatcher.v1.WriteBatcher";
constexpr int kServing = 1;
constexpr int kNotServing = 2;

// grpc.health.v1.Health/Check without generated stubs: the request is
// {1: service} and the answer {1: status}.
absl::StatusOr<int> HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& service) {
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::GenericStub stub(channel);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("health Check(\"", service, "\"): ", s.error_code(), " ", s.error_message()));
  }
  std::vector<grpc::Slice> slices;
  if (!resp.Dump(&slices).ok()) return absl::InternalError("bad health answer");
  std::string body;
  for (const auto& sl : slices) body.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (body.empty()) return 0;  // UNKNOWN
  if (body.size() != 2 || body[0] != 0x08) return absl::InternalError("bad health answer");
  return static_cast<int>(body[1]);
}

long ReadyzStatus(const Sidecar& sidecar) {
  long status = 0;
  auto r = HttpGet(absl::StrCat("http://127.0.0.1:", sidecar.metrics_port, "/readyz"), &status);
  return r.ok() ? status : -1;
}

// Polls until `pred` holds or `timeout` passes.
template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(25));
  }
  return pred();
}

// A loopback TCP port nobody listens on (bound, then closed).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::string Config(const std::string& endpoint, const std::string& extra) {
  return SidecarConfig(endpoint).CallTimeout("10s").Append(extra);
}

v1::AttributeValue S(const std::string& s) {
  v1::AttributeValue v;
  v.set_s(s);
  return v;
}

// One Write stream pushing messages of unique-key puts as fast as gRPC flow
// control lets it (or paced), recording what it sent and what came back.
class StreamClient {
 public:
  StreamClient(int index, std::shared_ptr<grpc::Channel> channel, int ops_per_message,
               int max_messages)
      : index_(index),
        channel_(std::move(channel)),
        ops_per_message_(ops_per_message),
        max_messages_(max_messages) {}

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // Stops sending and half-closes (for tests that end the load themselves).
  void Stop() { stop_ = true; }

  static std::string Key(uint64_t id) { return absl::StrCat("k", id); }

  int64_t answered() const { return answered_.load(); }
  const grpc::Status& status() const { return status_; }
  const std::vector<std::vector<uint64_t>>& messages() const { return messages_; }
  const std::map<uint64_t, int>& counts() const { return counts_; }
  const std::map<uint64_t, v1::WriteResult>& results() const { return results_; }
  int index() const { return index_; }

  // Every answered op was sent, none twice, and the answered ops are whole
  // messages forming a prefix of those sent. Returns the prefix length.
  size_t CheckAnsweredPrefix() const {
    std::set<uint64_t> sent;
    for (const auto& m : messages_) sent.insert(m.begin(), m.end());
    for (const auto& [id, n] : counts_) {
      EXPECT_EQ(n, 1) << "stream " << index_ << ": op " << id << " got " << n << " results";
      EXPECT_TRUE(sent.count(id)) << "stream " << index_ << ": result for unknown op " << id;
    }
    size_t k = 0;
    while (k < messages_.size()) {
      bool all = true;
      for (uint64_t id : messages_[k]) all = all && counts_.count(id) > 0;
      if (!all) break;
      ++k;
    }
    size_t unanswered_in_prefix_tail = 0;
    for (size_t m = k; m < messages_.size(); ++m) {
      for (uint64_t id : messages_[m]) unanswered_in_prefix_tail += counts_.count(id);
    }
    EXPECT_EQ(unanswered_in_prefix_tail, 0u)
        << "stream " << index_ << ": message " << k
        << " is partly or not answered, yet later messages have results (" << messages_.size()
        << " messages sent)";
    return k;
  }

 private:
  void Run() {
    auto stub = v1::WriteBatcher::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    auto stream = stub->Write(&ctx);
    std::thread reader([&] {
      v1::WriteResponse resp;
      while (stream->Read(&resp)) {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& r : resp.results()) {
          ++counts_[r.id()];
          results_[r.id()] = r;
        }
        answered_ += resp.results_size();
      }
    });
    for (int m = 0; m < max_messages_ && !stop_.load(); ++m) {
      v1::WriteRequest req;
      std::vector<uint64_t> ids;
      for (int j = 0; j < ops_per_message_; ++j) {
        const uint64_t id =
            (static_cast<uint64_t>(index_) + 1) * 1000000000ull + m * ops_per_message_ + j;
        v1::WriteOp* op = req.add_ops();
        op->set_id(id);
        op->set_table("events");
        auto& attrs = *op->mutable_put()->mutable_attributes();
        attrs["pk"] = S(Key(id));
        attrs["v"] = S(absl::StrCat("value-", id));
        ids.push_back(id);
      }
      messages_.push_back(std::move(ids));
      if (!stream->Write(req)) break;
    }
    stream->WritesDone();
    reader.join();
    status_ = stream->Finish();
  }

  const int index_;
  std::shared_ptr<grpc::Channel> channel_;
  const int ops_per_message_;
  const int max_messages_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::atomic<int64_t> answered_{0};
  std::mutex mu_;
  std::vector<std::vector<uint64_t>> messages_;  // writer thread; read after Join
  std::map<uint64_t, int> counts_;               // by mu_
  std::map<uint64_t, v1::WriteResult> results_;  // by mu_
  grpc::Status status_;
};

// Waits for exit; returns {exit code, seconds since `since`}.
std::pair<int, double> WaitExit(ChildProcess& p, absl::Time since, absl::Duration timeout) {
  const int rc = p.Wait(timeout);
  return {rc, absl::ToDoubleSeconds(absl::Now() - since)};
}

std::set<std::string> TableKeys(const std::string& endpoint) {
  std::set<std::string> keys;
  auto items = ScanTable(endpoint, "events");
  EXPECT_TRUE(items.ok()) << items.status();
  if (!items.ok()) return keys;
  for (const auto& line : *items) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("pk")) {
      ADD_FAILURE() << "bad item " << line;
      continue;
    }
    keys.insert(d["pk"]["S"].GetString());
  }
  return keys;
}

class Drain : public ::testing::Test {
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

TEST_F(Drain, SigtermUnderFullLoadAnswersEveryReadOpExactlyOnceAndExitsZero) {
  auto sidecar =
      StartSidecar(dir_, Config(dynalite_.endpoint(), absl::StrCat(R"(
drain_timeout: 10s
server:
  max_inflight_ops_per_stream: 2000
dead_letter: {path: )",
                                                                   dir_, "/dead.jsonl}\n")));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(*sidecar) == 200; }, absl::Seconds(10)));

  constexpr int kStreams = 4;
  std::vector<std::unique_ptr<StreamClient>> clients;
  for (int s = 0; s < kStreams; ++s) {
    clients.push_back(std::make_unique<StreamClient>(s, sidecar->Channel(), 50, 20000));
    clients.back()->Start();
  }
  // Full speed until every stream has had results back, then SIGTERM.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto& c : clients) {
          if (c->answered() < 500) return false;
        }
        return true;
      },
      absl::Seconds(20)))
      << "no load reached the table";
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time sigterm = absl::Now();
  sidecar->process->Signal(SIGTERM);
  for (auto& c : clients) c->Join();
  const double streams_done = absl::ToDoubleSeconds(absl::Now() - sigterm);
  auto [rc, seconds] = WaitExit(*sidecar->process, sigterm, absl::Seconds(20));
  EXPECT_EQ(rc, 0) << sidecar->process->ReadLog().substr(0, 4000);
  EXPECT_LT(seconds, 10 + 2.5) << "exit must come within drain_timeout + a small margin";

  std::set<std::string> written_keys;
  size_t answered = 0, sent = 0;
  for (auto& c : clients) {
    const auto code = c->status().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::OK)
        << "stream " << c->index() << ": " << code << " " << c->status().error_message();
    if (code == grpc::StatusCode::UNAVAILABLE) {
      EXPECT_THAT(c->status().error_message(), HasSubstr("draining"));
    }
    const size_t prefix = c->CheckAnsweredPrefix();
    EXPECT_GT(prefix, 0u);
    for (const auto& [id, r] : c->results()) {
      EXPECT_TRUE(r.outcome() == v1::WRITTEN)
          << "op " << id << ": " << v1::Outcome_Name(r.outcome()) << " " << r.error_code() << " "
          << r.message();
      if (r.outcome() == v1::WRITTEN) written_keys.insert(StreamClient::Key(id));
    }
    answered += c->results().size();
    for (const auto& m : c->messages()) sent += m.size();
  }
  // The table holds exactly the WRITTEN ops: nothing read was lost, nothing
  // unread was written.
  const std::set<std::string> table = TableKeys(dynalite_.endpoint());
  EXPECT_EQ(table.size(), written_keys.size());
  EXPECT_TRUE(table == written_keys) << "table and WRITTEN results differ";
  std::ifstream dead(dir_ + "/dead.jsonl");
  std::string line;
  EXPECT_FALSE(std::getline(dead, line)) << "dead letter after a clean drain: " << line;
  RecordProperty("ops_sent", static_cast<int>(sent));
  RecordProperty("ops_answered", static_cast<int>(answered));
  std::cout << "sent " << sent << " ops, " << answered << " answered (all WRITTEN); streams done "
            << streams_done << " s and exit " << seconds << " s after SIGTERM\n";
}

TEST_F(Drain, SlowDynamoDbLeftoversFailShuttingDownAreDeadLetteredAndExitIsOne) {
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), "{}");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const std::string dead_path = dir_ + "/dead.jsonl";
  auto sidecar = StartSidecar(dir_, Config(proxy->endpoint(), absl::StrCat(R"(
drain_timeout: 1s
server:
  max_inflight_ops_per_stream: 500
dead_letter: {path: )",
                                                                           dead_path, "}\n")));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(*sidecar) == 200; }, absl::Seconds(10)));
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"latency_ms": 3000})").ok());

  constexpr int kStreams = 4;
  std::vector<std::unique_ptr<StreamClient>> clients;
  for (int s = 0; s < kStreams; ++s) {
    clients.push_back(std::make_unique<StreamClient>(s, sidecar->Channel(), 50, 20000));
    clients.back()->Start();
  }
  // Each stream fills its in-flight cap; batches sit in the slow proxy.
  absl::SleepFor(absl::Milliseconds(1500));
  const absl::Time sigterm = absl::Now();
  sidecar->process->Signal(SIGTERM);
  for (auto& c : clients) c->Join();
  auto [rc, seconds] = WaitExit(*sidecar->process, sigterm, absl::Seconds(30));
  EXPECT_EQ(rc, 1) << "writes were lost, so the exit code must say so";
  // drain_timeout 1s, then the calls already in the proxy (3 s latency) come back.
  EXPECT_LT(seconds, 1 + 3 + 2.5);

  std::set<uint64_t> failed_ids;
  std::set<std::string> written_keys, failed_keys;
  size_t answered = 0;
  for (auto& c : clients) {
    const auto code = c->status().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::OK)
        << "stream " << c->index() << ": " << code << " " << c->status().error_message();
    EXPECT_GT(c->CheckAnsweredPrefix(), 0u) << "stream " << c->index() << " read nothing";
    for (const auto& [id, r] : c->results()) {
      ++answered;
      if (r.outcome() == v1::FAILED) {
        EXPECT_EQ(r.error_code(), "ShuttingDown") << r.message();
        EXPECT_THAT(r.message(), HasSubstr("shut down"));
        failed_ids.insert(id);
        failed_keys.insert(StreamClient::Key(id));
      } else {
        EXPECT_EQ(r.outcome(), v1::WRITTEN)
            << "op " << id << ": " << v1::Outcome_Name(r.outcome()) << " " << r.error_code();
        written_keys.insert(StreamClient::Key(id));
      }
    }
  }
  EXPECT_GT(failed_ids.size(), 0u) << "drain_timeout should have left ops unsent";
  // Every FAILED op is in the dead-letter file, once, with what replay needs.
  std::ifstream dead(dead_path);
  ASSERT_TRUE(dead.good()) << dead_path;
  std::string line;
  std::map<uint64_t, int> dead_ids;
  while (std::getline(dead, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    ASSERT_FALSE(d.HasParseError()) << line;
    ASSERT_TRUE(d.IsObject() && d.HasMember("id") && d["id"].IsUint64()) << line;
    EXPECT_STREQ(d["table"].GetString(), "events") << line;
    EXPECT_STREQ(d["op"].GetString(), "put") << line;
    EXPECT_STREQ(d["error_code"].GetString(), "ShuttingDown") << line;
    ASSERT_TRUE(d.HasMember("item") && d["item"].IsObject()) << line;
    const uint64_t id = d["id"].GetUint64();
    EXPECT_EQ(std::string(d["item"]["pk"]["S"].GetString()), StreamClient::Key(id)) << line;
    ++dead_ids[id];
  }
  std::set<uint64_t> dead_set;
  for (const auto& [id, n] : dead_ids) {
    EXPECT_EQ(n, 1) << "op " << id << " dead-lettered " << n << " times";
    dead_set.insert(id);
  }
  EXPECT_EQ(dead_set.size(), failed_ids.size());
  EXPECT_TRUE(dead_set == failed_ids) << "dead-letter file and FAILED results differ";
  // WRITTEN ops are in the table; ops failed unsent are not.
  const std::set<std::string> table = TableKeys(dynalite_.endpoint());
  for (const auto& k : written_keys) EXPECT_TRUE(table.count(k)) << k << " WRITTEN, not in table";
  for (const auto& k : failed_keys) EXPECT_FALSE(table.count(k)) << k << " FAILED, yet in table";
  std::cout << answered << " ops answered: " << written_keys.size() << " WRITTEN, "
            << failed_ids.size() << " FAILED ShuttingDown (all dead-lettered); exit " << rc
            << " after " << seconds << " s\n";
}

TEST_F(Drain, HealthTurnsNotServingAndNewCallsAreRefusedWhileDraining) {
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), "{}");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(dir_, Config(proxy->endpoint(), "drain_timeout: 20s\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto channel = sidecar->Channel();
  ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(*sidecar) == 200; }, absl::Seconds(10)));
  for (const std::string service : {"", kServiceName}) {
    auto h = HealthStatus(channel, service);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(*h, kServing) << "\"" << service << "\"";
  }
  // One write held 3 s in the proxy keeps the drain going.
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"latency_ms": 3000})").ok());
  auto stub = v1::WriteBatcher::NewStub(channel);
  v1::WriteResult slow_result;
  grpc::Status slow_status;
  std::thread slow([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::PutRequest req;
    req.set_id(7);
    req.set_table("events");
    (*req.mutable_item()->mutable_attributes())["pk"] = S("slow");
    slow_status = stub->Put(&ctx, req, &slow_result);
  });
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time sigterm = absl::Now();
  sidecar->process->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(*sidecar) == 503; }, absl::Seconds(1)))
      << "/readyz still " << ReadyzStatus(*sidecar);
  for (const std::string service : {"", kServiceName}) {
    auto h = HealthStatus(channel, service);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(*h, kNotServing) << "\"" << service << "\"";
  }
  long status = 0;
  ASSERT_TRUE(
      HttpGet(absl::StrCat("http://127.0.0.1:", sidecar->metrics_port, "/healthz"), &status).ok());
  EXPECT_EQ(status, 200) << "liveness stays up while draining";
  {
    grpc::ClientContext ctx;
    auto stream = stub->Write(&ctx);
    v1::WriteRequest req;
    v1::WriteOp* op = req.add_ops();
    op->set_id(1);
    op->set_table("events");
    (*op->mutable_put()->mutable_attributes())["pk"] = S("late");
    stream->Write(req);
    stream->WritesDone();
    v1::WriteResponse resp;
    EXPECT_FALSE(stream->Read(&resp)) << "a refused stream answers nothing";
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("draining"));
  }
  {
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.set_id(2);
    req.set_table("events");
    (*req.mutable_item()->mutable_attributes())["pk"] = S("late2");
    v1::WriteResult r;
    grpc::Status s = stub->Put(&ctx, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  EXPECT_TRUE(sidecar->process->running()) << "still draining the slow write";
  slow.join();
  ASSERT_TRUE(slow_status.ok()) << slow_status.error_message();
  EXPECT_EQ(slow_result.outcome(), v1::WRITTEN) << slow_result.error_code();
  auto [rc, seconds] = WaitExit(*sidecar->process, sigterm, absl::Seconds(20));
  EXPECT_EQ(rc, 0) << "the slow write landed: nothing lost";
  EXPECT_LT(seconds, 3 + 2.5);
  const std::set<std::string> table = TableKeys(dynalite_.endpoint());
  EXPECT_TRUE(table.count("slow"));
  EXPECT_FALSE(table.count("late"));
  EXPECT_FALSE(table.count("late2"));
}

TEST_F(Drain, IdleOpenStreamFinishesUnavailableAtOnce) {
  auto sidecar = StartSidecar(dir_, Config(dynalite_.endpoint(), "drain_timeout: 20s\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto stub = v1::WriteBatcher::NewStub(sidecar->Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->Write(&ctx);
  v1::WriteRequest req;
  for (int i = 0; i < 10; ++i) {
    v1::WriteOp* op = req.add_ops();
    op->set_id(i);
    op->set_table("events");
    (*op->mutable_put()->mutable_attributes())["pk"] = S(absl::StrCat("idle", i));
  }
  ASSERT_TRUE(stream->Write(req));
  int results = 0;
  v1::WriteResponse resp;
  while (results < 10 && stream->Read(&resp)) results += resp.results_size();
  ASSERT_EQ(results, 10);
  // The stream stays open, the client sends nothing more.
  const absl::Time sigterm = absl::Now();
  sidecar->process->Signal(SIGTERM);
  EXPECT_FALSE(stream->Read(&resp));
  const double finished = absl::ToDoubleSeconds(absl::Now() - sigterm);
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_LT(finished, 1.0) << "an idle stream must not wait for the shutdown grace";
  auto [rc, seconds] = WaitExit(*sidecar->process, sigterm, absl::Seconds(20));
  EXPECT_EQ(rc, 0);
  EXPECT_LT(seconds, 1.5);
}

TEST_F(Drain, SecondSignalForcesExitAtOnce) {
  auto proxy = StartFaultProxy(dir_, dynalite_.endpoint(), "{}");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto sidecar = StartSidecar(dir_, Config(proxy->endpoint(), "drain_timeout: 30s\n"));
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(*sidecar) == 200; }, absl::Seconds(10)));
  ASSERT_TRUE(ConfigureProxy(*proxy, R"({"latency_ms": 20000})").ok());
  std::vector<std::unique_ptr<StreamClient>> clients;
  for (int s = 0; s < 2; ++s) {
    clients.push_back(std::make_unique<StreamClient>(s, sidecar->Channel(), 50, 40));
    clients.back()->Start();
  }
  absl::SleepFor(absl::Milliseconds(500));
  sidecar->process->Signal(SIGTERM);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(sidecar->process->running()) << "the first signal only starts the drain";
  const absl::Time second = absl::Now();
  sidecar->process->Signal(SIGTERM);
  auto [rc, seconds] = WaitExit(*sidecar->process, second, absl::Seconds(5));
  EXPECT_EQ(rc, 1);
  EXPECT_LT(seconds, 1.0);
  EXPECT_THAT(sidecar->process->ReadLog(), HasSubstr("second signal"));
  for (auto& c : clients) c->Join();  // the dead server ends the streams
  for (auto& c : clients) {
    EXPECT_EQ(c->status().error_code(), grpc::StatusCode::UNAVAILABLE)
        << c->status().error_message();
  }
}

TEST_F(Drain, NotServingUntilDynamoDbIsReachableThenServing) {
  ASSERT_TRUE(CreateTable(dynalite_.endpoint(), "events", "pk:S").ok());
  const int port = ClosedPort();
  ASSERT_GT(port, 0);
  const std::string endpoint = absl::StrCat("http://127.0.0.1:", port);
  // Key schema in the config and no create_tables: start-up needs no call.
  std::string config =
      absl::StrReplaceAll(Config(endpoint, ""), {{"create_tables: true", "create_tables: false"}});
  auto sidecar = StartSidecar(dir_, config);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto channel = sidecar->Channel();
  for (int i = 0; i < 4; ++i) {  // stays not ready (about 1 s)
    EXPECT_EQ(ReadyzStatus(*sidecar), 503);
    for (const std::string service : {"", kServiceName}) {
      auto h = HealthStatus(channel, service);
      ASSERT_TRUE(h.ok()) << h.status();
      EXPECT_EQ(*h, kNotServing) << "\"" << service << "\"";
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  long status = 0;
  ASSERT_TRUE(
      HttpGet(absl::StrCat("http://127.0.0.1:", sidecar->metrics_port, "/healthz"), &status).ok());
  EXPECT_EQ(status, 200) << "live while not ready";
  EXPECT_THAT(sidecar->process->ReadLog(), HasSubstr("DynamoDB not reachable yet"));
  auto metrics = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(MetricSum(*metrics, "dynamo_batcher_ready"), 0);

  // DynamoDB (the proxy in front of dynalite) comes up on that port.
  ChildProcess proxy({"node", SourceDir() + "/tests/tools/fault_proxy.js", "--port",
                      std::to_string(port), "--target", dynalite_.endpoint()},
                     dir_ + "/late-proxy.log");
  ASSERT_TRUE(proxy.WaitForLog("READY port=", absl::Seconds(20)).ok()) << proxy.ReadLog();
  const absl::Time up = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return ReadyzStatus(*sidecar) == 200; }, absl::Seconds(15)))
      << "not ready 15 s after DynamoDB came up";
  const double became_ready = absl::ToDoubleSeconds(absl::Now() - up);
  for (const std::string service : {"", kServiceName}) {
    auto h = HealthStatus(channel, service);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(*h, kServing) << "\"" << service << "\"";
  }
  metrics = ScrapeMetrics(*sidecar);
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(MetricSum(*metrics, "dynamo_batcher_ready"), 1);
  auto stub = v1::WriteBatcher::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::PutRequest req;
  req.set_id(1);
  req.set_table("events");
  (*req.mutable_item()->mutable_attributes())["pk"] = S("after");
  v1::WriteResult r;
  ASSERT_TRUE(stub->Put(&ctx, req, &r).ok());
  EXPECT_EQ(r.outcome(), v1::WRITTEN) << r.error_code() << " " << r.message();
  std::cout << "ready " << became_ready << " s after DynamoDB came up\n";
  sidecar->process->Signal(SIGTERM);
  EXPECT_EQ(sidecar->process->Wait(absl::Seconds(10)), 0);
  proxy.Signal(SIGTERM);
  proxy.Wait(absl::Seconds(5));
}

}  // namespace
}  // namespace dynamo_batcher::testing
