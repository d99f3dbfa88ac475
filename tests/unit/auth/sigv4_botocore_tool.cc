// Signs N random requests with SignV4 and prints one JSON object per line:
// the request, the credentials, the time and our canonical request, string
// to sign and signature. sigv4_botocore_compare.py signs the same requests
// with botocore's SigV4Auth and compares every step.
//
// Usage: sigv4_botocore_tool COUNT SEED

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "service/auth/sigv4.h"

namespace {

using dynamo_batcher::AwsCredentials;
using dynamo_batcher::SigV4Request;

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Below(100) < static_cast<size_t>(percent); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

  // Unreserved characters, and %XX escapes (upper-case hex) of anything.
  std::string EncodedText(size_t max_len, bool allow_empty) {
    static const std::string kPlain =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
    static constexpr char kHex[] = "0123456789ABCDEF";
    size_t n = Below(max_len + 1);
    if (n == 0 && !allow_empty) n = 1;
    std::string out;
    for (size_t i = 0; i < n; ++i) {
      if (Chance(25)) {
        const unsigned char c = static_cast<unsigned char>(Below(256));
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += kPlain[Below(kPlain.size())];
      }
    }
    return out;
  }

  std::string Path() {
    if (Chance(30)) return "/";
    std::string p;
    const size_t segments = 1 + Below(5);
    for (size_t i = 0; i < segments; ++i) {
      p += '/';
      const size_t kind = Below(10);
      if (kind == 0)
        p += ".";
      else if (kind == 1)
        p += "..";
      else if (kind == 2)
        p += "";  // double slash
      else
        p += EncodedText(12, false);
    }
    if (Chance(30)) p += '/';
    return p;
  }

  std::string Query() {
    if (Chance(30)) return "";
    std::vector<std::string> keys;
    std::string q;
    const size_t n = 1 + Below(6);
    for (size_t i = 0; i < n; ++i) {
      std::string key = (!keys.empty() && Chance(30)) ? Pick(keys) : EncodedText(8, false);
      keys.push_back(key);
      if (!q.empty()) q += '&';
      q += key;
      if (Chance(90)) {
        q += '=';
        q += EncodedText(10, true);
      }
    }
    return q;
  }

  std::string HeaderName() {
    static const std::string kChars =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
    std::string n = "X-";
    const size_t len = 1 + Below(12);
    for (size_t i = 0; i < len; ++i) n += kChars[Below(kChars.size())];
    return n;
  }

  std::string HeaderValue() {
    static const std::vector<std::string> kSpaces = {" ", "  ", "\t", " \t "};
    std::string v;
    if (Chance(30)) v += Pick(kSpaces);
    const size_t words = Below(4);
    for (size_t w = 0; w < words; ++w) {
      if (w > 0) v += Pick(kSpaces);
      const size_t len = 1 + Below(10);
      for (size_t i = 0; i < len; ++i)
        v += static_cast<char>('!' + Below(94));  // printable, no space
    }
    if (Chance(30)) v += Pick(kSpaces);
    return v;
  }

  std::string Bytes(size_t max_len) {
    std::string b(Below(max_len + 1), '\0');
    for (char& c : b) c = static_cast<char>(Below(256));
    return b;
  }

  std::string Token(size_t len) {
    static const std::string kChars =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    std::string t;
    for (size_t i = 0; i < len; ++i) t += kChars[Below(kChars.size())];
    return t;
  }

 private:
  std::mt19937_64 rng_;
};

std::string Hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s COUNT SEED\n", argv[0]);
    return 2;
  }
  const long count = std::strtol(argv[1], nullptr, 10);
  Gen g(std::strtoull(argv[2], nullptr, 10));
  const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
  const std::vector<std::string> kRegions = {"us-east-1", "eu-west-1", "ap-southeast-2",
                                             "cn-north-1"};
  const std::vector<std::string> kHosts = {"dynamodb.us-east-1.amazonaws.com", "127.0.0.1:8000",
                                           "localhost:4566", "example.amazonaws.com"};
  for (long i = 0; i < count; ++i) {
    SigV4Request req;
    req.method = g.Pick(kMethods);
    req.path = g.Path();
    req.query = g.Query();
    const std::string host = g.Pick(kHosts);
    // Any time from 2000 to 2037.
    const absl::Time now =
        absl::FromUnixSeconds(946684800 + static_cast<int64_t>(g.Below(1200000000)));
    AwsCredentials creds;
    creds.access_key_id = "AKIA" + g.Token(16);
    creds.secret_access_key = g.Token(40);
    if (g.Chance(50)) creds.session_token = g.Token(20 + g.Below(300));
    const std::string region = g.Pick(kRegions);
    const std::string service = g.Chance(80) ? "dynamodb" : "sts";

    std::vector<std::pair<std::string, std::string>> headers = {
        {g.Chance(50) ? "Host" : "host", host},
        {"X-Amz-Date", dynamo_batcher::AmzDate(now)},
    };
    if (!creds.session_token.empty())
      headers.emplace_back("X-Amz-Security-Token", creds.session_token);
    if (g.Chance(50)) headers.emplace_back("Content-Type", "application/x-amz-json-1.0");
    if (g.Chance(50)) headers.emplace_back("X-Amz-Target", "DynamoDB_20120810.BatchWriteItem");
    const size_t extra = g.Below(5);
    for (size_t h = 0; h < extra; ++h) {
      std::string name = g.HeaderName();
      headers.emplace_back(name, g.HeaderValue());
      // Repeated header, possibly with a different case.
      if (g.Chance(25))
        headers.emplace_back(g.Chance(50) ? name : absl::StrCat("x-", name.substr(2)),
                             g.HeaderValue());
    }
    // Shuffle the order given to the signer.
    for (size_t h = headers.size(); h > 1; --h) std::swap(headers[h - 1], headers[g.Below(h)]);
    req.headers = headers;
    const std::string body = g.Chance(20) ? std::string() : g.Bytes(300);
    req.payload = body;

    const dynamo_batcher::SigV4Signature sig =
        dynamo_batcher::SignV4(req, creds, region, service, now);

    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("method");
    w.String(req.method);
    w.Key("host");
    w.String(host);
    w.Key("path");
    w.String(req.path);
    w.Key("query");
    w.String(req.query);
    w.Key("headers");
    w.StartArray();
    for (const auto& [k, v] : headers) {
      w.StartArray();
      w.String(k);
      w.String(v);
      w.EndArray();
    }
    w.EndArray();
    w.Key("body_hex");
    w.String(Hex(body));
    w.Key("access_key_id");
    w.String(creds.access_key_id);
    w.Key("secret_access_key");
    w.String(creds.secret_access_key);
    w.Key("session_token");
    w.String(creds.session_token);
    w.Key("region");
    w.String(region);
    w.Key("service");
    w.String(service);
    w.Key("amz_date");
    w.String(sig.amz_date);
    w.Key("canonical_request");
    w.String(sig.canonical_request);
    w.Key("string_to_sign");
    w.String(sig.string_to_sign);
    w.Key("signature");
    w.String(sig.signature);
    w.Key("authorization");
    w.String(sig.authorization);
    w.EndObject();
    std::printf("%s\n", buf.GetString());
  }
  return 0;
}
