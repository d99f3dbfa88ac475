#include "service/auth/sigv4.h"

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

struct Vector {
  std::string name;
  std::map<std::string, std::string> fields;
  SigV4Request request;
  std::string body;
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
};

// Reads one file of sigv4_vectors/ (format in its README.md).
Vector LoadVector(const std::string& name) {
  Vector v;
  v.name = name;
  std::ifstream in(absl::StrCat(SIGV4_VECTORS_DIR, "/", name, ".txt"));
  EXPECT_TRUE(in.good()) << "cannot open vector " << name;
  std::string line;
  std::string* section = nullptr;
  bool first_in_section = true;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "== ")) {
      const std::string s = line.substr(3);
      section = s == "canonical-request" ? &v.canonical_request
                : s == "string-to-sign"  ? &v.string_to_sign
                                         : &v.signature;
      first_in_section = true;
      continue;
    }
    if (section != nullptr) {
      if (!first_in_section) section->push_back('\n');
      section->append(line);
      first_in_section = false;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    const std::string key = line.substr(0, colon);
    std::string value(absl::StripLeadingAsciiWhitespace(line.substr(colon + 1)));
    if (key == "header") {
      const size_t c = value.find(':');
      v.request.headers.emplace_back(value.substr(0, c), value.substr(c + 1));
    } else {
      v.fields[key] = value;
    }
  }
  v.request.method = v.fields["method"];
  v.request.path = v.fields["path"];
  v.request.query = v.fields["query"];
  v.body = v.fields["body"];
  return v;
}

// YYYYMMDD'T'HHMMSS'Z' -> time (absl::ParseTime's %Y is greedy, so by hand).
absl::Time ParseAmzDate(const std::string& s) {
  EXPECT_EQ(s.size(), 16u) << s;
  if (s.size() != 16) return absl::UnixEpoch();
  auto num = [&](size_t pos, size_t len) { return std::stoi(s.substr(pos, len)); };
  return absl::FromCivil(
      absl::CivilSecond(num(0, 4), num(4, 2), num(6, 2), num(9, 2), num(11, 2), num(13, 2)),
      absl::UTCTimeZone());
}

class SigV4Vectors : public testing::TestWithParam<const char*> {};

TEST_P(SigV4Vectors, MatchesEveryPublishedStep) {
  Vector v = LoadVector(GetParam());
  ASSERT_FALSE(v.signature.empty());
  v.request.payload = v.body;
  AwsCredentials creds;
  creds.access_key_id = v.fields["access_key_id"];
  creds.secret_access_key = v.fields["secret_access_key"];
  creds.session_token = v.fields["session_token"];

  const SigV4Signature sig = SignV4(v.request, creds, v.fields["region"], v.fields["service"],
                                    ParseAmzDate(v.fields["time"]));
  EXPECT_EQ(sig.canonical_request, v.canonical_request);
  EXPECT_EQ(sig.string_to_sign, v.string_to_sign);
  EXPECT_EQ(sig.signature, v.signature);
  EXPECT_EQ(sig.amz_date, v.fields["time"]);
  const std::string scope = absl::StrCat(v.fields["time"].substr(0, 8), "/", v.fields["region"],
                                         "/", v.fields["service"], "/aws4_request");
  EXPECT_EQ(sig.authorization,
            absl::StrCat("AWS4-HMAC-SHA256 Credential=", creds.access_key_id, "/", scope,
                         ", SignedHeaders=", sig.signed_headers, ", Signature=", v.signature));
  // The signed-headers list is the canonical request's second-to-last line.
  EXPECT_TRUE(absl::StrContains(v.canonical_request, "\n" + sig.signed_headers + "\n"));
}

INSTANTIATE_TEST_SUITE_P(AwsTestSuite, SigV4Vectors,
                         testing::Values("get-vanilla", "iam-list-users"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!absl::ascii_isalnum(c)) c = '_';
                           return n;
                         });

TEST(SigV4, GetVanillaSignatureIsAwsPublishedValue) {
  // Independent of the data files, so a broken loader cannot hide a bug.
  SigV4Request req;
  req.method = "GET";
  req.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  AwsCredentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", std::nullopt};
  const SigV4Signature sig =
      SignV4(req, creds, "us-east-1", "service", ParseAmzDate("20150830T123600Z"));
  EXPECT_EQ(sig.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(sig.signed_headers, "host;x-amz-date");
}

TEST(SigV4, PrecomputedPayloadHashIsUsedInsteadOfPayload) {
  SigV4Request req;
  req.headers = {{"Host", "h"}, {"X-Amz-Date", "20150830T123600Z"}};
  req.payload = "ignored";
  req.payload_sha256 = Sha256Hex("");
  AwsCredentials creds{"AK", "SK", "", std::nullopt};
  const absl::Time t = ParseAmzDate("20150830T123600Z");
  const SigV4Signature a = SignV4(req, creds, "us-east-1", "dynamodb", t);
  req.payload = "";
  req.payload_sha256.clear();
  const SigV4Signature b = SignV4(req, creds, "us-east-1", "dynamodb", t);
  EXPECT_EQ(a.signature, b.signature);
  EXPECT_TRUE(absl::EndsWith(a.canonical_request, Sha256Hex("")));
}

TEST(SigV4, ChangingTheBodyChangesTheSignature) {
  SigV4Request req;
  req.headers = {{"Host", "h"}, {"X-Amz-Date", "20150830T123600Z"}};
  AwsCredentials creds{"AK", "SK", "", std::nullopt};
  const absl::Time t = ParseAmzDate("20150830T123600Z");
  req.payload = "{}";
  const std::string a = SignV4(req, creds, "us-east-1", "dynamodb", t).signature;
  req.payload = "{ }";
  EXPECT_NE(a, SignV4(req, creds, "us-east-1", "dynamodb", t).signature);
}

TEST(SigV4, Sha256HexOfKnownStrings) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SigV4, AmzDateIsUtc) {
  EXPECT_EQ(AmzDate(absl::FromUnixSeconds(0)), "19700101T000000Z");
  EXPECT_EQ(AmzDate(ParseAmzDate("20241231T235959Z")), "20241231T235959Z");
}

}  // namespace
}  // namespace dynamo_batcher
