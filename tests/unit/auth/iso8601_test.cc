#include "service/auth/iso8601.h"

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

TEST(Iso8601, ParsesZuluFractionsAndOffsets) {
  EXPECT_EQ(*ParseIso8601("2024-05-01T13:00:00Z"), absl::FromUnixSeconds(1714568400));
  EXPECT_EQ(*ParseIso8601("2024-05-01T13:00:00.5Z"), absl::FromUnixMillis(1714568400500));
  EXPECT_EQ(*ParseIso8601("2024-05-01T15:00:00+02:00"), absl::FromUnixSeconds(1714568400));
  EXPECT_EQ(*ParseIso8601(" 2024-05-01T13:00:00Z\n"), absl::FromUnixSeconds(1714568400));
}

TEST(Iso8601, RejectsDatesWithoutTimeAndProse) {
  EXPECT_FALSE(ParseIso8601("2024-05-01").ok());
  EXPECT_FALSE(ParseIso8601("tomorrow").ok());
  EXPECT_FALSE(ParseIso8601("").ok());
  EXPECT_FALSE(ParseIso8601("1714568400").ok());
}

}  // namespace
}  // namespace dynamo_batcher
