#include "service/common/log.h"

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

TEST(ParseLogLevel, KnowsTheFourLevels) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
}

TEST(ParseLogLevel, AnythingElseIsInvalidArgumentNamingTheValue) {
  for (const char* bad : {"", "INFO", "warning", "trace"}) {
    absl::StatusOr<LogLevel> l = ParseLogLevel(bad);
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(l.status().message(),
              std::string("must be debug, info, warn or error (got \"") + bad + "\")");
  }
}

}  // namespace
}  // namespace dynamo_batcher
