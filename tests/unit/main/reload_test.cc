#include "service/main/reload.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Config Parse(const std::string& extra) {
  auto c = ParseConfig(R"(listen: 127.0.0.1:50051
metrics_listen: 127.0.0.1:9464
dynamodb:
  region: us-east-1
tables:
  - name: events
    partition_key: {name: pk, type: S}
    max_rate: 100
  - name: audit
)" + extra,
                       "test.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : Config{};
}

TEST(RestartOnlyChanges, LiveKeysAreNotReported) {
  Config a = Parse("batching: {linger: 5ms, max_items: 25}\n");
  Config b = Parse(
      "batching: {linger: 50ms, max_items: 5}\nretry: {max_attempts: 3}\n"
      "buffer: {max_bytes: 1MiB}\nlog: {level: debug}\n");
  EXPECT_THAT(RestartOnlyChanges(a, b), IsEmpty());
}

TEST(RestartOnlyChanges, ListenersTablesAndKeySchemasAreReported) {
  Config a = Parse("");
  Config b = a;
  b.listen = "127.0.0.1:50052";
  b.dynamodb.endpoint = "http://127.0.0.1:8000";
  b.tables[0].schema.partition_key.name = "id";
  b.drain_timeout = absl::Seconds(5);
  EXPECT_THAT(
      RestartOnlyChanges(a, b),
      ElementsAre("listen", "dynamodb.endpoint", "tables[events].partition_key", "drain_timeout"));
  Config c = a;
  c.tables.pop_back();
  EXPECT_THAT(RestartOnlyChanges(a, c), ElementsAre("tables"));
}

TEST(RestartOnlyChanges, DescribeTableSchemaIsComparedByNameOnly) {
  Config a = Parse("");
  // At start-up the schema of `audit` came from DescribeTable.
  a.tables[1].schema.partition_key = {"id", KeyType::kN};
  Config b = Parse("");
  EXPECT_THAT(RestartOnlyChanges(a, b), IsEmpty());
}

TEST(MergeLiveKeys, TakesLiveKeysKeepsRestartOnlyOnes) {
  Config a = Parse("batching: {linger: 5ms, max_items: 25}\n");
  Config b = Parse("batching: {linger: 1s, max_items: 7}\n");
  b.listen = "0.0.0.0:1";
  b.tables[0].max_rate = 42;
  Config m = MergeLiveKeys(a, b);
  EXPECT_EQ(m.listen, "127.0.0.1:50051");
  EXPECT_EQ(m.batching.linger, absl::Seconds(1));
  EXPECT_EQ(m.batching.max_items, 7u);
  EXPECT_EQ(m.tables[0].max_rate, 42);
  EngineLiveSettings s = LiveSettingsFromConfig(m);
  EXPECT_EQ(s.batching.max_items, 7u);
  ASSERT_EQ(s.rates.size(), 2u);
  EXPECT_EQ(s.rates[0].max_rate, 42);
}

}  // namespace
}  // namespace dynamo_batcher
