#include "service/dynamodb/dynamodb_client.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "service/auth/sigv4.h"
#include "service/dynamodb/response_parser.h"

namespace dynamo_batcher {
namespace {

constexpr char kTargetPrefix[] = "DynamoDB_20120810.";
constexpr char kContentType[] = "application/x-amz-json-1.0";
constexpr char kSigningService[] = "dynamodb";
// CreateTableIfMissing waits this long for ACTIVE (dynalite takes ~0.5 s).
constexpr absl::Duration kCreateTableWait = absl::Seconds(10);
constexpr absl::Duration kCreateTablePoll = absl::Milliseconds(100);
// BatchWriteItem answers may exceed their request by this much; DescribeTable
// and CreateTable answers (a table description) stay under the default cap
// (HttpRequest::kDefaultMaxResponseBytes, 1 MiB).
constexpr size_t kBatchWriteResponseMargin = 1 << 20;
// A batch whose call could not be signed (credentials not available yet)
// is tried again after this.
constexpr absl::Duration kCredentialsRetryAfter = absl::Milliseconds(500);

std::string DefaultEndpoint(absl::string_view region) {
  // China regions live under their own DNS suffix.
  const char* suffix = absl::StartsWith(region, "cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  return absl::StrCat("https://dynamodb.", region, suffix);
}

std::string TableNameJson(absl::string_view table) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("TableName");
  w.String(table.data(), static_cast<rapidjson::SizeType>(table.size()));
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string CreateTableJson(const TableSchema& schema) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&](const std::string& s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  std::vector<std::pair<const KeyAttribute*, const char*>> keys = {{&schema.partition_key, "HASH"}};
  if (schema.sort_key) keys.emplace_back(&*schema.sort_key, "RANGE");
  w.StartObject();
  w.Key("TableName");
  str(schema.name);
  w.Key("AttributeDefinitions");
  w.StartArray();
  for (const auto& [attr, role] : keys) {
    w.StartObject();
    w.Key("AttributeName");
    str(attr->name);
    w.Key("AttributeType");
    w.String(KeyTypeName(attr->type));
    w.EndObject();
  }
  w.EndArray();
  w.Key("KeySchema");
  w.StartArray();
  for (const auto& [attr, role] : keys) {
    w.StartObject();
    w.Key("AttributeName");
    str(attr->name);
    w.Key("KeyType");
    w.String(role);
    w.EndObject();
  }
  w.EndArray();
  w.Key("BillingMode");
  w.String("PAY_PER_REQUEST");
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

DynamoDbClient::DynamoDbClient(DynamoDbOptions options, HttpTransport* transport,
                               CredentialsProvider* credentials)
    : options_(std::move(options)), transport_(transport), credentials_(credentials) {
  std::string ep = options_.endpoint.empty() ? DefaultEndpoint(options_.region) : options_.endpoint;
  if (!absl::StrContains(ep, "://")) ep = absl::StrCat("https://", ep);
  const size_t authority_start = ep.find("://") + 3;
  const size_t slash = ep.find('/', authority_start);
  host_ = ep.substr(authority_start,
                    slash == std::string::npos ? std::string::npos : slash - authority_start);
  endpoint_ = ep.substr(0, authority_start) + host_;
  std::string path = slash == std::string::npos ? "/" : ep.substr(slash);
  url_ = endpoint_ + path;
}

absl::StatusOr<HttpRequest> DynamoDbClient::SignedRequest(absl::string_view action,
                                                          std::string body, absl::Time now) {
  absl::StatusOr<AwsCredentials> creds = credentials_->GetCredentials();
  if (!creds.ok()) {
    return absl::Status(creds.status().code(), absl::StrCat("credentials (", credentials_->Name(),
                                                            "): ", creds.status().message()));
  }
  HttpRequest req;
  req.method = "POST";
  req.url = url_;
  req.timeout = options_.call_timeout;
  req.headers = {
      {"Host", host_},
      {"Content-Type", kContentType},
      {"X-Amz-Date", AmzDate(now)},
      {"X-Amz-Target", absl::StrCat(kTargetPrefix, action)},
  };
  if (!creds->session_token.empty()) {
    req.headers.emplace_back("X-Amz-Security-Token", creds->session_token);
  }
  SigV4Request to_sign;
  to_sign.method = req.method;
  const size_t path_start = url_.find('/', url_.find("://") + 3);
  to_sign.path = path_start == std::string::npos ? "/" : url_.substr(path_start);
  to_sign.headers = req.headers;
  to_sign.payload_sha256 = Sha256Hex(body);  // hashed once, here
  const SigV4Signature sig = SignV4(to_sign, *creds, options_.region, kSigningService, now);
  req.headers.emplace_back("Authorization", sig.authorization);
  req.body = std::move(body);
  return req;
}

void DynamoDbClient::BatchWriteItem(const TableSchema& schema, std::string body,
                                    std::function<void(BatchWriteResponse)> done) {
  // The answer holds at most the request's items (UnprocessedItems) plus
  // per-table capacity figures and item collection metrics.
  const size_t max_response = body.size() + kBatchWriteResponseMargin;
  absl::StatusOr<HttpRequest> req = SignedRequest("BatchWriteItem", std::move(body), absl::Now());
  if (!req.ok()) {
    // Credentials can come back (refresh, IMDS hiccup): retry, don't fail.
    BatchWriteResponse out;
    out.result.kind = BatchResult::Kind::kRetryable;
    out.result.error_code = "CredentialsUnavailable";
    out.result.message = std::string(req.status().message());
    // Not an attempt (nothing was sent); check again in a moment rather
    // than spin while the credentials fetch runs in the background.
    out.result.never_sent = true;
    out.result.retry_after = kCredentialsRetryAfter;
    done(std::move(out));
    return;
  }
  req->max_response_bytes = max_response;
  transport_->Send(std::move(*req), [schema, done = std::move(done)](HttpResponse response) {
    done(ParseBatchWriteResponse(response, schema));
  });
}

absl::StatusOr<TableSchema> DynamoDbClient::DescribeTable(const std::string& table) {
  absl::StatusOr<HttpRequest> req =
      SignedRequest("DescribeTable", TableNameJson(table), absl::Now());
  if (!req.ok()) return req.status();
  return ParseDescribeTableResponse(table, transport_->SendSync(std::move(*req)));
}

absl::Status DynamoDbClient::CreateTableIfMissing(const TableSchema& schema) {
  absl::StatusOr<HttpRequest> req =
      SignedRequest("CreateTable", CreateTableJson(schema), absl::Now());
  if (!req.ok()) return req.status();
  const HttpResponse created = transport_->SendSync(std::move(*req));
  if (created.status != 200 && ErrorTypeOf(created) != "ResourceInUseException") {
    return StatusFromErrorResponse(absl::StrCat("CreateTable ", schema.name), created);
  }
  // Start-up only, so a blocking bounded poll is acceptable here.
  const absl::Time deadline = absl::Now() + kCreateTableWait;
  std::string last = "no answer";
  while (true) {
    absl::StatusOr<HttpRequest> describe =
        SignedRequest("DescribeTable", TableNameJson(schema.name), absl::Now());
    if (!describe.ok()) return describe.status();
    absl::StatusOr<std::string> status =
        ParseTableStatus(transport_->SendSync(std::move(*describe)));
    if (status.ok() && *status == "ACTIVE") return absl::OkStatus();
    last = status.ok() ? *status : status.status().ToString();
    if (absl::Now() + kCreateTablePoll > deadline) break;
    absl::SleepFor(kCreateTablePoll);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("CreateTable ", schema.name, ": not ACTIVE after ",
                   absl::FormatDuration(kCreateTableWait), " (last: ", last, ")"));
}

}  // namespace dynamo_batcher
