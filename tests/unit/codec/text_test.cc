// JSON string escaping, base64 and UTF-8 validation used by the codec.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "service/codec/codec.h"
#include "service/codec/text.h"

namespace dynamo_batcher {
namespace {

std::string Json(absl::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

// Parses a JSON string literal back with RapidJSON.
std::string ParseJsonString(const std::string& literal) {
  rapidjson::Document d;
  d.Parse(literal.data(), literal.size());
  EXPECT_FALSE(d.HasParseError()) << literal;
  if (d.HasParseError() || !d.IsString()) return "<parse error>";
  return std::string(d.GetString(), d.GetStringLength());
}

TEST(AppendJsonString, EscapesQuoteBackslashAndControlCharacters) {
  EXPECT_EQ(Json("plain"), "\"plain\"");
  EXPECT_EQ(Json("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(Json("a\\b"), "\"a\\\\b\"");
  EXPECT_EQ(Json("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(Json(std::string("\x01\x1f\0", 3)), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(Json("/"), "\"/\"");
  EXPECT_EQ(Json("\x7f"), "\"\x7f\"");
}

TEST(AppendJsonString, PassesUtf8Through) {
  const std::string s = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80";
  EXPECT_EQ(Json(s), "\"" + s + "\"");
}

TEST(AppendJsonString, RoundTripsEveryAsciiByteThroughRapidJson) {
  std::string s;
  for (int c = 0; c < 128; ++c) s.push_back(static_cast<char>(c));
  EXPECT_EQ(ParseJsonString(Json(s)), s);
}

// The fast path scans eight bytes at a time: every byte value, at every
// offset of a long string (inside a block, at its edges, in the tail), is
// escaped exactly as a plain byte-by-byte escaper would.
TEST(AppendJsonString, LongStringsEscapeEveryByteAtEveryOffset) {
  auto reference = [](const std::string& s) {
    static const char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : s) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xF]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
    }
    out += "\"";
    return out;
  };
  // 41 bytes: two 16-byte blocks, one 8-byte block and a tail.
  for (int c = 0; c < 256; ++c) {
    for (size_t at = 0; at < 41; ++at) {
      std::string s(41, 'a');
      s[at] = static_cast<char>(c);
      ASSERT_EQ(Json(s), reference(s)) << "byte " << c << " at " << at;
    }
  }
}

// The one-pass check-and-escape equals IsValidUtf8 then AppendJsonString,
// and leaves the output alone for invalid input: valid and invalid
// sequences, escapes and ASCII at every offset around the 16- and 8-byte
// blocks.
TEST(AppendJsonStringIfValidUtf8, EqualsCheckThenEscape) {
  const std::vector<std::string> pieces = {
      "a",        "\"",       "\\",           std::string("\0", 1),
      "\x1f",     "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
      "\xC3",     "\x80",     "\xED\xA0\x80", "\xF4\x90\x80\x80",
      "\xC0\xAF", "\x7f"};
  for (const std::string& piece : pieces) {
    for (size_t before = 0; before < 36; ++before) {
      for (size_t after : {size_t{0}, size_t{3}, size_t{9}}) {
        const std::string s = std::string(before, 'x') + piece + std::string(after, 'y');
        std::string got = "prefix";
        const bool ok = codec_internal::AppendJsonStringIfValidUtf8(s, &got);
        ASSERT_EQ(ok, codec_internal::IsValidUtf8(s)) << before << " " << after;
        if (ok) {
          ASSERT_EQ(got, "prefix" + Json(s)) << before << " " << after;
        } else {
          ASSERT_EQ(got, "prefix") << before << " " << after;
        }
      }
    }
  }
}

TEST(AppendJsonString, AppendsWithoutClearing) {
  std::string out = "x:";
  AppendJsonString("y", &out);
  EXPECT_EQ(out, "x:\"y\"");
}

TEST(Base64, MatchesRfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    std::string out;
    AppendBase64(plain, &out);
    EXPECT_EQ(out, encoded);
    absl::StatusOr<std::string> back = Base64Decode(encoded);
    ASSERT_TRUE(back.ok()) << encoded;
    EXPECT_EQ(*back, plain);
  }
}

TEST(Base64, RoundTripsEveryByteValueAndLength) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string bytes = all.substr(all.size() - len);
    std::string encoded = "prefix";
    AppendBase64(bytes, &encoded);
    absl::StatusOr<std::string> back = Base64Decode(absl::string_view(encoded).substr(6));
    ASSERT_TRUE(back.ok()) << len;
    EXPECT_EQ(*back, bytes);
  }
  std::string plus_slash;
  AppendBase64("\xfb\xff\xbf", &plus_slash);
  EXPECT_EQ(plus_slash, "+/+/");
}

TEST(Base64, DecodeIsStrict) {
  for (const char* bad : {"Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm9v!A==", "Zm 9v",
                          "Zm9v\n", "Zh==", "Zm9=", "Zm-v", "Zm_v", "=Zm9", "Z=g="}) {
    EXPECT_FALSE(Base64Decode(bad).ok()) << bad;
  }
  EXPECT_EQ(Base64Decode("Zm9v").status().code(), absl::StatusCode::kOk);
  EXPECT_EQ(Base64Decode("Zh==").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Utf8, AcceptsWellFormedText) {
  using codec_internal::IsValidUtf8;
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("ascii only, long enough for the fast path"));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(IsValidUtf8(std::string("\0", 1)));
}

TEST(Utf8, RejectsMalformedText) {
  using codec_internal::IsValidUtf8;
  for (const char* bad : {"\x80", "\xC3", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80",
                          "\xF0\x80\x80\xAF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF",
                          "abcdefgh\xE2\x82", "abcdefghijklmnop\xC3("}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

TEST(QuotedForMessage, EscapesInvalidBytesAndTruncates) {
  std::string out;
  codec_internal::AppendQuotedForMessage("a\xFF\"b", &out);
  EXPECT_EQ(out, "\"a\\xff\\\"b\"");
  EXPECT_TRUE(codec_internal::IsValidUtf8(out));
  out.clear();
  codec_internal::AppendQuotedForMessage(std::string(1000, 'x'), &out);
  EXPECT_LT(out.size(), 300u);
  EXPECT_EQ(out.substr(out.size() - 3), "...");
}

}  // namespace
}  // namespace dynamo_batcher
