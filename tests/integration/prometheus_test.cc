// The sidecar's /metrics as a real Prometheus (Debian's `prometheus`) sees
// it, and `promtool check metrics` on a real scrape. Loopback only; every
// wait is bounded.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

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

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";
constexpr char kJob[] = "dynamo-batcher";

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Runs `cmd` with a shell; returns {exit status, stdout+stderr}.
std::pair<int, std::string> Shell(const std::string& cmd) {
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int rc = pclose(f);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::string Config(const std::string& endpoint) {
  return SidecarConfig(endpoint).Table("events", "pk").Table("users", "id");
}

v1::AttributeValue S(const std::string& s) {
  v1::AttributeValue v;
  v.set_s(s);
  return v;
}

// Puts at a steady pace on one stream (ops_per_second), counting WRITTEN
// results as they come back.
class PacedLoad {
 public:
  PacedLoad(std::shared_ptr<grpc::Channel> channel, int ops_per_second)
      : channel_(std::move(channel)), ops_per_second_(ops_per_second) {}
  ~PacedLoad() { StopAndJoin(); }

  void Start() {
    start_ = absl::Now();
    thread_ = std::thread([this] { Run(); });
  }
  void StopAndJoin() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t written() const { return written_.load(); }
  int64_t other() const { return other_.load(); }
  absl::Time start() const { return start_; }
  const grpc::Status& status() const { return status_; }

 private:
  void Run() {
    auto stub = v1::WriteBatcher::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto stream = stub->Write(&ctx);
    std::thread reader([&] {
      v1::WriteResponse resp;
      while (stream->Read(&resp)) {
        for (const auto& r : resp.results()) {
          (r.outcome() == v1::WRITTEN ? written_ : other_)++;
        }
      }
    });
    constexpr int kTicksPerSecond = 20;
    const int per_tick = ops_per_second_ / kTicksPerSecond;
    uint64_t id = 0;
    absl::Time next = absl::Now();
    // Bounded: at most two minutes of ticks.
    for (int tick = 0; tick < 120 * kTicksPerSecond && !stop_.load(); ++tick) {
      v1::WriteRequest req;
      for (int j = 0; j < per_tick; ++j, ++id) {
        v1::WriteOp* op = req.add_ops();
        op->set_id(id);
        const bool users = id % 2 == 1;
        op->set_table(users ? "users" : "events");
        auto& attrs = *op->mutable_put()->mutable_attributes();
        attrs[users ? "id" : "pk"] = S(absl::StrCat("k", id));
        attrs["v"] = S(absl::StrCat("value-", id));
      }
      if (!stream->Write(req)) break;
      next += absl::Seconds(1) / kTicksPerSecond;
      absl::Time now = absl::Now();
      if (next > now) absl::SleepFor(next - now);
    }
    stream->WritesDone();
    reader.join();
    status_ = stream->Finish();
  }

  std::shared_ptr<grpc::Channel> channel_;
  const int ops_per_second_;
  absl::Time start_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> written_{0};
  std::atomic<int64_t> other_{0};
  std::thread thread_;
  grpc::Status status_;
};

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
    // Some whole-call throttling and partial UnprocessedItems, so the
    // throttle series exist; every op still ends WRITTEN after retries.
    auto p = StartFaultProxy(dir_, dynalite_.endpoint(), R"({
      "seed": 5,
      "throttle_fraction": {"ProvisionedThroughputExceededException": 0.1},
      "unprocessed_fraction": 0.1})");
    ASSERT_TRUE(p.ok()) << p.status();
    proxy_ = std::move(*p);
    auto s = StartSidecar(dir_, Config(proxy_.endpoint()));
    ASSERT_TRUE(s.ok()) << s.status();
    sidecar_ = std::move(*s);
  }

  // Starts Prometheus scraping the sidecar every second; waits until ready.
  void StartPrometheus() {
    prom_port_ = FreePort();
    ASSERT_GT(prom_port_, 0);
    const std::string config = dir_ + "/prometheus.yml";
    std::ofstream(config) << absl::StrCat(R"(global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: )",
                                          kJob, R"(
    static_configs:
      - targets: ['127.0.0.1:)",
                                          sidecar_.metrics_port, R"(']
)");
    auto [rc, out] = Shell(absl::StrCat(kPromtool, " check config ", config));
    ASSERT_EQ(rc, 0) << out;
    prometheus_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            kPrometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir_ + "/tsdb",
            absl::StrCat("--web.listen-address=127.0.0.1:", prom_port_), "--log.level=warn"},
        dir_ + "/prometheus.log");
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    long status = 0;
    while (absl::Now() < deadline) {
      auto r = HttpGet(absl::StrCat(PromBase(), "/-/ready"), &status);
      if (r.ok() && status == 200) return;
      ASSERT_TRUE(prometheus_->running()) << prometheus_->ReadLog();
      absl::SleepFor(absl::Milliseconds(100));
    }
    FAIL() << "Prometheus not ready within 20 s:\n" << prometheus_->ReadLog();
  }

  std::string PromBase() const { return absl::StrCat("http://127.0.0.1:", prom_port_); }

  // Instant query; returns (labels as text, value) per series.
  absl::StatusOr<std::vector<std::pair<std::string, double>>> Query(const std::string& q) {
    long status = 0;
    auto body = HttpGet(absl::StrCat(PromBase(), "/api/v1/query?query=", UrlEncode(q)), &status);
    if (!body.ok()) return body.status();
    rapidjson::Document d;
    d.Parse(body->c_str());
    if (status != 200 || d.HasParseError() || !d.IsObject() || !d.HasMember("status") ||
        std::string(d["status"].GetString()) != "success") {
      return absl::InternalError(absl::StrCat("query ", q, ": ", status, " ", *body));
    }
    std::vector<std::pair<std::string, double>> out;
    for (const auto& r : d["data"]["result"].GetArray()) {
      std::string labels;
      for (auto it = r["metric"].MemberBegin(); it != r["metric"].MemberEnd(); ++it) {
        absl::StrAppend(&labels, it->name.GetString(), "=", it->value.GetString(), ",");
      }
      out.emplace_back(labels, std::stod(r["value"][1].GetString()));
    }
    return out;
  }

  std::string dir_;
  Dynalite dynalite_;
  FaultProxy proxy_;
  Sidecar sidecar_;
  int prom_port_ = 0;
  std::unique_ptr<ChildProcess> prometheus_;
};

TEST_F(PrometheusTest, ScrapesWriteRateAndThrottleSeries) {
  ASSERT_NO_FATAL_FAILURE(StartPrometheus());
  // Prometheus applies new targets a few seconds after start; the load (and
  // its rate window) starts once the first scrape is in.
  const absl::Time scraped_by = absl::Now() + absl::Seconds(15);
  bool scraped = false;
  while (!scraped && absl::Now() < scraped_by) {
    auto up = Query(absl::StrCat("up{job=\"", kJob, "\"}"));
    ASSERT_TRUE(up.ok()) << up.status();
    scraped = !up->empty();
    if (!scraped) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(scraped) << "Prometheus did not scrape the sidecar within 15 s:\n"
                       << prometheus_->ReadLog();
  constexpr int kRate = 400;  // ops/s offered
  PacedLoad load(sidecar_.Channel(), kRate);
  load.Start();

  // Wait (bounded) until the 15 s window lies inside the load period and the
  // throttle series have counted something.
  const absl::Time deadline = absl::Now() + absl::Seconds(40);
  double prom_rate = 0;
  std::vector<std::pair<std::string, double>> throttles;
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(500));
    if (absl::Now() - load.start() < absl::Seconds(17)) continue;
    auto rate = Query("sum(rate(dynamo_batcher_ops_written_total[15s]))");
    ASSERT_TRUE(rate.ok()) << rate.status();
    auto t = Query("dynamo_batcher_throttle_events_total > 0");
    ASSERT_TRUE(t.ok()) << t.status();
    if (!rate->empty()) prom_rate = rate->front().second;
    throttles = *t;
    if (prom_rate > 0 && !throttles.empty()) break;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - load.start());
  const double client_rate = static_cast<double>(load.written()) / seconds;
  load.StopAndJoin();
  EXPECT_TRUE(load.status().ok()) << load.status().error_message();
  EXPECT_EQ(load.other(), 0) << "ops not WRITTEN";

  std::cout << "Prometheus rate(ops_written_total[15s]) = " << prom_rate
            << " ops/s; client-side WRITTEN rate = " << client_rate << " ops/s over " << seconds
            << " s; offered " << kRate << " ops/s\n";
  ASSERT_GT(prom_rate, 0) << "no rate in Prometheus:\n" << prometheus_->ReadLog();
  EXPECT_GT(client_rate, kRate * 0.5) << "the sidecar did not keep up with the paced load";
  EXPECT_GT(prom_rate, client_rate / 1.5);
  EXPECT_LT(prom_rate, client_rate * 1.5);

  ASSERT_FALSE(throttles.empty()) << "no throttle_events_total series > 0";
  bool ptee = false;
  for (const auto& [labels, v] : throttles) {
    std::cout << "throttle_events_total{" << labels << "} = " << v << "\n";
    EXPECT_GT(v, 0);
    EXPECT_THAT(labels, ::testing::HasSubstr("table="));
    ptee = ptee || absl::StrContains(labels, "error=ProvisionedThroughputExceededException");
  }
  EXPECT_TRUE(ptee) << "the proxy's ProvisionedThroughputExceededException is not counted";

  auto up = Query(absl::StrCat("up{job=\"", kJob, "\"}"));
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_EQ(up->size(), 1u);
  EXPECT_EQ(up->front().second, 1);
}

TEST_F(PrometheusTest, PromtoolAcceptsARealScrape) {
  // Traffic first, so labelled series (per table, op, error) exist.
  PacedLoad load(sidecar_.Channel(), 400);
  load.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && load.written() < 1000) absl::SleepFor(absl::Milliseconds(50));
  load.StopAndJoin();
  ASSERT_GE(load.written(), 1000);
  // One REJECTED and one FAILED op, so those families have series too.
  ASSERT_TRUE(ConfigureProxy(proxy_, R"({"validation_error_keys": ["poison"]})").ok());
  auto stub = v1::WriteBatcher::NewStub(sidecar_.Channel());
  for (const auto& [table, key, outcome] : {std::make_tuple("nope", "k", v1::REJECTED),
                                            std::make_tuple("events", "poison", v1::FAILED)}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::PutRequest req;
    req.set_id(1);
    req.set_table(table);
    (*req.mutable_item()->mutable_attributes())["pk"] = S(key);
    v1::WriteResult r;
    ASSERT_TRUE(stub->Put(&ctx, req, &r).ok());
    EXPECT_EQ(r.outcome(), outcome) << r.error_code() << " " << r.message();
  }
  long status = 0;
  auto body =
      HttpGet(absl::StrCat("http://127.0.0.1:", sidecar_.metrics_port, "/metrics"), &status);
  ASSERT_TRUE(body.ok()) << body.status();
  ASSERT_EQ(status, 200);
  for (const char* family :
       {"dynamo_batcher_throttle_events_total{", "dynamo_batcher_ops_rejected_total{",
        "dynamo_batcher_ops_failed_total{", "dynamo_batcher_dead_lettered_total{",
        "dynamo_batcher_http_errors_total{", "dynamo_batcher_op_latency_seconds_bucket{"}) {
    ASSERT_THAT(*body, ::testing::HasSubstr(family));
  }
  const std::string file = dir_ + "/scrape.txt";
  std::ofstream(file) << *body;
  auto [rc, out] = Shell(absl::StrCat(kPromtool, " check metrics < '", file, "'"));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << "promtool lint findings:\n" << out;
}

}  // namespace
}  // namespace dynamo_batcher::testing
