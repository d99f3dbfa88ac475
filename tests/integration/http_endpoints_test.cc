// The sidecar's HTTP endpoints (/metrics, /healthz, /readyz) against hostile
// and careless clients, over loopback with raw sockets: idle connections and
// a slowloris trickler must not stop /healthz from answering, oversized
// headers get 431, paths match exactly, and a fresh sidecar already exports
// its known label values at 0. No DynamoDB is needed (the endpoint refuses
// connections; the sidecar stays up, not ready). Every wait is bounded.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

// Port 1 on loopback refuses connections: the sidecar runs, never ready.
constexpr char kConfig[] = R"(
dynamodb:
  region: us-east-1
  endpoint: http://127.0.0.1:1
  credentials: {access_key_id: local, secret_access_key: local}
tables:
  - name: events
    partition_key: {name: pk, type: S}
    sort_key: {name: sk, type: N}
  - name: users
    partition_key: {name: id, type: S}
)";

// Connects within `timeout` (a server whose backlog is full makes a
// blocking connect() hang for minutes); -1 if it could not.
int Connect(int port, absl::Duration timeout = absl::Seconds(1)) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      rc = 0;
    }
  }
  if (rc != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

// Reads until the peer closes or `timeout` passes.
std::string ReadAll(int fd, absl::Duration timeout) {
  std::string out;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now())) + 1;
    if (poll(&p, 1, ms) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

struct RawResponse {
  int status = 0;  // 0: no answer
  std::string text;
  absl::Duration elapsed;
};

// One request on a fresh connection, answered within `timeout` or not at all.
RawResponse RawRequest(int port, const std::string& request,
                       absl::Duration timeout = absl::Seconds(1)) {
  RawResponse r;
  const absl::Time start = absl::Now();
  int fd = Connect(port);
  if (fd < 0) return r;
  if (SendAll(fd, request)) r.text = ReadAll(fd, timeout);
  close(fd);
  r.elapsed = absl::Now() - start;
  if (absl::StartsWith(r.text, "HTTP/1.") && r.text.size() >= 12) {
    r.status = std::atoi(r.text.substr(9, 3).c_str());
  }
  return r;
}

RawResponse Get(int port, const std::string& path, absl::Duration timeout = absl::Seconds(1)) {
  return RawRequest(port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                    timeout);
}

class HttpEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StartSidecar(TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name()),
                          kConfig);
    ASSERT_TRUE(s.ok()) << s.status();
    sidecar_ = std::move(*s);
  }
  Sidecar sidecar_;
};

// 200 idle connections (re-opened whenever the server drops one, as an
// attacker would) plus a client trickling one byte every 1.5 s: /healthz
// keeps answering within 1 s throughout, the trickler is cut off by the
// whole-request deadline, and everything is normal once the attackers leave.
TEST_F(HttpEndpointsTest, IdleConnectionsAndTricklerDoNotStarveHealthz) {
  const int port = sidecar_.metrics_port;
  constexpr int kIdle = 200;
  std::atomic<bool> stop{false};
  std::atomic<int> open_idle{0};
  std::atomic<int> reopened{0};
  std::thread idler([&] {
    std::vector<int> fds;
    while (!stop.load()) {
      // Drop connections the server closed; top up to kIdle.
      std::vector<int> alive;
      for (int fd : fds) {
        pollfd p{fd, POLLIN, 0};
        char c;
        if (poll(&p, 1, 0) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0) {
          close(fd);
          ++reopened;
        } else {
          alive.push_back(fd);
        }
      }
      fds.swap(alive);
      while (static_cast<int>(fds.size()) < kIdle && !stop.load()) {
        int fd = Connect(port, absl::Milliseconds(200));
        if (fd < 0) break;
        fds.push_back(fd);
      }
      open_idle = static_cast<int>(fds.size());
      absl::SleepFor(absl::Milliseconds(100));
    }
    for (int fd : fds) close(fd);
  });
  std::atomic<bool> trickler_cut{false};
  std::atomic<bool> trickler_connected{false};
  absl::Duration trickler_lived;
  std::thread trickler([&] {
    const std::string request =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaa\r\n\r\n";
    // It starts with the idler's 200 connects: while the listen backlog is
    // full a SYN waits for its 1 s retransmit, so it tries again (as the
    // idler does), for up to 5 s.
    int fd = -1;
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (fd < 0 && !stop.load() && absl::Now() < give_up) fd = Connect(port);
    if (fd < 0) return;
    trickler_connected = true;
    const absl::Time start = absl::Now();
    for (size_t i = 0; i < request.size() && !stop.load(); ++i) {
      if (!SendAll(fd, request.substr(i, 1))) break;
      // Wait 1.5 s, watching for the server closing the connection.
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 1500) > 0) {
        char c;
        if (recv(fd, &c, 1, 0) <= 0) break;
      }
    }
    trickler_lived = absl::Now() - start;
    trickler_cut = !stop.load();
    close(fd);
  });

  // Whatever happens below, the attackers stop before this scope ends.
  struct Joiner {
    std::atomic<bool>* stop;
    std::thread* threads[2];
    ~Joiner() {
      *stop = true;
      for (std::thread* t : threads) {
        if (t->joinable()) t->join();
      }
    }
  } joiner{&stop, {&idler, &trickler}};

  // Let the attack settle in, then probe the way a kubelet does (1 s timeout).
  absl::Time wait_until = absl::Now() + absl::Seconds(5);
  while (open_idle.load() < kIdle && absl::Now() < wait_until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  // A server that accepts no more connections has already lost; the probes
  // below say how.
  EXPECT_EQ(open_idle.load(), kIdle) << "the server did not take 200 connections";
  std::vector<absl::Duration> probe_times;
  for (int i = 0; i < 16; ++i) {
    RawResponse r = Get(port, "/healthz");
    EXPECT_EQ(r.status, 200) << "probe " << i << " after " << r.elapsed << ": " << r.text;
    EXPECT_LT(r.elapsed, absl::Seconds(1)) << "probe " << i;
    probe_times.push_back(r.elapsed);
    absl::SleepFor(absl::Milliseconds(500));
  }
  // The probes covered ~9 s: the trickler (71 bytes at 1.5 s) must have been
  // cut off by the whole-request deadline (2 s, plus one 1.5 s gap).
  stop = true;
  trickler.join();
  idler.join();
  ASSERT_TRUE(trickler_connected.load()) << "the trickler could not connect within 5 s";
  EXPECT_TRUE(trickler_cut.load()) << "the server let a trickling request live " << trickler_lived;
  EXPECT_LT(trickler_lived, absl::Seconds(5));
  // Idle connections are dropped by the same deadline (and were re-opened).
  EXPECT_GT(reopened.load(), 0);

  // Recovery: normal answers once the attackers are gone.
  for (int i = 0; i < 3; ++i) {
    RawResponse r = Get(port, "/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(r.elapsed, absl::Seconds(1));
  }
  RawResponse m = Get(port, "/metrics", absl::Seconds(2));
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.text, ::testing::HasSubstr("dynamo_batcher_ready 0"));
}

// A request line plus headers over 8 KiB, or over 63 header fields, gets 431
// and the connection is closed; a request just under the limit is served.
// Beyond 16 KiB (civetweb's buffer) civetweb itself answers 400 and closes.
TEST_F(HttpEndpointsTest, OversizedHeadersGet431) {
  const int port = sidecar_.metrics_port;
  auto with_header = [](size_t bytes) {
    return absl::StrCat(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ", std::string(bytes, 'a'), "\r\n\r\n");
  };
  RawResponse big = RawRequest(port, with_header(12 * 1024), absl::Seconds(2));
  EXPECT_EQ(big.status, 431) << big.text;
  EXPECT_THAT(big.text, ::testing::HasSubstr("Request Header Fields Too Large"));
  EXPECT_THAT(big.text, ::testing::HasSubstr("Connection: close"));

  RawResponse fits = RawRequest(port, with_header(6 * 1024));
  EXPECT_EQ(fits.status, 200) << fits.text;

  // Many small header lines count too: 70 fields in under 1 KiB.
  std::string many = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 70; ++i) absl::StrAppend(&many, "X-", i, ": v\r\n");
  many += "\r\n";
  ASSERT_LT(many.size(), 1024u);
  RawResponse fields = RawRequest(port, many, absl::Seconds(2));
  EXPECT_EQ(fields.status, 431) << fields.text;

  // Past civetweb's 16 KiB buffer: refused by civetweb (400), never served.
  RawResponse huge = RawRequest(port, with_header(100 * 1024), absl::Seconds(2));
  EXPECT_EQ(huge.status, 400) << huge.text;

  // Still serving afterwards.
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

TEST_F(HttpEndpointsTest, PathsMatchExactlyAndOnlyGetAndHeadAreAllowed) {
  const int port = sidecar_.metrics_port;
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  EXPECT_EQ(Get(port, "/healthz?verbose=1").status, 200);
  EXPECT_EQ(Get(port, "/readyz").status, 503);  // DynamoDB unreachable
  EXPECT_EQ(Get(port, "/metrics").status, 200);
  for (const char* path : {"/", "/healthz/", "/healthzz", "/HEALTHZ", "/metrics/x", "/x/../healthz",
                           "/index.html", "//healthz"}) {
    EXPECT_EQ(Get(port, path).status, 404) << path;
  }
  RawResponse head = RawRequest(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_THAT(head.text, ::testing::Not(::testing::HasSubstr("dynamo_batcher_ready")));
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    RawResponse r = RawRequest(
        port, absl::StrCat(method, " /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_EQ(r.status, 405) << method << ": " << r.text;
  }
  // Garbage is refused, not served.
  RawResponse junk = RawRequest(port, "\x01\x02 nonsense\r\n\r\n");
  EXPECT_NE(junk.status, 200) << junk.text;
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

// Dashboards divide and sum by these labels: on a fresh sidecar, before any
// event, every configured table already has each known reason/op/error at 0.
TEST_F(HttpEndpointsTest, FreshSidecarExportsKnownLabelValuesAtZero) {
  auto scraped = ScrapeMetrics(sidecar_);
  ASSERT_TRUE(scraped.ok()) << scraped.status();
  const std::map<std::string, double>& m = *scraped;
  auto expect_zero = [&](const std::string& series) {
    auto it = m.find(series);
    if (it == m.end()) {
      ADD_FAILURE() << "missing series " << series;
    } else {
      EXPECT_EQ(it->second, 0) << series;
    }
  };
  for (const std::string table : {"events", "users"}) {
    const std::string t = absl::StrCat("table=\"", table, "\"");
    for (const char* op : {"put", "delete"}) {
      expect_zero(absl::StrCat("dynamo_batcher_ops_received_total{op=\"", op, "\",", t, "}"));
      expect_zero(absl::StrCat("dynamo_batcher_ops_written_total{op=\"", op, "\",", t, "}"));
    }
    for (const char* reason :
         {"DeleteKeyNotKeyOnly", "DuplicateSetMember", "EmptyAttributeName", "EmptyAttributeValue",
          "EmptyKeyValue", "EmptySet", "InvalidNull", "InvalidNumber", "InvalidUtf8",
          "ItemTooLarge", "KeyMissing", "KeyTooLarge", "KeyTypeMismatch", "NestingTooDeep",
          "NoOperation", "TooManyOps"}) {
      expect_zero(
          absl::StrCat("dynamo_batcher_ops_rejected_total{reason=\"", reason, "\",", t, "}"));
    }
    for (const char* reason :
         {"RetriesExhausted", "DeadlineExceeded", "ShuttingDown", "CredentialsUnavailable",
          "ValidationException", "ResourceNotFoundException", "AccessDeniedException"}) {
      expect_zero(absl::StrCat("dynamo_batcher_ops_failed_total{reason=\"", reason, "\",", t, "}"));
    }
    for (const char* error : {"UnprocessedItems", "ProvisionedThroughputExceededException",
                              "ThrottlingException", "RequestLimitExceeded"}) {
      expect_zero(
          absl::StrCat("dynamo_batcher_throttle_events_total{error=\"", error, "\",", t, "}"));
    }
    for (const char* name :
         {"dynamo_batcher_ops_coalesced_total", "dynamo_batcher_batches_sent_total",
          "dynamo_batcher_unprocessed_items_total", "dynamo_batcher_retries_total",
          "dynamo_batcher_dead_lettered_total", "dynamo_batcher_consumed_wcu_total",
          "dynamo_batcher_queue_items", "dynamo_batcher_queue_bytes",
          "dynamo_batcher_batch_size_count", "dynamo_batcher_op_latency_seconds_count"}) {
      expect_zero(absl::StrCat(name, "{", t, "}"));
    }
  }
  expect_zero("dynamo_batcher_ops_rejected_total{reason=\"UnknownTable\",table=\"\"}");
  for (const char* c : {"4xx", "5xx", "timeout", "connection"}) {
    auto it = m.find(absl::StrCat("dynamo_batcher_http_errors_total{class=\"", c, "\"}"));
    // The readiness probe may already have failed to connect (DescribeTable
    // is not counted here, but stay lenient on the value): the series exists.
    EXPECT_NE(it, m.end()) << c;
  }
}

// Debian 12's civetweb has no IPv6: an IPv6 metrics_listen is refused at
// start-up with a message naming the key, rather than failing obscurely.
TEST(HttpEndpointsStartup, Ipv6MetricsListenIsRefusedClearly) {
  const std::string dir = TestDir("Ipv6MetricsListenIsRefusedClearly");
  const std::string config = dir + "/config.yaml";
  std::ofstream(config) << "listen: 127.0.0.1:0\nmetrics_listen: \"[::1]:0\"\n" << kConfig;
  ChildProcess sidecar({SidecarBinary(), "--config", config}, dir + "/sidecar.log");
  const int rc = sidecar.Wait(absl::Seconds(20));
  const std::string log = sidecar.ReadLog();
  if (rc == -1) FAIL() << "still running: " << log;
  EXPECT_NE(rc, 0) << log;
  EXPECT_THAT(log, ::testing::HasSubstr("metrics_listen: [::1]:0 is an IPv6 address"));
}

}  // namespace
}  // namespace dynamo_batcher::testing
