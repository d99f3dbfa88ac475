#include "dynamo_batcher/item.h"

#include <string>

#include <google/protobuf/util/message_differencer.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

TEST(Item, BuilderSetsEveryDynamoDbType) {
  Item item = Item()
                  .S("pk", "a")
                  .N("n", 3)
                  .N("f", "1.5")
                  .N("d", 0.25)
                  .B("b", std::string("\x00\x01", 2))
                  .Bool("ok", true)
                  .Null("x")
                  .SS("tags", {"a", "b"})
                  .NS("nums", {"1", "2"})
                  .BS("bins", {"\x01", "\x02"})
                  .M("m", Item().S("city", "Oslo"))
                  .L("l", {Value::S("x"), Value::N(7)});
  const v1::Item& p = item.proto();
  ASSERT_EQ(p.attributes_size(), 12);
  EXPECT_EQ(p.attributes().at("pk").s(), "a");
  EXPECT_EQ(p.attributes().at("n").n(), "3");
  EXPECT_EQ(p.attributes().at("f").n(), "1.5");
  EXPECT_EQ(p.attributes().at("d").n(), "0.25");
  EXPECT_EQ(p.attributes().at("b").b(), std::string("\x00\x01", 2));
  EXPECT_TRUE(p.attributes().at("ok").bool_value());
  EXPECT_TRUE(p.attributes().at("x").null_value());
  EXPECT_THAT(p.attributes().at("tags").ss().values(), ::testing::ElementsAre("a", "b"));
  EXPECT_THAT(p.attributes().at("nums").ns().values(), ::testing::ElementsAre("1", "2"));
  EXPECT_EQ(p.attributes().at("bins").bs().values_size(), 2);
  EXPECT_EQ(p.attributes().at("m").m().fields().at("city").s(), "Oslo");
  ASSERT_EQ(p.attributes().at("l").l().values_size(), 2);
  EXPECT_EQ(p.attributes().at("l").l().values(1).n(), "7");
}

TEST(Item, NegativeAndLargeIntegersAreExactDecimalText) {
  Item item = Item().N("a", -42).N("b", int64_t{9007199254740993}).N("c", 0);
  EXPECT_EQ(item.Find("a")->n(), "-42");
  EXPECT_EQ(item.Find("b")->n(), "9007199254740993");
  EXPECT_EQ(item.Find("c")->n(), "0");
  EXPECT_EQ(item.Find("missing"), nullptr);
}

TEST(Item, SettingAnAttributeTwiceKeepsTheLastValue) {
  Item item;
  item.S("pk", "a").S("pk", "b");
  EXPECT_EQ(item.size(), 1u);
  EXPECT_EQ(item.Find("pk")->s(), "b");
}

TEST(Item, ConvertsImplicitlyToAndFromTheWireType) {
  v1::Item wire = Item().S("pk", "a");
  Item back = wire;
  EXPECT_EQ(back.Find("pk")->s(), "a");
}

TEST(DynamoJson, RoundTripsEveryType) {
  Item item = Item()
                  .S("pk", "a\"b\\c")
                  .N("n", "-1.5e3")
                  .B("b", std::string("\x00\xff", 2))
                  .Bool("ok", false)
                  .Null("x")
                  .SS("ss", {"a", "b"})
                  .NS("ns", {"1"})
                  .BS("bs", {std::string("\x00", 1)})
                  .M("m", Item().S("k", "v").M("deep", Item().N("z", 1)))
                  .L("l", {Value::S("x"), Value::Bool(true), Value::L({Value::Null()})});
  const std::string json = ItemToDynamoJson(item.proto());
  absl::StatusOr<Item> back = ItemFromDynamoJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(MessageDifferencer::Equals(item.proto(), back->proto())) << json;
}

TEST(DynamoJson, WritesSortedAttributesAndBase64Binaries) {
  Item item = Item().S("pk", "a").N("n", 1).B("b", "hi");
  EXPECT_EQ(ItemToDynamoJson(item.proto()), R"({"b":{"B":"aGk="},"n":{"N":"1"},"pk":{"S":"a"}})");
}

TEST(DynamoJson, ParsesTheDocumentedExample) {
  absl::StatusOr<Item> item =
      ItemFromDynamoJson(R"({"pk":{"S":"a"},"n":{"N":"3"},"tags":{"SS":["x","y"]}})");
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->Find("pk")->s(), "a");
  EXPECT_EQ(item->Find("n")->n(), "3");
  EXPECT_EQ(item->Find("tags")->ss().values_size(), 2);
}

TEST(DynamoJson, RejectsMalformedInputWithTheAttributePath) {
  struct Case {
    const char* json;
    const char* want;
  } cases[] = {
      {"not json", "invalid JSON"},
      {"[1]", "JSON object"},
      {R"({"pk":"a"})", "\"pk\""},
      {R"({"pk":{"S":1}})", "S must be a string"},
      {R"({"n":{"N":3}})", "N must be a string"},
      {R"({"b":{"B":"***"}})", "base64"},
      {R"({"x":{"NULL":false}})", "NULL must be true"},
      {R"({"x":{"BOOL":"yes"}})", "BOOL"},
      {R"({"x":{"SS":"a"}})", "SS must be an array"},
      {R"({"x":{"SS":[1]}})", "SS must be an array"},
      {R"({"x":{"Q":"a"}})", "unknown type"},
      {R"({"x":{"S":"a","N":"1"}})", "exactly one type"},
      {R"({"m":{"M":{"inner":{"N":1}}}})", "m.inner"},
      {R"({"l":{"L":[{"S":"a"},{"X":1}]}})", "l[1]"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Item> item = ItemFromDynamoJson(c.json);
    ASSERT_FALSE(item.ok()) << c.json;
    EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(item.status().message()), HasSubstr(c.want)) << c.json;
  }
}

TEST(DynamoJson, RefusesNestingDeeperThanDynamoDbAllows) {
  std::string json = R"({"a":)";
  for (int i = 0; i < 40; ++i) json += R"({"L":[)";
  json += R"({"S":"x"})";
  for (int i = 0; i < 40; ++i) json += "]}";
  json += "}";
  absl::StatusOr<Item> item = ItemFromDynamoJson(json);
  ASSERT_FALSE(item.ok());
  EXPECT_THAT(std::string(item.status().message()), HasSubstr("deeper than 32"));
}

TEST(DynamoJson, RefusesInvalidUtf8) {
  absl::StatusOr<Item> item = ItemFromDynamoJson("{\"pk\":{\"S\":\"\xff\xfe\"}}");
  EXPECT_FALSE(item.ok());
}

}  // namespace
}  // namespace dynamo_batcher
