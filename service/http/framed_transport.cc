// HTTP/1.1 on connections that libcurl opens. libcurl does what is hard to
// get right and happens once per connection: DNS, a proxy's CONNECT tunnel,
// TLS and its verification (CURLOPT_CONNECT_ONLY). This transport does what
// happens on every request: it writes the request head itself and reads the
// answer with http-parser (Debian's libhttp-parser, the parser Node.js used
// before llhttp), through curl_easy_send / curl_easy_recv, so TLS stays
// curl's. libcurl's own request path costs ~100,000 instructions per
// BatchWriteItem call (7.88 formats every header byte through its printf,
// re-parses the URL, scans the header list for each header it might add);
// this one costs a few thousand.
//
// One I/O thread owns every connection and every request. Other threads
// only append to a mutex-protected queue and wake the thread with
// curl_multi_wakeup, and only when it sleeps in curl_multi_poll (as the
// curl transport does). Connections still being opened are curl's, in the
// multi handle; open ones are polled as curl_multi_poll's extra fds.

#include <curl/curl.h>
#include <http_parser.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <deque>
#include <memory>
#include <mutex>  // std::call_once
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/http/curl_common.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {
namespace {

using http_internal::Describe;
using http_internal::kMaxResponseHeaderBytes;
using http_internal::kShuttingDown;
using http_internal::TransportError;

using Clock = std::chrono::steady_clock;

// An idle connection older than this is closed rather than reused
// (libcurl's default CURLOPT_MAXAGE_CONN).
constexpr auto kMaxIdle = std::chrono::seconds(118);
constexpr size_t kReadChunk = 16 << 10;

// scheme://[userinfo@]authority[/path][?query][#fragment], http or https.
struct Target {
  std::string origin;  // scheme://authority/ : what a connection is for
  std::string host;    // the Host header: the authority without userinfo
  std::string path;    // path and query, "/" when empty
};

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

// Empty on success, else why the URL cannot be sent.
std::string SplitUrl(absl::string_view url, Target* t) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return "invalid url: no scheme";
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") {
    return absl::StrCat("unsupported protocol: ", scheme, " (http and https only)");
  }
  const size_t start = scheme_end + 3;
  size_t end = url.find_first_of("/?#", start);
  if (end == absl::string_view::npos) end = url.size();
  const absl::string_view authority = url.substr(start, end - start);
  absl::string_view host = authority;
  if (const size_t at = host.rfind('@'); at != absl::string_view::npos) host.remove_prefix(at + 1);
  if (host.empty()) return "invalid url: no host";
  absl::string_view rest = url.substr(end);
  if (const size_t hash = rest.find('#'); hash != absl::string_view::npos) {
    rest = rest.substr(0, hash);
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return "invalid url: a space or control character";
    }
  }
  t->origin = absl::StrCat(scheme, "://", authority, "/");
  t->host = std::string(host);
  t->path = rest.empty() || rest.front() == '?' ? absl::StrCat("/", rest) : std::string(rest);
  return "";
}

struct Conn;

// One request, from Send to its callback.
struct Exchange {
  HttpRequest request;
  HttpTransport::Callback done;
  Target target;
  Clock::time_point start;
  Clock::time_point deadline = Clock::time_point::max();
  std::string wire;  // head and body, as sent
  size_t sent = 0;
  bool retried = false;
  bool head = false;  // HEAD: the answer has no body whatever it announces
  // The answer being read.
  HttpResponse response;
  std::string field, value;
  bool in_value = false;
  size_t header_bytes = 0;
  size_t received = 0;
  bool complete = false;
  bool too_large = false;
};

struct Conn {
  CURL* easy = nullptr;
  curl_socket_t fd = CURL_SOCKET_BAD;
  std::string origin;
  bool tls = false;
  enum class State { kConnecting, kIdle, kBusy } state = State::kConnecting;
  std::unique_ptr<Exchange> ex;  // connecting or busy
  Clock::time_point idle_since;
  int served = 0;
  http_parser parser;
  CURLcode result = CURLE_OK;  // of the connect
  char error[CURL_ERROR_SIZE] = {0};
};

Exchange* Of(http_parser* p) { return static_cast<Exchange*>(p->data); }

void EndHeader(Exchange* ex) {
  if (!ex->in_value && ex->field.empty()) return;
  ex->response.headers.emplace_back(absl::AsciiStrToLower(ex->field),
                                    std::string(absl::StripAsciiWhitespace(ex->value)));
  ex->field.clear();
  ex->value.clear();
  ex->in_value = false;
}

bool CountHeaderBytes(Exchange* ex, size_t n) {
  ex->header_bytes += n;
  if (ex->header_bytes <= kMaxResponseHeaderBytes) return true;
  ex->too_large = true;
  return false;
}

int OnMessageBegin(http_parser* p) {
  Exchange* ex = Of(p);
  // A new status line (after an interim 1xx): start over.
  ex->response.headers.clear();
  ex->response.body.clear();
  ex->field.clear();
  ex->value.clear();
  ex->in_value = false;
  return 0;
}

int OnHeaderField(http_parser* p, const char* at, size_t n) {
  Exchange* ex = Of(p);
  if (!CountHeaderBytes(ex, n)) return -1;
  if (ex->in_value) EndHeader(ex);
  ex->field.append(at, n);
  return 0;
}

int OnHeaderValue(http_parser* p, const char* at, size_t n) {
  Exchange* ex = Of(p);
  if (!CountHeaderBytes(ex, n)) return -1;
  ex->in_value = true;
  ex->value.append(at, n);
  return 0;
}

int OnHeadersComplete(http_parser* p) {
  Exchange* ex = Of(p);
  EndHeader(ex);
  if (p->status_code / 100 == 1) return 0;  // interim; its end starts the next
  if (ex->head) return 1;                   // no body follows
  // Refused before reading when Content-Length announces more.
  if (p->content_length != ULLONG_MAX && p->content_length > ex->request.max_response_bytes) {
    ex->too_large = true;
    return -1;
  }
  return 0;
}

int OnBody(http_parser* p, const char* at, size_t n) {
  Exchange* ex = Of(p);
  const size_t cap = ex->request.max_response_bytes;
  if (n > cap - std::min(cap, ex->response.body.size())) {
    ex->too_large = true;
    return -1;
  }
  ex->response.body.append(at, n);
  return 0;
}

int OnMessageComplete(http_parser* p) {
  if (p->status_code / 100 == 1) return 0;
  Of(p)->complete = true;
  http_parser_pause(p, 1);  // the answer is whole; nothing after it is read
  return 0;
}

http_parser_settings ParserSettings() {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_message_begin = &OnMessageBegin;
  s.on_header_field = &OnHeaderField;
  s.on_header_value = &OnHeaderValue;
  s.on_headers_complete = &OnHeadersComplete;
  s.on_body = &OnBody;
  s.on_message_complete = &OnMessageComplete;
  return s;
}

const http_parser_settings kSettings = ParserSettings();

bool HeaderSafe(absl::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// The request as it goes on the wire. Empty on success, else why not.
std::string Frame(Exchange* ex) {
  const HttpRequest& req = ex->request;
  if (req.method.empty() || !std::all_of(req.method.begin(), req.method.end(), IsTokenChar)) {
    return "invalid request: method";
  }
  bool has_host = false;
  size_t size = req.method.size() + ex->target.path.size() + ex->target.host.size() + 64;
  for (const auto& [name, value] : req.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar) || !HeaderSafe(value)) {
      return absl::StrCat("invalid request: header ", name.empty() ? "(no name)" : name,
                          " has a character a header cannot carry");
    }
    if (absl::EqualsIgnoreCase(name, "host")) has_host = true;
    size += name.size() + value.size() + 4;
  }
  const bool with_length = !req.body.empty() || req.method == "POST" || req.method == "PUT";
  std::string& w = ex->wire;
  w.reserve(size + req.body.size());
  absl::StrAppend(&w, req.method, " ", ex->target.path, " HTTP/1.1\r\n");
  if (!has_host) absl::StrAppend(&w, "Host: ", ex->target.host, "\r\n");
  for (const auto& [name, value] : req.headers) {
    // As with libcurl, a header without a value is not sent. The body's
    // length is the transport's to write, once.
    if (absl::StripAsciiWhitespace(value).empty() ||
        absl::EqualsIgnoreCase(name, "content-length")) {
      continue;
    }
    absl::StrAppend(&w, name, ": ", value, "\r\n");
  }
  if (with_length) absl::StrAppend(&w, "Content-Length: ", req.body.size(), "\r\n");
  w.append("\r\n");
  w.append(req.body);
  ex->head = req.method == "HEAD";
  return "";
}

class FramedTransport : public HttpTransport {
 public:
  explicit FramedTransport(CurlTransportOptions options) : options_(std::move(options)) {
    static std::once_flag init;
    std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ >= 0) thread_ = std::thread([this] { Run(); });
  }

  ~FramedTransport() override {
    stop_connecting_ = true;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      WakeLocked();
    }
    if (thread_.joinable()) thread_.join();
    // The I/O thread answered every request; connects still running stop
    // at their next progress call (or their connect timeout).
    std::vector<std::thread> connectors;
    {
      absl::MutexLock lock(&mu_);
      connectors.swap(connectors_);
    }
    for (std::thread& t : connectors) t.join();
    for (auto& c : conns_) {
      if (c->easy != nullptr) curl_easy_cleanup(c->easy);
    }
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  void Send(HttpRequest request, Callback done) override {
    auto ex = std::make_unique<Exchange>();
    ex->request = std::move(request);
    ex->done = std::move(done);
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_ && wake_fd_ >= 0) {
        queue_.push_back(std::move(ex));
        WakeLocked();
        return;
      }
    }
    ex->done(TransportError(wake_fd_ < 0 ? "eventfd failed" : kShuttingDown));
  }

 private:
  // Wakes the I/O thread if it sleeps (or is about to) in its poll, once
  // per sleep.
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!polling_ || woken_ || wake_fd_ < 0) return;
    woken_ = true;
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  void Run() {
    pthread_setname_np(pthread_self(), "http-io");
    std::vector<pollfd> fds;
    std::vector<Conn*> polled;
    while (true) {
      std::vector<std::unique_ptr<Exchange>> incoming;
      std::vector<Conn*> connected;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        incoming.swap(queue_);
        connected.swap(connected_);
        stopping = stopping_;
      }
      if (stopping) {
        for (auto& ex : incoming) ex->done(TransportError(kShuttingDown));
        break;
      }
      Clock::time_point now = Clock::now();
      for (Conn* c : connected) Connected(c);
      for (auto& ex : incoming) Accept(std::move(ex), now);
      Dispatch(now);
      Expire(now);

      fds.clear();
      polled.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      Clock::time_point next = now + std::chrono::seconds(1);
      for (const auto& c : conns_) {
        if (c->ex) next = std::min(next, c->ex->deadline);
        if (c->state != Conn::State::kBusy) continue;
        short events = POLLIN;
        if (c->ex->sent < c->ex->wire.size()) events |= POLLOUT;
        fds.push_back({c->fd, events, 0});
        polled.push_back(c.get());
      }
      for (const auto& ex : waiting_) next = std::min(next, ex->deadline);
      int timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1));
      {
        absl::MutexLock lock(&mu_);
        // Work queued meanwhile (or a stop) is taken after a look at the
        // sockets that does not wait; from here on it wakes the poll.
        if (!queue_.empty() || !connected_.empty() || stopping_) {
          timeout_ms = 0;
        } else {
          polling_ = true;
          woken_ = false;
        }
      }
      poll(fds.data(), fds.size(), timeout_ms);
      {
        absl::MutexLock lock(&mu_);
        polling_ = false;
      }
      if (fds[0].revents != 0) {
        uint64_t count;
        [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof(count));
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        Conn* c = polled[i - 1];
        const short revents = fds[i].revents;
        if (revents == 0 || c->state != Conn::State::kBusy) continue;
        if ((revents & POLLOUT) != 0 && !Write(c)) continue;
        if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) Read(c);
      }
      Prune();
    }
    // Whatever is still waiting or in flight is abandoned and answered.
    std::deque<std::unique_ptr<Exchange>> waiting = std::move(waiting_);
    for (auto& ex : retry_) waiting.push_back(std::move(ex));
    retry_.clear();
    for (auto& ex : waiting) ex->done(TransportError(kShuttingDown));
    for (auto& c : conns_) {
      std::unique_ptr<Exchange> ex = std::move(c->ex);
      if (c->state != Conn::State::kConnecting) CloseConn(c.get());
      if (ex) ex->done(TransportError(kShuttingDown));
    }
  }

  void Accept(std::unique_ptr<Exchange> ex, Clock::time_point now) {
    ex->start = now;
    const absl::Duration timeout = ex->request.timeout;
    if (timeout > absl::ZeroDuration() && timeout != absl::InfiniteDuration()) {
      ex->deadline =
          now + std::max(std::chrono::milliseconds(1), absl::ToChronoMilliseconds(timeout));
    }
    std::string why = SplitUrl(ex->request.url, &ex->target);
    if (why.empty()) why = Frame(ex.get());
    if (!why.empty()) {
      HttpResponse r = TransportError(std::move(why));
      r.not_sent = true;
      ex->done(std::move(r));
      return;
    }
    // The body now lives in the wire bytes only.
    std::string().swap(ex->request.body);
    waiting_.push_back(std::move(ex));
  }

  // Gives waiting requests (oldest first) an idle connection to their
  // origin, or a new one while the limits allow.
  void Dispatch(Clock::time_point now) {
    while (!retry_.empty()) {
      waiting_.push_front(std::move(retry_.back()));
      retry_.pop_back();
    }
    std::vector<Conn*> begin;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      const std::string& origin = (*it)->target.origin;
      if (Conn* idle = TakeIdle(origin, now)) {
        idle->ex = std::move(*it);
        idle->state = Conn::State::kBusy;
        begin.push_back(idle);
        it = waiting_.erase(it);
        continue;
      }
      if (MayOpen(origin)) {
        std::unique_ptr<Exchange> ex = std::move(*it);
        it = waiting_.erase(it);
        Open(std::move(ex));
        continue;
      }
      ++it;
    }
    for (Conn* c : begin) Begin(c);
  }

  // The most recently used idle connection to `origin` that still looks
  // alive; the others found dead (or too old) on the way are closed.
  Conn* TakeIdle(const std::string& origin, Clock::time_point now) {
    for (size_t i = conns_.size(); i-- > 0;) {
      Conn* c = conns_[i].get();
      if (c->easy == nullptr || c->state != Conn::State::kIdle || c->origin != origin) continue;
      if (now - c->idle_since > kMaxIdle || !LooksAlive(c)) {
        CloseConn(c);
        continue;
      }
      return c;
    }
    return nullptr;
  }

  // An idle connection has nothing to say: end of stream or an error means
  // the server closed it; bytes on a plain one are not an answer to
  // anything. (On TLS they may be a session ticket, which curl reads.)
  static bool LooksAlive(const Conn* c) {
    char byte;
    const ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    return c->tls;
  }

  bool MayOpen(const std::string& origin) {
    const size_t total_cap = static_cast<size_t>(std::max(1L, options_.max_connections));
    const size_t host_cap = static_cast<size_t>(std::max(1L, options_.max_connections_per_host));
    size_t to_origin = 0;
    size_t live = 0;
    Conn* oldest_idle = nullptr;
    for (const auto& c : conns_) {
      if (c->easy == nullptr) continue;
      ++live;
      if (c->origin == origin) ++to_origin;
      if (c->state == Conn::State::kIdle &&
          (oldest_idle == nullptr || c->idle_since < oldest_idle->idle_since)) {
        oldest_idle = c.get();
      }
    }
    if (to_origin >= host_cap) return false;
    if (live < total_cap) return true;
    if (oldest_idle == nullptr) return false;
    CloseConn(oldest_idle);  // an idle connection elsewhere makes room
    return true;
  }

  static int OnConnectProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<std::atomic<bool>*>(user)->load() ? 1 : 0;  // 1: abort
  }

  // A new connection for `ex`, opened by a connector thread: DNS, TCP, a
  // proxy's tunnel and TLS block there, never here.
  void Open(std::unique_ptr<Exchange> ex) {
    auto c = std::make_unique<Conn>();
    c->origin = ex->target.origin;
    c->tls = absl::StartsWithIgnoreCase(c->origin, "https://");
    c->easy = curl_easy_init();
    if (c->easy == nullptr) {
      HttpResponse r = TransportError("curl: easy handle init failed");
      r.not_sent = true;
      ex->done(std::move(r));
      return;
    }
    CURL* easy = c->easy;
    curl_easy_setopt(easy, CURLOPT_URL, c->origin.c_str());
    curl_easy_setopt(easy, CURLOPT_CONNECT_ONLY, 1L);
    // Through a proxy, always a CONNECT tunnel: the requests are framed here
    // for the origin server.
    curl_easy_setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
    http_internal::SetConnectionOptions(easy, options_);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &OnConnectProgress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &stop_connecting_);
    c->ex = std::move(ex);
    Conn* job = c.get();
    conns_.push_back(std::move(c));
    absl::MutexLock lock(&mu_);
    connect_jobs_.push_back(job);
    if (idle_connectors_ == 0 && connectors_.size() < kMaxConnectors) {
      connectors_.emplace_back([this] { ConnectLoop(); });
    }
  }

  bool HasConnectWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !connect_jobs_.empty();
  }

  void ConnectLoop() {
    pthread_setname_np(pthread_self(), "http-connect");
    while (true) {
      Conn* c;
      {
        absl::MutexLock lock(&mu_);
        ++idle_connectors_;
        mu_.Await(absl::Condition(this, &FramedTransport::HasConnectWorkLocked));
        --idle_connectors_;
        if (stopping_) return;
        c = connect_jobs_.front();
        connect_jobs_.pop_front();
      }
      c->result = curl_easy_perform(c->easy);
      if (c->result == CURLE_OK) {
        curl_socket_t fd = CURL_SOCKET_BAD;
        curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &fd);
        c->fd = fd;
        if (fd == CURL_SOCKET_BAD) c->result = CURLE_COULDNT_CONNECT;
      }
      absl::MutexLock lock(&mu_);
      connected_.push_back(c);
      WakeLocked();
    }
  }

  // A connector is done with `c`: it serves its request, or, if that one
  // timed out meanwhile, the next that waits.
  void Connected(Conn* c) {
    c->state = Conn::State::kIdle;
    c->idle_since = Clock::now();
    if (c->result != CURLE_OK) {
      std::unique_ptr<Exchange> ex = std::move(c->ex);
      CloseConn(c);
      if (ex == nullptr) return;
      HttpResponse r = TransportError(Describe(c->result, c->error));
      r.timed_out = c->result == CURLE_OPERATION_TIMEDOUT;
      r.not_sent = true;  // nothing of the request was written
      r.elapsed = absl::FromChrono(Clock::now() - ex->start);
      ex->done(std::move(r));
      return;
    }
    if (c->ex != nullptr) {
      c->state = Conn::State::kBusy;
      Begin(c);
    }
  }

  // Starts the connection's exchange: the parser, then as much of the
  // request as the socket takes.
  void Begin(Conn* c) {
    c->state = Conn::State::kBusy;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c->ex.get();
    Write(c);
  }

  // False when the connection failed (and is closed).
  bool Write(Conn* c) {
    Exchange* ex = c->ex.get();
    while (ex->sent < ex->wire.size()) {
      size_t n = 0;
      const CURLcode rc =
          curl_easy_send(c->easy, ex->wire.data() + ex->sent, ex->wire.size() - ex->sent, &n);
      if (rc == CURLE_AGAIN) return true;
      if (rc != CURLE_OK) {
        FailOrRetry(c, rc == CURLE_SEND_ERROR ? "connection reset" : Describe(rc, ""));
        return false;
      }
      ex->sent += n;
    }
    return true;
  }

  void Read(Conn* c) {
    while (c->state == Conn::State::kBusy) {
      Exchange* ex = c->ex.get();
      size_t n = 0;
      const CURLcode rc = curl_easy_recv(c->easy, buffer_, sizeof(buffer_), &n);
      if (rc == CURLE_AGAIN) return;
      if (rc != CURLE_OK) {
        FailOrRetry(c, rc == CURLE_RECV_ERROR ? "connection reset" : Describe(rc, ""));
        return;
      }
      if (n == 0) {
        // End of stream: ends an answer whose body runs until the close.
        http_parser_execute(&c->parser, &kSettings, nullptr, 0);
        if (ex->complete) {
          Complete(c, /*keep=*/false);
        } else {
          FailOrRetry(c, ex->too_large ? TooLarge(ex) : "connection reset");
        }
        return;
      }
      ex->received += n;
      const size_t used = http_parser_execute(&c->parser, &kSettings, buffer_, n);
      if (ex->complete) {
        // Bytes after the answer answer nothing we asked, and an answer
        // that came before the whole request left leaves the rest of it on
        // the connection: either way not reused.
        Complete(
            c, used == n && ex->sent == ex->wire.size() && http_should_keep_alive(&c->parser) != 0);
        return;
      }
      if (ex->too_large) {
        Fail(c, TooLarge(ex));
        return;
      }
      const http_errno err = HTTP_PARSER_ERRNO(&c->parser);
      if (err != HPE_OK) {
        Fail(c, absl::StrCat("http: malformed answer (", http_errno_description(err), ")"));
        return;
      }
      if (c->parser.upgrade != 0) {  // 101: not an answer to what we asked
        Fail(c, "http: unexpected protocol switch (101) in the answer");
        return;
      }
    }
  }

  static std::string TooLarge(const Exchange* ex) {
    return http_internal::TooLarge(ex->header_bytes > kMaxResponseHeaderBytes,
                                   ex->request.max_response_bytes);
  }

  void Complete(Conn* c, bool keep) {
    std::unique_ptr<Exchange> ex = std::move(c->ex);
    HttpResponse r = std::move(ex->response);
    const Clock::time_point now = Clock::now();
    r.status = c->parser.status_code;
    r.elapsed = absl::FromChrono(now - ex->start);
    ++c->served;
    if (keep) {
      c->state = Conn::State::kIdle;
      c->idle_since = now;
    } else {
      CloseConn(c);
    }
    ex->done(std::move(r));
  }

  // A connection that served earlier requests and dies before a byte of
  // this answer arrived was most likely closed by the server while idle:
  // the request is sent once more, on another connection, as libcurl does.
  // Otherwise it fails.
  void FailOrRetry(Conn* c, std::string what) {
    Exchange* ex = c->ex.get();
    if (c->served > 0 && ex->received == 0 && !ex->retried) {
      std::unique_ptr<Exchange> again = std::move(c->ex);
      CloseConn(c);
      again->retried = true;
      again->sent = 0;
      again->response = HttpResponse();
      again->header_bytes = 0;
      retry_.push_back(std::move(again));
      return;
    }
    Fail(c, std::move(what));
  }

  void Fail(Conn* c, std::string what, bool timed_out = false) {
    std::unique_ptr<Exchange> ex = std::move(c->ex);
    HttpResponse r = TransportError(std::move(what));
    r.timed_out = timed_out;
    r.not_sent = ex->sent == 0;  // not one byte left: the server cannot apply it
    r.elapsed = absl::FromChrono(Clock::now() - ex->start);
    if (c->state != Conn::State::kConnecting) CloseConn(c);
    ex->done(std::move(r));
  }

  void Expire(Clock::time_point now) {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if ((*it)->deadline > now) {
        ++it;
        continue;
      }
      std::unique_ptr<Exchange> ex = std::move(*it);
      it = waiting_.erase(it);
      HttpResponse r = TransportError("timeout");
      r.timed_out = true;
      r.not_sent = true;
      r.elapsed = absl::FromChrono(now - ex->start);
      ex->done(std::move(r));
    }
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn* c = conns_[i].get();
      // A connecting one stays with its connector; it may serve another.
      if (c->ex != nullptr && c->ex->deadline <= now) Fail(c, "timeout", /*timed_out=*/true);
    }
  }

  // Closes an open (idle or busy) connection; its entry is dropped by
  // Prune. Its exchange, if any, must have been taken.
  void CloseConn(Conn* c) {
    if (c->easy == nullptr) return;
    curl_easy_cleanup(c->easy);
    c->easy = nullptr;
    c->fd = CURL_SOCKET_BAD;
    c->state = Conn::State::kIdle;
  }

  void Prune() {
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                                [](const std::unique_ptr<Conn>& c) { return c->easy == nullptr; }),
                 conns_.end());
  }

  static constexpr size_t kMaxConnectors = 8;

  const CurlTransportOptions options_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_connecting_{false};
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Exchange>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Conn*> connected_ ABSL_GUARDED_BY(mu_);    // connectors' results
  std::deque<Conn*> connect_jobs_ ABSL_GUARDED_BY(mu_);  // for the connectors
  size_t idle_connectors_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> connectors_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The I/O thread sleeps (or is about to) in its poll; woken_: a wake-up
  // was sent since.
  bool polling_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  // I/O thread only (and the destructor's, once it has joined it).
  std::deque<std::unique_ptr<Exchange>> waiting_;  // for a connection
  std::vector<std::unique_ptr<Exchange>> retry_;   // to be sent again first
  std::vector<std::unique_ptr<Conn>> conns_;
  char buffer_[kReadChunk];
  std::thread thread_;
};

}  // namespace

std::unique_ptr<HttpTransport> MakeFramedTransport(CurlTransportOptions options) {
  return std::make_unique<FramedTransport>(std::move(options));
}

}  // namespace dynamo_batcher
