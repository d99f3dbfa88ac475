#include "service/auth/sts_xml.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using testing_auth::StsXml;

TEST(StsXml, ParsesAssumeRoleWithWebIdentityAnswer) {
  auto c = ParseStsCredentialsXml(
      StsXml("ASIAEXAMPLE", "wJalr/K7MDENG+bPxRfiCY", "FwoGZXIvYXdzEJr//////", "2024-05-01T13:00:00Z"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c->secret_access_key, "wJalr/K7MDENG+bPxRfiCY");
  EXPECT_EQ(c->session_token, "FwoGZXIvYXdzEJr//////");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_EQ(*c->expiration, absl::FromUnixSeconds(1714568400));
}

TEST(StsXml, DecodesEntitiesCdataAndIgnoresPrefixesAndComments) {
  const std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->"
      "<sts:AssumeRoleResponse xmlns:sts=\"x\"><sts:AssumeRoleResult><sts:Credentials>"
      "<sts:AccessKeyId>AK&amp;ID</sts:AccessKeyId>"
      "<sts:SecretAccessKey><![CDATA[se<cr>et]]></sts:SecretAccessKey>"
      "<sts:SessionToken>t&#65;&#x42;</sts:SessionToken>"
      "<sts:Expiration>2024-05-01T13:00:00.123Z</sts:Expiration>"
      "</sts:Credentials></sts:AssumeRoleResult></sts:AssumeRoleResponse>";
  auto c = ParseStsCredentialsXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AK&ID");
  EXPECT_EQ(c->secret_access_key, "se<cr>et");
  EXPECT_EQ(c->session_token, "tAB");
  EXPECT_EQ(*c->expiration, absl::FromUnixMillis(1714568400123));
}

TEST(StsXml, ErrorResponseBecomesPermissionDeniedWithStsCode) {
  const std::string xml =
      "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
      "<Code>InvalidIdentityToken</Code><Message>Token is expired</Message></Error>"
      "<RequestId>abc</RequestId></ErrorResponse>";
  auto c = ParseStsCredentialsXml(xml);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "InvalidIdentityToken: Token is expired"))
      << c.status();
}

TEST(StsXml, RejectsMalformedOrIncompleteAnswers) {
  for (const std::string& bad : {
           std::string(""), std::string("not xml"), std::string("<a><b></a>"),
           std::string("<a>"), std::string("<a></a><b></b>"),
           std::string("<r><Credentials><AccessKeyId>A</AccessKeyId></Credentials></r>"),
           std::string("<r><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S"
                       "</SecretAccessKey><SessionToken>T</SessionToken><Expiration>soon"
                       "</Expiration></Credentials></r>"),
           std::string("<r>&bogus;</r>"), std::string("<r>&#0;</r>"),
           std::string("<r><!-- unterminated </r>"), std::string(200, '<')}) {
    auto c = ParseStsCredentialsXml(bad);
    EXPECT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(StsXml, RejectsDeepNesting) {
  std::string xml;
  for (int i = 0; i < 100; ++i) xml += "<a>";
  for (int i = 0; i < 100; ++i) xml += "</a>";
  EXPECT_FALSE(ParseStsCredentialsXml(xml).ok());
}

TEST(Iso8601, ParsesZuluFractionsAndOffsets) {
  EXPECT_EQ(*ParseIso8601("2024-05-01T13:00:00Z"), absl::FromUnixSeconds(1714568400));
  EXPECT_EQ(*ParseIso8601("2024-05-01T13:00:00.5Z"), absl::FromUnixMillis(1714568400500));
  EXPECT_EQ(*ParseIso8601("2024-05-01T15:00:00+02:00"), absl::FromUnixSeconds(1714568400));
  EXPECT_FALSE(ParseIso8601("2024-05-01").ok());
  EXPECT_FALSE(ParseIso8601("tomorrow").ok());
}

}  // namespace
}  // namespace dynamo_batcher
