// EncodeWriteOp: DynamoDB JSON for every type, every rejection rule, item
// size, nesting, canonical keys; BuildBatchWriteBody; ItemSize.

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "service/codec/codec.h"
#include "service/codec/text.h"
#include "tests/support/schemas.h"

namespace dynamo_batcher {
namespace {

using dynamobatcher::v1::AttributeValue;
using dynamobatcher::v1::Item;
using dynamobatcher::v1::WriteOp;
using ::testing::HasSubstr;

// ---- Builders -------------------------------------------------------------

AttributeValue S(const std::string& s) {
  AttributeValue v;
  v.set_s(s);
  return v;
}
AttributeValue N(const std::string& n) {
  AttributeValue v;
  v.set_n(n);
  return v;
}
AttributeValue B(const std::string& b) {
  AttributeValue v;
  v.set_b(b);
  return v;
}
AttributeValue SS(std::initializer_list<std::string> members) {
  AttributeValue v;
  for (const auto& m : members) v.mutable_ss()->add_values(m);
  return v;
}
AttributeValue NS(std::initializer_list<std::string> members) {
  AttributeValue v;
  for (const auto& m : members) v.mutable_ns()->add_values(m);
  return v;
}
AttributeValue BS(std::initializer_list<std::string> members) {
  AttributeValue v;
  for (const auto& m : members) v.mutable_bs()->add_values(m);
  return v;
}
AttributeValue M(std::initializer_list<std::pair<std::string, AttributeValue>> fields) {
  AttributeValue v;
  auto* m = v.mutable_m()->mutable_fields();
  for (const auto& [name, value] : fields) (*m)[name] = value;
  if (fields.size() == 0) v.mutable_m();
  return v;
}
AttributeValue L(std::initializer_list<AttributeValue> values) {
  AttributeValue v;
  v.mutable_l();
  for (const auto& value : values) *v.mutable_l()->add_values() = value;
  return v;
}
AttributeValue Null() {
  AttributeValue v;
  v.set_null_value(true);
  return v;
}
AttributeValue Bool(bool b) {
  AttributeValue v;
  v.set_bool_value(b);
  return v;
}

using Attrs = std::vector<std::pair<std::string, AttributeValue>>;

Item MakeItem(const Attrs& attrs) {
  Item item;
  for (const auto& [name, value] : attrs) {
    (*item.mutable_attributes())[name] = value;
  }
  return item;
}

WriteOp Put(uint64_t id, const Attrs& attrs) {
  WriteOp op;
  op.set_id(id);
  op.set_table("events");
  *op.mutable_put() = MakeItem(attrs);
  return op;
}

WriteOp Delete(uint64_t id, const Attrs& attrs) {
  WriteOp op;
  op.set_id(id);
  op.set_table("events");
  *op.mutable_delete_key() = MakeItem(attrs);
  return op;
}

using test_support::EventsSchema;  // events: pk S + sk N

// users: pk S only.
TableSchema UsersSchema() {
  TableSchema s;
  s.name = "users";
  s.partition_key = {"pk", KeyType::kS};
  return s;
}

TableSchema SchemaOf(KeyType pk, std::optional<KeyType> sk = std::nullopt) {
  TableSchema s;
  s.name = "t";
  s.partition_key = {"pk", pk};
  if (sk) s.sort_key = KeyAttribute{"sk", *sk};
  return s;
}

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  EXPECT_FALSE(d.HasParseError()) << "not JSON: " << text;
  return d;
}

// Structural comparison (object member order does not matter).
void ExpectSameJson(const std::string& actual, const std::string& expected) {
  rapidjson::Document a = ParseJson(actual);
  rapidjson::Document e = ParseJson(expected);
  EXPECT_TRUE(a == e) << "actual:   " << actual << "\nexpected: " << expected;
}

EncodedWrite MustEncode(const WriteOp& op, const TableSchema& schema) {
  EncodeResult r = EncodeWriteOp(op, schema);
  EXPECT_TRUE(r.ok()) << r.rejection->code << ": " << r.rejection->message;
  return std::move(r.write);
}

Rejection MustReject(const WriteOp& op, const TableSchema& schema) {
  EncodeResult r = EncodeWriteOp(op, schema);
  EXPECT_FALSE(r.ok()) << r.write.request_json;
  EXPECT_TRUE(r.write.request_json.empty());
  EXPECT_TRUE(r.write.key.empty());
  return r.ok() ? Rejection{} : *r.rejection;
}

// The usual checks on a rejection: the code, and a message naming the op id
// and the field.
void ExpectRejected(const WriteOp& op, const TableSchema& schema, const std::string& code,
                    const std::string& field) {
  Rejection r = MustReject(op, schema);
  EXPECT_EQ(r.code, code) << r.message;
  EXPECT_THAT(r.message, HasSubstr("op " + std::to_string(op.id()) + ": "));
  EXPECT_THAT(r.message, HasSubstr(field));
}

// ---- Encoding -------------------------------------------------------------

TEST(EncodeWriteOp, EncodesSimplePutExactly) {
  EncodedWrite w = MustEncode(Put(1, {{"pk", S("user#1")}}), UsersSchema());
  EXPECT_EQ(w.request_json, R"({"PutRequest":{"Item":{"pk":{"S":"user#1"}}}})");
  EXPECT_FALSE(w.is_delete);
  EXPECT_EQ(w.item_size, 2u + 6u);
}

TEST(EncodeWriteOp, EncodesSimpleDeleteExactly) {
  EncodedWrite w = MustEncode(Delete(2, {{"pk", S("user#1")}}), UsersSchema());
  EXPECT_EQ(w.request_json, R"({"DeleteRequest":{"Key":{"pk":{"S":"user#1"}}}})");
  EXPECT_TRUE(w.is_delete);
}

TEST(EncodeWriteOp, EncodesEveryAttributeValueType) {
  WriteOp op = Put(3, {{"pk", S("p")},
                       {"sk", N("42")},
                       {"s", S("hello")},
                       {"n", N("-1.5e3")},
                       {"b", B(std::string("\x00\x01\xff", 3))},
                       {"ss", SS({"a", "b"})},
                       {"ns", NS({"1", "2.5"})},
                       {"bs", BS({"x", "yz"})},
                       {"m", M({{"inner", S("v")}, {"flag", Bool(false)}})},
                       {"l", L({S("one"), N("2"), Null()})},
                       {"null", Null()},
                       {"yes", Bool(true)},
                       {"no", Bool(false)},
                       {"empty_m", M({})},
                       {"empty_l", L({})}});
  EncodedWrite w = MustEncode(op, EventsSchema());
  ExpectSameJson(w.request_json, R"({"PutRequest":{"Item":{
      "pk":{"S":"p"},
      "sk":{"N":"42"},
      "s":{"S":"hello"},
      "n":{"N":"-1.5e3"},
      "b":{"B":"AAH/"},
      "ss":{"SS":["a","b"]},
      "ns":{"NS":["1","2.5"]},
      "bs":{"BS":["eA==","eXo="]},
      "m":{"M":{"inner":{"S":"v"},"flag":{"BOOL":false}}},
      "l":{"L":[{"S":"one"},{"N":"2"},{"NULL":true}]},
      "null":{"NULL":true},
      "yes":{"BOOL":true},
      "no":{"BOOL":false},
      "empty_m":{"M":{}},
      "empty_l":{"L":[]}}}})");
}

TEST(EncodeWriteOp, EscapesStringsAndNamesInJson) {
  const std::string tricky = std::string("q\"b\\n\nt\t\x01z\0", 12) + "\xC3\xA9\xE2\x82\xAC";
  WriteOp op = Put(4, {{"pk", S("p")}, {"na\"me\n", S(tricky)}});
  EncodedWrite w = MustEncode(op, UsersSchema());
  rapidjson::Document d = ParseJson(w.request_json);
  ASSERT_TRUE(d.IsObject());
  const rapidjson::Value& item = d["PutRequest"]["Item"];
  ASSERT_TRUE(item.HasMember("na\"me\n"));
  const rapidjson::Value& s = item["na\"me\n"]["S"];
  EXPECT_EQ(std::string(s.GetString(), s.GetStringLength()), tricky);
  EXPECT_THAT(w.request_json, HasSubstr(R"(\u0001)"));
  EXPECT_THAT(w.request_json, HasSubstr(R"(\u0000)"));
  EXPECT_THAT(w.request_json, HasSubstr("\xC3\xA9\xE2\x82\xAC"));
}

TEST(EncodeWriteOp, DropsLeadingPlusFromNumbers) {
  EncodedWrite w = MustEncode(Put(5, {{"pk", S("p")}, {"n", N("+7")}}), UsersSchema());
  ExpectSameJson(w.request_json, R"({"PutRequest":{"Item":{"pk":{"S":"p"},"n":{"N":"7"}}}})");
}

TEST(EncodeWriteOp, AllowsEmptyNonKeyStringsAndBinaries) {
  EncodedWrite w = MustEncode(Put(6, {{"pk", S("p")}, {"s", S("")}, {"b", B("")}}), UsersSchema());
  ExpectSameJson(w.request_json,
                 R"({"PutRequest":{"Item":{"pk":{"S":"p"},"s":{"S":""},"b":{"B":""}}}})");
}

TEST(EncodeWriteOp, RejectionCarriesNoPartialOutput) {
  // The item is encoded attribute by attribute; a bad value found late must
  // not leave the attributes before it behind.
  EncodeResult r =
      EncodeWriteOp(Put(7, {{"pk", S("p")}, {"a", S("x")}, {"z", N("1e999")}}), UsersSchema());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection->code, "InvalidNumber");
  EXPECT_TRUE(r.write.request_json.empty());
  EXPECT_TRUE(r.write.key.empty());
  EXPECT_EQ(r.write.item_size, 0u);
}
// ---- Canonical keys -------------------------------------------------------

TEST(EncodeWriteOp, KeyIsPartitionThenSortKeyCanonically) {
  EncodedWrite w = MustEncode(Put(8, {{"pk", S("a")}, {"sk", N("1.0")}}), EventsSchema());
  std::string expected;
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kS, "a", &expected).ok());
  ASSERT_TRUE(AppendCanonicalKeyPart(KeyType::kN, "1", &expected).ok());
  EXPECT_EQ(w.key, expected);
}

TEST(EncodeWriteOp, NumericallyEqualKeysAreTheSameKey) {
  const std::string base = MustEncode(Put(9, {{"pk", S("a")}, {"sk", N("1")}}), EventsSchema()).key;
  for (const char* n : {"1.0", "1e0", "10E-1", "0.1e1", "001"}) {
    EXPECT_EQ(MustEncode(Put(9, {{"pk", S("a")}, {"sk", N(n)}}), EventsSchema()).key, base) << n;
  }
  EXPECT_NE(MustEncode(Put(9, {{"pk", S("a")}, {"sk", N("2")}}), EventsSchema()).key, base);
}

TEST(EncodeWriteOp, PutAndDeleteOfOneKeyShareTheKey) {
  const std::string put_key =
      MustEncode(Put(10, {{"pk", S("a")}, {"sk", N("5")}, {"x", S("y")}}), EventsSchema()).key;
  const std::string delete_key =
      MustEncode(Delete(11, {{"pk", S("a")}, {"sk", N("5.0")}}), EventsSchema()).key;
  EXPECT_EQ(put_key, delete_key);
}

TEST(EncodeWriteOp, CompositeKeysDoNotCollide) {
  TableSchema schema = SchemaOf(KeyType::kS, KeyType::kS);
  const std::string k1 = MustEncode(Put(12, {{"pk", S("a|b")}, {"sk", S("c")}}), schema).key;
  const std::string k2 = MustEncode(Put(12, {{"pk", S("a")}, {"sk", S("|b|c")}}), schema).key;
  const std::string k3 = MustEncode(Put(12, {{"pk", S("a")}, {"sk", S("b|c")}}), schema).key;
  EXPECT_NE(k1, k2);
  EXPECT_NE(k1, k3);
  EXPECT_NE(k2, k3);
}

TEST(EncodeWriteOp, BinaryKeysCompareByBytes) {
  TableSchema schema = SchemaOf(KeyType::kB);
  const std::string k1 = MustEncode(Put(13, {{"pk", B(std::string("\x00\x01", 2))}}), schema).key;
  const std::string k2 = MustEncode(Put(13, {{"pk", B(std::string("\x00\x02", 2))}}), schema).key;
  EXPECT_NE(k1, k2);
  EXPECT_EQ(MustEncode(Put(13, {{"pk", B(std::string("\x00\x01", 2))}}), schema).key, k1);
}

// ---- Rejections -----------------------------------------------------------

TEST(EncodeWriteOp, RejectsOpWithNeitherPutNorDelete) {
  WriteOp op;
  op.set_id(17);
  op.set_table("events");
  ExpectRejected(op, EventsSchema(), "NoOperation", "delete_key");
}

TEST(EncodeWriteOp, RejectsMissingPartitionKey) {
  ExpectRejected(Put(17, {{"sk", N("1")}}), EventsSchema(), "KeyMissing", "\"pk\"");
}

TEST(EncodeWriteOp, RejectsMissingSortKey) {
  Rejection r = MustReject(Put(17, {{"pk", S("a")}}), EventsSchema());
  EXPECT_EQ(r.code, "KeyMissing");
  EXPECT_THAT(r.message, HasSubstr("op 17: key attribute \"sk\""));
  EXPECT_THAT(r.message, HasSubstr("\"events\""));
}

TEST(EncodeWriteOp, RejectsKeyOfWrongTypeWithExactMessage) {
  Rejection r = MustReject(Put(17, {{"pk", N("1")}, {"sk", N("1")}}), EventsSchema());
  EXPECT_EQ(r.code, "KeyTypeMismatch");
  EXPECT_EQ(r.message,
            "op 17: key attribute \"pk\" must be of type S (schema of table "
            "\"events\"), got N");
}

TEST(EncodeWriteOp, RejectsNonScalarKeyInPut) {
  Rejection r = MustReject(Put(17, {{"pk", SS({"a"})}, {"sk", N("1")}}), EventsSchema());
  EXPECT_EQ(r.code, "KeyTypeMismatch");
  EXPECT_THAT(r.message, HasSubstr("got SS"));
  r = MustReject(Put(17, {{"pk", S("a")}, {"sk", M({{"x", N("1")}})}}), EventsSchema());
  EXPECT_EQ(r.code, "KeyTypeMismatch");
  EXPECT_THAT(r.message, HasSubstr("\"sk\" must be of type N"));
  EXPECT_THAT(r.message, HasSubstr("got M"));
}

TEST(EncodeWriteOp, RejectsKeyWithNoValueAsTypeMismatch) {
  Rejection r = MustReject(Put(17, {{"pk", AttributeValue()}, {"sk", N("1")}}), EventsSchema());
  EXPECT_EQ(r.code, "KeyTypeMismatch");
  EXPECT_THAT(r.message, HasSubstr("got no value"));
}

TEST(EncodeWriteOp, RejectsEmptyStringKey) {
  ExpectRejected(Put(17, {{"pk", S("")}, {"sk", N("1")}}), EventsSchema(), "EmptyKeyValue",
                 "\"pk\"");
}

TEST(EncodeWriteOp, RejectsEmptyBinaryKey) {
  ExpectRejected(Put(17, {{"pk", B("")}}), SchemaOf(KeyType::kB), "EmptyKeyValue", "\"pk\"");
}

TEST(EncodeWriteOp, RejectsInvalidNumberKey) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"sk", N("1e")}}), EventsSchema(), "InvalidNumber",
                 "\"sk\"");
}

TEST(EncodeWriteOp, RejectsOversizedKeys) {
  ExpectRejected(Put(17, {{"pk", S(std::string(2049, 'k'))}, {"sk", N("1")}}), EventsSchema(),
                 "KeyTooLarge", "\"pk\"");
  MustEncode(Put(17, {{"pk", S(std::string(2048, 'k'))}, {"sk", N("1")}}), EventsSchema());
  TableSchema ss = SchemaOf(KeyType::kS, KeyType::kS);
  ExpectRejected(Put(17, {{"pk", S("a")}, {"sk", S(std::string(1025, 'k'))}}), ss, "KeyTooLarge",
                 "\"sk\"");
  MustEncode(Put(17, {{"pk", S("a")}, {"sk", S(std::string(1024, 'k'))}}), ss);
}

TEST(EncodeWriteOp, NumberKeysAreSizedByValueNotText) {
  // 3,001 characters, value 1: DynamoDB stores (and sizes) the number, so
  // this key is accepted as a sort key and as a partition key.
  const std::string long_one = std::string(3000, '0') + "1";
  EncodedWrite sort_key =
      MustEncode(Put(17, {{"pk", S("a")}, {"sk", N(long_one)}}), EventsSchema());
  EncodedWrite plain = MustEncode(Put(18, {{"pk", S("a")}, {"sk", N("1")}}), EventsSchema());
  EXPECT_EQ(sort_key.key, plain.key);  // the same key as "1"
  TableSchema numeric = SchemaOf(KeyType::kN);
  MustEncode(Put(19, {{"pk", N(long_one)}}), numeric);
  MustEncode(Put(20, {{"pk", N("0." + std::string(2000, '0') + "5E+2001")}}), numeric);
  // The number's own rules still hold however the key is written.
  ExpectRejected(Put(21, {{"pk", S("a")}, {"sk", N(std::string(39, '7'))}}), EventsSchema(),
                 "InvalidNumber", "\"sk\"");
  ExpectRejected(Put(22, {{"pk", N(std::string(1500, '1'))}}), numeric, "InvalidNumber", "\"pk\"");
}

TEST(EncodeWriteOp, RejectsAttributeNamesOf64KBOrMore) {
  const std::string at_limit(65535, 'a');
  const std::string over(65536, 'a');
  MustEncode(Put(17, {{"pk", S("a")}, {"sk", N("1")}, {at_limit, S("x")}}), EventsSchema());
  Rejection r =
      MustReject(Put(17, {{"pk", S("a")}, {"sk", N("1")}, {over, S("x")}}), EventsSchema());
  EXPECT_EQ(r.code, "AttributeNameTooLong");
  EXPECT_THAT(r.message, HasSubstr("op 17: attribute name"));
  EXPECT_THAT(r.message, HasSubstr("65536 bytes"));
  EXPECT_THAT(r.message, HasSubstr("less than 64 KB"));
  EXPECT_LT(r.message.size(), 400u);  // the name is not echoed whole
}

TEST(EncodeWriteOp, RejectsDeleteWithNonKeyAttributes) {
  ExpectRejected(Delete(17, {{"pk", S("a")}, {"sk", N("1")}, {"payload", S("x")}}), EventsSchema(),
                 "DeleteKeyNotKeyOnly", "\"payload\"");
}

TEST(EncodeWriteOp, RejectsDeleteMissingAKeyAttribute) {
  ExpectRejected(Delete(17, {{"pk", S("a")}}), EventsSchema(), "KeyMissing", "\"sk\"");
}

TEST(EncodeWriteOp, RejectsAttributeValueWithNoType) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"ghost", AttributeValue()}}), UsersSchema(),
                 "EmptyAttributeValue", "\"ghost\"");
}

TEST(EncodeWriteOp, RejectsNullValueFalse) {
  AttributeValue v;
  v.set_null_value(false);
  ExpectRejected(Put(17, {{"pk", S("a")}, {"nothing", v}}), UsersSchema(), "InvalidNull",
                 "\"nothing\"");
}

TEST(EncodeWriteOp, RejectsEmptySets) {
  AttributeValue empty_ss, empty_ns, empty_bs;
  empty_ss.mutable_ss();
  empty_ns.mutable_ns();
  empty_bs.mutable_bs();
  ExpectRejected(Put(17, {{"pk", S("a")}, {"tags", empty_ss}}), UsersSchema(), "EmptySet",
                 "\"tags\"");
  ExpectRejected(Put(17, {{"pk", S("a")}, {"scores", empty_ns}}), UsersSchema(), "EmptySet",
                 "\"scores\"");
  ExpectRejected(Put(17, {{"pk", S("a")}, {"blobs", empty_bs}}), UsersSchema(), "EmptySet",
                 "\"blobs\"");
}

TEST(EncodeWriteOp, RejectsDuplicateStringSetMember) {
  Rejection r = MustReject(Put(17, {{"pk", S("a")}, {"tags", SS({"x", "y", "x"})}}), UsersSchema());
  EXPECT_EQ(r.code, "DuplicateSetMember");
  EXPECT_THAT(r.message, HasSubstr("op 17: attribute \"tags\"[2]"));
}

TEST(EncodeWriteOp, RejectsNumberSetMembersEqualByValue) {
  Rejection r =
      MustReject(Put(17, {{"pk", S("a")}, {"scores", NS({"1", "2", "1.0"})}}), UsersSchema());
  EXPECT_EQ(r.code, "DuplicateSetMember");
  EXPECT_THAT(r.message, HasSubstr("op 17: attribute \"scores\"[2]"));
  ExpectRejected(Put(17, {{"pk", S("a")}, {"scores", NS({"10E-1", "0.1e1"})}}), UsersSchema(),
                 "DuplicateSetMember", "\"scores\"[1]");
}

TEST(EncodeWriteOp, RejectsDuplicateBinarySetMember) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"blobs", BS({"x", "y", "y"})}}), UsersSchema(),
                 "DuplicateSetMember", "\"blobs\"[2]");
}

TEST(EncodeWriteOp, FindsDuplicatesInLargeSets) {
  AttributeValue ss, ns;
  for (int i = 0; i < 100; ++i) {
    ss.mutable_ss()->add_values("member" + std::to_string(i));
    ns.mutable_ns()->add_values(std::to_string(i));
  }
  MustEncode(Put(17, {{"pk", S("a")}, {"ss", ss}, {"ns", ns}}), UsersSchema());
  ss.mutable_ss()->add_values("member42");
  ns.mutable_ns()->add_values("4.2e1");
  ExpectRejected(Put(17, {{"pk", S("a")}, {"ss", ss}}), UsersSchema(), "DuplicateSetMember",
                 "\"ss\"[100]");
  ExpectRejected(Put(17, {{"pk", S("a")}, {"ns", ns}}), UsersSchema(), "DuplicateSetMember",
                 "\"ns\"[100]");
}

TEST(EncodeWriteOp, RejectsInvalidNumberAttribute) {
  for (const char* bad : {"", "+", ".", "1e", "NaN", "Infinity", " 1", "1 ", "0x1F", "1E+126",
                          "1E-131", "123456789012345678901234567890123456789"}) {
    ExpectRejected(Put(17, {{"pk", S("a")}, {"price", N(bad)}}), UsersSchema(), "InvalidNumber",
                   "\"price\"");
  }
}

TEST(EncodeWriteOp, RejectsInvalidNumberSetMember) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"scores", NS({"1", "two"})}}), UsersSchema(),
                 "InvalidNumber", "\"scores\"[1]");
}

TEST(EncodeWriteOp, NamesTheNestedPathOfABadValue) {
  WriteOp op = Put(17, {{"pk", S("a")}, {"doc", M({{"inner", L({N("1"), N("2"), N("x")})}})}});
  Rejection r = MustReject(op, UsersSchema());
  EXPECT_EQ(r.code, "InvalidNumber");
  EXPECT_THAT(r.message, HasSubstr("op 17: attribute \"doc\".\"inner\"[2]: "));
  EXPECT_THAT(r.message, HasSubstr("\"x\""));
}

TEST(EncodeWriteOp, RejectsEmptyAttributeName) {
  Rejection r = MustReject(Put(17, {{"pk", S("a")}, {"", S("x")}}), UsersSchema());
  EXPECT_EQ(r.code, "EmptyAttributeName");
  EXPECT_THAT(r.message, HasSubstr("op 17: "));
  EXPECT_THAT(r.message, HasSubstr("attribute name"));
}

TEST(EncodeWriteOp, RejectsInvalidUtf8InStringValue) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"bio", S("ok\xFF")}}), UsersSchema(), "InvalidUtf8",
                 "\"bio\"");
}

TEST(EncodeWriteOp, RejectsInvalidUtf8InKeyString) {
  ExpectRejected(Put(17, {{"pk", S("\xC3")}}), UsersSchema(), "InvalidUtf8", "\"pk\"");
}

TEST(EncodeWriteOp, RejectsInvalidUtf8InAttributeName) {
  Rejection r = MustReject(Put(17, {{"pk", S("a")}, {"na\xFFme", S("x")}}), UsersSchema());
  EXPECT_EQ(r.code, "InvalidUtf8");
  EXPECT_THAT(r.message, HasSubstr("op 17: attribute name \"na\\xffme\""));
}

TEST(EncodeWriteOp, RejectsInvalidUtf8InMapKeyAndSetMember) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"doc", M({{"k\xE2\x82", S("v")}})}}), UsersSchema(),
                 "InvalidUtf8", "\"doc\"");
  ExpectRejected(Put(17, {{"pk", S("a")}, {"tags", SS({"ok", "\xC0\xAF"})}}), UsersSchema(),
                 "InvalidUtf8", "\"tags\"[1]");
}

TEST(EncodeWriteOp, RejectionMessagesAreValidUtf8) {
  Rejection r =
      MustReject(Put(17, {{"pk", S("a")}, {"doc", M({{"bad\xFF", N("x")}})}}), UsersSchema());
  EXPECT_EQ(r.code, "InvalidUtf8");
  EXPECT_THAT(r.message, HasSubstr("\\xff"));
  EXPECT_TRUE(codec_internal::IsValidUtf8(r.message));
  // The message travels in a proto3 string, which protobuf refuses to parse
  // when it is not UTF-8.
  dynamobatcher::v1::WriteResult result;
  result.set_message(r.message);
  std::string wire;
  ASSERT_TRUE(result.SerializeToString(&wire));
  dynamobatcher::v1::WriteResult parsed;
  EXPECT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.message(), r.message);
}

// ---- Size and nesting -----------------------------------------------------

// A put of {pk: "a", data: <filler>} whose DynamoDB size is exactly `size`.
WriteOp PutOfSize(size_t size) {
  const size_t fixed = 2 + 1 + 4;  // "pk" + "a" + "data"
  return Put(17, {{"pk", S("a")}, {"data", S(std::string(size - fixed, 'x'))}});
}

TEST(EncodeWriteOp, AcceptsItemOfExactly400KB) {
  EncodedWrite w = MustEncode(PutOfSize(kMaxItemBytes), UsersSchema());
  EXPECT_EQ(w.item_size, kMaxItemBytes);
  MustEncode(PutOfSize(kMaxItemBytes - 1), UsersSchema());
}

TEST(EncodeWriteOp, RejectsItemOneByteOver400KB) {
  Rejection r = MustReject(PutOfSize(kMaxItemBytes + 1), UsersSchema());
  EXPECT_EQ(r.code, "ItemTooLarge");
  EXPECT_THAT(r.message, HasSubstr("op 17: "));
  EXPECT_THAT(r.message, HasSubstr("409601 bytes"));
}

TEST(EncodeWriteOp, CountsBinaryByRawBytesNotBase64) {
  WriteOp op = Put(17, {{"pk", S("a")}, {"b", B(std::string(300000, '\1'))}});
  EncodedWrite w = MustEncode(op, UsersSchema());
  EXPECT_EQ(w.item_size, 2u + 1u + 1u + 300000u);
  EXPECT_GT(w.request_json.size(), 400000u);
}

AttributeValue NestedLists(int depth) {
  AttributeValue v = S("leaf");
  for (int i = 0; i < depth; ++i) v = L({v});
  return v;
}

AttributeValue NestedMaps(int depth) {
  AttributeValue v = N("1");
  for (int i = 0; i < depth; ++i) v = M({{"m", v}});
  return v;
}

TEST(EncodeWriteOp, AcceptsThirtyTwoLevelsOfNesting) {
  MustEncode(Put(17, {{"pk", S("a")}, {"deep", NestedLists(32)}}), UsersSchema());
  MustEncode(Put(17, {{"pk", S("a")}, {"deep", NestedMaps(32)}}), UsersSchema());
}

TEST(EncodeWriteOp, RejectsThirtyThreeLevelsOfNesting) {
  ExpectRejected(Put(17, {{"pk", S("a")}, {"deep", NestedLists(33)}}), UsersSchema(),
                 "NestingTooDeep", "\"deep\"");
  ExpectRejected(Put(17, {{"pk", S("a")}, {"deep", NestedMaps(33)}}), UsersSchema(),
                 "NestingTooDeep", "\"deep\"");
}

TEST(ItemSize, FollowsDynamoDbRulesPerType) {
  EXPECT_EQ(ItemSize(MakeItem({{"name", S("h\xC3\xA9")}})), 4u + 3u);
  EXPECT_EQ(ItemSize(MakeItem({{"b", B("abcd")}})), 1u + 4u);
  // Numbers: ceil(significant digits / 2) + 1.
  EXPECT_EQ(ItemSize(MakeItem({{"n", N("12345")}})), 1u + 4u);
  EXPECT_EQ(ItemSize(MakeItem({{"n", N("1234")}})), 1u + 3u);
  EXPECT_EQ(ItemSize(MakeItem({{"n", N("0.00100")}})), 1u + 2u);
  EXPECT_EQ(ItemSize(MakeItem({{"n", N("0")}})), 1u + 2u);
  EXPECT_EQ(ItemSize(MakeItem({{"t", Bool(true)}})), 1u + 1u);
  EXPECT_EQ(ItemSize(MakeItem({{"z", Null()}})), 1u + 1u);
  EXPECT_EQ(ItemSize(MakeItem({{"ss", SS({"ab", "cde"})}})), 2u + 5u);
  EXPECT_EQ(ItemSize(MakeItem({{"ns", NS({"1", "123"})}})), 2u + 2u + 3u);
  EXPECT_EQ(ItemSize(MakeItem({{"bs", BS({"x", "yz"})}})), 2u + 3u);
  // L: 3 + per element (1 + size).
  EXPECT_EQ(ItemSize(MakeItem({{"l", L({S("ab"), Bool(true)})}})), 1u + 3u + (1u + 2u) + (1u + 1u));
  // M: 3 + per field (1 + key + size).
  EXPECT_EQ(ItemSize(MakeItem({{"m", M({{"key", S("abc")}})}})), 1u + 3u + (1u + 3u + 3u));
  EXPECT_EQ(ItemSize(MakeItem({{"m", M({})}, {"l", L({})}})), 1u + 3u + 1u + 3u);
}

TEST(ItemSize, AgreesWithEncodeWriteOp) {
  WriteOp op = Put(3, {{"pk", S("p")},
                       {"sk", N("42")},
                       {"ns", NS({"1", "2.5"})},
                       {"m", M({{"inner", S("v")}, {"l", L({Null(), N("7")})}})},
                       {"bs", BS({"x", "yz"})}});
  EXPECT_EQ(MustEncode(op, EventsSchema()).item_size, ItemSize(op.put()));
}

// ---- Other entry points ---------------------------------------------------

TEST(AppendAttributeValueJson, AppendsOneValue) {
  std::string out = "[";
  AppendAttributeValueJson(M({{"a", NS({"1"})}}), &out);
  out.push_back(']');
  ExpectSameJson(out, R"([{"M":{"a":{"NS":["1"]}}}])");
}

TEST(AppendAttributeValueJson, KeepsJsonWellFormedForInvalidValues) {
  std::string out;
  AppendAttributeValueJson(L({N("1"), N("bad")}), &out);
  rapidjson::Document d = ParseJson(out);
  EXPECT_TRUE(d.IsObject());
}

TEST(BuildBatchWriteBody, WrapsRequestsForOneTable) {
  const std::string put =
      MustEncode(Put(1, {{"pk", S("a")}, {"sk", N("1")}}), EventsSchema()).request_json;
  const std::string del =
      MustEncode(Delete(2, {{"pk", S("b")}, {"sk", N("2")}}), EventsSchema()).request_json;
  std::string body = "previous content";
  BuildBatchWriteBody("events", {&put, &del}, &body);
  ExpectSameJson(body, R"({"RequestItems":{"events":[
      {"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}},
      {"DeleteRequest":{"Key":{"pk":{"S":"b"},"sk":{"N":"2"}}}}]},
      "ReturnConsumedCapacity":"TOTAL"})");
  EXPECT_EQ(body.rfind("{\"RequestItems\":{\"events\":[", 0), 0u);
}

TEST(BuildBatchWriteBody, EscapesTableName) {
  const std::string put = MustEncode(Put(1, {{"pk", S("a")}}), UsersSchema()).request_json;
  std::string body;
  BuildBatchWriteBody("we\"ird", {&put}, &body);
  rapidjson::Document d = ParseJson(body);
  ASSERT_TRUE(d.IsObject());
  EXPECT_TRUE(d["RequestItems"].HasMember("we\"ird"));
  EXPECT_EQ(d["RequestItems"]["we\"ird"].Size(), 1u);
}

}  // namespace
}  // namespace dynamo_batcher
