#include "service/http/curl_common.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace dynamo_batcher {
namespace http_internal {

HttpResponse TransportError(std::string what) {
  HttpResponse r;
  r.transport_error = std::move(what);
  return r;
}

void SetConnectionOptions(CURL* easy, const CurlTransportOptions& options) {
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 15L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options.tls.verify ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options.tls.verify ? 2L : 0L);
  if (!options.tls.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, options.tls.ca_file.c_str());
  }
}

bool IsTlsError(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

std::string Describe(CURLcode code, const char* detail) {
  const std::string more =
      (detail != nullptr && *detail != '\0') ? detail : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_CONNECT:
      return "connection refused";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return "connection reset";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return absl::StrCat("dns: ", more);
    default:
      break;
  }
  if (IsTlsError(code)) return absl::StrCat("tls: ", more);
  return more;
}

std::string TooLarge(bool headers, size_t max_body_bytes) {
  return absl::StrCat(
      "response too large: more than ", headers ? kMaxResponseHeaderBytes : max_body_bytes,
      headers ? " bytes of headers" : " bytes", " (the limit for this kind of answer); aborted");
}

}  // namespace http_internal
}  // namespace dynamo_batcher
