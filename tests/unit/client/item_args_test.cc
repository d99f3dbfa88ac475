#include "client/batchctl/item_args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher::batchctl {
namespace {

using ::testing::HasSubstr;

TEST(ItemArgs, ParsesTypedKeyValuePairsWithStringAsDefault) {
  absl::StatusOr<Item> item =
      ParseItemArgs({"pk=a", "n:N=3", "ok:BOOL=true", "gone:NULL=", "tags:SS=x,y", "nums:ns=1,2",
                     "b:B=aGk=", "eq=a=b"});
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->Find("pk")->s(), "a");
  EXPECT_EQ(item->Find("n")->n(), "3");
  EXPECT_TRUE(item->Find("ok")->bool_value());
  EXPECT_TRUE(item->Find("gone")->null_value());
  EXPECT_THAT(item->Find("tags")->ss().values(), ::testing::ElementsAre("x", "y"));
  EXPECT_THAT(item->Find("nums")->ns().values(), ::testing::ElementsAre("1", "2"));
  EXPECT_EQ(item->Find("b")->b(), "hi");
  EXPECT_EQ(item->Find("eq")->s(), "a=b");  // only the first '=' splits
}

TEST(ItemArgs, AcceptsOneDynamoJsonArgument) {
  absl::StatusOr<Item> item = ParseItemArgs({R"({"pk":{"S":"a"},"n":{"N":"1"}})"});
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->Find("pk")->s(), "a");
  EXPECT_EQ(item->Find("n")->n(), "1");
}

TEST(ItemArgs, RejectsBadPairsWithAClearMessage) {
  struct Case {
    std::vector<std::string> args;
    const char* want;
  } cases[] = {
      {{}, "missing item"},
      {{"pk"}, "name[:TYPE]=value"},
      {{"=a"}, "empty attribute name"},
      {{"n:N="}, "N needs a number"},
      {{"ok:BOOL=maybe"}, "BOOL must be true or false"},
      {{"x:NULL=1"}, "NULL takes no value"},
      {{"b:B=***"}, "base64"},
      {{"x:Q=1"}, "unknown type"},
      {{R"({"pk":{"S":"a"}})", "n=1"}, "one argument"},
      {{R"({"pk":"a"})"}, "\"pk\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Item> item = ParseItemArgs(c.args);
    ASSERT_FALSE(item.ok());
    EXPECT_THAT(std::string(item.status().message()), HasSubstr(c.want));
  }
}

}  // namespace
}  // namespace dynamo_batcher::batchctl
