#include "service/codec/codec.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "service/codec/number.h"
#include "service/codec/text.h"

namespace dynamo_batcher {

using codec_internal::AppendQuotedForMessage;
using codec_internal::IsValidUtf8;
using codec_internal::NumberError;
using codec_internal::ParsedNumber;
using codec_internal::ParseNumber;
using dynamobatcher::v1::AttributeValue;
using dynamobatcher::v1::Item;
using dynamobatcher::v1::WriteOp;
namespace wire = dynamobatcher::internal;

namespace {

// DynamoDB's limits on key attribute values (bytes, after UTF-8 encoding).
constexpr size_t kMaxPartitionKeyBytes = 2048;
constexpr size_t kMaxSortKeyBytes = 1024;
// DynamoDB: attribute names are "at least one character long and less than
// 64 KB" (UTF-8 bytes).
constexpr size_t kMaxAttributeNameBytes = 65535;

// Sets up to this size are checked for duplicates pairwise (no allocation);
// larger ones are sorted.
constexpr int kPairwiseSetLimit = 16;

const char* TypeName(AttributeValue::ValueCase c) {
  switch (c) {
    case AttributeValue::kS:
      return "S";
    case AttributeValue::kN:
      return "N";
    case AttributeValue::kB:
      return "B";
    case AttributeValue::kSs:
      return "SS";
    case AttributeValue::kNs:
      return "NS";
    case AttributeValue::kBs:
      return "BS";
    case AttributeValue::kM:
      return "M";
    case AttributeValue::kL:
      return "L";
    case AttributeValue::kNullValue:
      return "NULL";
    case AttributeValue::kBoolValue:
      return "BOOL";
    case AttributeValue::VALUE_NOT_SET:
      return "no value";
  }
  return "?";
}

AttributeValue::ValueCase CaseFor(KeyType t) {
  switch (t) {
    case KeyType::kS:
      return AttributeValue::kS;
    case KeyType::kN:
      return AttributeValue::kN;
    case KeyType::kB:
      return AttributeValue::kB;
  }
  return AttributeValue::kS;
}

// One step of the path to a bad value: a map/attribute name or a list/set
// index.
struct PathStep {
  const std::string* name = nullptr;  // null: use index
  int index = 0;
};

// Filled on the way back up the recursion, so the success path pays nothing
// for error reporting.
struct EncodeError {
  const char* code = "";
  std::string detail;
  std::vector<PathStep> path;  // innermost first
};

// A DynamoDB number's JSON text: what the client sent, minus a leading '+'
// (DynamoDB's own parser accepts it, some emulators do not).
absl::string_view NumberText(absl::string_view text) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  return text;
}

// Validates one attribute value and appends its DynamoDB JSON, in one pass,
// straight into the output string (no DOM). Tracks the DynamoDB size of
// what it encoded. One instance per op; not thread-safe.
//
// Nesting: each M or L counts one level, so a top-level list holding a map
// is 2 levels deep; 32 levels are allowed (DynamoDB's documented limit),
// the 33rd is rejected. Scalars and sets add no level.
//
// UTF-8: protobuf already refuses to parse a proto3 `string` holding invalid
// UTF-8, so ops from the wire are clean; the checks here cover messages built
// in-process and keep the JSON we send valid whatever the caller did.
class ValueEncoder {
 public:
  explicit ValueEncoder(std::string* out) : out_(out) {}

  // `depth` is the number of M/L containers around `v`.
  bool Encode(const AttributeValue& v, int depth);

  size_t size() const { return size_; }
  void AddSize(size_t n) { size_ += n; }
  EncodeError& error() { return error_; }

 private:
  bool Fail(const char* code, std::string detail) {
    error_.code = code;
    error_.detail = std::move(detail);
    return false;
  }
  bool FailAt(int index, const char* code, std::string detail) {
    error_.path.push_back(PathStep{nullptr, index});
    return Fail(code, std::move(detail));
  }

  bool EncodeStringSet(const AttributeValue& v);
  bool EncodeNumberSet(const AttributeValue& v);
  bool EncodeBinarySet(const AttributeValue& v);
  bool EncodeMap(const AttributeValue& v, int depth);
  bool EncodeList(const AttributeValue& v, int depth);

  // Index of the first member equal to an earlier one, or -1. `get(i)`
  // returns the i-th member as a const T&.
  template <typename T, typename Get>
  static int FindDuplicate(int count, Get get);

  std::string* out_;
  size_t size_ = 0;
  EncodeError error_;
};

template <typename T, typename Get>
int ValueEncoder::FindDuplicate(int count, Get get) {
  if (count <= kPairwiseSetLimit) {
    for (int j = 1; j < count; ++j) {
      for (int i = 0; i < j; ++i) {
        if (get(i) == get(j)) return j;
      }
    }
    return -1;
  }
  std::vector<std::pair<const T*, int>> sorted;
  sorted.reserve(count);
  for (int i = 0; i < count; ++i) sorted.emplace_back(&get(i), i);
  std::sort(sorted.begin(), sorted.end(),
            [](const std::pair<const T*, int>& a, const std::pair<const T*, int>& b) {
              if (*a.first < *b.first) return true;
              if (*b.first < *a.first) return false;
              return a.second < b.second;
            });
  int found = -1;
  for (int k = 1; k < count; ++k) {
    if (*sorted[k].first == *sorted[k - 1].first) {
      // Report the later of two equal members; the earliest such in input
      // order, as the pairwise scan would.
      const int later = std::max(sorted[k].second, sorted[k - 1].second);
      if (found < 0 || later < found) found = later;
    }
  }
  return found;
}

bool ValueEncoder::Encode(const AttributeValue& v, int depth) {
  switch (v.value_case()) {
    case AttributeValue::kS: {
      const std::string& s = v.s();
      out_->append("{\"S\":");
      if (!codec_internal::AppendJsonStringIfValidUtf8(s, out_)) {
        return Fail("InvalidUtf8", "string is not valid UTF-8");
      }
      out_->push_back('}');
      size_ += s.size();
      return true;
    }
    case AttributeValue::kN: {
      ParsedNumber num;
      NumberError e = ParseNumber(v.n(), &num);
      if (e != NumberError::kOk) {
        std::string detail = "number ";
        AppendQuotedForMessage(v.n(), &detail);
        absl::StrAppend(&detail, " ", codec_internal::NumberErrorText(e));
        return Fail("InvalidNumber", std::move(detail));
      }
      out_->append("{\"N\":\"");
      // Only [0-9.eE+-] once validated: nothing to escape.
      const absl::string_view text = NumberText(v.n());
      out_->append(text.data(), text.size());
      out_->append("\"}");
      size_ += codec_internal::NumberSize(num);
      return true;
    }
    case AttributeValue::kB:
      out_->append("{\"B\":\"");
      AppendBase64(v.b(), out_);
      out_->append("\"}");
      size_ += v.b().size();
      return true;
    case AttributeValue::kSs:
      return EncodeStringSet(v);
    case AttributeValue::kNs:
      return EncodeNumberSet(v);
    case AttributeValue::kBs:
      return EncodeBinarySet(v);
    case AttributeValue::kM:
      return EncodeMap(v, depth);
    case AttributeValue::kL:
      return EncodeList(v, depth);
    case AttributeValue::kNullValue:
      if (!v.null_value()) {
        return Fail("InvalidNull", "null_value must be true (DynamoDB's NULL has no false)");
      }
      out_->append("{\"NULL\":true}");
      size_ += 1;
      return true;
    case AttributeValue::kBoolValue:
      out_->append(v.bool_value() ? "{\"BOOL\":true}" : "{\"BOOL\":false}");
      size_ += 1;
      return true;
    case AttributeValue::VALUE_NOT_SET:
      break;
  }
  return Fail("EmptyAttributeValue",
              "AttributeValue has no type set (exactly one of s, n, b, ss, ns, "
              "bs, m, l, null_value, bool_value is required)");
}

bool ValueEncoder::EncodeStringSet(const AttributeValue& v) {
  const auto& values = v.ss().values();
  if (values.empty()) return Fail("EmptySet", "string set (SS) is empty");
  out_->append("{\"SS\":[");
  for (int i = 0; i < values.size(); ++i) {
    const std::string& s = values[i];
    if (i > 0) out_->push_back(',');
    if (!codec_internal::AppendJsonStringIfValidUtf8(s, out_)) {
      return FailAt(i, "InvalidUtf8", "string is not valid UTF-8");
    }
    size_ += s.size();
  }
  out_->append("]}");
  int dup = FindDuplicate<std::string>(values.size(),
                                       [&](int i) -> const std::string& { return values[i]; });
  if (dup >= 0) {
    return FailAt(dup, "DuplicateSetMember", "string set (SS) member repeats an earlier member");
  }
  return true;
}

bool ValueEncoder::EncodeNumberSet(const AttributeValue& v) {
  const auto& values = v.ns().values();
  if (values.empty()) return Fail("EmptySet", "number set (NS) is empty");
  out_->append("{\"NS\":[");
  ParsedNumber small[kPairwiseSetLimit];
  std::vector<ParsedNumber> large;
  ParsedNumber* parsed = small;
  if (values.size() > kPairwiseSetLimit) {
    large.resize(values.size());
    parsed = large.data();
  }
  for (int i = 0; i < values.size(); ++i) {
    NumberError e = ParseNumber(values[i], &parsed[i]);
    if (e != NumberError::kOk) {
      std::string detail = "number ";
      AppendQuotedForMessage(values[i], &detail);
      absl::StrAppend(&detail, " ", codec_internal::NumberErrorText(e));
      return FailAt(i, "InvalidNumber", std::move(detail));
    }
    if (i > 0) out_->push_back(',');
    out_->push_back('"');
    const absl::string_view text = NumberText(values[i]);
    out_->append(text.data(), text.size());
    out_->push_back('"');
    size_ += codec_internal::NumberSize(parsed[i]);
  }
  out_->append("]}");
  int dup = FindDuplicate<ParsedNumber>(values.size(),
                                        [&](int i) -> const ParsedNumber& { return parsed[i]; });
  if (dup >= 0) {
    return FailAt(dup, "DuplicateSetMember",
                  "number set (NS) member equals an earlier member by value");
  }
  return true;
}

bool ValueEncoder::EncodeBinarySet(const AttributeValue& v) {
  const auto& values = v.bs().values();
  if (values.empty()) return Fail("EmptySet", "binary set (BS) is empty");
  out_->append("{\"BS\":[");
  for (int i = 0; i < values.size(); ++i) {
    if (i > 0) out_->push_back(',');
    out_->push_back('"');
    AppendBase64(values[i], out_);
    out_->push_back('"');
    size_ += values[i].size();
  }
  out_->append("]}");
  int dup = FindDuplicate<std::string>(values.size(),
                                       [&](int i) -> const std::string& { return values[i]; });
  if (dup >= 0) {
    return FailAt(dup, "DuplicateSetMember", "binary set (BS) member repeats an earlier member");
  }
  return true;
}

bool ValueEncoder::EncodeMap(const AttributeValue& v, int depth) {
  if (depth + 1 > kMaxNestingDepth) {
    return Fail("NestingTooDeep",
                absl::StrCat("documents nest deeper than ", kMaxNestingDepth, " levels"));
  }
  out_->append("{\"M\":{");
  size_ += 3;
  bool first = true;
  for (const auto& [name, child] : v.m().fields()) {
    if (!first) out_->push_back(',');
    first = false;
    if (!IsValidUtf8(name)) {
      error_.path.push_back(PathStep{&name, 0});
      return Fail("InvalidUtf8", "map key is not valid UTF-8");
    }
    AppendJsonString(name, out_);
    out_->push_back(':');
    size_ += name.size() + 1;
    if (!Encode(child, depth + 1)) {
      error_.path.push_back(PathStep{&name, 0});
      return false;
    }
  }
  out_->append("}}");
  return true;
}

bool ValueEncoder::EncodeList(const AttributeValue& v, int depth) {
  if (depth + 1 > kMaxNestingDepth) {
    return Fail("NestingTooDeep",
                absl::StrCat("documents nest deeper than ", kMaxNestingDepth, " levels"));
  }
  out_->append("{\"L\":[");
  size_ += 3;
  const auto& values = v.l().values();
  for (int i = 0; i < values.size(); ++i) {
    if (i > 0) out_->push_back(',');
    size_ += 1;
    if (!Encode(values[i], depth + 1)) {
      error_.path.push_back(PathStep{nullptr, i});
      return false;
    }
  }
  out_->append("]}");
  return true;
}

// An item's attributes, the same for the API's map and for the repeated
// entries of the Write stream's parse (internal/write_request.proto). Of
// entries with one name only the last counts, as a map parse keeps it.
template <typename F>
void ForEachAttribute(const Item& item, F f) {
  for (const auto& [name, value] : item.attributes()) {
    if (!f(name, value)) return;
  }
}

template <typename F>
void ForEachAttribute(const wire::Item& item, F f) {
  const auto& attrs = item.attributes();
  const int n = attrs.size();
  // Items are small: a later entry of the same name is looked for pairwise;
  // past this size a set of the names seen (walking back) does it.
  constexpr int kPairwiseNames = 16;
  if (n <= kPairwiseNames) {
    for (int i = 0; i < n; ++i) {
      bool later = false;
      for (int j = i + 1; j < n && !later; ++j) later = attrs[j].key() == attrs[i].key();
      if (later) continue;
      if (!f(attrs[i].key(), attrs[i].value())) return;
    }
    return;
  }
  absl::flat_hash_set<absl::string_view> seen;
  std::vector<int> last;  // indexes of each name's last entry, back to front
  for (int i = n - 1; i >= 0; --i) {
    if (seen.insert(attrs[i].key()).second) last.push_back(i);
  }
  for (auto it = last.rbegin(); it != last.rend(); ++it) {
    if (!f(attrs[*it].key(), attrs[*it].value())) return;
  }
}

// One raw entry of either form (EstimateJsonBytes, which may count a
// replaced entry too).
const std::string& AttributeName(const google::protobuf::MapPair<std::string, AttributeValue>& p) {
  return p.first;
}
const AttributeValue& AttributeValueOf(
    const google::protobuf::MapPair<std::string, AttributeValue>& p) {
  return p.second;
}
const std::string& AttributeName(const wire::Attribute& a) { return a.key(); }
const AttributeValue& AttributeValueOf(const wire::Attribute& a) { return a.value(); }

const AttributeValue* FindAttribute(const Item& item, const std::string& name) {
  auto it = item.attributes().find(name);
  return it == item.attributes().end() ? nullptr : &it->second;
}

const AttributeValue* FindAttribute(const wire::Item& item, const std::string& name) {
  const auto& attrs = item.attributes();
  for (int i = attrs.size() - 1; i >= 0; --i) {  // the last of a name wins
    if (attrs[i].key() == name) return &attrs[i].value();
  }
  return nullptr;
}

// "op 17: " — every message starts with the op id.
template <typename Op>
std::string OpPrefix(const Op& op) {
  return absl::StrCat("op ", op.id(), ": ");
}

template <typename Op>
bool Reject(const Op& op, const char* code, absl::string_view message, EncodedWrite* out,
            Rejection* rejection) {
  rejection->code = code;
  rejection->message = absl::StrCat(OpPrefix(op), message);
  out->key.clear();
  out->request_json.clear();
  out->item_size = 0;
  return false;
}

// `attribute "tags"[3]."x"`, from an innermost-first path.
std::string RenderPath(const std::vector<PathStep>& path) {
  std::string s = "attribute ";
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    if (it->name != nullptr) {
      if (it != path.rbegin()) s.push_back('.');
      AppendQuotedForMessage(*it->name, &s);
    } else {
      absl::StrAppend(&s, "[", it->index, "]");
    }
  }
  return s;
}

std::string KeyNames(const TableSchema& schema) {
  std::string s = schema.partition_key.name;
  if (schema.sort_key) absl::StrAppend(&s, ", ", schema.sort_key->name);
  return s;
}

std::string KeyLabel(const KeyAttribute& key) {
  std::string s = "key attribute ";
  AppendQuotedForMessage(key.name, &s);
  return s;
}

std::string TableLabel(const TableSchema& schema) {
  std::string s = "schema of table ";
  AppendQuotedForMessage(schema.name, &s);
  return s;
}

// Checks one key attribute of the op's item and appends its canonical part
// to out->key.
template <typename Op, typename ItemT>
bool CheckKeyAttribute(const Op& op, const ItemT& item, const TableSchema& schema,
                       const KeyAttribute& key, bool is_sort_key, EncodedWrite* out,
                       Rejection* rejection) {
  const AttributeValue* found = FindAttribute(item, key.name);
  if (found == nullptr) {
    return Reject(
        op, "KeyMissing",
        absl::StrCat(KeyLabel(key), " (type ", KeyTypeName(key.type), ", ", TableLabel(schema),
                     ") is missing from ", op.has_put() ? "the put item" : "delete_key"),
        out, rejection);
  }
  const AttributeValue& v = *found;
  if (v.value_case() != CaseFor(key.type)) {
    return Reject(op, "KeyTypeMismatch",
                  absl::StrCat(KeyLabel(key), " must be of type ", KeyTypeName(key.type), " (",
                               TableLabel(schema), "), got ", TypeName(v.value_case())),
                  out, rejection);
  }
  absl::string_view raw;
  switch (key.type) {
    case KeyType::kS:
      raw = v.s();
      break;
    case KeyType::kN:
      raw = v.n();
      break;
    case KeyType::kB:
      raw = v.b();
      break;
  }
  if (key.type != KeyType::kN && raw.empty()) {
    return Reject(op, "EmptyKeyValue",
                  absl::StrCat(KeyLabel(key), " is empty (key ",
                               key.type == KeyType::kS ? "strings" : "binaries",
                               " must be at least 1 byte long)"),
                  out, rejection);
  }
  const size_t limit = is_sort_key ? kMaxSortKeyBytes : kMaxPartitionKeyBytes;
  // A number key is sized by its value (at most 38 significant digits, 21
  // bytes), not by its text: "000...01" is the number 1 however long it is
  // written, and the number's own rules are checked below.
  if (key.type != KeyType::kN && raw.size() > limit) {
    return Reject(
        op, "KeyTooLarge",
        absl::StrCat(KeyLabel(key), " is ", raw.size(), " bytes; DynamoDB allows at most ", limit,
                     is_sort_key ? " for a sort key" : " for a partition key"),
        out, rejection);
  }
  if (!AppendCanonicalKeyPart(key.type, raw, &out->key).ok()) {
    ParsedNumber unused;
    std::string detail = absl::StrCat(KeyLabel(key), ": number ");
    AppendQuotedForMessage(raw, &detail);
    absl::StrAppend(&detail, " ", codec_internal::NumberErrorText(ParseNumber(raw, &unused)));
    return Reject(op, "InvalidNumber", detail, out, rejection);
  }
  return true;
}

bool IsKeyName(const TableSchema& schema, const std::string& name) {
  return name == schema.partition_key.name || (schema.sort_key && name == schema.sort_key->name);
}

// About how many bytes the item's DynamoDB JSON takes (exact for string
// attributes), so the request element is allocated once instead of growing
// through several reallocations and copies.
template <typename ItemT>
size_t EstimateJsonBytes(const ItemT& item) {
  size_t n = 26;  // {"PutRequest":{"Item":{ ... }}}
  // Entries a later one of the same name replaces are counted too: an
  // estimate, and such items are rare.
  for (const auto& attr : item.attributes()) {
    const std::string& name = AttributeName(attr);
    const AttributeValue& value = AttributeValueOf(attr);
    n += name.size() + 12;  // "name":{"S":"..."} and a comma
    switch (value.value_case()) {
      case AttributeValue::kS:
        n += value.s().size();
        break;
      case AttributeValue::kN:
        n += value.n().size();
        break;
      case AttributeValue::kB:
        n += (value.b().size() + 2) / 3 * 4;
        break;
      default:
        n += 32;  // containers and sets: grown as needed
        break;
    }
  }
  return n;
}

// EncodeWriteOp's work, filling the caller's result in place (the hot path
// builds the JSON once, straight into the EncodedWrite that is kept).
template <typename Op>
bool EncodeInto(const Op& op, const TableSchema& schema, EncodedWrite* out, Rejection* rejection) {
  out->key.clear();
  out->request_json.clear();
  out->item_size = 0;
  if (!op.has_put() && !op.has_delete_key()) {
    return Reject(op, "NoOperation", "neither put nor delete_key is set (exactly one is required)",
                  out, rejection);
  }
  out->is_delete = op.has_delete_key();
  const auto& item = out->is_delete ? op.delete_key() : op.put();

  if (!CheckKeyAttribute(op, item, schema, schema.partition_key, false, out, rejection)) {
    return false;
  }
  if (schema.sort_key &&
      !CheckKeyAttribute(op, item, schema, *schema.sort_key, true, out, rejection)) {
    return false;
  }
  bool ok = true;
  if (out->is_delete) {
    ForEachAttribute(item, [&](const std::string& name, const AttributeValue&) {
      if (IsKeyName(schema, name)) return true;
      std::string msg = "delete_key holds attribute ";
      AppendQuotedForMessage(name, &msg);
      absl::StrAppend(&msg, ", which is not part of the primary key (", KeyNames(schema),
                      ") of table ");
      AppendQuotedForMessage(schema.name, &msg);
      msg.append("; a delete takes only the key attributes");
      ok = Reject(op, "DeleteKeyNotKeyOnly", msg, out, rejection);
      return false;
    });
    if (!ok) return false;
  }

  std::string& json = out->request_json;
  json.reserve(EstimateJsonBytes(item));
  json.append(out->is_delete ? "{\"DeleteRequest\":{\"Key\":{" : "{\"PutRequest\":{\"Item\":{");
  ValueEncoder encoder(&json);
  bool first = true;
  ForEachAttribute(item, [&](const std::string& name, const AttributeValue& value) {
    if (name.empty()) {
      ok = Reject(op, "EmptyAttributeName",
                  "attribute name is empty (names must be at least 1 byte)", out, rejection);
      return false;
    }
    if (!IsValidUtf8(name)) {
      std::string msg = "attribute name ";
      AppendQuotedForMessage(name, &msg);
      msg.append(" is not valid UTF-8");
      ok = Reject(op, "InvalidUtf8", msg, out, rejection);
      return false;
    }
    if (name.size() > kMaxAttributeNameBytes) {
      std::string msg = "attribute name ";
      AppendQuotedForMessage(name.substr(0, 32), &msg);
      absl::StrAppend(&msg, "... is ", name.size(),
                      " bytes; DynamoDB requires attribute names to be less than 64 KB (at most ",
                      kMaxAttributeNameBytes, " bytes)");
      ok = Reject(op, "AttributeNameTooLong", msg, out, rejection);
      return false;
    }
    if (!first) json.push_back(',');
    first = false;
    AppendJsonString(name, &json);
    json.push_back(':');
    encoder.AddSize(name.size());
    if (!encoder.Encode(value, 0)) {
      EncodeError& e = encoder.error();
      e.path.push_back(PathStep{&name, 0});
      ok = Reject(op, e.code, absl::StrCat(RenderPath(e.path), ": ", e.detail), out, rejection);
      return false;
    }
    return true;
  });
  if (!ok) return false;
  json.append("}}}");
  out->item_size = encoder.size();
  if (out->item_size > kMaxItemBytes) {
    return Reject(
        op, "ItemTooLarge",
        absl::StrCat("item is ", out->item_size, " bytes by DynamoDB's size rules; the limit is ",
                     kMaxItemBytes, " bytes (400 KB)"),
        out, rejection);
  }
  return true;
}

template <typename Op>
EncodeResult Encode(const Op& op, const TableSchema& schema) {
  EncodeResult result;
  Rejection why;
  if (!EncodeInto(op, schema, &result.write, &why)) result.rejection = std::move(why);
  return result;
}

}  // namespace

EncodeResult EncodeWriteOp(const WriteOp& op, const TableSchema& schema) {
  return Encode(op, schema);
}

EncodeResult EncodeWriteOp(const wire::WriteOp& op, const TableSchema& schema) {
  return Encode(op, schema);
}

bool ViewNeedsApiParse(const wire::WriteRequest& request) {
  for (const wire::WriteOp& op : request.ops()) {
    if (op.has_put() && op.has_delete_key()) return true;
  }
  return false;
}

absl::StatusOr<std::string> CanonicalNumber(absl::string_view text) {
  ParsedNumber n;
  NumberError e = ParseNumber(text, &n);
  if (e != NumberError::kOk) {
    std::string msg = "number ";
    AppendQuotedForMessage(text, &msg);
    absl::StrAppend(&msg, " ", codec_internal::NumberErrorText(e));
    return absl::InvalidArgumentError(msg);
  }
  std::string out;
  codec_internal::AppendCanonicalNumber(n, &out);
  return out;
}

absl::Status AppendCanonicalKeyPart(KeyType type, absl::string_view value, std::string* key) {
  // Tag byte, 4-byte big-endian length, bytes: self-delimiting, so no choice
  // of values can make two different keys encode the same.
  auto append_header = [key](char tag, uint32_t len) {
    const char header[5] = {tag, static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                            static_cast<char>(len >> 8), static_cast<char>(len)};
    key->append(header, sizeof(header));
  };
  switch (type) {
    case KeyType::kS:
    case KeyType::kB:
      append_header(type == KeyType::kS ? 'S' : 'B', static_cast<uint32_t>(value.size()));
      key->append(value.data(), value.size());
      return absl::OkStatus();
    case KeyType::kN: {
      ParsedNumber n;
      NumberError e = ParseNumber(value, &n);
      if (e != NumberError::kOk) {
        std::string msg = "key number ";
        AppendQuotedForMessage(value, &msg);
        absl::StrAppend(&msg, " ", codec_internal::NumberErrorText(e));
        return absl::InvalidArgumentError(msg);
      }
      // Canonical text written in place, then its length patched in.
      const size_t header_at = key->size();
      append_header('N', 0);
      codec_internal::AppendCanonicalNumber(n, key);
      const uint32_t len = static_cast<uint32_t>(key->size() - header_at - 5);
      (*key)[header_at + 1] = static_cast<char>(len >> 24);
      (*key)[header_at + 2] = static_cast<char>(len >> 16);
      (*key)[header_at + 3] = static_cast<char>(len >> 8);
      (*key)[header_at + 4] = static_cast<char>(len);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("unknown key type");
}

void AppendAttributeValueJson(const AttributeValue& v, std::string* out) {
  // Callers that need validation use EncodeWriteOp. An invalid value (which
  // EncodeWriteOp would have rejected) becomes {"NULL":true}, so the output
  // is always well-formed JSON.
  const size_t start = out->size();
  ValueEncoder encoder(out);
  if (!encoder.Encode(v, 0)) {
    out->resize(start);
    out->append("{\"NULL\":true}");
  }
}

void BuildBatchWriteBody(absl::string_view table,
                         const std::vector<const std::string*>& request_jsons, std::string* out) {
  out->clear();
  size_t total = 64 + table.size() + request_jsons.size();
  for (const std::string* r : request_jsons) total += r->size();
  out->reserve(total);
  out->append("{\"RequestItems\":{");
  AppendJsonString(table, out);
  out->append(":[");
  for (size_t i = 0; i < request_jsons.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(*request_jsons[i]);
  }
  out->append("]},\"ReturnConsumedCapacity\":\"TOTAL\"}");
}

namespace {

size_t ValueSize(const AttributeValue& v) {
  switch (v.value_case()) {
    case AttributeValue::kS:
      return v.s().size();
    case AttributeValue::kB:
      return v.b().size();
    case AttributeValue::kN: {
      ParsedNumber n;
      if (ParseNumber(v.n(), &n) != NumberError::kOk) {
        return v.n().size() / 2 + 1;  // invalid anyway; a rough figure
      }
      return codec_internal::NumberSize(n);
    }
    case AttributeValue::kSs: {
      size_t s = 0;
      for (const auto& m : v.ss().values()) s += m.size();
      return s;
    }
    case AttributeValue::kBs: {
      size_t s = 0;
      for (const auto& m : v.bs().values()) s += m.size();
      return s;
    }
    case AttributeValue::kNs: {
      size_t s = 0;
      for (const auto& m : v.ns().values()) {
        ParsedNumber n;
        s += ParseNumber(m, &n) == NumberError::kOk ? codec_internal::NumberSize(n)
                                                    : m.size() / 2 + 1;
      }
      return s;
    }
    case AttributeValue::kM: {
      size_t s = 3;
      for (const auto& [name, child] : v.m().fields()) {
        s += name.size() + 1 + ValueSize(child);
      }
      return s;
    }
    case AttributeValue::kL: {
      size_t s = 3;
      for (const auto& child : v.l().values()) s += 1 + ValueSize(child);
      return s;
    }
    case AttributeValue::kNullValue:
    case AttributeValue::kBoolValue:
      return 1;
    case AttributeValue::VALUE_NOT_SET:
      return 0;
  }
  return 0;
}

}  // namespace

// DynamoDB's item size rules (developer guide, "Item sizes and formats"):
//   - every attribute: UTF-8 length of its name + the size of its value;
//   - S: UTF-8 bytes; B: raw bytes (not base64); BOOL, NULL: 1 byte;
//   - N: ceil(significant digits / 2) + 1 bytes, leading and trailing zeros
//     not counted (the documented approximation; the real encoding can be
//     one or two bytes larger for some digit alignments and negatives, so
//     items within a few bytes per number of the limit are left to DynamoDB
//     to judge);
//   - SS/NS/BS: sum of the members' sizes;
//   - M, L: 3 bytes + 1 byte per element + the elements' sizes (for M, the
//     keys' UTF-8 lengths count too).
size_t ItemSize(const Item& item) {
  size_t s = 0;
  for (const auto& [name, value] : item.attributes()) {
    s += name.size() + ValueSize(value);
  }
  return s;
}

}  // namespace dynamo_batcher
