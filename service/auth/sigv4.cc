#include "service/auth/sigv4.h"

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
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
constexpr size_t kSha256Bytes = 32;
constexpr size_t kSha256BlockBytes = 64;

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

// SHA-256 through one digest context per thread and an algorithm fetched
// once. OpenSSL 3's one-shot calls (EVP_Digest, HMAC) look the algorithm up
// in the provider store and allocate a context on every call; signing every
// BatchWriteItem call made that lookup a measurable share of the sidecar's
// CPU per op (bench/profile, docs/benchmarks.md).
const EVP_MD* Sha256Md() {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
#else
  return EVP_sha256();
#endif
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// out = SHA-256 of the parts, concatenated.
void Sha256(std::initializer_list<absl::string_view> parts, unsigned char out[kSha256Bytes]) {
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  unsigned int len = 0;
  EVP_DigestInit_ex(ctx.get(), Sha256Md(), nullptr);
  for (absl::string_view p : parts) EVP_DigestUpdate(ctx.get(), p.data(), p.size());
  EVP_DigestFinal_ex(ctx.get(), out, &len);
}

// HMAC-SHA256 (RFC 2104) on the digest above.
void HmacSha256(absl::string_view key, absl::string_view data, unsigned char out[kSha256Bytes]) {
  unsigned char k[kSha256BlockBytes] = {0};
  if (key.size() > kSha256BlockBytes) {
    Sha256({key}, k);
  } else {
    std::memcpy(k, key.data(), key.size());
  }
  unsigned char ipad[kSha256BlockBytes];
  unsigned char opad[kSha256BlockBytes];
  for (size_t i = 0; i < kSha256BlockBytes; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  unsigned char inner[kSha256Bytes];
  Sha256({absl::string_view(reinterpret_cast<const char*>(ipad), sizeof(ipad)), data}, inner);
  Sha256({absl::string_view(reinterpret_cast<const char*>(opad), sizeof(opad)),
          absl::string_view(reinterpret_cast<const char*>(inner), sizeof(inner))},
         out);
}

absl::string_view View(const unsigned char* data, size_t n) {
  return absl::string_view(reinterpret_cast<const char*>(data), n);
}

// The signing key depends only on the secret, the day, the region and the
// service: derived once (four HMACs) and reused for every request of the
// day. One entry per thread; a new secret or day replaces it.
struct SigningKey {
  std::string secret;
  std::string date;
  std::string region;
  std::string service;
  unsigned char key[kSha256Bytes] = {0};
  // HMAC's inner and outer hashes with the key's padded block already
  // absorbed: a request's signature starts from copies of them, so neither
  // 64-byte pad block is hashed again per request.
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> inner{EVP_MD_CTX_new()};
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> outer{EVP_MD_CTX_new()};
};

const SigningKey& DerivedSigningKey(absl::string_view secret, absl::string_view date,
                                    absl::string_view region, absl::string_view service) {
  thread_local SigningKey cached;
  if (cached.date.empty() || cached.secret != secret || cached.date != date ||
      cached.region != region || cached.service != service) {
    unsigned char k[kSha256Bytes];
    HmacSha256(absl::StrCat("AWS4", secret), date, k);
    HmacSha256(View(k, sizeof(k)), region, k);
    HmacSha256(View(k, sizeof(k)), service, k);
    HmacSha256(View(k, sizeof(k)), "aws4_request", cached.key);
    cached.secret.assign(secret.data(), secret.size());
    cached.date.assign(date.data(), date.size());
    cached.region.assign(region.data(), region.size());
    cached.service.assign(service.data(), service.size());
    unsigned char ipad[kSha256BlockBytes];
    unsigned char opad[kSha256BlockBytes];
    for (size_t i = 0; i < kSha256BlockBytes; ++i) {
      const unsigned char k = i < kSha256Bytes ? cached.key[i] : 0;  // key < one block
      ipad[i] = k ^ 0x36;
      opad[i] = k ^ 0x5c;
    }
    EVP_DigestInit_ex(cached.inner.get(), Sha256Md(), nullptr);
    EVP_DigestUpdate(cached.inner.get(), ipad, sizeof(ipad));
    EVP_DigestInit_ex(cached.outer.get(), Sha256Md(), nullptr);
    EVP_DigestUpdate(cached.outer.get(), opad, sizeof(opad));
  }
  return cached;
}

// HMAC-SHA256 of `data` with the derived key, from its absorbed pads; the
// same result as HmacSha256(key.key, data).
void SignWith(const SigningKey& key, absl::string_view data, unsigned char out[kSha256Bytes]) {
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  unsigned char inner[kSha256Bytes];
  unsigned int len = 0;
  EVP_MD_CTX_copy_ex(ctx.get(), key.inner.get());
  EVP_DigestUpdate(ctx.get(), data.data(), data.size());
  EVP_DigestFinal_ex(ctx.get(), inner, &len);
  EVP_MD_CTX_copy_ex(ctx.get(), key.outer.get());
  EVP_DigestUpdate(ctx.get(), inner, sizeof(inner));
  EVP_DigestFinal_ex(ctx.get(), out, &len);
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
  // Formatting a time is costly next to the rest of signing, and every call
  // of a second gets the same text (a request is signed, and its X-Amz-Date
  // written, for each BatchWriteItem call).
  thread_local int64_t cached_second = std::numeric_limits<int64_t>::min();
  thread_local std::string cached;
  const int64_t second = absl::ToUnixSeconds(now);
  if (second != cached_second) {
    cached = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
    cached_second = second;
  }
  return cached;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[kSha256Bytes];
  Sha256({data}, digest);
  return Hex(digest, sizeof(digest));
}

SigV4Signature SignV4(const SigV4Request& request, const AwsCredentials& credentials,
                      absl::string_view region, absl::string_view service, absl::Time now) {
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

  const std::string payload_hash =
      request.payload_sha256.empty() ? Sha256Hex(request.payload) : request.payload_sha256;
  sig.canonical_request = absl::StrCat(request.method, "\n", CanonicalUri(request.path), "\n",
                                       CanonicalQuery(request.query), "\n", canonical_headers, "\n",
                                       sig.signed_headers, "\n", payload_hash);

  const std::string scope = absl::StrCat(date, "/", region, "/", service, "/aws4_request");
  sig.string_to_sign = absl::StrCat(kAlgorithm, "\n", sig.amz_date, "\n", scope, "\n",
                                    Sha256Hex(sig.canonical_request));

  const SigningKey& key = DerivedSigningKey(credentials.secret_access_key, date, region, service);
  unsigned char raw[kSha256Bytes];
  SignWith(key, sig.string_to_sign, raw);
  sig.signature = Hex(raw, sizeof(raw));

  sig.authorization =
      absl::StrCat(kAlgorithm, " Credential=", credentials.access_key_id, "/", scope,
                   ", SignedHeaders=", sig.signed_headers, ", Signature=", sig.signature);
  return sig;
}

}  // namespace dynamo_batcher
