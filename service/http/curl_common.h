#pragma once

// What both libcurl-based transports share: how a connection is set up,
// and what they say about a failed request, in the same words (the upper
// layers and their tests read these strings).

#include <curl/curl.h>

#include <cstddef>
#include <string>

#include "service/http/http_transport.h"

namespace dynamo_batcher {
namespace http_internal {

// What a request still waiting or in flight is answered when its transport
// stops.
inline constexpr char kShuttingDown[] = "shutting down";

// An answer that is only a transport failure.
HttpResponse TransportError(std::string what);

// TCP keep-alive and no Nagle, the connect timeout and the TLS options of
// `options` on a handle.
void SetConnectionOptions(CURL* easy, const CurlTransportOptions& options);

// Headers of one answer, all lines together (interim 1xx answers included).
inline constexpr size_t kMaxResponseHeaderBytes = 64 << 10;

// A certificate, CA file, handshake or other TLS failure: the request
// never left.
bool IsTlsError(CURLcode code);

// "timeout", "connection refused", "connection reset", "dns: ...",
// "tls: ...", else curl's own text (or `detail`, its error buffer).
std::string Describe(CURLcode code, const char* detail);

// "response too large: more than N bytes[ of headers] (the limit for this
// kind of answer); aborted".
std::string TooLarge(bool headers, size_t max_body_bytes);

}  // namespace http_internal
}  // namespace dynamo_batcher
