#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace dynamo_batcher {

struct HttpRequest {
  std::string method = "POST";
  std::string url;  // scheme://host[:port]/path
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  absl::Duration timeout = absl::Seconds(10);
  // The answer's body is never buffered beyond this: a bigger one is aborted
  // with transport_error "response too large: ...". Set per kind of call
  // (credentials answers are small; a BatchWriteItem answer is bounded by its
  // request); the default suits small control-plane answers.
  size_t max_response_bytes = kDefaultMaxResponseBytes;

  static constexpr size_t kDefaultMaxResponseBytes = 1 << 20;
};

// An HTTP answer. Any status code is a value (404 and 500 included); only
// transport failures set `transport_error`.
struct HttpResponse {
  long status = 0;                                           // 0 when transport_error is set
  std::vector<std::pair<std::string, std::string>> headers;  // lower-cased names
  std::string body;
  // Empty on success; else a short description ("connection refused",
  // "timeout", "connection reset", "tls: ...").
  std::string transport_error;
  bool timed_out = false;
  // With transport_error: the request never left (no connection, no DNS
  // answer, no TLS session), so the server cannot apply it later. Otherwise
  // a failed request's fate is unknown.
  bool not_sent = false;
  absl::Duration elapsed;

  const std::string* Header(const std::string& lower_name) const {
    for (const auto& [k, v] : headers)
      if (k == lower_name) return &v;
    return nullptr;
  }
};

struct TlsOptions {
  bool verify = true;   // verify peer certificate and host name
  std::string ca_file;  // empty: system CA store
};

// Asynchronous HTTP client with a keep-alive connection pool.
//
// Thread-safety: Send may be called from any thread. Callbacks run on the
// transport's own I/O thread; they must not block (nor call SendSync). A Send
// that arrives after shutdown began is answered inline ("shutting down").
class HttpTransport {
 public:
  using Callback = std::function<void(HttpResponse)>;
  virtual ~HttpTransport() = default;
  virtual void Send(HttpRequest request, Callback done) = 0;
  // Sends and waits for the answer: the one blocking helper, for start-up
  // and credentials calls (DescribeTable, STS, IMDS, container endpoint).
  // Must not be called from the transport's own I/O thread (it would wait on
  // itself).
  HttpResponse SendSync(HttpRequest request);
};

struct CurlTransportOptions {
  TlsOptions tls;
  long max_connections = 64;  // total pool size
  long max_connections_per_host = 32;
  absl::Duration connect_timeout = absl::Seconds(3);
};

// libcurl multi-handle transport: one I/O thread, HTTP keep-alive pool,
// TLS verified by default.
std::unique_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options);

// HTTP/1.1 framed by the transport itself on connections libcurl opens
// (DNS, proxy CONNECT tunnel, TLS and its verification, on connector
// threads); answers read with http-parser. The same contract as the curl
// transport at a small part of its cost per request: the DynamoDB data path.
// Through a proxy every connection is a CONNECT tunnel, http included.
std::unique_ptr<HttpTransport> MakeFramedTransport(CurlTransportOptions options);

}  // namespace dynamo_batcher
