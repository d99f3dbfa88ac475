// libcurl multi-handle transport: one I/O thread owns the multi handle, every
// easy handle and every in-flight request. Other threads only append to a
// mutex-protected queue and wake the I/O thread with curl_multi_wakeup, and
// only when it sleeps (or is about to) in curl_multi_poll, once per sleep: a
// wake-up is a write to curl's socketpair plus a poll return and a read on
// the I/O thread, and at saturation the I/O thread is mostly busy, finding
// new requests in the queue before it polls.

#include <curl/curl.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>  // std::call_once
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
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
using http_internal::IsTlsError;
using http_internal::kMaxResponseHeaderBytes;
using http_internal::kShuttingDown;
using http_internal::TooLarge;
using http_internal::TransportError;

struct Transfer {
  HttpRequest request;
  HttpTransport::Callback done;
  HttpResponse response;
  curl_slist* headers = nullptr;
  std::chrono::steady_clock::time_point start;
  char error[CURL_ERROR_SIZE] = {0};
  size_t header_bytes = 0;
  bool too_large = false;  // body or headers beyond their cap; aborted
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (size * n > t->request.max_response_bytes -
                     std::min(t->request.max_response_bytes, t->response.body.size())) {
    t->too_large = true;
    return 0;  // curl aborts the transfer (CURLE_WRITE_ERROR)
  }
  t->response.body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->header_bytes += size * n;
  if (t->header_bytes > kMaxResponseHeaderBytes) {
    t->too_large = true;
    return 0;
  }
  absl::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line (e.g. after an interim 1xx): start over.
    t->response.headers.clear();
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    t->response.headers.emplace_back(
        absl::AsciiStrToLower(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return size * n;
}

// One I/O thread, keep-alive pool shared through the multi handle.
//
// Thread-safety: Send from any thread; callbacks run on the I/O thread. The
// destructor answers everything not yet finished with "shutting down" and
// joins the thread; it must not be called from a callback.
class CurlTransport : public HttpTransport {
 public:
  explicit CurlTransport(CurlTransportOptions options) : options_(std::move(options)) {
    static std::once_flag init;
    std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi_ = curl_multi_init();
    if (multi_ != nullptr) {
      curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, options_.max_connections);
      curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_connections_per_host);
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, options_.max_connections);
      thread_ = std::thread([this] { Run(); });
    }
  }

  ~CurlTransport() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (multi_ != nullptr) curl_multi_wakeup(multi_);
    }
    if (thread_.joinable()) thread_.join();
    for (CURL* easy : free_easy_) curl_easy_cleanup(easy);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }

  void Send(HttpRequest request, Callback done) override {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = std::move(done);
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_ && multi_ != nullptr) {
        queue_.push_back(std::move(t));
        // Under the lock: the destructor cannot free multi_ meanwhile. Not
        // polling: Run looks at the queue before it polls again.
        if (polling_ && !woken_) {
          woken_ = true;
          curl_multi_wakeup(multi_);
        }
        return;
      }
    }
    t->done(TransportError(multi_ == nullptr ? "curl: multi handle init failed" : kShuttingDown));
  }

 private:
  void Run() {
    pthread_setname_np(pthread_self(), "curl-io");
    while (true) {
      std::vector<std::unique_ptr<Transfer>> incoming;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        incoming.swap(queue_);
        stopping = stopping_;
      }
      if (stopping) {
        for (auto& t : incoming) t->done(TransportError(kShuttingDown));
        break;
      }
      for (auto& t : incoming) Start(std::move(t));
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) Finish(msg->easy_handle, msg->data.result);
      }
      {
        absl::MutexLock lock(&mu_);
        // Requests queued meanwhile (or a stop) are taken without a poll;
        // from here on a Send wakes the poll below (once).
        if (!queue_.empty() || stopping_) continue;
        polling_ = true;
        woken_ = false;
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
      absl::MutexLock lock(&mu_);
      polling_ = false;
    }
    // Whatever is still in flight is abandoned and answered.
    auto active = std::move(active_);
    for (auto& [easy, t] : active) {
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
      curl_slist_free_all(t->headers);
      t->done(TransportError(kShuttingDown));
    }
  }

  void Start(std::unique_ptr<Transfer> t) {
    // Handles are kept between requests (reset in Finish) and set up whole
    // for each one: this transport carries the few credentials calls, the
    // DynamoDB data path is the framed transport's.
    CURL* easy = nullptr;
    if (!free_easy_.empty()) {
      easy = free_easy_.back();
      free_easy_.pop_back();
    } else {
      easy = curl_easy_init();
    }
    if (easy == nullptr) {
      t->done(TransportError("curl: easy handle init failed"));
      return;
    }
    Transfer* tp = t.get();
    const HttpRequest& req = tp->request;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, tp);
    curl_easy_setopt(easy, CURLOPT_URL, req.url.c_str());
    http_internal::SetConnectionOptions(easy, options_);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    if (req.timeout > absl::ZeroDuration() && req.timeout != absl::InfiniteDuration()) {
      curl_easy_setopt(
          easy, CURLOPT_TIMEOUT_MS,
          static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(req.timeout))));
    }
    // Refused before reading when Content-Length announces more.
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(req.max_response_bytes));
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, tp->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, tp);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, tp);

    if (req.method == "GET") {
      curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (req.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else {
      if (req.method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      if (req.method == "POST" || !req.body.empty()) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(req.body.size()));
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req.body.data());
      }
    }
    bool has_content_type = false;
    for (const auto& [name, value] : req.headers) {
      if (absl::EqualsIgnoreCase(name, "content-type")) has_content_type = true;
      tp->headers = curl_slist_append(tp->headers, absl::StrCat(name, ": ", value).c_str());
    }
    // No "Expect: 100-continue" round trip; no form content type we did not ask for.
    tp->headers = curl_slist_append(tp->headers, "Expect:");
    if (!has_content_type) tp->headers = curl_slist_append(tp->headers, "Content-Type:");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, tp->headers);

    tp->start = std::chrono::steady_clock::now();
    const CURLMcode added = curl_multi_add_handle(multi_, easy);
    if (added != CURLM_OK) {
      curl_slist_free_all(tp->headers);
      curl_easy_cleanup(easy);
      t->done(TransportError(absl::StrCat("curl: ", curl_multi_strerror(added))));
      return;
    }
    active_.emplace(easy, std::move(t));
  }

  void Finish(CURL* easy, CURLcode code) {
    auto it = active_.find(easy);
    curl_multi_remove_handle(multi_, easy);
    if (it == active_.end()) {
      curl_easy_cleanup(easy);
      return;
    }
    std::unique_ptr<Transfer> t = std::move(it->second);
    active_.erase(it);
    HttpResponse& r = t->response;
    r.elapsed = absl::FromChrono(std::chrono::steady_clock::now() - t->start);
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      r.status = status;
    } else {
      r.status = 0;
      r.headers.clear();
      r.body.clear();
      r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
      r.not_sent = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                   code == CURLE_COULDNT_RESOLVE_PROXY || IsTlsError(code);
      if (t->too_large || code == CURLE_FILESIZE_EXCEEDED) {
        r.transport_error =
            TooLarge(t->header_bytes > kMaxResponseHeaderBytes, t->request.max_response_bytes);
      } else {
        r.transport_error = Describe(code, t->error);
      }
    }
    curl_slist_free_all(t->headers);
    t->headers = nullptr;
    // The connection stays in the multi handle's pool; the easy handle is
    // reset and kept for the next request.
    curl_easy_reset(easy);
    if (free_easy_.size() < static_cast<size_t>(std::max(1L, options_.max_connections))) {
      free_easy_.push_back(easy);
    } else {
      curl_easy_cleanup(easy);
    }
    t->done(std::move(r));
  }

  const CurlTransportOptions options_;
  CURLM* multi_ = nullptr;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Transfer>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The I/O thread is in (or about to enter) curl_multi_poll with an empty
  // queue; woken_: a wake-up was sent since.
  bool polling_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  // I/O thread only.
  absl::flat_hash_map<CURL*, std::unique_ptr<Transfer>> active_;
  std::vector<CURL*> free_easy_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options) {
  return std::make_unique<CurlTransport>(std::move(options));
}

}  // namespace dynamo_batcher
