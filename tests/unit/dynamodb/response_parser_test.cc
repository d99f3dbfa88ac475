#include "service/dynamodb/response_parser.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "service/codec/codec.h"
#include "tests/support/schemas.h"

namespace dynamo_batcher {
namespace {

using Kind = BatchResult::Kind;

using test_support::EventsSchema;  // S partition key + N sort key

TableSchema BlobsSchema() {  // B partition key only
  TableSchema s;
  s.name = "blobs";
  s.partition_key = {"id", KeyType::kB};
  return s;
}

std::string Key(KeyType t1, const std::string& v1) {
  std::string k;
  EXPECT_TRUE(AppendCanonicalKeyPart(t1, v1, &k).ok());
  return k;
}
std::string Key(KeyType t1, const std::string& v1, KeyType t2, const std::string& v2) {
  std::string k = Key(t1, v1);
  EXPECT_TRUE(AppendCanonicalKeyPart(t2, v2, &k).ok());
  return k;
}

HttpResponse Http(long status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse Error(long status, const std::string& type, const std::string& message = "msg") {
  return Http(status, R"({"__type":"com.amazonaws.dynamodb.v20120810#)" + type +
                          R"(","message":")" + message + R"("})");
}

TEST(ParseBatchWriteResponse, SuccessWithEmptyUnprocessedItems) {
  const BatchWriteResponse r =
      ParseBatchWriteResponse(Http(200, R"({"UnprocessedItems":{}})"), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kSuccess);
  EXPECT_TRUE(r.result.unprocessed_keys.empty());
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.error_class, "");
  EXPECT_EQ(r.consumed_wcu, 0);
}

TEST(ParseBatchWriteResponse, UnprocessedItemsMapToCanonicalKeysWithNumbersByValue) {
  const std::string body = R"({"UnprocessedItems":{"events":[
      {"PutRequest":{"Item":{"pk":{"S":"user#1"},"sk":{"N":"1.0"},"v":{"S":"x"}}}},
      {"DeleteRequest":{"Key":{"sk":{"N":"10E-1"},"pk":{"S":"user#2"}}}},
      {"PutRequest":{"Item":{"pk":{"S":"user#3"},"sk":{"N":"-2.50"}}}}
    ]},"ConsumedCapacity":[{"TableName":"events","CapacityUnits":3.0}]})";
  const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, body), EventsSchema());
  ASSERT_EQ(r.result.kind, Kind::kSuccess) << r.result.message;
  ASSERT_EQ(r.result.unprocessed_keys.size(), 3u);
  // Written as "1": DynamoDB answering "1.0" is the same key.
  EXPECT_EQ(r.result.unprocessed_keys[0], Key(KeyType::kS, "user#1", KeyType::kN, "1"));
  EXPECT_EQ(r.result.unprocessed_keys[1], Key(KeyType::kS, "user#2", KeyType::kN, "1"));
  EXPECT_EQ(r.result.unprocessed_keys[2], Key(KeyType::kS, "user#3", KeyType::kN, "-2.5"));
  EXPECT_NE(r.result.unprocessed_keys[0], r.result.unprocessed_keys[1]);
  EXPECT_DOUBLE_EQ(r.consumed_wcu, 3.0);
}

// An answer far bigger than the parser's first buffer on the stack (4 KB):
// 25 unprocessed puts of 2 KB each go on in heap chunks, every key intact.
TEST(ParseBatchWriteResponse, LargeAnswerBeyondTheFirstBufferParsesWhole) {
  std::string body = R"({"UnprocessedItems":{"events":[)";
  for (int i = 0; i < 25; ++i) {
    if (i > 0) body += ",";
    body += R"({"PutRequest":{"Item":{"pk":{"S":"user#)" + std::to_string(i) + R"("},"sk":{"N":")" +
            std::to_string(i) + R"("},"v":{"S":")" + std::string(2048, 'a' + i % 26) + R"("}}}})";
  }
  body += R"(]},"ConsumedCapacity":[{"TableName":"events","CapacityUnits":0.0}]})";
  ASSERT_GT(body.size(), 50000u);
  const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, body), EventsSchema());
  ASSERT_EQ(r.result.kind, Kind::kSuccess) << r.result.message;
  ASSERT_EQ(r.result.unprocessed_keys.size(), 25u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(r.result.unprocessed_keys[i],
              Key(KeyType::kS, "user#" + std::to_string(i), KeyType::kN, std::to_string(i)));
  }
}

TEST(ParseBatchWriteResponse, BinaryKeysAreBase64Decoded) {
  const std::string body = R"({"UnprocessedItems":{"blobs":[
      {"PutRequest":{"Item":{"id":{"B":"AAEC/w=="}}}},
      {"DeleteRequest":{"Key":{"id":{"B":"aGk="}}}}]}})";
  const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, body), BlobsSchema());
  ASSERT_EQ(r.result.kind, Kind::kSuccess) << r.result.message;
  ASSERT_EQ(r.result.unprocessed_keys.size(), 2u);
  EXPECT_EQ(r.result.unprocessed_keys[0], Key(KeyType::kB, std::string("\x00\x01\x02\xff", 4)));
  EXPECT_EQ(r.result.unprocessed_keys[1], Key(KeyType::kB, "hi"));
}

TEST(ParseBatchWriteResponse, ConsumedCapacityIsSummedForThisTableOnly) {
  const std::string body = R"({"UnprocessedItems":{},"ConsumedCapacity":[
      {"TableName":"events","CapacityUnits":2.5},
      {"TableName":"other","CapacityUnits":100},
      {"TableName":"events","CapacityUnits":1.5},
      {"TableName":"events","CapacityUnits":"not a number"}]})";
  const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, body), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kSuccess);
  EXPECT_DOUBLE_EQ(r.consumed_wcu, 4.0);
}

TEST(ParseBatchWriteResponse, ThrottlingErrorsAreRetryableAndThrottled) {
  for (const char* type :
       {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}) {
    const BatchWriteResponse r =
        ParseBatchWriteResponse(Error(400, type, "slow down"), EventsSchema());
    EXPECT_EQ(r.result.kind, Kind::kRetryable) << type;
    EXPECT_TRUE(r.result.throttled) << type;
    EXPECT_EQ(r.result.error_code, type);
    EXPECT_EQ(r.result.message, "slow down");
    EXPECT_EQ(r.error_class, "4xx");
    EXPECT_EQ(r.http_status, 400);
  }
}

TEST(ParseBatchWriteResponse, ThrottlingReasonsAreReadAndUnknownOnesAreOther) {
  const BatchWriteResponse r = ParseBatchWriteResponse(
      Http(400,
           R"({"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message":"hot","ThrottlingReasons":[
          {"reason":"TableWriteKeyRangeThroughputExceeded","resource":"arn:aws:dynamodb:us-east-1:1:table/events"},
          {"reason":"IndexWriteAccountLimitExceeded","resource":"arn:aws:dynamodb:us-east-1:1:table/events/index/g"},
          {"reason":"SomethingNew\u0001","resource":"x"},
          {"resource":"no reason"}, 7, null]})"),
      EventsSchema());
  EXPECT_TRUE(r.result.throttled);
  EXPECT_EQ(r.result.throttle_reasons,
            (std::vector<std::string>{"TableWriteKeyRangeThroughputExceeded",
                                      "IndexWriteAccountLimitExceeded", "Other"}));
  // No reasons, or reasons on an error that is not throttling: nothing.
  EXPECT_TRUE(ParseBatchWriteResponse(Error(400, "ThrottlingException"), EventsSchema())
                  .result.throttle_reasons.empty());
  EXPECT_TRUE(
      ParseBatchWriteResponse(Http(500, R"({"__type":"InternalServerError","ThrottlingReasons":[
                                {"reason":"TableWriteProvisionedThroughputExceeded"}]})"),
                              EventsSchema())
          .result.throttle_reasons.empty());
  // A hostile list is read up to a bound.
  std::string many = R"({"__type":"ThrottlingException","ThrottlingReasons":[)";
  for (int i = 0; i < 1000; ++i) {
    many += std::string(i ? "," : "") + R"({"reason":"TableWriteProvisionedThroughputExceeded"})";
  }
  many += "]}";
  EXPECT_EQ(ParseBatchWriteResponse(Http(400, many), EventsSchema()).result.throttle_reasons.size(),
            8u);
}

TEST(ParseBatchWriteResponse, ValidationExceptionIsBisectedAndReadsCapitalMessage) {
  const BatchWriteResponse r = ParseBatchWriteResponse(
      Http(
          400,
          R"({"__type":"com.amazon.coral.validate#ValidationException","Message":"Provided list of item keys contains duplicates"})"),
      EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kValidation);
  EXPECT_FALSE(r.result.throttled);
  EXPECT_EQ(r.result.error_code, "ValidationException");
  EXPECT_EQ(r.result.message, "Provided list of item keys contains duplicates");
}

TEST(ParseBatchWriteResponse, NonRetryableErrorsAreFatalWithDynamoDbsMessage) {
  for (const char* type :
       {"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException",
        "InvalidSignatureException", "MissingAuthenticationToken", "IncompleteSignature",
        "SerializationException", "SomethingNewException"}) {
    const BatchWriteResponse r =
        ParseBatchWriteResponse(Error(400, type, std::string("because ") + type), EventsSchema());
    EXPECT_EQ(r.result.kind, Kind::kFatal) << type;
    EXPECT_EQ(r.result.error_code, type);
    EXPECT_EQ(r.result.message, std::string("because ") + type);
  }
}

TEST(ParseBatchWriteResponse, ExpiredTokenIsRetryableButNotThrottling) {
  const BatchWriteResponse r =
      ParseBatchWriteResponse(Error(400, "ExpiredTokenException"), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kRetryable);
  EXPECT_FALSE(r.result.throttled);
}

TEST(ParseBatchWriteResponse, PayloadTooLargeIsBisected) {
  const BatchWriteResponse r = ParseBatchWriteResponse(Http(413, ""), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kValidation);
  EXPECT_EQ(r.result.error_code, "RequestEntityTooLarge");
  EXPECT_EQ(r.error_class, "4xx");
}

TEST(ParseBatchWriteResponse, ServerErrorsAreRetryable) {
  BatchWriteResponse r = ParseBatchWriteResponse(Error(500, "InternalServerError"), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kRetryable);
  EXPECT_FALSE(r.result.throttled);
  EXPECT_EQ(r.result.error_code, "InternalServerError");
  EXPECT_EQ(r.error_class, "5xx");

  r = ParseBatchWriteResponse(Http(503, "<html>Service Unavailable</html>"), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kRetryable);
  EXPECT_EQ(r.result.error_code, "Http503");
  EXPECT_TRUE(absl::StrContains(r.result.message, "503"));
  EXPECT_EQ(r.error_class, "5xx");
}

TEST(ParseBatchWriteResponse, ErrorTypeFallsBackToTheAmznErrorTypeHeader) {
  HttpResponse resp = Http(400, "");
  resp.headers = {{"x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/"}};
  const BatchWriteResponse r = ParseBatchWriteResponse(resp, EventsSchema());
  EXPECT_EQ(r.result.error_code, "ThrottlingException");
  EXPECT_TRUE(r.result.throttled);
}

TEST(ParseBatchWriteResponse, RetryAfterHeaderIsMilliseconds) {
  HttpResponse resp = Error(400, "ThrottlingException");
  resp.headers = {{"x-amz-retry-after", "1500"}};
  EXPECT_EQ(ParseBatchWriteResponse(resp, EventsSchema()).result.retry_after,
            absl::Milliseconds(1500));
  resp.headers = {{"x-amz-retry-after", "soon"}};
  EXPECT_FALSE(ParseBatchWriteResponse(resp, EventsSchema()).result.retry_after.has_value());
  resp.headers = {{"x-amz-retry-after", "999999999999"}};
  EXPECT_EQ(ParseBatchWriteResponse(resp, EventsSchema()).result.retry_after, absl::Minutes(5));
  resp.headers.clear();
  EXPECT_FALSE(ParseBatchWriteResponse(resp, EventsSchema()).result.retry_after.has_value());
}

TEST(ParseBatchWriteResponse, TransportErrorsAreRetryableWithTheirClass) {
  HttpResponse timeout;
  timeout.transport_error = "timeout";
  timeout.timed_out = true;
  BatchWriteResponse r = ParseBatchWriteResponse(timeout, EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kRetryable);
  EXPECT_EQ(r.error_class, "timeout");
  EXPECT_EQ(r.result.error_code, "Timeout");

  HttpResponse reset;
  reset.transport_error = "connection reset";
  r = ParseBatchWriteResponse(reset, EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kRetryable);
  EXPECT_EQ(r.error_class, "connection");
  EXPECT_EQ(r.result.message, "connection reset");
}

TEST(ParseBatchWriteResponse, TimeoutsAndLostConnectionsHaveUnknownFate) {
  HttpResponse timeout;
  timeout.transport_error = "timeout";
  timeout.timed_out = true;
  EXPECT_TRUE(ParseBatchWriteResponse(timeout, EventsSchema()).result.unknown_fate);
  HttpResponse reset;
  reset.transport_error = "connection reset";
  EXPECT_TRUE(ParseBatchWriteResponse(reset, EventsSchema()).result.unknown_fate);
  HttpResponse refused;
  refused.transport_error = "connection refused";
  refused.not_sent = true;
  EXPECT_FALSE(ParseBatchWriteResponse(refused, EventsSchema()).result.unknown_fate);
  // An answer, even an error, means the call's fate is known.
  EXPECT_FALSE(ParseBatchWriteResponse(Error(500, "InternalServerError"), EventsSchema())
                   .result.unknown_fate);
}

TEST(ParseBatchWriteResponse, GarbageOkBodyIsRetryableMalformedResponse) {
  for (const char* body : {"", "not json", "[]", "null", "{\"UnprocessedItems\":",
                           "{\"UnprocessedItems\":[]}", "{\"UnprocessedItems\":{\"events\":{}}}"}) {
    const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, body), EventsSchema());
    EXPECT_EQ(r.result.kind, Kind::kRetryable) << body;
    EXPECT_EQ(r.result.error_code, "MalformedResponse") << body;
    EXPECT_TRUE(r.result.unprocessed_keys.empty());
  }
}

TEST(ParseBatchWriteResponse, MissingUnprocessedItemsMeansAllWritten) {
  const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, "{}"), EventsSchema());
  EXPECT_EQ(r.result.kind, Kind::kSuccess);
  EXPECT_TRUE(r.result.unprocessed_keys.empty());
}

TEST(ParseBatchWriteResponse, UnreadableUnprocessedKeyRetriesTheWholeBatch) {
  for (const char* entry :
       {R"({"PutRequest":{"Item":{"pk":{"S":"a"}}}})",                   // no sort key
        R"({"PutRequest":{"Item":{"pk":{"N":"1"},"sk":{"N":"1"}}}})",    // wrong type
        R"({"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"abc"}}}})",  // bad number
        R"({"PutRequest":{"Item":{"pk":{"S":7},"sk":{"N":"1"}}}})",      // not a string
        R"({"PutRequest":{}})", R"({"DeleteRequest":{"Item":{}}})", R"({})", R"(17)"}) {
    const std::string body = std::string(R"({"UnprocessedItems":{"events":[)") + entry + "]}}";
    const BatchWriteResponse r = ParseBatchWriteResponse(Http(200, body), EventsSchema());
    EXPECT_EQ(r.result.kind, Kind::kRetryable) << entry;
    EXPECT_EQ(r.result.error_code, "MalformedResponse") << entry;
  }
  const BatchWriteResponse r = ParseBatchWriteResponse(
      Http(200, R"({"UnprocessedItems":{"blobs":[{"PutRequest":{"Item":{"id":{"B":"%%%"}}}}]}})"),
      BlobsSchema());
  EXPECT_EQ(r.result.kind, Kind::kRetryable);
}

TEST(ClassifyError, StatusCodesDecideWhenThereIsNoErrorType) {
  EXPECT_EQ(ClassifyError(0, "", true).kind, Kind::kRetryable);
  EXPECT_FALSE(ClassifyError(0, "", true).throttled);
  EXPECT_EQ(ClassifyError(502, "", false).kind, Kind::kRetryable);
  EXPECT_EQ(ClassifyError(429, "", false).kind, Kind::kRetryable);
  EXPECT_TRUE(ClassifyError(429, "", false).throttled);
  EXPECT_EQ(ClassifyError(413, "", false).kind, Kind::kValidation);
  EXPECT_EQ(ClassifyError(404, "", false).kind, Kind::kFatal);
  EXPECT_EQ(ClassifyError(403, "", false).kind, Kind::kFatal);
  EXPECT_EQ(ClassifyError(503, "ServiceUnavailable", false).kind, Kind::kRetryable);
  EXPECT_FALSE(ClassifyError(503, "ServiceUnavailable", false).throttled);
}

TEST(ClassifyError, ThrottlingErrorTypesAreThrottledRetries) {
  const ErrorClass c = ClassifyError(400, "ProvisionedThroughputExceededException", false);
  EXPECT_EQ(c.kind, Kind::kRetryable);
  EXPECT_TRUE(c.throttled);
  EXPECT_EQ(ClassifyError(400, "ValidationException", false).kind, Kind::kValidation);
  EXPECT_FALSE(ClassifyError(400, "ValidationException", false).throttled);
}

TEST(ParseDescribeTableResponse, HashOnlyTable) {
  const std::string body = R"({"Table":{"TableName":"blobs","TableStatus":"ACTIVE",
      "AttributeDefinitions":[{"AttributeName":"id","AttributeType":"B"}],
      "KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}})";
  absl::StatusOr<TableSchema> s = ParseDescribeTableResponse("blobs", Http(200, body));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "blobs");
  EXPECT_EQ(s->partition_key.name, "id");
  EXPECT_EQ(s->partition_key.type, KeyType::kB);
  EXPECT_FALSE(s->sort_key.has_value());
}

TEST(ParseDescribeTableResponse, HashAndRangeTableInAnyOrder) {
  const std::string body = R"({"Table":{"TableName":"events",
      "AttributeDefinitions":[{"AttributeName":"sk","AttributeType":"N"},
                              {"AttributeName":"gsi","AttributeType":"S"},
                              {"AttributeName":"pk","AttributeType":"S"}],
      "KeySchema":[{"AttributeName":"sk","KeyType":"RANGE"},{"AttributeName":"pk","KeyType":"HASH"}]}})";
  absl::StatusOr<TableSchema> s = ParseDescribeTableResponse("events", Http(200, body));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->partition_key.name, "pk");
  EXPECT_EQ(s->partition_key.type, KeyType::kS);
  ASSERT_TRUE(s->sort_key.has_value());
  EXPECT_EQ(s->sort_key->name, "sk");
  EXPECT_EQ(s->sort_key->type, KeyType::kN);
}

TEST(ParseDescribeTableResponse, ErrorsAreStatuses) {
  absl::StatusOr<TableSchema> s = ParseDescribeTableResponse(
      "nope", Error(400, "ResourceNotFoundException", "Requested resource not found"));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(s.status().message(), "Requested resource not found"));
  EXPECT_EQ(ParseDescribeTableResponse("t", Error(400, "AccessDeniedException")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ParseDescribeTableResponse("t", Error(400, "ThrottlingException")).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseDescribeTableResponse("t", Http(500, "")).status().code(),
            absl::StatusCode::kUnavailable);
  HttpResponse refused;
  refused.transport_error = "connection refused";
  EXPECT_EQ(ParseDescribeTableResponse("t", refused).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ParseDescribeTableResponse, MalformedAnswersAreErrorsNotCrashes) {
  for (
      const char* body :
      {"", "[]", "{}", R"({"Table":7})", R"({"Table":{"KeySchema":[]}})",
       R"({"Table":{"KeySchema":[],"AttributeDefinitions":[]}})",
       R"({"Table":{"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"AttributeDefinitions":[]}})",
       R"({"Table":{"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"BOOL"}]}})",
       R"({"Table":{"KeySchema":[{"AttributeName":"pk","KeyType":"RANGE"}],"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}]}})"}) {
    EXPECT_FALSE(ParseDescribeTableResponse("t", Http(200, body)).ok()) << body;
  }
}

}  // namespace
}  // namespace dynamo_batcher
