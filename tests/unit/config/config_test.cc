#include "service/config/config.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::testing::HasSubstr;

constexpr char kMinimal[] = R"(
tables:
  - name: events
    partition_key: {name: pk, type: S}
    sort_key: {name: sk, type: N}
)";

absl::Status ErrorOf(const std::string& yaml) {
  return ParseConfig(yaml, "test.yaml").status();
}

TEST(Config, MinimalFileGetsDefaults) {
  auto c = ParseConfig(kMinimal, "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:50051");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->batching.max_items, 25);
  EXPECT_EQ(c->batching.linger, absl::Milliseconds(5));
  ASSERT_EQ(c->tables.size(), 1u);
  EXPECT_EQ(c->tables[0].schema.name, "events");
  EXPECT_EQ(c->tables[0].schema.partition_key.type, KeyType::kS);
  ASSERT_TRUE(c->tables[0].schema.sort_key.has_value());
  EXPECT_EQ(c->tables[0].schema.sort_key->name, "sk");
  EXPECT_EQ(c->tables[0].schema.sort_key->type, KeyType::kN);
  EXPECT_TRUE(c->tables[0].schema_from_config);
}

TEST(Config, RootExampleFileIsValid) {
  // The shipped config.yaml must always load.
  auto c = LoadConfig(std::string(DYNAMO_BATCHER_SOURCE_DIR) + "/config.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GE(c->tables.size(), 2u);
  EXPECT_EQ(c->dynamodb.endpoint.rfind("http://127.0.0.1", 0), 0u);
}

TEST(Config, TableWithoutKeySchemaUsesDescribeTable) {
  auto c = ParseConfig("tables:\n  - name: events\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tables[0].schema_from_config);
}

TEST(Config, MaxItemsAboveTwentyFiveIsRejectedWithFileKeyAndRule) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "batching:\n  max_items: 30\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("test.yaml"));
  EXPECT_THAT(s.message(), HasSubstr("batching.max_items"));
  EXPECT_THAT(s.message(), HasSubstr("between 1 and 25"));
}

TEST(Config, UnknownKeyIsRejected) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "batching:\n  lingr: 5ms\n");
  EXPECT_THAT(s.message(), HasSubstr("batching.lingr: unknown key"));
}

TEST(Config, DuplicateKeyIsRejected) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "batching:\n  linger: 5ms\nbatching:\n  linger: 2s\n");
  EXPECT_THAT(s.message(), HasSubstr("batching: is given twice"));
}

TEST(Config, BadDurationIsRejected) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "batching:\n  linger: fast\n");
  EXPECT_THAT(s.message(), HasSubstr("batching.linger"));
  EXPECT_THAT(s.message(), HasSubstr("duration"));
}

TEST(Config, UnknownFateHoldParsesAndIsBounded) {
  auto c = ParseConfig(std::string(kMinimal) + "batching:\n  unknown_fate_hold: 1500ms\n", "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->batching.unknown_fate_hold, absl::Milliseconds(1500));
  EXPECT_EQ(ParseConfig(kMinimal, "test.yaml")->batching.unknown_fate_hold, absl::Seconds(5));
  absl::Status s = ErrorOf(std::string(kMinimal) + "batching:\n  unknown_fate_hold: 1h\n");
  EXPECT_THAT(s.message(), HasSubstr("batching.unknown_fate_hold"));
  EXPECT_THAT(s.message(), HasSubstr("must be between"));
}

TEST(Config, BadKeyTypeIsRejected) {
  absl::Status s = ErrorOf("tables:\n  - name: events\n    partition_key: {name: pk, type: X}\n");
  EXPECT_THAT(s.message(), HasSubstr("tables[0].partition_key.type"));
  EXPECT_THAT(s.message(), HasSubstr("S, N or B"));
}

TEST(Config, MissingTablesIsRejected) {
  EXPECT_THAT(ErrorOf("listen: 127.0.0.1:1\n").message(), HasSubstr("tables: is required"));
  EXPECT_THAT(ErrorOf("").message(), HasSubstr("tables"));
}

TEST(Config, DuplicateTableIsRejected) {
  absl::Status s = ErrorOf("tables:\n  - name: events\n  - name: events\n");
  EXPECT_THAT(s.message(), HasSubstr("tables[1].name"));
  EXPECT_THAT(s.message(), HasSubstr("listed twice"));
}

TEST(Config, InvalidTableNameIsRejected) {
  EXPECT_THAT(ErrorOf("tables:\n  - name: a\n").message(), HasSubstr("3-255 characters"));
}

TEST(Config, SortKeyWithoutPartitionKeyIsRejected) {
  absl::Status s = ErrorOf("tables:\n  - name: events\n    sort_key: {name: sk, type: N}\n");
  EXPECT_THAT(s.message(), HasSubstr("tables[0].sort_key"));
}

TEST(Config, MalformedYamlNamesTheLine) {
  absl::Status s = ErrorOf("tables: [\n  - name: x\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("test.yaml: line"));
}

TEST(Config, EndpointMustBeHttpUrl) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "dynamodb:\n  endpoint: 127.0.0.1:8000\n");
  EXPECT_THAT(s.message(), HasSubstr("dynamodb.endpoint"));
  EXPECT_THAT(s.message(), HasSubstr("http://"));
}

TEST(Config, CredentialsMustComeInPairs) {
  absl::Status s = ErrorOf(std::string(kMinimal) +
                           "dynamodb:\n  credentials:\n    access_key_id: a\n");
  EXPECT_THAT(s.message(), HasSubstr("dynamodb.credentials"));
}

TEST(Config, ByteSizesParse) {
  EXPECT_EQ(*ParseByteSize("64MiB"), 64ull << 20);
  EXPECT_EQ(*ParseByteSize("512KiB"), 512ull << 10);
  EXPECT_EQ(*ParseByteSize("1000"), 1000u);
  EXPECT_EQ(*ParseByteSize("2GB"), 2000000000ull);
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseByteSize("5XB").ok());
  absl::Status s = ErrorOf(std::string(kMinimal) + "buffer:\n  max_bytes: 10\n");
  EXPECT_THAT(s.message(), HasSubstr("buffer.max_bytes"));
}

TEST(Config, ListenerLockdownOptions) {
  auto c = ParseConfig(std::string(kMinimal) + R"(
server:
  unix_socket_mode: "0600"
  max_inflight_ops_per_stream: 500
  tls: {cert_file: /c.pem, key_file: /k.pem, client_ca_file: /ca.pem}
)", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.unix_socket_mode, 0600);
  EXPECT_EQ(c->server.max_inflight_ops_per_stream, 500);
  EXPECT_EQ(c->server.tls_client_ca_file, "/ca.pem");
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "server:\n  unix_socket_mode: rw\n").message(),
              HasSubstr("server.unix_socket_mode"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "server:\n  tls: {cert_file: /c.pem}\n").message(),
              HasSubstr("server.tls"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "server:\n  tls: {client_ca_file: /ca.pem}\n")
                  .message(),
              HasSubstr("server.tls"));
}

TEST(Config, RetryCapBelowBaseIsRejected) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "retry:\n  base: 1s\n  cap: 10ms\n");
  EXPECT_THAT(s.message(), HasSubstr("retry.cap"));
}

const char* FakeEnv(const char* name) {
  std::string n(name);
  if (n == "DYNAMO_BATCHER_LISTEN") return "127.0.0.1:6000";
  if (n == "DYNAMO_BATCHER_ENDPOINT") return "http://127.0.0.1:9000";
  if (n == "DYNAMO_BATCHER_REGION") return "eu-west-1";
  return nullptr;
}

const char* BadEnv(const char* name) {
  return std::string(name) == "DYNAMO_BATCHER_ENDPOINT" ? "localhost:1" : nullptr;
}

TEST(Config, EnvironmentOverridesAddressesEndpointAndRegion) {
  auto c = ParseConfig(kMinimal, "t.yaml");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(ApplyEnvironment(&*c, &FakeEnv).ok());
  EXPECT_EQ(c->listen, "127.0.0.1:6000");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->dynamodb.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(c->dynamodb.region, "eu-west-1");
}

TEST(Config, BadEnvironmentOverrideIsRejected) {
  auto c = ParseConfig(kMinimal, "t.yaml");
  absl::Status s = ApplyEnvironment(&*c, &BadEnv);
  EXPECT_THAT(s.message(), HasSubstr("DYNAMO_BATCHER_ENDPOINT"));
}

TEST(Config, MissingFileIsNotFound) {
  EXPECT_EQ(LoadConfig("/nonexistent/config.yaml").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dynamo_batcher
