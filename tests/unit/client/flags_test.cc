#include "client/batchctl/flags.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher::batchctl {
namespace {

const FlagSpec kSpec{{"table", "timeout", "ops"}, {"json"}};

TEST(Flags, ParsesValuesBoolsAndPositionals) {
  absl::StatusOr<ParsedArgs> a =
      ParseArgs({"--table", "t", "x", "--timeout=2s", "--json", "-", "--", "--ops"}, kSpec);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->Get("table"), "t");
  EXPECT_EQ(*a->GetDuration("timeout", absl::ZeroDuration()), absl::Seconds(2));
  EXPECT_TRUE(a->Has("json"));
  EXPECT_THAT(a->positional, ::testing::ElementsAre("x", "-", "--ops"));
  EXPECT_EQ(*a->GetInt("ops", 7), 7);
}

TEST(Flags, ReportsUsageErrors) {
  EXPECT_FALSE(ParseArgs({"--nope"}, kSpec).ok());
  EXPECT_FALSE(ParseArgs({"--table"}, kSpec).ok());
  EXPECT_FALSE(ParseArgs({"-x"}, kSpec).ok());
  EXPECT_FALSE(ParseArgs({"--json=maybe"}, kSpec).ok());
  absl::StatusOr<ParsedArgs> a = ParseArgs({"--ops", "ten", "--timeout", "soon"}, kSpec);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->GetInt("ops", 0).ok());
  EXPECT_FALSE(a->GetDuration("timeout", absl::ZeroDuration()).ok());
}

TEST(Flags, StopsAtTheFirstPositionalWhenAsked) {
  absl::StatusOr<ParsedArgs> a =
      ParseArgs({"--table", "t", "put", "--json"}, kSpec, /*stop_at_positional=*/true);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->Get("table"), "t");
  EXPECT_THAT(a->rest, ::testing::ElementsAre("put", "--json"));
  EXPECT_FALSE(a->Has("json"));
}

TEST(Flags, HelpIsRecognized) {
  EXPECT_TRUE(ParseArgs({"--help"}, kSpec)->help);
  EXPECT_TRUE(ParseArgs({"-h"}, kSpec)->help);
}

}  // namespace
}  // namespace dynamo_batcher::batchctl
