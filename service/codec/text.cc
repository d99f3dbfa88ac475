#include "service/codec/text.h"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "service/codec/codec.h"

namespace dynamo_batcher {
namespace codec_internal {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t Utf8SequenceLength(const unsigned char* s, size_t i, size_t n) {
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const unsigned char c1 = s[i + 1];
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const unsigned char c1 = s[i + 1];
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

constexpr char kHex[] = "0123456789abcdef";

// Non-zero for bytes that JSON requires to be escaped.
struct EscapeTable {
  unsigned char needs[256] = {};
  constexpr EscapeTable() {
    for (int c = 0; c < 0x20; ++c) needs[c] = 1;
    needs[static_cast<unsigned char>('"')] = 1;
    needs[static_cast<unsigned char>('\\')] = 1;
  }
};
constexpr EscapeTable kEscape;

void AppendEscape(unsigned char c, std::string* out) {
  switch (c) {
    case '"':
      out->append("\\\"");
      return;
    case '\\':
      out->append("\\\\");
      return;
    case '\n':
      out->append("\\n");
      return;
    case '\r':
      out->append("\\r");
      return;
    case '\t':
      out->append("\\t");
      return;
    case '\b':
      out->append("\\b");
      return;
    case '\f':
      out->append("\\f");
      return;
    default: {
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out->append(esc, sizeof(esc));
    }
  }
}

constexpr size_t kMaxQuotedBytes = 200;

}  // namespace

bool IsValidUtf8(absl::string_view str) {
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  const size_t n = str.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t block;
      std::memcpy(&block, s + i, sizeof(block));
      if (block & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    const size_t len = Utf8SequenceLength(s, i, n);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void AppendQuotedForMessage(absl::string_view str, std::string* out) {
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  const size_t n = str.size() < kMaxQuotedBytes ? str.size() : kMaxQuotedBytes;
  out->push_back('"');
  size_t i = 0;
  while (i < n) {
    const size_t len = Utf8SequenceLength(s, i, str.size());
    if (len == 0) {
      out->append("\\x");
      out->push_back(kHex[s[i] >> 4]);
      out->push_back(kHex[s[i] & 0xF]);
      ++i;
    } else if (len == 1 && kEscape.needs[s[i]]) {
      AppendEscape(s[i], out);
      ++i;
    } else {
      out->append(str.data() + i, len);
      i += len;
    }
  }
  out->push_back('"');
  if (i < str.size()) out->append("...");
}

}  // namespace codec_internal

namespace {

// True when one of the eight bytes of `block` must be escaped in JSON (a
// control character below 0x20, '"' or '\\'). Bytes >= 0x80 never match.
// Exact for the question "any byte?" (the classic has-zero-byte test).
inline bool BlockNeedsEscape(uint64_t block) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t below_space = (block - kOnes * 0x20) & ~block & kHigh;
  const uint64_t quote = block ^ (kOnes * '"');
  const uint64_t backslash = block ^ (kOnes * '\\');
  const uint64_t is_quote = (quote - kOnes) & ~quote & kHigh;
  const uint64_t is_backslash = (backslash - kOnes) & ~backslash & kHigh;
  return (below_space | is_quote | is_backslash) != 0;
}

// Length of the longest prefix of `s` that needs no JSON escape and, with
// `ascii_only`, holds only ASCII bytes; found sixteen bytes at a time where
// SSE2 is there (every x86-64), then eight at a time.
size_t PlainPrefix(absl::string_view s, bool ascii_only) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  const uint64_t high = ascii_only ? 0x8080808080808080ULL : 0;
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  // Unsigned c < 0x20 as a signed compare: both sides shifted by 0x80.
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i space_flipped = _mm_set1_epi8(static_cast<char>(0x20 ^ 0x80));
  while (i + 16 <= n) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i escape =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                     _mm_cmplt_epi8(_mm_xor_si128(v, flip), space_flipped));
    // movemask of v itself: the bytes >= 0x80.
    const int mask = _mm_movemask_epi8(escape) | (ascii_only ? _mm_movemask_epi8(v) : 0);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    i += 16;
  }
#endif
  while (i + 8 <= n) {
    uint64_t block;
    std::memcpy(&block, p + i, sizeof(block));
    if ((block & high) != 0 || BlockNeedsEscape(block)) break;
    i += 8;
  }
  while (i < n && !(ascii_only && p[i] >= 0x80) && !codec_internal::kEscape.needs[p[i]]) ++i;
  return i;
}

// Appends `s` as a JSON string whose first `plain` bytes need no escape.
void AppendJsonStringAfter(absl::string_view s, size_t plain, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out->push_back('"');
  size_t run_start = 0;
  for (size_t i = plain; i < n; ++i) {
    if (codec_internal::kEscape.needs[p[i]]) {
      out->append(s.data() + run_start, i - run_start);
      codec_internal::AppendEscape(p[i], out);
      run_start = i + 1;
    }
  }
  out->append(s.data() + run_start, n - run_start);
  out->push_back('"');
}

}  // namespace

void AppendJsonString(absl::string_view s, std::string* out) {
  // Most strings need no escape at all: everything before the first byte
  // that does is appended in one go.
  AppendJsonStringAfter(s, PlainPrefix(s, /*ascii_only=*/false), out);
}

namespace codec_internal {

bool AppendJsonStringIfValidUtf8(absl::string_view s, std::string* out) {
  // ASCII with nothing to escape (the usual string) is valid and scanned
  // once; after such a prefix no UTF-8 sequence can have started.
  const size_t plain = PlainPrefix(s, /*ascii_only=*/true);
  if (plain < s.size() && !IsValidUtf8(s.substr(plain))) return false;
  AppendJsonStringAfter(s, plain, out);
  return true;
}

}  // namespace codec_internal

namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct Base64DecodeTable {
  signed char value[256] = {};
  constexpr Base64DecodeTable() {
    for (int c = 0; c < 256; ++c) value[c] = -1;
    for (int k = 0; k < 64; ++k) {
      value[static_cast<unsigned char>(kBase64Alphabet[k])] = static_cast<signed char>(k);
    }
  }
};
constexpr Base64DecodeTable kBase64Decode;

}  // namespace

void AppendBase64(absl::string_view bytes, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  const size_t start = out->size();
  out->resize(start + (n + 2) / 3 * 4);
  char* w = &(*out)[start];
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | uint32_t{p[i + 2]};
    *w++ = kBase64Alphabet[(v >> 18) & 0x3F];
    *w++ = kBase64Alphabet[(v >> 12) & 0x3F];
    *w++ = kBase64Alphabet[(v >> 6) & 0x3F];
    *w++ = kBase64Alphabet[v & 0x3F];
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    *w++ = kBase64Alphabet[(v >> 18) & 0x3F];
    *w++ = kBase64Alphabet[(v >> 12) & 0x3F];
    *w++ = '=';
    *w++ = '=';
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    *w++ = kBase64Alphabet[(v >> 18) & 0x3F];
    *w++ = kBase64Alphabet[(v >> 12) & 0x3F];
    *w++ = kBase64Alphabet[(v >> 6) & 0x3F];
    *w++ = '=';
  }
}

absl::StatusOr<std::string> Base64Decode(absl::string_view b64) {
  const size_t n = b64.size();
  if (n % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("base64: length ", n, " is not a multiple of 4"));
  }
  size_t pad = 0;
  if (n >= 1 && b64[n - 1] == '=') ++pad;
  if (n >= 2 && b64[n - 2] == '=') ++pad;
  std::string out;
  out.reserve(n / 4 * 3);
  const auto* p = reinterpret_cast<const unsigned char*>(b64.data());
  const size_t data_len = n - pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < data_len; ++i) {
    const int v = kBase64Decode.value[p[i]];
    if (v < 0) {
      return absl::InvalidArgumentError(absl::StrCat("base64: invalid character at offset ", i));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero, so every byte string has exactly one
  // encoding (what DynamoDB and dynalite check too).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("base64: non-zero bits in the last character before padding");
  }
  return out;
}

}  // namespace dynamo_batcher
