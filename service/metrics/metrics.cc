#include "service/metrics/metrics.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <civetweb.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}
const std::vector<double>& BackoffBuckets() {
  static const std::vector<double> b = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,     2.5,  5,     10,   30};
  return b;
}

}  // namespace

const std::vector<double>& Metrics::OpLatencyBuckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015,
                                        0.025, 0.05,   0.1,   0.25,   0.5,  1,
                                        2.5,   5,      10,    30,     60,   120};
  return b;
}

// Codes the codec and the server reject with (service/codec, service/server).
const std::vector<std::string>& Metrics::KnownRejectReasons() {
  static const std::vector<std::string> v = {
      "DeleteKeyNotKeyOnly", "DuplicateSetMember", "EmptyAttributeName", "EmptyAttributeValue",
      "EmptyKeyValue",       "EmptySet",           "InvalidNull",        "InvalidNumber",
      "InvalidUtf8",         "ItemTooLarge",       "KeyMissing",         "KeyTooLarge",
      "KeyTypeMismatch",     "NestingTooDeep",     "NoOperation",        "TooManyOps"};
  return v;
}
// The sidecar's own reasons, then DynamoDB's non-retryable errors.
const std::vector<std::string>& Metrics::KnownFailReasons() {
  static const std::vector<std::string> v = {
      "RetriesExhausted",       "DeadlineExceeded",           "ShuttingDown",
      "CredentialsUnavailable", "ValidationException",        "ResourceNotFoundException",
      "AccessDeniedException",  "UnrecognizedClientException"};
  return v;
}
const std::vector<std::string>& Metrics::KnownThrottleErrors() {
  static const std::vector<std::string> v = {"UnprocessedItems",
                                             "ProvisionedThroughputExceededException",
                                             "ThrottlingException", "RequestLimitExceeded"};
  return v;
}
const std::vector<std::string>& Metrics::KnownHttpErrorClasses() {
  static const std::vector<std::string> v = {"4xx", "5xx", "timeout", "connection"};
  return v;
}

Metrics::Metrics(const std::vector<std::string>& tables)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  received_ = &BuildCounter()
                   .Name("dynamo_batcher_ops_received_total")
                   .Help("Ops received over gRPC, before validation.")
                   .Register(r);
  coalesced_ = &BuildCounter()
                    .Name("dynamo_batcher_ops_coalesced_total")
                    .Help("Ops replaced by a later op on the same key before being sent.")
                    .Register(r);
  rejected_ = &BuildCounter()
                   .Name("dynamo_batcher_ops_rejected_total")
                   .Help("Ops refused as invalid input, by rule.")
                   .Register(r);
  written_ = &BuildCounter()
                  .Name("dynamo_batcher_ops_written_total")
                  .Help("Ops DynamoDB accepted.")
                  .Register(r);
  failed_ = &BuildCounter()
                 .Name("dynamo_batcher_ops_failed_total")
                 .Help("Ops that ended FAILED, by reason (DynamoDB error or retry limit).")
                 .Register(r);
  batches_ = &BuildCounter()
                  .Name("dynamo_batcher_batches_sent_total")
                  .Help("BatchWriteItem calls sent.")
                  .Register(r);
  unprocessed_ = &BuildCounter()
                      .Name("dynamo_batcher_unprocessed_items_total")
                      .Help("Items DynamoDB returned in UnprocessedItems.")
                      .Register(r);
  throttle_ = &BuildCounter()
                   .Name("dynamo_batcher_throttle_events_total")
                   .Help(
                       "Throttling signals: whole-call throttling errors and partial "
                       "UnprocessedItems (error=\"UnprocessedItems\").")
                   .Register(r);
  throttle_reasons_ = &BuildCounter()
                           .Name("dynamo_batcher_throttle_reasons_total")
                           .Help(
                               "Throttled calls by DynamoDB's ThrottlingReasons (one count per "
                               "reason given; \"Unspecified\" when none was, \"Other\" for "
                               "an unknown one).")
                           .Register(r);
  retries_ = &BuildCounter()
                  .Name("dynamo_batcher_retries_total")
                  .Help("Op re-sends scheduled after unprocessed items or retryable errors.")
                  .Register(r);
  dead_lettered_ = &BuildCounter()
                        .Name("dynamo_batcher_dead_lettered_total")
                        .Help("FAILED ops appended to the dead-letter file.")
                        .Register(r);
  wcu_ = &BuildCounter()
              .Name("dynamo_batcher_consumed_wcu_total")
              .Help("Write capacity units DynamoDB reported as consumed.")
              .Register(r);
  http_errors_ = &BuildCounter()
                      .Name("dynamo_batcher_http_errors_total")
                      .Help("Failed DynamoDB HTTP calls by class (4xx, 5xx, timeout, connection).")
                      .Register(r);
  batch_size_ = &BuildHistogram()
                     .Name("dynamo_batcher_batch_size")
                     .Help("Items per BatchWriteItem call.")
                     .Register(r);
  batch_seconds_ = &BuildHistogram()
                        .Name("dynamo_batcher_batch_write_seconds")
                        .Help("Duration of one BatchWriteItem call.")
                        .Register(r);
  op_latency_ = &BuildHistogram()
                     .Name("dynamo_batcher_op_latency_seconds")
                     .Help("From an op's arrival to its result.")
                     .Register(r);
  backoff_ = &BuildHistogram()
                  .Name("dynamo_batcher_backoff_seconds")
                  .Help("Backoff delays scheduled before retries.")
                  .Register(r);
  queue_items_ = &BuildGauge()
                      .Name("dynamo_batcher_queue_items")
                      .Help("Ops buffered and not yet answered, in flight excluded.")
                      .Register(r);
  queue_bytes_ = &BuildGauge()
                      .Name("dynamo_batcher_queue_bytes")
                      .Help("Bytes held by unanswered ops (in flight included).")
                      .Register(r);
  queue_budget_ = &BuildGauge()
                       .Name("dynamo_batcher_queue_budget_bytes")
                       .Help("Configured buffer budget per table, for alerting on queue_bytes.")
                       .Register(r);
  rate_ = &BuildGauge()
               .Name("dynamo_batcher_send_rate_limit")
               .Help("Current adaptive send rate limit, items/s.")
               .Register(r);
  paced_keys_ = &BuildGauge()
                     .Name("dynamo_batcher_paced_keys")
                     .Help(
                         "Partition-key values paced on their own because DynamoDB throttles "
                         "them (hot partitions); the table rate is not lowered for them.")
                     .Register(r);
  build_info_ = &BuildGauge()
                     .Name("dynamo_batcher_build_info")
                     .Help("Always 1; the version label says which build runs.")
                     .Register(r);
  credentials_ = &BuildGauge()
                      .Name("dynamo_batcher_credentials_provider")
                      .Help("1 for the AWS credentials provider in use.")
                      .Register(r);
  inflight_requests_ = &BuildGauge()
                            .Name("dynamo_batcher_inflight_requests")
                            .Help("BatchWriteItem calls in flight.")
                            .Register(r)
                            .Add({});
  active_streams_ = &BuildGauge()
                         .Name("dynamo_batcher_active_streams")
                         .Help("Open Write streams.")
                         .Register(r)
                         .Add({});
  ready_ = &BuildGauge()
                .Name("dynamo_batcher_ready")
                .Help("1 when the sidecar has reached DynamoDB and serves traffic.")
                .Register(r)
                .Add({});

  refresh_failures_ = &BuildCounter()
                           .Name("dynamo_batcher_credentials_refresh_failures_total")
                           .Help(
                               "Failed refreshes of the AWS credentials in use (the previous "
                               "credentials stay in use until they expire).")
                           .Register(r)
                           .Add({});
  config_hash_ = &BuildGauge()
                      .Name("dynamo_batcher_config_hash")
                      .Help(
                          "1 for the configuration in use; the hash label is the "
                          "SHA-256 (first 16 hex digits) of its file.")
                      .Register(r);
  config_reload_success_ = &BuildGauge()
                                .Name("dynamo_batcher_config_reload_success")
                                .Help(
                                    "1 if the last configuration load (start-up or SIGHUP) "
                                    "succeeded, 0 if the last reload was refused.")
                                .Register(r)
                                .Add({});
  config_reload_time_ = &BuildGauge()
                             .Name("dynamo_batcher_config_last_reload_timestamp_seconds")
                             .Help("Unix time of the last successful configuration load.")
                             .Register(r)
                             .Add({});
  config_reloads_ = &BuildCounter()
                         .Name("dynamo_batcher_config_reloads_total")
                         .Help("SIGHUP reloads by result (success, failure).")
                         .Register(r);
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
    for (const auto& reason : KnownRejectReasons()) {
      rejected_->Add({{"table", t}, {"reason", reason}});
    }
    for (const auto& reason : KnownFailReasons()) failed_->Add({{"table", t}, {"reason", reason}});
    for (const auto& error : KnownThrottleErrors()) {
      throttle_->Add({{"table", t}, {"error", error}});
    }
    m.paced_keys = &paced_keys_->Add({{"table", t}});
    for (const std::string& reason : ThrottleReasonLabels()) {
      throttle_reasons_->Add({{"table", t}, {"reason", reason}});
    }
    tables_.push_back(m);
  }
  // An op naming no configured table is counted without a table label.
  rejected_->Add({{"table", ""}, {"reason", "UnknownTable"}});
  for (const auto& c : KnownHttpErrorClasses()) http_errors_->Add({{"class", c}});
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
void Metrics::SetConfigHash(const std::string& hash) {
  prometheus::Gauge* next = &config_hash_->Add({{"hash", hash}});
  if (config_hash_series_ != nullptr && config_hash_series_ != next) {
    config_hash_->Remove(config_hash_series_);
  }
  next->Set(1);
  config_hash_series_ = next;
}
prometheus::Counter& Metrics::ConfigReloads(const std::string& result) {
  return config_reloads_->Add({{"result", result}});
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

namespace {

// Builds a civetweb listening_ports entry from host:port: the host is
// resolved here (civetweb takes numeric addresses only).
absl::StatusOr<std::string> ListeningPort(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: must be host:port (got \"", listen, "\")"));
  }
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: port must be 0-65535 (got \"", listen, "\")"));
  }
  // Debian 12's civetweb is built without IPv6 (mg_check_feature(8) == 0):
  // then only IPv4 addresses are looked up, and an IPv6 one is refused.
  const bool ipv6 = mg_check_feature(8) != 0;
  addrinfo hints{};
  hints.ai_family = ipv6 ? AF_UNSPEC : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    in6_addr v6{};
    if (!ipv6 && inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics_listen: ", listen,
                       " is an IPv6 address, and the HTTP server library "
                       "(civetweb) of this build has no IPv6 support; use an IPv4 address such as "
                       "0.0.0.0 or 127.0.0.1"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: cannot resolve ", listen, ": ", gai_strerror(rc)));
  }
  char numeric[NI_MAXHOST] = {0};
  rc = getnameinfo(res->ai_addr, res->ai_addrlen, numeric, sizeof(numeric), nullptr, 0,
                   NI_NUMERICHOST);
  const bool v6 = res->ai_family == AF_INET6;
  freeaddrinfo(res);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: cannot resolve ", listen, ": ", gai_strerror(rc)));
  }
  return v6 ? absl::StrCat("[", numeric, "]:", port) : absl::StrCat(numeric, ":", port);
}

void SendResponse(mg_connection* conn, int status, const char* content_type,
                  const std::string& body, bool head) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", content_type, -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  mg_response_header_send(conn);
  if (!head && !body.empty()) mg_write(conn, body.data(), body.size());
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(std::shared_ptr<prometheus::Registry> registry,
                                     std::function<bool()> ready, std::function<bool()> live,
                                     Options options)
    : registry_(std::move(registry)),
      ready_(std::move(ready)),
      live_(std::move(live)),
      options_(options) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Start(const std::string& listen) {
  if (context_ != nullptr) return absl::FailedPreconditionError("metrics server already started");
  absl::StatusOr<std::string> ports = ListeningPort(listen);
  if (!ports.ok()) return ports.status();
  static const bool initialized = [] {
    mg_init_library(0);
    return true;
  }();
  (void)initialized;

  const std::string threads = std::to_string(options_.worker_threads);
  const std::string queue = std::to_string(options_.accept_queue);
  const std::string timeout = std::to_string(options_.request_timeout_ms);
  // civetweb's own buffer is twice our limit, so requests between the two get
  // a precise 431 from Handle(); beyond it civetweb answers 400 and closes.
  const std::string max_request = std::to_string(2 * options_.max_request_bytes);
  // No document_root: civetweb serves no files. One request per connection.
  const char* config[] = {"listening_ports",
                          ports->c_str(),
                          "num_threads",
                          threads.c_str(),
                          "connection_queue",
                          queue.c_str(),
                          "listen_backlog",
                          "128",
                          "request_timeout_ms",
                          timeout.c_str(),
                          "max_request_size",
                          max_request.c_str(),
                          "enable_keep_alive",
                          "no",
                          "linger_timeout_ms",
                          "500",
                          nullptr};
  mg_callbacks callbacks{};
  callbacks.begin_request = &MetricsHttpServer::OnRequest;
  // civetweb reports start-up errors through this callback's return; it
  // prints nothing itself without an error_log_file.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = this;
  init.configuration_options = config;
  char error_text[256] = {0};
  unsigned error_code = 0;
  mg_error_data error{};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  context_ = mg_start2(&init, &error);
  if (context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("metrics_listen: cannot listen on ", listen, ": ",
                                               error_text[0] ? error_text : "civetweb failed"));
  }
  mg_server_port bound[4];
  int n = mg_get_server_ports(context_, 4, bound);
  if (n < 1) {
    Stop();
    return absl::UnavailableError(absl::StrCat("metrics_listen: no port bound for ", listen));
  }
  port_ = bound[0].port;
  bound_host_ = ports->substr(0, ports->rfind(':'));
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  if (context_ == nullptr) return;
  // civetweb's accept loop polls with a 2 s quantum before it sees the stop
  // flag; a connection to ourselves wakes it so shutdown is prompt.
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    std::string host = bound_host_;
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port_).c_str(), &hints, &res) != 0) return;
    for (int i = 0; i < 100 && !stopped.load(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      (void)connect(fd, res->ai_addr, res->ai_addrlen);
      close(fd);
    }
    freeaddrinfo(res);
  });
  mg_stop(context_);
  stopped = true;
  waker.join();
  context_ = nullptr;
}

int MetricsHttpServer::OnRequest(mg_connection* conn) {
  auto* self = static_cast<MetricsHttpServer*>(mg_get_user_data(mg_get_context(conn)));
  return self->Handle(conn);
}

int MetricsHttpServer::Handle(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string method = info->request_method ? info->request_method : "";
  // The path as sent (percent-decoded, dot segments kept), query excluded.
  const std::string path = info->local_uri_raw ? info->local_uri_raw : "";
  const bool head = method == "HEAD";
  const char* kText = "text/plain; charset=utf-8";
  // Size of the request line and headers as received (civetweb keeps the
  // first MG_MAX_HEADERS headers and drops the rest, so a full table means
  // too many).
  auto len = [](const char* s) { return s ? std::strlen(s) : 0; };
  size_t request_bytes = method.size() + len(info->request_uri) + len(info->query_string) +
                         len(info->http_version) + 14;
  for (int i = 0; i < info->num_headers; ++i) {
    request_bytes += len(info->http_headers[i].name) + len(info->http_headers[i].value) + 4;
  }
  if (request_bytes > static_cast<size_t>(options_.max_request_bytes) ||
      info->num_headers >= MG_MAX_HEADERS) {
    mg_send_http_error(conn, 431, "request line and headers over %d bytes or %d fields\n",
                       options_.max_request_bytes, MG_MAX_HEADERS - 1);
  } else if (method != "GET" && !head) {
    SendResponse(conn, 405, kText, "method not allowed\n", head);
  } else if (path == "/metrics") {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_->Collect());
    SendResponse(conn, 200, "text/plain; version=0.0.4; charset=utf-8", out.str(), head);
  } else if (path == "/healthz") {
    bool live = !live_ || live_();
    SendResponse(conn, live ? 200 : 503, kText, live ? "ok\n" : "not live\n", head);
  } else if (path == "/readyz") {
    bool ready = ready_ && ready_();
    SendResponse(conn, ready ? 200 : 503, kText, ready ? "ready\n" : "not ready\n", head);
  } else {
    SendResponse(conn, 404, kText, "not found: try /metrics, /healthz or /readyz\n", head);
  }
  return 1;
}

}  // namespace dynamo_batcher
