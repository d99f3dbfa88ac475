#include "client/batchctl/op_lines.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace dynamo_batcher::batchctl {

namespace {

absl::StatusOr<rapidjson::Document> ParseObject(absl::string_view line) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(line.data(),
                                                                                    line.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at offset ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return absl::InvalidArgumentError("a line must be a JSON object");
  return doc;
}

absl::StatusOr<std::string> GetString(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) {
    return absl::InvalidArgumentError(absl::StrCat("missing \"", name, "\""));
  }
  if (!it->value.IsString()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" must be a string"));
  }
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

// The item parser works on text; re-serializing the sub-object keeps one
// DynamoDB JSON implementation (in the client library).
absl::StatusOr<Item> GetItem(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) {
    return absl::InvalidArgumentError(absl::StrCat("missing \"", name, "\""));
  }
  if (!it->value.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be a DynamoDB JSON object"));
  }
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
  it->value.Accept(writer);
  absl::StatusOr<Item> item = ItemFromDynamoJson(absl::string_view(buf.GetString(), buf.GetSize()));
  if (!item.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\": ", item.status().message()));
  }
  if (item->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is empty"));
  }
  return item;
}

}  // namespace

bool IsBlankLine(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  return line.empty() || line.front() == '#';
}

absl::StatusOr<FileOp> ParseLoadLine(absl::string_view line) {
  absl::StatusOr<rapidjson::Document> doc = ParseObject(line);
  if (!doc.ok()) return doc.status();
  FileOp op;
  absl::StatusOr<std::string> table = GetString(*doc, "table");
  if (!table.ok()) return table.status();
  op.table = *std::move(table);
  const bool has_put = doc->HasMember("put");
  const bool has_delete = doc->HasMember("delete");
  if (has_put == has_delete) {
    return absl::InvalidArgumentError("a line needs exactly one of \"put\" or \"delete\"");
  }
  op.is_delete = has_delete;
  absl::StatusOr<Item> item = GetItem(*doc, has_put ? "put" : "delete");
  if (!item.ok()) return item.status();
  op.item = *std::move(item);
  return op;
}

absl::StatusOr<FileOp> ParseDeadLetterLine(absl::string_view line) {
  absl::StatusOr<rapidjson::Document> doc = ParseObject(line);
  if (!doc.ok()) return doc.status();
  FileOp op;
  absl::StatusOr<std::string> table = GetString(*doc, "table");
  if (!table.ok()) return table.status();
  op.table = *std::move(table);
  absl::StatusOr<std::string> kind = GetString(*doc, "op");
  if (!kind.ok()) return kind.status();
  if (*kind == "put") {
    op.is_delete = false;
  } else if (*kind == "delete") {
    op.is_delete = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"op\" must be \"put\" or \"delete\", not \"", *kind, "\""));
  }
  absl::StatusOr<Item> item = GetItem(*doc, op.is_delete ? "key" : "item");
  if (!item.ok()) return item.status();
  op.item = *std::move(item);
  return op;
}

}  // namespace dynamo_batcher::batchctl
