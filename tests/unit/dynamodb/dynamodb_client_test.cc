#include "service/dynamodb/dynamodb_client.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "service/auth/sigv4.h"
#include "service/codec/codec.h"
#include "tests/support/fake_transport.h"
#include "tests/support/schemas.h"

namespace dynamo_batcher {
namespace {

using test_support::FakeTransport;
using test_support::FindHeader;

HttpResponse Http(long status, std::string body) {
  return test_support::Answer(status, std::move(body));
}

absl::Time Aug30() { return absl::FromUnixSeconds(1440938160); }  // 2015-08-30T12:36:00Z

TEST(DynamoDbClient, DefaultEndpointComesFromTheRegion) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "", std::nullopt}, "static");
  DynamoDbOptions o;
  o.region = "eu-west-2";
  DynamoDbClient c(o, &t, &creds);
  EXPECT_EQ(c.endpoint(), "https://dynamodb.eu-west-2.amazonaws.com");
  absl::StatusOr<HttpRequest> req = c.SignedRequest("BatchWriteItem", "{}", Aug30());
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->url, "https://dynamodb.eu-west-2.amazonaws.com/");
  EXPECT_EQ(*FindHeader(*req, "Host"), "dynamodb.eu-west-2.amazonaws.com");
}

TEST(DynamoDbClient, CustomEndpointKeepsSchemeAndPort) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "", std::nullopt}, "static");
  DynamoDbOptions o;
  o.endpoint = "http://127.0.0.1:8000";
  DynamoDbClient c(o, &t, &creds);
  EXPECT_EQ(c.endpoint(), "http://127.0.0.1:8000");
  absl::StatusOr<HttpRequest> req = c.SignedRequest("DescribeTable", "{}", Aug30());
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->url, "http://127.0.0.1:8000/");
  EXPECT_EQ(*FindHeader(*req, "Host"), "127.0.0.1:8000");

  o.endpoint = "http://localhost:4566/";  // trailing slash
  DynamoDbClient c2(o, &t, &creds);
  EXPECT_EQ(c2.endpoint(), "http://localhost:4566");
  EXPECT_EQ(c2.SignedRequest("X", "{}", Aug30())->url, "http://localhost:4566/");
}

TEST(DynamoDbClient, SignedRequestCarriesProtocolHeadersAndAValidSignature) {
  FakeTransport t;
  StaticCredentialsProvider creds(
      {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", std::nullopt}, "static");
  DynamoDbOptions o;
  o.region = "us-west-2";
  o.call_timeout = absl::Seconds(3);
  DynamoDbClient c(o, &t, &creds);
  const std::string body = R"({"RequestItems":{}})";
  absl::StatusOr<HttpRequest> req = c.SignedRequest("BatchWriteItem", body, Aug30());
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->method, "POST");
  EXPECT_EQ(req->body, body);
  EXPECT_EQ(req->timeout, absl::Seconds(3));
  EXPECT_EQ(*FindHeader(*req, "Content-Type"), "application/x-amz-json-1.0");
  EXPECT_EQ(*FindHeader(*req, "X-Amz-Target"), "DynamoDB_20120810.BatchWriteItem");
  EXPECT_EQ(*FindHeader(*req, "X-Amz-Date"), "20150830T123600Z");
  EXPECT_EQ(FindHeader(*req, "X-Amz-Security-Token"), nullptr);
  const std::string* auth = FindHeader(*req, "Authorization");
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(absl::StartsWith(
      *auth,
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-west-2/dynamodb/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="))
      << *auth;

  // Re-sign what was sent (minus Authorization) independently: same answer.
  SigV4Request check;
  check.path = "/";
  for (const auto& h : req->headers) {
    if (h.first != "Authorization") check.headers.push_back(h);
  }
  check.payload = body;
  EXPECT_EQ(
      *auth,
      SignV4(check, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", std::nullopt},
             "us-west-2", "dynamodb", Aug30())
          .authorization);
}

TEST(DynamoDbClient, SessionTokenIsSentAndSigned) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "TOKEN123", std::nullopt}, "static");
  DynamoDbClient c(DynamoDbOptions{}, &t, &creds);
  absl::StatusOr<HttpRequest> req = c.SignedRequest("DescribeTable", "{}", Aug30());
  ASSERT_TRUE(req.ok());
  ASSERT_NE(FindHeader(*req, "X-Amz-Security-Token"), nullptr);
  EXPECT_EQ(*FindHeader(*req, "X-Amz-Security-Token"), "TOKEN123");
  EXPECT_TRUE(absl::StrContains(
      *FindHeader(*req, "Authorization"),
      "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"));
}

class FailingCredentials : public CredentialsProvider {
 public:
  absl::StatusOr<AwsCredentials> GetCredentials() override {
    return absl::FailedPreconditionError("AWS_ACCESS_KEY_ID is not set");
  }
  std::string Name() const override { return "environment"; }
};

TEST(DynamoDbClient, MissingCredentialsAreRetryableAndNothingIsSent) {
  FakeTransport t;
  FailingCredentials creds;
  DynamoDbClient c(DynamoDbOptions{}, &t, &creds);
  EXPECT_EQ(c.SignedRequest("X", "{}", Aug30()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  bool called = false;
  c.BatchWriteItem(test_support::EventsSchema(), "{}", [&](BatchWriteResponse r) {
    called = true;
    EXPECT_EQ(r.result.kind, BatchResult::Kind::kRetryable);
    EXPECT_TRUE(absl::StrContains(r.result.message, "AWS_ACCESS_KEY_ID"));
  });
  EXPECT_TRUE(called);
  EXPECT_TRUE(t.requests().empty());
}

TEST(DynamoDbClient, BatchWriteItemSendsTheBodyAndParsesTheAnswer) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "", std::nullopt}, "static");
  DynamoDbClient c(DynamoDbOptions{}, &t, &creds);
  t.Enqueue(Http(
      200,
      R"({"UnprocessedItems":{"events":[{"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"2"}}}}]},
      "ConsumedCapacity":[{"TableName":"events","CapacityUnits":2}]})"));
  std::optional<BatchWriteResponse> got;
  c.BatchWriteItem(test_support::EventsSchema(), R"({"RequestItems":{"events":[]}})",
                   [&](BatchWriteResponse r) { got = std::move(r); });
  ASSERT_EQ(t.requests().size(), 1u);
  EXPECT_EQ(t.requests()[0].body, R"({"RequestItems":{"events":[]}})");
  EXPECT_EQ(*FindHeader(t.requests()[0], "X-Amz-Target"), "DynamoDB_20120810.BatchWriteItem");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->result.kind, BatchResult::Kind::kSuccess);
  std::string key;
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, "a", &key).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "2", &key).ok());
  EXPECT_EQ(got->result.unprocessed_keys, std::vector<std::string>{key});
  EXPECT_DOUBLE_EQ(got->consumed_wcu, 2);
}

TEST(DynamoDbClient, DescribeTableSendsTheTableNameAsJson) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "", std::nullopt}, "static");
  DynamoDbClient c(DynamoDbOptions{}, &t, &creds);
  t.Enqueue(
      Http(200, R"({"Table":{"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],
      "KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"TableStatus":"ACTIVE"}})"));
  absl::StatusOr<TableSchema> s = c.DescribeTable("we\"ird");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "we\"ird");
  ASSERT_EQ(t.requests().size(), 1u);
  EXPECT_EQ(t.requests()[0].body, R"({"TableName":"we\"ird"})");
  EXPECT_EQ(*FindHeader(t.requests()[0], "X-Amz-Target"), "DynamoDB_20120810.DescribeTable");
}

TEST(DynamoDbClient, CreateTableIfMissingToleratesAnExistingTable) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "", std::nullopt}, "static");
  DynamoDbClient c(DynamoDbOptions{}, &t, &creds);
  t.Enqueue(Http(
      400,
      R"({"__type":"com.amazonaws.dynamodb.v20120810#ResourceInUseException","message":"Table already exists: events"})"));
  t.Enqueue(Http(200, R"({"Table":{"TableStatus":"ACTIVE"}})"));
  ASSERT_TRUE(c.CreateTableIfMissing(test_support::EventsSchema()).ok());
  ASSERT_EQ(t.requests().size(), 2u);
  EXPECT_EQ(*FindHeader(t.requests()[0], "X-Amz-Target"), "DynamoDB_20120810.CreateTable");
  EXPECT_EQ(*FindHeader(t.requests()[1], "X-Amz-Target"), "DynamoDB_20120810.DescribeTable");
  rapidjson::Document d;
  d.Parse(t.requests()[0].body.c_str());
  ASSERT_TRUE(d.IsObject());
  EXPECT_STREQ(d["TableName"].GetString(), "events");
  EXPECT_STREQ(d["BillingMode"].GetString(), "PAY_PER_REQUEST");
  ASSERT_EQ(d["KeySchema"].Size(), 2u);
  EXPECT_STREQ(d["KeySchema"][0]["AttributeName"].GetString(), "pk");
  EXPECT_STREQ(d["KeySchema"][0]["KeyType"].GetString(), "HASH");
  EXPECT_STREQ(d["KeySchema"][1]["KeyType"].GetString(), "RANGE");
  EXPECT_STREQ(d["AttributeDefinitions"][1]["AttributeType"].GetString(), "N");
}

TEST(DynamoDbClient, CreateTableIfMissingReportsOtherErrors) {
  FakeTransport t;
  StaticCredentialsProvider creds({"AK", "SK", "", std::nullopt}, "static");
  DynamoDbClient c(DynamoDbOptions{}, &t, &creds);
  t.Enqueue(Http(
      400,
      R"({"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"no"})"));
  const absl::Status s = c.CreateTableIfMissing(test_support::EventsSchema());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(s.message(), "AccessDeniedException")) << s;
  EXPECT_EQ(t.requests().size(), 1u);
}

}  // namespace
}  // namespace dynamo_batcher
