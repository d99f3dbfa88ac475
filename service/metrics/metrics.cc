#include "service/metrics/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace dynamo_batcher {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

const std::vector<double>& BatchSizeBuckets() {
  static const std::vector<double> b = {1, 2, 5, 10, 15, 20, 24, 25};
  return b;
}
const std::vector<double>& CallSecondsBuckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,   0.25,   0.5,   1,    2.5,   5, 10};
  return b;
}
const std::vector<double>& BackoffBuckets() {
  static const std::vector<double> b = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,   1,    2.5,   5,    10, 30};
  return b;
}

}  // namespace

const std::vector<double>& Metrics::OpLatencyBuckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015,
                                        0.025, 0.05,   0.1,   0.25,   0.5,  1,
                                        2.5,   5,      10,    30,     60,   120};
  return b;
}

Metrics::Metrics(const std::vector<std::string>& tables)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  received_ = &BuildCounter().Name("dynamo_batcher_ops_received_total")
                   .Help("Ops received over gRPC, before validation.").Register(r);
  coalesced_ = &BuildCounter().Name("dynamo_batcher_ops_coalesced_total")
                    .Help("Ops replaced by a later op on the same key before being sent.")
                    .Register(r);
  rejected_ = &BuildCounter().Name("dynamo_batcher_ops_rejected_total")
                   .Help("Ops refused as invalid input, by rule.").Register(r);
  written_ = &BuildCounter().Name("dynamo_batcher_ops_written_total")
                  .Help("Ops DynamoDB accepted.").Register(r);
  failed_ = &BuildCounter().Name("dynamo_batcher_ops_failed_total")
                 .Help("Ops that ended FAILED, by reason (DynamoDB error or retry limit).")
                 .Register(r);
  batches_ = &BuildCounter().Name("dynamo_batcher_batches_sent_total")
                  .Help("BatchWriteItem calls sent.").Register(r);
  unprocessed_ = &BuildCounter().Name("dynamo_batcher_unprocessed_items_total")
                      .Help("Items DynamoDB returned in UnprocessedItems.").Register(r);
  throttle_ = &BuildCounter().Name("dynamo_batcher_throttle_events_total")
                   .Help("Throttling signals: whole-call throttling errors and partial "
                         "UnprocessedItems (error=\"UnprocessedItems\").")
                   .Register(r);
  throttle_reasons_ = &BuildCounter().Name("dynamo_batcher_throttle_reasons_total")
                           .Help("Throttled calls by DynamoDB's ThrottlingReasons (one count per "
                                 "reason given; \"Unspecified\" when none was, \"Other\" for "
                                 "an unknown one).")
                           .Register(r);
  retries_ = &BuildCounter().Name("dynamo_batcher_retries_total")
                  .Help("Op re-sends scheduled after unprocessed items or retryable errors.")
                  .Register(r);
  dead_lettered_ = &BuildCounter().Name("dynamo_batcher_dead_lettered_total")
                        .Help("FAILED ops appended to the dead-letter file.").Register(r);
  wcu_ = &BuildCounter().Name("dynamo_batcher_consumed_wcu_total")
              .Help("Write capacity units DynamoDB reported as consumed.").Register(r);
  http_errors_ = &BuildCounter().Name("dynamo_batcher_http_errors_total")
                      .Help("Failed DynamoDB HTTP calls by class (4xx, 5xx, timeout, connection).")
                      .Register(r);
  batch_size_ = &BuildHistogram().Name("dynamo_batcher_batch_size")
                     .Help("Items per BatchWriteItem call.").Register(r);
  batch_seconds_ = &BuildHistogram().Name("dynamo_batcher_batch_write_seconds")
                        .Help("Duration of one BatchWriteItem call.").Register(r);
  op_latency_ = &BuildHistogram().Name("dynamo_batcher_op_latency_seconds")
                     .Help("From an op's arrival to its result.").Register(r);
  backoff_ = &BuildHistogram().Name("dynamo_batcher_backoff_seconds")
                  .Help("Backoff delays scheduled before retries.").Register(r);
  queue_items_ = &BuildGauge().Name("dynamo_batcher_queue_items")
                      .Help("Ops buffered and not yet answered, in flight excluded.").Register(r);
  queue_bytes_ = &BuildGauge().Name("dynamo_batcher_queue_bytes")
                      .Help("Bytes held by unanswered ops (in flight included).").Register(r);
  queue_budget_ = &BuildGauge().Name("dynamo_batcher_queue_budget_bytes")
                       .Help("Configured buffer budget per table, for alerting on queue_bytes.")
                       .Register(r);
  rate_ = &BuildGauge().Name("dynamo_batcher_send_rate_limit")
               .Help("Current adaptive send rate limit, items/s.").Register(r);
  paced_keys_ = &BuildGauge().Name("dynamo_batcher_paced_keys")
                     .Help("Partition-key values paced on their own because DynamoDB throttles "
                           "them (hot partitions); the table rate is not lowered for them.")
                     .Register(r);
  build_info_ = &BuildGauge().Name("dynamo_batcher_build_info")
                     .Help("Always 1; the version label says which build runs.").Register(r);
  credentials_ = &BuildGauge().Name("dynamo_batcher_credentials_provider")
                      .Help("1 for the AWS credentials provider in use.").Register(r);
  inflight_requests_ = &BuildGauge().Name("dynamo_batcher_inflight_requests")
                            .Help("BatchWriteItem calls in flight.").Register(r).Add({});
  active_streams_ = &BuildGauge().Name("dynamo_batcher_active_streams")
                         .Help("Open Write streams.").Register(r).Add({});
  ready_ = &BuildGauge().Name("dynamo_batcher_ready")
                .Help("1 when the sidecar has reached DynamoDB and serves traffic.")
                .Register(r).Add({});

  refresh_failures_ = &BuildCounter().Name("dynamo_batcher_credentials_refresh_failures_total")
                           .Help("Failed refreshes of the AWS credentials in use (the previous "
                                 "credentials stay in use until they expire).")
                           .Register(r).Add({});
  for (const auto& t : tables) {
    Table m;
    m.received_put = &received_->Add({{"table", t}, {"op", "put"}});
    m.received_delete = &received_->Add({{"table", t}, {"op", "delete"}});
    m.coalesced = &coalesced_->Add({{"table", t}});
    m.written_put = &written_->Add({{"table", t}, {"op", "put"}});
    m.written_delete = &written_->Add({{"table", t}, {"op", "delete"}});
    m.batches_sent = &batches_->Add({{"table", t}});
    m.unprocessed_items = &unprocessed_->Add({{"table", t}});
    m.retries = &retries_->Add({{"table", t}});
    m.dead_lettered = &dead_lettered_->Add({{"table", t}});
    m.consumed_wcu = &wcu_->Add({{"table", t}});
    m.batch_size = &batch_size_->Add({{"table", t}}, BatchSizeBuckets());
    m.batch_write_seconds = &batch_seconds_->Add({{"table", t}}, CallSecondsBuckets());
    m.op_latency_seconds = &op_latency_->Add({{"table", t}}, OpLatencyBuckets());
    m.backoff_seconds = &backoff_->Add({{"table", t}}, BackoffBuckets());
    m.queue_items = &queue_items_->Add({{"table", t}});
    m.queue_bytes = &queue_bytes_->Add({{"table", t}});
    m.queue_budget_bytes = &queue_budget_->Add({{"table", t}});
    m.send_rate_limit = &rate_->Add({{"table", t}});
    m.paced_keys = &paced_keys_->Add({{"table", t}});
    // Series that dashboards divide by should exist from the start.
    throttle_->Add({{"table", t}, {"error", "UnprocessedItems"}});
    for (const std::string& reason : ThrottleReasonLabels()) {
      throttle_reasons_->Add({{"table", t}, {"reason", reason}});
    }
    tables_.push_back(m);
  }
}

prometheus::Counter& Metrics::Rejected(const std::string& table, const std::string& reason) {
  return rejected_->Add({{"table", table}, {"reason", reason}});
}
prometheus::Counter& Metrics::Failed(const std::string& table, const std::string& reason) {
  return failed_->Add({{"table", table}, {"reason", reason}});
}
prometheus::Counter& Metrics::ThrottleEvents(const std::string& table, const std::string& error) {
  return throttle_->Add({{"table", table}, {"error", error}});
}
prometheus::Counter& Metrics::ThrottleReasons(const std::string& table, const std::string& reason) {
  return throttle_reasons_->Add({{"table", table}, {"reason", reason}});
}
prometheus::Counter& Metrics::HttpErrors(const std::string& error_class) {
  return http_errors_->Add({{"class", error_class}});
}
prometheus::Gauge& Metrics::BuildInfo(const std::string& version) {
  return build_info_->Add({{"version", version}});
}
prometheus::Gauge& Metrics::CredentialsProvider(const std::string& name) {
  return credentials_->Add({{"provider", name}});
}

void LocalHistogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i] += 1;
  sum_ += v;
  dirty_ = true;
}

void LocalHistogram::Publish() {
  if (!dirty_) return;
  target_->ObserveMultiple(counts_, sum_);
  std::fill(counts_.begin(), counts_.end(), 0.0);
  sum_ = 0;
  dirty_ = false;
}

MetricsHttpServer::MetricsHttpServer(std::shared_ptr<prometheus::Registry> registry,
                                     std::function<bool()> ready,
                                     std::function<bool()> live)
    : registry_(std::move(registry)), ready_(std::move(ready)), live_(std::move(live)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Start(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("metrics_listen: bad address ", listen));
  }
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string port = listen.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: cannot resolve ", listen, ": ", gai_strerror(rc)));
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen_fd_ != -1 ||
      ::listen(fd, 64) != 0) {
    int err = errno;
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("metrics_listen: cannot listen on ", listen, ": ", strerror(err)));
  }
  freeaddrinfo(res);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.ss_family == AF_INET6
                    ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  listen_fd_ = fd;
  if (pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    return absl::InternalError("metrics server: pipe failed");
  }
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  if (thread_.joinable()) {
    char c = 'x';
    (void)!write(wake_pipe_[1], &c, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_pipe_[0], &wake_pipe_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void MetricsHttpServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLIN) {
      int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        Handle(c);
        close(c);
      }
    }
  }
}

void MetricsHttpServer::Handle(int fd) {
  // One request per connection (Connection: close); scrapes are infrequent.
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return;
    req.append(buf, n);
  }
  std::string method = req.substr(0, req.find(' '));
  size_t p1 = req.find(' ');
  size_t p2 = p1 == std::string::npos ? p1 : req.find(' ', p1 + 1);
  std::string path = (p1 == std::string::npos || p2 == std::string::npos)
                         ? "" : req.substr(p1 + 1, p2 - p1 - 1);
  path = path.substr(0, path.find('?'));
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  if (method != "GET" && method != "HEAD") {
    status = 405;
    body = "method not allowed\n";
  } else if (path == "/metrics") {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_->Collect());
    body = out.str();
    content_type = "text/plain; version=0.0.4; charset=utf-8";
  } else if (path == "/healthz") {
    bool live = !live_ || live_();
    status = live ? 200 : 503;
    body = live ? "ok\n" : "not live\n";
  } else if (path == "/readyz") {
    bool ready = ready_ && ready_();
    status = ready ? 200 : 503;
    body = ready ? "ready\n" : "not ready\n";
  } else {
    status = 404;
    body = "not found: try /metrics, /healthz or /readyz\n";
  }
  const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed" : "Service Unavailable";
  std::string head = absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Type: ",
                                  content_type, "\r\nContent-Length: ", body.size(),
                                  "\r\nConnection: close\r\n\r\n");
  std::string out = head + (method == "HEAD" ? "" : body);
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = write(fd, out.data() + off, out.size() - off);
    if (n <= 0) return;
    off += n;
  }
}

}  // namespace dynamo_batcher
