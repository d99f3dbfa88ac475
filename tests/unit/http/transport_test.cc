// Both transports (libcurl's, and the framed one of the DynamoDB data path)
// against tiny HTTP/1.1 servers on 127.0.0.1: the same contract.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/auth/container_credentials.h"
#include "service/dynamodb/dynamodb_client.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {
namespace {

// A listening TCP socket on 127.0.0.1 at a free port (written to *port).
int ListenOnLoopback(int backlog, int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd, backlog), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// What every threaded stand-in below shares: its listening socket and the
// thread that serves it, whose loop watches stopping(). Declared last in a
// stand-in, it is destroyed first: the thread is joined before the members
// it uses go. A stand-in whose destructor does more calls Stop() first.
class Listener {
 public:
  explicit Listener(int backlog) : fd_(ListenOnLoopback(backlog, &port_)) {}
  ~Listener() {
    Stop();
    close(fd_);
  }
  void Start(std::function<void()> serve) { thread_ = std::thread(std::move(serve)); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool stopping() const { return stop_.load(); }
  int fd() const { return fd_; }
  int port() const { return port_; }
  std::string Url(absl::string_view path = "/") const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

 private:
  int port_ = 0;
  const int fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Answers every request with 200 and the request body echoed back, on
// keep-alive connections; requests to /hold are never answered, a body of
// "slow" is answered after 400 ms. Counts accepted connections.
class LoopbackServer {
 public:
  LoopbackServer() {
    listener_.Start([this] { Run(); });
  }
  ~LoopbackServer() {
    listener_.Stop();
    for (auto& [fd, buf] : conns_) close(fd);
  }

  std::string Url(absl::string_view path = "/") const { return listener_.Url(path); }
  int accepted() const { return accepted_.load(); }
  int port() const { return listener_.port(); }
  std::vector<std::string> request_heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void Run() {
    while (!listener_.stopping()) {
      std::vector<pollfd> fds;
      fds.push_back({listener_.fd(), POLLIN, 0});
      for (auto& [fd, buf] : conns_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = accept(listener_.fd(), nullptr, nullptr);
        if (fd >= 0) {
          conns_[fd] = "";
          ++accepted_;
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const int fd = fds[i].fd;
        char buf[65536];
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
          close(fd);
          conns_.erase(fd);
          continue;
        }
        conns_[fd].append(buf, n);
        Serve(fd, &conns_[fd]);
      }
    }
  }

  // Answers every complete request buffered for `fd`.
  void Serve(int fd, std::string* in) {
    while (true) {
      const size_t end = in->find("\r\n\r\n");
      if (end == std::string::npos) return;
      const std::string head = absl::AsciiStrToLower(in->substr(0, end));
      size_t content_length = 0;
      const size_t cl = head.find("\r\ncontent-length:");
      if (cl != std::string::npos) {
        const size_t eol = head.find("\r\n", cl + 2);
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(head.substr(cl + 17, eol - cl - 17)),
                               &content_length);
      }
      if (in->size() < end + 4 + content_length) return;
      const std::string body = in->substr(end + 4, content_length);
      in->erase(0, end + 4 + content_length);
      {
        std::lock_guard<std::mutex> lock(mu_);
        heads_.push_back(head);
      }
      if (absl::StartsWith(head, "post /hold ")) continue;
      // A body of "slow" is answered 400 ms late.
      if (body == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(400));
      const std::string response = absl::StrCat(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Test-Header:  Yes \r\n",
          "Content-Length: ", body.size(), "\r\n\r\n", body);
      size_t off = 0;
      while (off < response.size()) {
        const ssize_t w = write(fd, response.data() + off, response.size() - off);
        if (w <= 0) break;
        off += w;
      }
    }
  }

  std::atomic<int> accepted_{0};
  std::map<int, std::string> conns_;  // server thread only
  std::mutex mu_;
  std::vector<std::string> heads_;  // guarded by mu_
  Listener listener_{64};
};

// Collects callbacks; waits with a bound. std::mutex so ThreadSanitizer
// sees the synchronisation.
class Results {
 public:
  HttpTransport::Callback Callback(int i) {
    return [this, i](HttpResponse r) {
      std::lock_guard<std::mutex> lock(mu_);
      responses_[i] = std::move(r);
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t n, absl::Duration limit = absl::Seconds(20)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(limit),
                        [&] { return responses_.size() >= n; });
  }
  std::map<int, HttpResponse> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return responses_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, HttpResponse> responses_;  // guarded by mu_
};

HttpRequest Post(const std::string& url, std::string body,
                 absl::Duration timeout = absl::Seconds(10)) {
  HttpRequest r;
  r.url = url;
  r.body = std::move(body);
  r.timeout = timeout;
  r.headers = {{"Content-Type", "application/x-amz-json-1.0"}};
  return r;
}

// Which transport a test runs on: "curl" or "framed".
class TransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<HttpTransport> Make(CurlTransportOptions options) {
    return GetParam() == "framed" ? MakeFramedTransport(std::move(options))
                                  : MakeCurlTransport(std::move(options));
  }
};

// Calls send(t, i) for i in [0, per_thread) on each of `threads` threads at
// once, and joins them.
void FromThreads(int threads, int per_thread, const std::function<void(int, int)>& send) {
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) send(t, i);
    });
  }
  for (auto& s : senders) s.join();
}

TEST_P(TransportTest, AnswersConcurrentRequestsOverFewPooledConnections) {
  LoopbackServer server;
  CurlTransportOptions options;
  options.max_connections_per_host = 4;
  auto transport = Make(options);
  Results results;
  constexpr int kThreads = 4, kPerThread = 10;
  FromThreads(kThreads, kPerThread, [&](int t, int i) {
    const int id = t * kPerThread + i;
    transport->Send(Post(server.Url(), absl::StrCat("{\"id\":", id, "}")), results.Callback(id));
  });
  ASSERT_TRUE(results.WaitFor(kThreads * kPerThread));
  auto responses = results.Take();
  ASSERT_EQ(responses.size(), static_cast<size_t>(kThreads * kPerThread));
  for (auto& [id, r] : responses) {
    EXPECT_EQ(r.transport_error, "") << id;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, absl::StrCat("{\"id\":", id, "}"));
    ASSERT_NE(r.Header("x-test-header"), nullptr);
    EXPECT_EQ(*r.Header("x-test-header"), "Yes");
    EXPECT_GT(r.elapsed, absl::ZeroDuration());
  }
  EXPECT_LE(server.accepted(), 4);
  EXPECT_LT(server.accepted(), kThreads * kPerThread);
}

// The I/O thread is woken only while it polls (once per poll): a request
// sent while it sleeps must wake it, one sent while it works must be found
// before it polls again. A lost wake-up shows as a request that waits for
// the poll's 1 s timeout, so 60 of them would take a minute.
TEST_P(TransportTest, RequestsSentWhileTheIoThreadIdlesAreStartedAtOnce) {
  LoopbackServer server;
  auto transport = Make(CurlTransportOptions{});
  const absl::Time start = absl::Now();
  for (int i = 0; i < 60; ++i) {
    // Each one finds the I/O thread asleep in its poll (the previous
    // request is answered and nothing else is queued).
    if (i % 2 == 1) absl::SleepFor(absl::Milliseconds(2));
    HttpResponse r = transport->SendSync(Post(server.Url(), absl::StrCat(i)));
    ASSERT_EQ(r.status, 200) << i << " " << r.transport_error;
    EXPECT_EQ(r.body, absl::StrCat(i));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

TEST_P(TransportTest, RequestsSentFromCallbacksAreStartedWithoutAWakeUp) {
  LoopbackServer server;
  // Outlives the transport, whose destructor answers what is still pending.
  std::promise<int> done;
  auto transport = Make(CurlTransportOptions{});
  // A chain: each answer (on the I/O thread, which is not polling) sends
  // the next request, like the engine re-sending at once.
  constexpr int kChain = 60;
  std::function<void(int)> send = [&](int i) {
    transport->Send(Post(server.Url(), absl::StrCat(i)), [&, i](HttpResponse r) {
      if (r.status != 200 || r.body != absl::StrCat(i) || i + 1 == kChain) {
        done.set_value(r.status == 200 ? i + 1 : -i);
        return;
      }
      send(i + 1);
    });
  };
  const absl::Time start = absl::Now();
  send(0);
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(f.get(), kChain);
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

TEST_P(TransportTest, BurstsFromManyThreadsAreAllAnsweredPromptly) {
  LoopbackServer server;
  CurlTransportOptions options;
  options.max_connections_per_host = 4;
  auto transport = Make(options);
  Results results;
  constexpr int kThreads = 4, kPerThread = 100;
  const absl::Time start = absl::Now();
  FromThreads(kThreads, kPerThread, [&](int t, int i) {
    const int id = t * kPerThread + i;
    transport->Send(Post(server.Url(), absl::StrCat(id)), results.Callback(id));
    // Bursts of a few, then a pause long enough for the I/O thread to
    // finish them and go back to its poll.
    if (i % (t + 2) == 0) absl::SleepFor(absl::Microseconds(300 * (t + 1)));
  });
  ASSERT_TRUE(results.WaitFor(kThreads * kPerThread, absl::Seconds(30)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  for (auto& [id, r] : results.Take()) {
    EXPECT_EQ(r.status, 200) << id << " " << r.transport_error;
    EXPECT_EQ(r.body, absl::StrCat(id));
  }
}

TEST_P(TransportTest, SequentialRequestsReuseOneConnection) {
  LoopbackServer server;
  auto transport = Make(CurlTransportOptions{});
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = transport->SendSync(Post(server.Url(), "x"));
    EXPECT_EQ(r.status, 200) << r.transport_error;
  }
  EXPECT_EQ(server.accepted(), 1);
}

// Handles and connections are kept between requests; nothing of an earlier
// request may leak into a later one: not its method, its body, nor its
// timeout.
TEST_P(TransportTest, KeptHandlesCarryNothingOverFromAnEarlierRequest) {
  LoopbackServer server;
  CurlTransportOptions options;
  options.max_connections = 1;  // one connection, so handles are reused
  auto transport = Make(options);
  auto send = [&](const std::string& method, const std::string& path, std::string body,
                  absl::Duration timeout) {
    HttpRequest r = Post(server.Url(path), std::move(body), timeout);
    r.method = method;
    return transport->SendSync(std::move(r));
  };
  // Times out, then the same request without a timeout must wait it out.
  HttpResponse timed = send("POST", "/", "slow", absl::Milliseconds(200));
  EXPECT_TRUE(timed.timed_out);
  HttpResponse patient = send("POST", "/", "slow", absl::InfiniteDuration());
  EXPECT_EQ(patient.status, 200) << patient.transport_error;
  EXPECT_EQ(patient.body, "slow");

  struct Step {
    std::string method, path, body, head_starts;
  };
  const std::vector<Step> steps = {
      {"POST", "/", "one", "post / http/1.1"},  {"GET", "/g", "", "get /g http/1.1"},
      {"PUT", "/p", "", "put /p http/1.1"},     {"PUT", "/p", "two", "put /p http/1.1"},
      {"HEAD", "/h", "", "head /h http/1.1"},   {"POST", "/", "three", "post / http/1.1"},
      {"GET", "/g", "", "get /g http/1.1"},     {"PUT", "/p", "", "put /p http/1.1"},
      {"POST", "/", "four", "post / http/1.1"},
  };
  size_t before = server.request_heads().size();
  for (const Step& step : steps) {
    SCOPED_TRACE(step.method + " " + step.path + " body=" + step.body);
    HttpResponse r = send(step.method, step.path, step.body, absl::Seconds(10));
    ASSERT_EQ(r.status, 200) << r.transport_error;
    if (step.method != "HEAD") {
      EXPECT_EQ(r.body, step.body);
    }
    const std::vector<std::string> heads = server.request_heads();
    ASSERT_EQ(heads.size(), before + 1);
    const std::string& head = heads.back();
    EXPECT_TRUE(absl::StartsWith(head, step.head_starts)) << head;
    const bool announces_body =
        absl::StrContains(head, "content-length:") && !absl::StrContains(head, "content-length: 0");
    EXPECT_EQ(announces_body, !step.body.empty()) << head;
    before = heads.size();
  }
}

TEST_P(TransportTest, LargeBodySentWithoutExpectContinue) {
  LoopbackServer server;
  auto transport = Make(CurlTransportOptions{});
  const std::string body(256 * 1024, 'a');
  HttpResponse r = transport->SendSync(Post(server.Url(), body));
  EXPECT_EQ(r.status, 200) << r.transport_error;
  EXPECT_EQ(r.body.size(), body.size());
  auto heads = server.request_heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_FALSE(absl::StrContains(heads[0], "expect:")) << heads[0];
  EXPECT_TRUE(absl::StrContains(heads[0], "content-type: application/x-amz-json-1.0"));
  EXPECT_TRUE(absl::StartsWith(heads[0], "post / http/1.1"));
}

TEST_P(TransportTest, ReportsConnectionRefused) {
  // A port that was just free: bind, read it, close.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r =
      transport->SendSync(Post(absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/"), "{}"));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.transport_error, "connection refused");
  EXPECT_FALSE(r.timed_out);
}

TEST_P(TransportTest, ReportsTimeout) {
  LoopbackServer server;
  auto transport = Make(CurlTransportOptions{});
  const absl::Time start = absl::Now();
  HttpResponse r = transport->SendSync(Post(server.Url("/hold"), "{}", absl::Milliseconds(200)));
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.transport_error, "timeout");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(TransportTest, DestructorAnswersPendingRequestsWithoutHanging) {
  LoopbackServer server;
  auto transport = Make(CurlTransportOptions{});
  Results results;
  for (int i = 0; i < 3; ++i) {
    transport->Send(Post(server.Url("/hold"), "{}", absl::Seconds(60)), results.Callback(i));
  }
  // Let them reach the server so some are truly in flight.
  for (int i = 0; i < 200 && server.request_heads().size() < 3; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  const absl::Time start = absl::Now();
  transport.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_TRUE(results.WaitFor(3, absl::Seconds(1)));
  for (auto& [id, r] : results.Take()) {
    EXPECT_EQ(r.transport_error, "shutting down") << id;
    EXPECT_EQ(r.status, 0);
  }
}

// Answers one connection's first request with a body of `total` bytes,
// streamed from one small buffer (the stand-in itself holds no more), either
// announced by Content-Length or delimited by closing the connection.
class HugeBodyServer {
 public:
  HugeBodyServer(uint64_t total, bool announce_length) : total_(total), announce_(announce_length) {
    listener_.Start([this] { Run(); });
  }
  std::string Url() const { return listener_.Url(); }
  uint64_t sent() const { return sent_.load(); }

 private:
  void Run() {
    while (!listener_.stopping()) {
      pollfd p{listener_.fd(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int fd = accept(listener_.fd(), nullptr, nullptr);
      if (fd >= 0) Answer(fd);
    }
  }

  // Every connection gets the whole answer (sent_ counts all of them).
  void Answer(int fd) {
    uint64_t this_conn = 0;
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, n);
    }
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    head += announce_ ? absl::StrCat("Content-Length: ", total_, "\r\n\r\n")
                      : std::string("Connection: close\r\n\r\n");
    (void)!write(fd, head.data(), head.size());
    const std::string chunk(64 << 10, 'x');
    while (this_conn < total_ && !listener_.stopping()) {
      const ssize_t w = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (w <= 0) break;  // the client gave up
      this_conn += static_cast<uint64_t>(w);
      sent_ += static_cast<uint64_t>(w);
    }
    close(fd);
  }

  const uint64_t total_;
  const bool announce_;
  std::atomic<uint64_t> sent_{0};
  Listener listener_{4};
};

// Peak resident memory of this process so far (VmHWM), in bytes.
uint64_t PeakRssBytes() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kb = 0;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtoull(line + 6, nullptr, 10);
  }
  fclose(f);
  return kb * 1024;
}

TEST_P(TransportTest, HugeUnannouncedBodyIsAbortedAtTheCapWithoutGrowingMemory) {
  constexpr uint64_t kHuge = 400ull << 20;  // what a hostile endpoint sent in the review
  HugeBodyServer server(kHuge, /*announce_length=*/false);
  auto transport = Make(CurlTransportOptions{});
  const uint64_t rss_before = PeakRssBytes();
  HttpRequest req;
  req.method = "GET";
  req.url = server.Url();
  req.max_response_bytes = 64 << 10;
  HttpResponse r = transport->SendSync(req);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StrContains(r.transport_error, "response too large: more than 65536 bytes"))
      << r.transport_error;
  EXPECT_TRUE(r.body.empty());
  // Stopped reading near the cap (plus what sat in socket buffers), not at 400 MiB.
  EXPECT_LT(server.sent(), 64ull << 20);
  EXPECT_LT(PeakRssBytes() - rss_before, 16ull << 20);
}

TEST_P(TransportTest, AnnouncedOversizedBodyIsRefusedBeforeReading) {
  HugeBodyServer server(400ull << 20, /*announce_length=*/true);
  auto transport = Make(CurlTransportOptions{});
  HttpRequest req;
  req.method = "GET";
  req.url = server.Url();
  req.max_response_bytes = 1 << 20;
  HttpResponse r = transport->SendSync(req);
  EXPECT_TRUE(absl::StrContains(r.transport_error, "response too large: more than 1048576 bytes"))
      << r.transport_error;
}

TEST_P(TransportTest, DefaultCapKeepsControlAnswersSmall) {
  HugeBodyServer server(8ull << 20, /*announce_length=*/false);
  auto transport = Make(CurlTransportOptions{});
  HttpRequest req;
  req.method = "GET";
  req.url = server.Url();
  HttpResponse r = transport->SendSync(req);
  EXPECT_TRUE(absl::StrContains(r.transport_error, "response too large")) << r.transport_error;
}

TEST_P(TransportTest, BodyUpToTheCapIsDelivered) {
  HugeBodyServer server(256 << 10, /*announce_length=*/true);
  auto transport = Make(CurlTransportOptions{});
  HttpRequest req;
  req.method = "GET";
  req.url = server.Url();
  req.max_response_bytes = 256 << 10;
  HttpResponse r = transport->SendSync(req);
  EXPECT_EQ(r.status, 200) << r.transport_error;
  EXPECT_EQ(r.body.size(), 256u << 10);
}

TEST_P(TransportTest, CredentialsAnswersAreCappedAt64KiB) {
  // A hostile or broken container-credentials endpoint: the fetch fails with
  // a clear error instead of buffering the whole answer.
  HugeBodyServer server(400ull << 20, /*announce_length=*/false);
  auto transport = Make(CurlTransportOptions{});
  ContainerCredentialsConfig c;
  c.url = server.Url();
  const uint64_t rss_before = PeakRssBytes();
  absl::StatusOr<AwsCredentials> creds = FetchContainerCredentials(c, *transport);
  ASSERT_FALSE(creds.ok());
  EXPECT_TRUE(absl::StrContains(creds.status().message(), "container credentials endpoint"))
      << creds.status();
  EXPECT_TRUE(absl::StrContains(creds.status().message(), "response too large: more than 65536"))
      << creds.status();
  EXPECT_LT(PeakRssBytes() - rss_before, 16ull << 20);
}

TEST_P(TransportTest, BatchWriteItemAnswerIsBoundedByItsRequest) {
  // A hostile endpoint answers a small BatchWriteItem with 400 MiB: the call
  // fails as a retryable connection error naming the cap, memory stays flat.
  HugeBodyServer server(400ull << 20, /*announce_length=*/false);
  auto transport = Make(CurlTransportOptions{});
  StaticCredentialsProvider creds({"AKID", "SECRET", "", std::nullopt}, "test");
  DynamoDbOptions o;
  o.endpoint = server.Url();
  DynamoDbClient ddb(o, transport.get(), &creds);
  TableSchema schema;
  schema.name = "events";
  schema.partition_key = {"pk", KeyType::kS};
  const std::string body =
      R"({"RequestItems":{"events":[{"PutRequest":{"Item":{"pk":{"S":"a"}}}}]}})";
  const uint64_t rss_before = PeakRssBytes();
  std::promise<BatchWriteResponse> got;
  ddb.BatchWriteItem(schema, body, [&](BatchWriteResponse r) { got.set_value(std::move(r)); });
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const BatchWriteResponse r = f.get();
  EXPECT_EQ(r.result.kind, BatchResult::Kind::kRetryable);
  EXPECT_TRUE(absl::StrContains(
      r.result.message, absl::StrCat("response too large: more than ", body.size() + (1 << 20))))
      << r.result.message;
  EXPECT_LT(PeakRssBytes() - rss_before, 16ull << 20);
}

// Answers the requests of each connection, in turn, with scripted raw bytes:
// answer k goes to the k-th request the server reads (over all
// connections). An answer is written whole, or one byte at a time with a
// pause (a trickling server), and the connection is closed after it when
// the script says so, announced or not.
class RawServer {
 public:
  struct Answer {
    std::string bytes;
    bool close_after = false;
    bool trickle = false;
  };
  explicit RawServer(std::vector<Answer> script) : script_(std::move(script)) {
    listener_.Start([this] { Run(); });
  }
  std::string Url() const { return listener_.Url(); }
  int accepted() const { return accepted_.load(); }

 private:
  void Run() {
    while (!listener_.stopping() && next_ < script_.size()) {
      pollfd p{listener_.fd(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int fd = accept(listener_.fd(), nullptr, nullptr);
      if (fd < 0) continue;
      ++accepted_;
      Serve(fd);
      close(fd);
    }
  }

  // One connection, until the client closes it or the script closes it.
  void Serve(int fd) {
    std::string in;
    while (!listener_.stopping() && next_ < script_.size()) {
      const size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        char buf[4096];
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) return;  // the client closed this one
        in.append(buf, n);
        continue;
      }
      const std::string head = absl::AsciiStrToLower(in.substr(0, end));
      size_t content_length = 0;
      const size_t cl = head.find("\r\ncontent-length:");
      if (cl != std::string::npos) {
        const size_t eol = head.find("\r\n", cl + 2);
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(head.substr(cl + 17, eol - cl - 17)),
                               &content_length);
      }
      if (in.size() < end + 4 + content_length) {
        char buf[4096];
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) return;
        in.append(buf, n);
        continue;
      }
      in.erase(0, end + 4 + content_length);
      const Answer& a = script_[next_++];
      if (a.trickle) {
        for (char c : a.bytes) {
          if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) return;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      } else if (send(fd, a.bytes.data(), a.bytes.size(), MSG_NOSIGNAL) !=
                 static_cast<ssize_t>(a.bytes.size())) {
        return;
      }
      if (a.close_after) return;
    }
  }

  const std::vector<Answer> script_;
  size_t next_ = 0;  // server thread only
  std::atomic<int> accepted_{0};
  Listener listener_{8};
};

constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST_P(TransportTest, ChunkedAnswerIsDecoded) {
  RawServer server({{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
                    {kOk}});
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(r.status, 200) << r.transport_error;
  EXPECT_EQ(r.body, "hello world");
  ASSERT_NE(r.Header("x-a"), nullptr);
  // The connection is still good for the next request.
  HttpResponse again = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(again.body, "ok") << again.transport_error;
  EXPECT_EQ(server.accepted(), 1);
}

TEST_P(TransportTest, InterimAnswerIsSkippedAndItsHeadersDropped) {
  RawServer server(
      {{"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final:  yes \r\n\r\nok"}});
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(r.status, 200) << r.transport_error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.Header("x-interim"), nullptr);
  ASSERT_NE(r.Header("x-final"), nullptr);
  EXPECT_EQ(*r.Header("x-final"), "yes");
}

TEST_P(TransportTest, AnswerTrickledOneByteAtATimeIsReadWhole) {
  RawServer server(
      {{"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n"
        "Content-Length: 27\r\n\r\n{\"__type\":\"x#Throttling\"}\r\n",
        false, /*trickle=*/true}});
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(r.status, 400) << r.transport_error;
  EXPECT_EQ(r.body, "{\"__type\":\"x#Throttling\"}\r\n");
  ASSERT_NE(r.Header("content-type"), nullptr);
}

// A server that closes a keep-alive connection after answering, without
// saying so: the next request must not fail for it (a new connection, or
// the request sent again on one).
TEST_P(TransportTest, ConnectionClosedAfterAnAnswerIsNotTheNextRequestsFailure) {
  RawServer server({{kOk, /*close_after=*/true}, {kOk, true}, {kOk}});
  auto transport = Make(CurlTransportOptions{});
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = transport->SendSync(Post(server.Url(), absl::StrCat(i)));
    EXPECT_EQ(r.status, 200) << i << " " << r.transport_error;
    EXPECT_EQ(r.body, "ok") << i;
    // The close may reach the client only after its next request left.
    absl::SleepFor(absl::Milliseconds(i == 0 ? 50 : 0));
  }
  EXPECT_EQ(server.accepted(), 3);
}

TEST_P(TransportTest, AnswerCutShortIsAConnectionErrorOfUnknownFate) {
  RawServer server({{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part", true}});
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.transport_error.empty());
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(r.not_sent);  // the server had the request
}

TEST_P(TransportTest, MalformedAnswerIsAnErrorOfUnknownFate) {
  RawServer server({{"HTTP/1.1 2x0 What\r\nContent-Length: 2\r\n\r\nok"}});
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.transport_error.empty());
  EXPECT_FALSE(r.not_sent);
}

// A protocol switch nobody asked for is not an answer: the request fails
// (of unknown fate) at once instead of waiting out its timeout. (libcurl
// hands the 101 up as a status, which the DynamoDB client refuses.)
TEST(FramedTransport, UnaskedProtocolSwitchIsAnError) {
  // The connection stays open after the 101 (the second answer is never
  // asked for): only the transport can end the request early.
  RawServer server({{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                     "Connection: Upgrade\r\n\r\n"},
                    {kOk}});
  auto transport = MakeFramedTransport(CurlTransportOptions{});
  const absl::Time start = absl::Now();
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}", absl::Seconds(8)));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.transport_error.empty());
  EXPECT_FALSE(r.not_sent);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << r.transport_error;
}

TEST_P(TransportTest, AnswerWithoutLengthEndsWithTheConnection) {
  RawServer server({{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true}});
  auto transport = Make(CurlTransportOptions{});
  HttpResponse r = transport->SendSync(Post(server.Url(), "{}"));
  EXPECT_EQ(r.status, 200) << r.transport_error;
  EXPECT_EQ(r.body, "until the end");
}

// A header value is what the caller computed (a signature, a token read
// from a credentials endpoint); one that would end the header early must
// not reach the wire as a second header.
TEST(FramedTransport, HeaderValueWithALineBreakIsNeverSent) {
  LoopbackServer server;
  auto transport = MakeFramedTransport(CurlTransportOptions{});
  HttpRequest req = Post(server.Url(), "{}");
  req.headers.emplace_back("X-Amz-Security-Token", "abc\r\nX-Injected: 1");
  HttpResponse r = transport->SendSync(req);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StrContains(r.transport_error, "X-Amz-Security-Token")) << r.transport_error;
  EXPECT_TRUE(r.not_sent);
  EXPECT_TRUE(server.request_heads().empty());
}

// A listening socket that never accepts, its queue already full: a connect
// to it is neither refused nor completed (the SYN is dropped).
class BlackHole {
 public:
  BlackHole() {
    listen_fd_ = ListenOnLoopback(0, &port_);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    // Fill the queue: these complete (queued), later ones hang.
    for (int i = 0; i < 4; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      fillers_.push_back(fd);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  ~BlackHole() {
    for (int fd : fillers_) close(fd);
    close(listen_fd_);
  }
  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port_, "/"); }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

TEST_P(TransportTest, RequestTimesOutWhileItsConnectHangs) {
  BlackHole hole;
  CurlTransportOptions options;
  options.connect_timeout = absl::Seconds(20);
  auto transport = Make(options);
  const absl::Time start = absl::Now();
  HttpResponse r = transport->SendSync(Post(hole.Url(), "{}", absl::Milliseconds(300)));
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.timed_out) << r.transport_error;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(TransportTest, DestructorDoesNotWaitForAHangingConnect) {
  BlackHole hole;
  CurlTransportOptions options;
  options.connect_timeout = absl::Seconds(20);
  auto transport = Make(options);
  Results results;
  transport->Send(Post(hole.Url(), "{}", absl::Seconds(60)), results.Callback(0));
  absl::SleepFor(absl::Milliseconds(200));  // the connect has begun
  const absl::Time start = absl::Now();
  transport.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(1)));
  EXPECT_EQ(results.Take()[0].transport_error, "shutting down");
}

// An HTTP proxy that only tunnels: it answers CONNECT host:port with 200,
// connects there and relays bytes both ways. Records each CONNECT line.
class TunnelProxy {
 public:
  TunnelProxy() {
    listener_.Start([this] { Run(); });
  }
  std::string Url() const { return listener_.Url(""); }
  std::vector<std::string> connects() {
    std::lock_guard<std::mutex> lock(mu_);
    return connects_;
  }

 private:
  void Run() {
    std::vector<std::pair<int, int>> pairs;  // client, upstream
    while (!listener_.stopping()) {
      std::vector<pollfd> fds{{listener_.fd(), POLLIN, 0}};
      for (auto& [a, b] : pairs) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      const size_t polled = pairs.size();  // a pair opened below was not polled
      if (fds[0].revents & POLLIN) {
        const int fd = accept(listener_.fd(), nullptr, nullptr);
        if (fd >= 0) {
          const int up = Open(fd);
          if (up >= 0) pairs.emplace_back(fd, up);
        }
      }
      for (size_t i = 0; i < polled; ++i) {
        bool closed = false;
        for (int side = 0; side < 2 && !closed; ++side) {
          if (!(fds[1 + 2 * i + side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
          const int from = side == 0 ? pairs[i].first : pairs[i].second;
          const int to = side == 0 ? pairs[i].second : pairs[i].first;
          char buf[16384];
          const ssize_t n = read(from, buf, sizeof(buf));
          closed = n <= 0 || send(to, buf, n, MSG_NOSIGNAL) != n;
        }
        if (closed) {
          close(pairs[i].first);
          close(pairs[i].second);
          pairs[i] = {-1, -1};
        }
      }
      pairs.erase(std::remove(pairs.begin(), pairs.end(), std::make_pair(-1, -1)), pairs.end());
    }
    for (auto& [a, b] : pairs) {
      close(a);
      close(b);
    }
  }

  // Reads the CONNECT head, connects to its target, answers 200.
  int Open(int fd) {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && read(fd, &c, 1) == 1) head.push_back(c);
    const std::string line = head.substr(0, head.find("\r\n"));
    {
      std::lock_guard<std::mutex> lock(mu_);
      connects_.push_back(line);
    }
    int port = 0;
    const size_t colon = line.rfind(':');
    if (!absl::StartsWith(line, "CONNECT 127.0.0.1:") || colon == std::string::npos ||
        !absl::SimpleAtoi(line.substr(colon + 1, line.find(' ', colon) - colon - 1), &port)) {
      close(fd);
      return -1;
    }
    const int up = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(up);
      close(fd);
      return -1;
    }
    const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    (void)!write(fd, ok.data(), ok.size());
    return up;
  }

  std::mutex mu_;
  std::vector<std::string> connects_;  // guarded by mu_
  Listener listener_{8};
};

// Sets an environment variable for the scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The framed transport writes requests for the origin server, so through a
// proxy from the environment each connection is a CONNECT tunnel, also for
// http://; requests then reuse the tunnel.
// The body's length is written once, by the transport: a caller's own
// Content-Length (wrong here) would make two, and a server would read the
// wrong body or refuse the request.
TEST(FramedTransport, ContentLengthIsTheTransportsOwn) {
  LoopbackServer server;
  auto transport = MakeFramedTransport(CurlTransportOptions{});
  HttpRequest req = Post(server.Url(), "twelve bytes");
  req.headers.emplace_back("Content-Length", "3");
  HttpResponse r = transport->SendSync(req);
  EXPECT_EQ(r.status, 200) << r.transport_error;
  EXPECT_EQ(r.body, "twelve bytes");
  const std::vector<std::string> heads = server.request_heads();
  ASSERT_EQ(heads.size(), 1u);
  const std::string& head = heads[0];
  EXPECT_EQ(head.find("content-length"), head.rfind("content-length")) << head;
}

TEST(FramedTransport, ProxyFromTheEnvironmentIsTunnelledThrough) {
  LoopbackServer server;
  TunnelProxy proxy;
  ScopedEnv http_proxy("http_proxy", proxy.Url());
  ScopedEnv no_proxy("no_proxy", "");
  ScopedEnv no_proxy_upper("NO_PROXY", "");
  auto transport = MakeFramedTransport(CurlTransportOptions{});
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = transport->SendSync(Post(server.Url(), absl::StrCat("via proxy ", i)));
    EXPECT_EQ(r.status, 200) << r.transport_error;
    EXPECT_EQ(r.body, absl::StrCat("via proxy ", i));
  }
  const std::vector<std::string> connects = proxy.connects();
  ASSERT_EQ(connects.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(connects[0], absl::StrCat("CONNECT 127.0.0.1:", server.port())))
      << connects[0];
  EXPECT_EQ(server.accepted(), 1);
  // The origin sees origin-form requests.
  for (const std::string& head : server.request_heads()) {
    EXPECT_TRUE(absl::StartsWith(head, "post / http/1.1")) << head;
  }
}

INSTANTIATE_TEST_SUITE_P(Both, TransportTest, ::testing::Values("curl", "framed"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dynamo_batcher
