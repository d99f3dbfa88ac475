#include "dynamo_batcher/item.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace dynamo_batcher {

v1::AttributeValue Value::S(absl::string_view s) {
  v1::AttributeValue v;
  v.set_s(std::string(s));
  return v;
}

v1::AttributeValue Value::N(absl::string_view decimal) {
  v1::AttributeValue v;
  v.set_n(std::string(decimal));
  return v;
}

v1::AttributeValue Value::N(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  return N(absl::string_view(buf, r.ptr - buf));
}

v1::AttributeValue Value::B(absl::string_view bytes) {
  v1::AttributeValue v;
  v.set_b(std::string(bytes));
  return v;
}

v1::AttributeValue Value::Bool(bool b) {
  v1::AttributeValue v;
  v.set_bool_value(b);
  return v;
}

v1::AttributeValue Value::Null() {
  v1::AttributeValue v;
  v.set_null_value(true);
  return v;
}

v1::AttributeValue Value::SS(std::vector<std::string> values) {
  v1::AttributeValue v;
  auto* set = v.mutable_ss()->mutable_values();
  for (auto& s : values) set->Add(std::move(s));
  return v;
}

v1::AttributeValue Value::NS(std::vector<std::string> values) {
  v1::AttributeValue v;
  auto* set = v.mutable_ns()->mutable_values();
  for (auto& s : values) set->Add(std::move(s));
  return v;
}

v1::AttributeValue Value::BS(std::vector<std::string> values) {
  v1::AttributeValue v;
  auto* set = v.mutable_bs()->mutable_values();
  for (auto& s : values) set->Add(std::move(s));
  return v;
}

v1::AttributeValue Value::M(Item fields) {
  v1::AttributeValue v;
  v1::Item proto = std::move(fields).proto();
  v.mutable_m()->mutable_fields()->swap(*proto.mutable_attributes());
  return v;
}

v1::AttributeValue Value::L(std::vector<v1::AttributeValue> values) {
  v1::AttributeValue v;
  auto* list = v.mutable_l()->mutable_values();
  list->Reserve(static_cast<int>(values.size()));
  for (auto& e : values) *list->Add() = std::move(e);
  return v;
}

Item& Item::Set(absl::string_view name, v1::AttributeValue value) & {
  (*proto_.mutable_attributes())[std::string(name)] = std::move(value);
  return *this;
}

const v1::AttributeValue* Item::Find(absl::string_view name) const {
  auto it = proto_.attributes().find(std::string(name));
  return it == proto_.attributes().end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------
// DynamoDB JSON -> proto. RapidJSON asserts on wrong-type access, so every
// access is preceded by a type check; nothing here throws.

namespace {

using JsonValue = rapidjson::Value;

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("attribute \"", path, "\": ", what));
}

// DynamoDB allows 32 levels of nesting; deeper input is refused before it
// can exhaust the stack.
constexpr int kMaxDepth = 32;

absl::Status ParseValue(const JsonValue& json, const std::string& path, int depth,
                        v1::AttributeValue* out);

absl::Status ParseStringArray(const JsonValue& json, const std::string& path,
                              absl::string_view type, bool base64,
                              google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!json.IsArray()) {
    return Bad(path, absl::StrCat(type, " must be an array of strings"));
  }
  for (const auto& e : json.GetArray()) {
    if (!e.IsString()) {
      return Bad(path, absl::StrCat(type, " must be an array of strings"));
    }
    absl::string_view s(e.GetString(), e.GetStringLength());
    if (base64) {
      std::string bytes;
      if (!absl::Base64Unescape(s, &bytes)) {
        return Bad(path, absl::StrCat(type, " element is not valid base64"));
      }
      out->Add(std::move(bytes));
    } else {
      out->Add(std::string(s));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseFields(const JsonValue& json, const std::string& prefix, int depth,
                         google::protobuf::Map<std::string, v1::AttributeValue>* out) {
  for (auto it = json.MemberBegin(); it != json.MemberEnd(); ++it) {
    std::string name(it->name.GetString(), it->name.GetStringLength());
    std::string path = prefix.empty() ? name : absl::StrCat(prefix, ".", name);
    v1::AttributeValue value;
    if (absl::Status s = ParseValue(it->value, path, depth, &value); !s.ok()) {
      return s;
    }
    (*out)[name] = std::move(value);
  }
  return absl::OkStatus();
}

absl::Status ParseValue(const JsonValue& json, const std::string& path, int depth,
                        v1::AttributeValue* out) {
  if (depth > kMaxDepth) return Bad(path, "nested deeper than 32 levels");
  if (!json.IsObject() || json.MemberCount() != 1) {
    return Bad(path,
               "value must be an object with exactly one type key "
               "(S, N, B, SS, NS, BS, M, L, NULL, BOOL)");
  }
  const auto& member = *json.MemberBegin();
  absl::string_view type(member.name.GetString(), member.name.GetStringLength());
  const JsonValue& v = member.value;
  if (type == "S") {
    if (!v.IsString()) return Bad(path, "S must be a string");
    out->set_s(std::string(v.GetString(), v.GetStringLength()));
  } else if (type == "N") {
    if (!v.IsString()) return Bad(path, "N must be a string, e.g. {\"N\":\"42\"}");
    out->set_n(std::string(v.GetString(), v.GetStringLength()));
  } else if (type == "B") {
    if (!v.IsString()) return Bad(path, "B must be a base64 string");
    std::string bytes;
    if (!absl::Base64Unescape(absl::string_view(v.GetString(), v.GetStringLength()), &bytes)) {
      return Bad(path, "B is not valid base64");
    }
    out->set_b(std::move(bytes));
  } else if (type == "SS") {
    return ParseStringArray(v, path, type, false, out->mutable_ss()->mutable_values());
  } else if (type == "NS") {
    return ParseStringArray(v, path, type, false, out->mutable_ns()->mutable_values());
  } else if (type == "BS") {
    return ParseStringArray(v, path, type, true, out->mutable_bs()->mutable_values());
  } else if (type == "M") {
    if (!v.IsObject()) return Bad(path, "M must be an object");
    return ParseFields(v, path, depth + 1, out->mutable_m()->mutable_fields());
  } else if (type == "L") {
    if (!v.IsArray()) return Bad(path, "L must be an array");
    auto* list = out->mutable_l()->mutable_values();
    int index = 0;
    for (const auto& e : v.GetArray()) {
      if (absl::Status s =
              ParseValue(e, absl::StrCat(path, "[", index, "]"), depth + 1, list->Add());
          !s.ok()) {
        return s;
      }
      ++index;
    }
  } else if (type == "NULL") {
    if (!v.IsBool() || !v.GetBool()) return Bad(path, "NULL must be true");
    out->set_null_value(true);
  } else if (type == "BOOL") {
    if (!v.IsBool()) return Bad(path, "BOOL must be true or false");
    out->set_bool_value(v.GetBool());
  } else {
    return Bad(path, absl::StrCat("unknown type \"", type,
                                  "\" (want S, N, B, SS, NS, BS, M, L, NULL, BOOL)"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// proto -> DynamoDB JSON.

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteString(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void WriteValue(JsonWriter& w, const v1::AttributeValue& v);

void WriteFields(JsonWriter& w,
                 const google::protobuf::Map<std::string, v1::AttributeValue>& fields) {
  std::vector<const std::string*> names;
  names.reserve(fields.size());
  for (const auto& [name, unused] : fields) names.push_back(&name);
  std::sort(names.begin(), names.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  w.StartObject();
  for (const std::string* name : names) {
    WriteString(w, *name);
    WriteValue(w, fields.at(*name));
  }
  w.EndObject();
}

void WriteStrings(JsonWriter& w, const google::protobuf::RepeatedPtrField<std::string>& v,
                  bool base64) {
  w.StartArray();
  for (const auto& s : v) WriteString(w, base64 ? absl::Base64Escape(s) : s);
  w.EndArray();
}

void WriteValue(JsonWriter& w, const v1::AttributeValue& v) {
  w.StartObject();
  switch (v.value_case()) {
    case v1::AttributeValue::kS:
      w.Key("S");
      WriteString(w, v.s());
      break;
    case v1::AttributeValue::kN:
      w.Key("N");
      WriteString(w, v.n());
      break;
    case v1::AttributeValue::kB:
      w.Key("B");
      WriteString(w, absl::Base64Escape(v.b()));
      break;
    case v1::AttributeValue::kSs:
      w.Key("SS");
      WriteStrings(w, v.ss().values(), false);
      break;
    case v1::AttributeValue::kNs:
      w.Key("NS");
      WriteStrings(w, v.ns().values(), false);
      break;
    case v1::AttributeValue::kBs:
      w.Key("BS");
      WriteStrings(w, v.bs().values(), true);
      break;
    case v1::AttributeValue::kM:
      w.Key("M");
      WriteFields(w, v.m().fields());
      break;
    case v1::AttributeValue::kL:
      w.Key("L");
      w.StartArray();
      for (const auto& e : v.l().values()) WriteValue(w, e);
      w.EndArray();
      break;
    case v1::AttributeValue::kNullValue:
      w.Key("NULL");
      w.Bool(true);
      break;
    case v1::AttributeValue::kBoolValue:
      w.Key("BOOL");
      w.Bool(v.bool_value());
      break;
    case v1::AttributeValue::VALUE_NOT_SET:
      // Not representable in DynamoDB JSON; NULL is the closest honest value.
      w.Key("NULL");
      w.Bool(true);
      break;
  }
  w.EndObject();
}

}  // namespace

absl::StatusOr<Item> ItemFromDynamoJson(absl::string_view json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(json.data(),
                                                                                    json.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at offset ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        "an item must be a JSON object of attribute name to typed value, "
        "e.g. {\"pk\":{\"S\":\"a\"}}");
  }
  Item item;
  if (absl::Status s = ParseFields(doc, "", 0, item.mutable_proto()->mutable_attributes());
      !s.ok()) {
    return s;
  }
  return item;
}

std::string ItemToDynamoJson(const v1::Item& item) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  WriteFields(w, item.attributes());
  return std::string(buf.GetString(), buf.GetSize());
}

std::string AttributeValueToDynamoJson(const v1::AttributeValue& value) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  WriteValue(w, value);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace dynamo_batcher
