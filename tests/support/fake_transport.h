#pragma once

// The one fake HttpTransport of the unit tests (auth providers, DynamoDB
// client), plus small helpers for building answers and reading requests.

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher::test_support {

// Answers every request inline, on the calling thread: from the handler when
// one is set, else with the next canned answer (Enqueue), else with the
// transport error "connection refused". Records every request it was given.
//
// Thread-safety: all methods may be called from any thread; the handler runs
// outside the lock.
//
// Usage:
//   FakeTransport t([](const HttpRequest& r) { return Answer(200, "{}"); });
//   FakeTransport q;  q.Enqueue(Answer(200, "{}"));
class FakeTransport : public HttpTransport {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit FakeTransport(Handler handler = nullptr) : handler_(std::move(handler)) {}

  void set_handler(Handler h) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(h);
  }

  // Queues an answer for a later request (used when no handler is set).
  void Enqueue(HttpResponse response) {
    std::lock_guard<std::mutex> lock(mu_);
    canned_.push_back(std::move(response));
  }

  void Send(HttpRequest request, Callback done) override {
    Handler h;
    HttpResponse r;
    bool answered = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
      h = handler_;
      if (!h && !canned_.empty()) {
        r = std::move(canned_.front());
        canned_.pop_front();
        answered = true;
      }
    }
    if (h) {
      r = h(request);
    } else if (!answered) {
      r.transport_error = "connection refused";
      r.not_sent = true;
    }
    done(std::move(r));
  }

  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  Handler handler_;
  std::deque<HttpResponse> canned_;
  std::vector<HttpRequest> requests_;
};

// An HTTP answer with `status` and `body`.
inline HttpResponse Answer(long status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// The request header `name` (any case), or nullptr.
inline const std::string* FindHeader(const HttpRequest& r, absl::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (absl::EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

}  // namespace dynamo_batcher::test_support
