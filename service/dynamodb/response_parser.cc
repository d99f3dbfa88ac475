// Pure parsing and classification of DynamoDB answers: no I/O, no clock.
// Every input, however malformed, yields a value; RapidJSON is used with
// explicit type checks only (its accessors assert on type mismatches).

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "service/codec/codec.h"
#include "service/dynamodb/response_parser.h"

namespace dynamo_batcher {
namespace {

using Kind = BatchResult::Kind;

// Iterative parsing: deep nesting in a hostile body cannot overflow the stack.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag;

// x-amz-retry-after is an integer number of milliseconds (the AWS SDKs' retry
// specification; aws-smithy-runtime and the Dart/Kotlin SDKs read it so).
// Capped so a bogus header cannot park a table for hours.
constexpr int64_t kMaxRetryAfterMs = 5 * 60 * 1000;

const rapidjson::Value* Member(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

absl::string_view StringOf(const rapidjson::Value* v) {
  if (v == nullptr || !v->IsString()) return {};
  return absl::string_view(v->GetString(), v->GetStringLength());
}

// "com.amazonaws.dynamodb.v20120810#ValidationException" -> "ValidationException";
// "ValidationException:http://..." (x-amzn-ErrorType style) -> "ValidationException".
std::string ShortErrorType(absl::string_view type) {
  const size_t hash = type.rfind('#');
  if (hash != absl::string_view::npos) type.remove_prefix(hash + 1);
  const size_t colon = type.find(':');
  if (colon != absl::string_view::npos) type = type.substr(0, colon);
  return std::string(absl::StripAsciiWhitespace(type));
}

std::optional<absl::Duration> RetryAfter(const HttpResponse& response) {
  const std::string* h = response.Header("x-amz-retry-after");
  if (h == nullptr) return std::nullopt;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*h), &ms) || ms < 0) return std::nullopt;
  return absl::Milliseconds(std::min(ms, kMaxRetryAfterMs));
}

// Appends the canonical form of key attribute `attr` of `item` ({"S":"..."}).
bool AppendKeyPart(const rapidjson::Value& item, const KeyAttribute& attr, std::string* key) {
  const rapidjson::Value* av = Member(item, attr.name.c_str());
  if (av == nullptr) return false;
  const rapidjson::Value* v = Member(*av, KeyTypeName(attr.type));
  if (v == nullptr || !v->IsString()) return false;
  const absl::string_view text = StringOf(v);
  if (attr.type == KeyType::kB) {
    absl::StatusOr<std::string> raw = Base64Decode(text);
    if (!raw.ok()) return false;
    return AppendCanonicalKeyPart(attr.type, *raw, key).ok();
  }
  return AppendCanonicalKeyPart(attr.type, text, key).ok();
}

// At most this many ThrottlingReasons are read from one answer.
constexpr size_t kMaxThrottleReasons = 8;

// The reason as one of ThrottleReasonLabels(): "Other" for anything else.
std::string ThrottleReasonLabel(absl::string_view reason) {
  for (const std::string& known : ThrottleReasonLabels()) {
    if (reason == known && known != "Other" && known != "Unspecified") return known;
  }
  return "Other";
}

BatchWriteResponse Malformed(BatchWriteResponse out, std::string why) {
  out.result = BatchResult{};
  out.result.kind = Kind::kRetryable;
  out.result.error_code = "MalformedResponse";
  out.result.message = std::move(why);
  return out;
}

BatchWriteResponse ParseSuccess(const HttpResponse& response, const TableSchema& schema,
                                BatchWriteResponse out) {
  // The document's values start in a buffer on this frame: the usual answer
  // ({"UnprocessedItems":{},"ConsumedCapacity":[...]}) fits, so the pool's
  // first chunk (64 KB by default) is not allocated for every call; a
  // bigger answer goes on in chunks from the heap.
  char first_chunk[4096];
  rapidjson::MemoryPoolAllocator<> pool(first_chunk, sizeof(first_chunk));
  rapidjson::Document doc(&pool);
  doc.Parse<kParseFlags>(response.body.data(), response.body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return Malformed(std::move(out),
                     "BatchWriteItem answered 200 with a body that is not a JSON object");
  }
  if (const rapidjson::Value* cc = Member(doc, "ConsumedCapacity")) {
    if (cc->IsArray()) {
      for (const auto& entry : cc->GetArray()) {
        const rapidjson::Value* table = Member(entry, "TableName");
        if (table != nullptr && StringOf(table) != schema.name) continue;
        const rapidjson::Value* units = Member(entry, "CapacityUnits");
        if (units != nullptr && units->IsNumber()) out.consumed_wcu += units->GetDouble();
      }
    }
  }
  const rapidjson::Value* unprocessed = Member(doc, "UnprocessedItems");
  if (unprocessed == nullptr || unprocessed->IsNull()) return out;
  if (!unprocessed->IsObject()) {
    return Malformed(std::move(out), "UnprocessedItems is not an object");
  }
  // Entries for other tables cannot come from a call we made for one table;
  // they are ignored.
  const rapidjson::Value* list = Member(*unprocessed, schema.name.c_str());
  if (list == nullptr) return out;
  if (!list->IsArray()) return Malformed(std::move(out), "UnprocessedItems entry is not a list");
  for (const auto& entry : list->GetArray()) {
    const rapidjson::Value* item = nullptr;
    if (const rapidjson::Value* put = Member(entry, "PutRequest")) {
      item = Member(*put, "Item");
    } else if (const rapidjson::Value* del = Member(entry, "DeleteRequest")) {
      item = Member(*del, "Key");
    }
    std::string key;
    if (item == nullptr || !AppendKeyPart(*item, schema.partition_key, &key) ||
        (schema.sort_key && !AppendKeyPart(*item, *schema.sort_key, &key))) {
      // We cannot tell which ops went unwritten; resending the whole batch is
      // safe because puts and deletes are idempotent.
      return Malformed(std::move(out),
                       "an UnprocessedItems entry has no readable key for table " + schema.name);
    }
    out.result.unprocessed_keys.push_back(std::move(key));
  }
  return out;
}

}  // namespace

ErrorClass ClassifyError(long http_status, absl::string_view error_type, bool transport_error) {
  static const auto* const kThrottling = new absl::flat_hash_set<absl::string_view>{
      "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
      "Throttling", "TooManyRequestsException"};
  // Retryable without being throttling. ExpiredTokenException: the next
  // attempt signs with refreshed credentials. RequestExpired: clock skew /
  // late send; the next attempt is signed anew.
  static const auto* const kTransient = new absl::flat_hash_set<absl::string_view>{
      "InternalServerError",   "InternalFailure",
      "ServiceUnavailable",    "ServiceUnavailableException",
      "ExpiredTokenException", "RequestExpired",
      "RequestTimeout",        "RequestTimeoutException"};
  constexpr ErrorClass kThrottled{Kind::kRetryable, /*throttled=*/true};
  if (transport_error) return {Kind::kRetryable};
  if (kThrottling->contains(error_type)) return kThrottled;
  if (kTransient->contains(error_type)) return {Kind::kRetryable};
  // SerializationException means we sent bad JSON: our bug, not the items'.
  if (error_type == "ValidationException") return {Kind::kValidation};
  if (http_status == 413) return {Kind::kValidation};  // request too large: bisect
  if (http_status == 429) return kThrottled;
  if (!error_type.empty() && http_status < 500) return {Kind::kFatal};
  if (http_status >= 500) return {Kind::kRetryable};
  return {Kind::kFatal};
}

BatchWriteResponse ParseBatchWriteResponse(const HttpResponse& response,
                                           const TableSchema& schema) {
  BatchWriteResponse out;
  out.http_status = response.status;
  out.elapsed = response.elapsed;
  BatchResult& r = out.result;

  if (!response.transport_error.empty() || response.status == 0) {
    const ErrorClass cls = ClassifyError(0, "", true);
    r.kind = cls.kind;
    r.throttled = cls.throttled;
    out.error_class = response.timed_out ? "timeout" : "connection";
    r.error_code = response.timed_out ? "Timeout" : "ConnectionError";
    r.message = response.transport_error.empty() ? "no HTTP response" : response.transport_error;
    // Only a request that never left has a known fate; after a timeout or
    // a lost connection DynamoDB may still apply the call.
    r.unknown_fate = !response.not_sent;
    return out;
  }
  if (response.status == 200) return ParseSuccess(response, schema, std::move(out));

  // Only four classes exist; a stray 1xx/3xx (we follow no redirects) counts as 4xx.
  out.error_class = response.status >= 500 ? "5xx" : "4xx";
  std::string type;
  std::string message;
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(response.body.data(), response.body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    type = ShortErrorType(StringOf(Member(doc, "__type")));
    message = std::string(StringOf(Member(doc, "message")));
    if (message.empty()) message = std::string(StringOf(Member(doc, "Message")));
    // ThrottlingReasons: [{"reason": "...", "resource": "arn:..."}]
    const rapidjson::Value* reasons = Member(doc, "ThrottlingReasons");
    if (reasons != nullptr && reasons->IsArray()) {
      for (const auto& entry : reasons->GetArray()) {
        if (r.throttle_reasons.size() >= kMaxThrottleReasons) break;
        const absl::string_view reason = StringOf(Member(entry, "reason"));
        if (!reason.empty()) r.throttle_reasons.push_back(ThrottleReasonLabel(reason));
      }
    }
  }
  if (type.empty()) {
    if (const std::string* h = response.Header("x-amzn-errortype")) type = ShortErrorType(*h);
  }
  const ErrorClass cls = ClassifyError(response.status, type, false);
  r.kind = cls.kind;
  r.throttled = cls.throttled;
  if (!r.throttled) r.throttle_reasons.clear();
  r.error_code = !type.empty()            ? type
                 : response.status == 413 ? "RequestEntityTooLarge"
                                          : absl::StrCat("Http", response.status);
  if (message.empty()) {
    message = absl::StrCat("HTTP ", response.status);
    if (!response.body.empty() && type.empty()) {
      // A short, printable excerpt helps diagnose proxies answering HTML.
      std::string excerpt = response.body.substr(0, 200);
      for (char& c : excerpt)
        if (!absl::ascii_isprint(static_cast<unsigned char>(c))) c = '?';
      absl::StrAppend(&message, ": ", excerpt);
    }
  }
  r.message = std::move(message);
  r.retry_after = RetryAfter(response);
  return out;
}

std::string ErrorTypeOf(const HttpResponse& response) {
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(response.body.data(), response.body.size());
  std::string type;
  if (!doc.HasParseError() && doc.IsObject())
    type = ShortErrorType(StringOf(Member(doc, "__type")));
  if (type.empty()) {
    if (const std::string* h = response.Header("x-amzn-errortype")) type = ShortErrorType(*h);
  }
  return type;
}

absl::Status StatusFromErrorResponse(absl::string_view operation, const HttpResponse& response) {
  if (!response.transport_error.empty() || response.status == 0) {
    return absl::UnavailableError(absl::StrCat(
        operation, ": ",
        response.transport_error.empty() ? "no HTTP response" : response.transport_error));
  }
  if (response.status == 200) return absl::OkStatus();
  std::string type;
  std::string message;
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(response.body.data(), response.body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    message = std::string(StringOf(Member(doc, "message")));
    if (message.empty()) message = std::string(StringOf(Member(doc, "Message")));
  }
  type = ErrorTypeOf(response);
  const std::string text =
      absl::StrCat(operation, ": HTTP ", response.status, type.empty() ? "" : " ", type,
                   message.empty() ? "" : ": ", message);
  const ErrorClass cls = ClassifyError(response.status, type, false);
  switch (cls.kind) {
    case Kind::kRetryable:
      return cls.throttled ? absl::ResourceExhaustedError(text) : absl::UnavailableError(text);
    case Kind::kValidation:
      return absl::InvalidArgumentError(text);
    default:
      break;
  }
  if (type == "ResourceNotFoundException") return absl::NotFoundError(text);
  if (type == "AccessDeniedException" || type == "UnrecognizedClientException" ||
      type == "InvalidSignatureException" || type == "MissingAuthenticationToken" ||
      type == "MissingAuthenticationTokenException" || type == "IncompleteSignature" ||
      type == "IncompleteSignatureException" || response.status == 401 || response.status == 403) {
    return absl::PermissionDeniedError(text);
  }
  return absl::FailedPreconditionError(text);
}

absl::StatusOr<std::string> ParseTableStatus(const HttpResponse& response) {
  if (!response.transport_error.empty() || response.status != 200) {
    return StatusFromErrorResponse("DescribeTable", response);
  }
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(response.body.data(), response.body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InternalError("DescribeTable: malformed answer: not a JSON object");
  }
  const rapidjson::Value* desc = Member(doc, "Table");
  const absl::string_view status = desc ? StringOf(Member(*desc, "TableStatus")) : "";
  if (status.empty())
    return absl::InternalError("DescribeTable: malformed answer: no Table.TableStatus");
  return std::string(status);
}

absl::StatusOr<TableSchema> ParseDescribeTableResponse(absl::string_view table,
                                                       const HttpResponse& response) {
  if (!response.transport_error.empty() || response.status != 200) {
    return StatusFromErrorResponse(absl::StrCat("DescribeTable ", table), response);
  }
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(response.body.data(), response.body.size());
  const bool json_ok = !doc.HasParseError() && doc.IsObject();
  auto malformed = [&](absl::string_view why) {
    return absl::InternalError(absl::StrCat("DescribeTable ", table, ": malformed answer: ", why));
  };
  if (!json_ok) return malformed("not a JSON object");
  const rapidjson::Value* desc = Member(doc, "Table");
  const rapidjson::Value* key_schema = desc ? Member(*desc, "KeySchema") : nullptr;
  const rapidjson::Value* defs = desc ? Member(*desc, "AttributeDefinitions") : nullptr;
  if (key_schema == nullptr || !key_schema->IsArray()) return malformed("no Table.KeySchema");
  if (defs == nullptr || !defs->IsArray()) return malformed("no Table.AttributeDefinitions");

  auto type_of = [&](absl::string_view name) -> std::optional<KeyType> {
    for (const auto& d : defs->GetArray()) {
      if (StringOf(Member(d, "AttributeName")) != name) continue;
      const absl::string_view t = StringOf(Member(d, "AttributeType"));
      if (t == "S") return KeyType::kS;
      if (t == "N") return KeyType::kN;
      if (t == "B") return KeyType::kB;
      return std::nullopt;
    }
    return std::nullopt;
  };

  TableSchema schema;
  schema.name = std::string(table);
  bool have_hash = false;
  for (const auto& k : key_schema->GetArray()) {
    const absl::string_view name = StringOf(Member(k, "AttributeName"));
    const absl::string_view role = StringOf(Member(k, "KeyType"));
    if (name.empty()) return malformed("KeySchema entry without AttributeName");
    std::optional<KeyType> type = type_of(name);
    if (!type) return malformed(absl::StrCat("no S/N/B AttributeDefinition for ", name));
    KeyAttribute attr{std::string(name), *type};
    if (role == "HASH" && !have_hash) {
      schema.partition_key = std::move(attr);
      have_hash = true;
    } else if (role == "RANGE" && !schema.sort_key) {
      schema.sort_key = std::move(attr);
    } else {
      return malformed(absl::StrCat("unexpected KeySchema entry ", name, " ", role));
    }
  }
  if (!have_hash) return malformed("no HASH key");
  return schema;
}

}  // namespace dynamo_batcher
