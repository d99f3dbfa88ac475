#include "service/lifecycle/startup.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle_fakes.h"
#include "service/common/clock.h"

namespace dynamo_batcher {
namespace {

using ::testing::ElementsAre;

TableConfig Configured(const std::string& name) {
  TableConfig t;
  t.schema = Schema(name, "pk");
  t.schema_from_config = true;
  return t;
}

TableConfig FromDescribe(const std::string& name) {
  TableConfig t;
  t.schema.name = name;
  return t;
}

// Sleeps on a fake clock and records each wait.
struct FakeSleep {
  FakeClock clock;
  std::vector<absl::Duration> waits;
  std::function<void(absl::Duration)> fn() {
    return [this](absl::Duration d) {
      waits.push_back(d);
      clock.AdvanceTime(d);
    };
  }
};

TEST(ResolveKeySchemas, SchemasFromConfigNeedNoCall) {
  FakeTableChecker checker;
  std::vector<TableConfig> tables = {Configured("events")};
  FakeSleep sleep;
  auto reached =
      ResolveKeySchemas(&tables, StartupOptions{}, &checker, sleep.fn(), [] { return false; });
  ASSERT_TRUE(reached.ok()) << reached.status();
  EXPECT_FALSE(*reached);  // nothing was asked of DynamoDB
  EXPECT_TRUE(checker.described().empty());
  EXPECT_TRUE(checker.created().empty());
}

TEST(ResolveKeySchemas, CreatesConfiguredTablesWhenAsked) {
  FakeTableChecker checker;
  std::vector<TableConfig> tables = {Configured("events"), FromDescribe("users")};
  checker.Script({Schema("users", "id")});
  StartupOptions o;
  o.create_tables = true;
  FakeSleep sleep;
  auto reached = ResolveKeySchemas(&tables, o, &checker, sleep.fn(), [] { return false; });
  ASSERT_TRUE(reached.ok()) << reached.status();
  EXPECT_TRUE(*reached);
  EXPECT_THAT(checker.created(), ElementsAre("events"));  // not the one without a schema
  EXPECT_EQ(tables[1].schema.partition_key.name, "id");
}

TEST(ResolveKeySchemas, CreateFailureStopsStartUp) {
  FakeTableChecker checker;
  checker.SetCreateStatus(absl::PermissionDeniedError("AccessDeniedException"));
  std::vector<TableConfig> tables = {Configured("events")};
  StartupOptions o;
  o.create_tables = true;
  FakeSleep sleep;
  auto reached = ResolveKeySchemas(&tables, o, &checker, sleep.fn(), [] { return false; });
  EXPECT_EQ(reached.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(ResolveKeySchemas, RetriesDescribeTableWithDoublingBackoffCappedAtFiveSeconds) {
  FakeTableChecker checker;
  std::vector<absl::StatusOr<TableSchema>> answers(7, absl::UnavailableError("503"));
  answers.push_back(Schema("users", "id"));
  checker.Script(answers);
  std::vector<TableConfig> tables = {FromDescribe("users")};
  FakeSleep sleep;
  const absl::Time t0 = sleep.clock.Now();
  auto reached =
      ResolveKeySchemas(&tables, StartupOptions{}, &checker, sleep.fn(), [] { return false; });
  ASSERT_TRUE(reached.ok()) << reached.status();
  EXPECT_TRUE(*reached);
  EXPECT_EQ(checker.described().size(), 8u);
  EXPECT_THAT(sleep.waits,
              ElementsAre(absl::Milliseconds(200), absl::Milliseconds(400), absl::Milliseconds(800),
                          absl::Milliseconds(1600), absl::Milliseconds(3200), absl::Seconds(5),
                          absl::Seconds(5)));
  EXPECT_EQ(sleep.clock.Now() - t0, absl::Milliseconds(16200));
  EXPECT_EQ(tables[0].schema.partition_key.name, "id");
}

TEST(ResolveKeySchemas, NotFoundAndAccessDeniedAreFinal) {
  for (absl::Status final_error : {absl::NotFoundError("ResourceNotFoundException"),
                                   absl::PermissionDeniedError("AccessDeniedException")}) {
    FakeTableChecker checker;
    checker.Script({absl::UnavailableError("503"), final_error});
    std::vector<TableConfig> tables = {FromDescribe("users")};
    FakeSleep sleep;
    auto reached =
        ResolveKeySchemas(&tables, StartupOptions{}, &checker, sleep.fn(), [] { return false; });
    EXPECT_EQ(reached.status(), final_error);
    EXPECT_EQ(checker.described().size(), 2u);
  }
}

TEST(ResolveKeySchemas, GivesUpAfterMaxAttempts) {
  FakeTableChecker checker;  // always UNAVAILABLE
  std::vector<TableConfig> tables = {FromDescribe("users")};
  StartupOptions o;
  o.max_describe_attempts = 4;
  FakeSleep sleep;
  auto reached = ResolveKeySchemas(&tables, o, &checker, sleep.fn(), [] { return false; });
  EXPECT_EQ(reached.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(checker.described().size(), 4u);
  EXPECT_EQ(sleep.waits.size(), 3u);
}

TEST(ResolveKeySchemas, AStopSignalEndsTheRetriesAsCancelled) {
  FakeTableChecker checker;  // always UNAVAILABLE
  std::vector<TableConfig> tables = {FromDescribe("users")};
  FakeSleep sleep;
  int checks = 0;
  auto reached = ResolveKeySchemas(&tables, StartupOptions{}, &checker, sleep.fn(),
                                   [&checks] { return ++checks >= 3; });
  EXPECT_EQ(reached.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(checker.described().size(), 3u);
  EXPECT_EQ(sleep.waits.size(), 2u);
}

}  // namespace
}  // namespace dynamo_batcher
