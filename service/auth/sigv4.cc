#include "service/auth/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dynamo_batcher {
namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

// Raw 32-byte HMAC-SHA256.
std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Trims and collapses runs of whitespace, as the canonical header form
// requires (botocore: ' '.join(value.split())).
std::string CanonicalHeaderValue(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  std::string out;
  out.reserve(value.size());
  bool in_space = false;
  for (char c : value) {
    if (IsSpace(c)) {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

// The query is taken as already URI-encoded; only the parameter order is
// normalised (by name, then value).
std::string CanonicalQuery(absl::string_view query) {
  if (query.empty()) return "";
  std::vector<std::pair<std::string, std::string>> params;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    params.push_back(std::move(kv));
  }
  std::sort(params.begin(), params.end());
  std::vector<std::string> joined;
  joined.reserve(params.size());
  for (const auto& [k, v] : params) joined.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(joined, "&");
}

// RFC 3986 section 5.2.4 dot-segment removal; empty segments (double
// slashes) are dropped too, as AWS services (not S3) do.
std::string RemoveDotSegments(absl::string_view path) {
  if (path.empty()) return "/";
  std::vector<absl::string_view> out;
  for (absl::string_view seg : absl::StrSplit(path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(seg);
  }
  std::string result = path.front() == '/' ? "/" : "";
  absl::StrAppend(&result, absl::StrJoin(out, "/"));
  if (path.back() == '/' && !out.empty()) result.push_back('/');
  return result;
}

// SigV4 for every service but S3: the path as sent, normalised, then
// URI-encoded once more ('/' and unreserved characters kept), so "%20" in
// the request line becomes "%2520" in the canonical request.
std::string CanonicalUri(absl::string_view path) {
  return UriEncode(RemoveDotSegments(path), /*keep_slash=*/true);
}

}  // namespace

std::string UriEncode(absl::string_view value, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string AmzDate(absl::Time now) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

SigV4Signature SignV4(const SigV4Request& request,
                      const AwsCredentials& credentials,
                      absl::string_view region, absl::string_view service,
                      absl::Time now) {
  SigV4Signature sig;
  sig.amz_date = AmzDate(now);
  const std::string date = sig.amz_date.substr(0, 8);

  // Lower-case names; a name given twice is signed once, values joined by
  // ',' in the order given. stable_sort keeps that order.
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(request.headers.size());
  for (const auto& [name, value] : request.headers) {
    headers.emplace_back(absl::AsciiStrToLower(name), CanonicalHeaderValue(value));
  }
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers;
  std::vector<absl::string_view> names;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      // Replace the newline just written with ",value\n".
      canonical_headers.pop_back();
      absl::StrAppend(&canonical_headers, ",", headers[i].second, "\n");
      continue;
    }
    names.push_back(headers[i].first);
    absl::StrAppend(&canonical_headers, headers[i].first, ":", headers[i].second, "\n");
  }
  sig.signed_headers = absl::StrJoin(names, ";");

  const std::string payload_hash = request.payload_sha256.empty()
                                       ? Sha256Hex(request.payload)
                                       : request.payload_sha256;
  sig.canonical_request = absl::StrCat(
      request.method, "\n", CanonicalUri(request.path), "\n",
      CanonicalQuery(request.query), "\n", canonical_headers, "\n",
      sig.signed_headers, "\n", payload_hash);

  const std::string scope = absl::StrCat(date, "/", region, "/", service, "/aws4_request");
  sig.string_to_sign = absl::StrCat(kAlgorithm, "\n", sig.amz_date, "\n", scope,
                                    "\n", Sha256Hex(sig.canonical_request));

  std::string key = HmacSha256(absl::StrCat("AWS4", credentials.secret_access_key), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  key = HmacSha256(key, "aws4_request");
  const std::string raw = HmacSha256(key, sig.string_to_sign);
  sig.signature = Hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());

  sig.authorization = absl::StrCat(kAlgorithm, " Credential=", credentials.access_key_id,
                                   "/", scope, ", SignedHeaders=", sig.signed_headers,
                                   ", Signature=", sig.signature);
  return sig;
}

}  // namespace dynamo_batcher
