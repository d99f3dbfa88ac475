#include "service/config/config.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
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

absl::Status ErrorOf(const std::string& yaml) { return ParseConfig(yaml, "test.yaml").status(); }

TEST(Config, MinimalFileGetsDefaults) {
  auto c = ParseConfig(kMinimal, "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:50051");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->batching.max_items, 25u);
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

// config.yaml states every option, with the compiled-in default (which lives
// in the component's options struct), so the example documents the defaults
// and cannot drift from them. The only differences are the ones it says it
// makes to run against the local dynalite: endpoint, static credentials,
// create_tables, and a dead-letter file.
TEST(Config, RootExampleFileStatesTheCompiledInDefaults) {
  std::ifstream in(std::string(DYNAMO_BATCHER_SOURCE_DIR) + "/config.yaml");
  ASSERT_TRUE(in);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = ParseConfig(text, "config.yaml");  // no environment overrides
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;
  const Config d;

  // Deliberate differences, each commented in config.yaml.
  EXPECT_NE(c.dynamodb.endpoint, d.dynamodb.endpoint);
  EXPECT_NE(c.dynamodb.access_key_id, d.dynamodb.access_key_id);
  EXPECT_NE(c.dynamodb.create_tables, d.dynamodb.create_tables);
  EXPECT_NE(c.dead_letter.path, d.dead_letter.path);

  EXPECT_EQ(c.listen, d.listen);
  EXPECT_EQ(c.metrics_listen, d.metrics_listen);
  EXPECT_EQ(c.log.level, d.log.level);
  EXPECT_EQ(c.dynamodb.region, d.dynamodb.region);
  EXPECT_EQ(c.dynamodb.call_timeout, d.dynamodb.call_timeout);
  EXPECT_EQ(c.dynamodb.connect_timeout, d.dynamodb.connect_timeout);
  EXPECT_EQ(c.dynamodb.max_connections, d.dynamodb.max_connections);
  EXPECT_EQ(c.dynamodb.tls_verify, d.dynamodb.tls_verify);
  EXPECT_EQ(c.dynamodb.ca_file, d.dynamodb.ca_file);

  EXPECT_EQ(c.batching.linger, d.batching.linger);
  EXPECT_EQ(c.batching.max_items, d.batching.max_items);
  EXPECT_EQ(c.batching.max_inflight_calls, d.batching.max_inflight_calls);
  EXPECT_EQ(c.batching.unknown_fate_hold, d.batching.unknown_fate_hold);

  EXPECT_EQ(c.retry.base, d.retry.base);
  EXPECT_EQ(c.retry.cap, d.retry.cap);
  EXPECT_EQ(c.retry.max_attempts, d.retry.max_attempts);
  EXPECT_EQ(c.retry.op_deadline, d.retry.op_deadline);

  EXPECT_EQ(c.rate_limit.decrease_factor, d.rate_limit.decrease_factor);
  EXPECT_EQ(c.rate_limit.increase_per_second, d.rate_limit.increase_per_second);
  EXPECT_EQ(c.rate_limit.min_rate, d.rate_limit.min_rate);
  EXPECT_EQ(c.rate_limit.recovery, d.rate_limit.recovery);
  EXPECT_EQ(c.rate_limit.cubic_recovery_seconds, d.rate_limit.cubic_recovery_seconds);
  EXPECT_EQ(c.rate_limit.fleet, d.rate_limit.fleet);

  EXPECT_EQ(c.buffer.max_bytes, d.buffer.max_bytes);
  EXPECT_EQ(c.buffer.max_table_bytes, d.buffer.max_table_bytes);

  EXPECT_EQ(c.server.max_message_bytes, d.server.max_message_bytes);
  EXPECT_EQ(c.server.grpc_memory_bytes, d.server.grpc_memory_bytes);
  EXPECT_EQ(c.server.max_ops_per_message, d.server.max_ops_per_message);
  EXPECT_EQ(c.server.max_streams, d.server.max_streams);
  EXPECT_EQ(c.server.max_unary_calls, d.server.max_unary_calls);
  EXPECT_EQ(c.server.max_inflight_ops_per_stream, d.server.max_inflight_ops_per_stream);
  EXPECT_EQ(c.server.unix_socket_mode, d.server.unix_socket_mode);
  EXPECT_EQ(c.server.allow_insecure_remote, d.server.allow_insecure_remote);
  EXPECT_EQ(c.server.tls_cert_file, d.server.tls_cert_file);

  EXPECT_EQ(c.drain_timeout, d.drain_timeout);
  EXPECT_EQ(c.dead_letter.max_bytes, d.dead_letter.max_bytes);
  EXPECT_EQ(c.dead_letter.max_files, d.dead_letter.max_files);
}

// The sections are the components' own structs: a file that states nothing
// gets exactly their defaults (the rate limiter's were 200/1 in
// rate_limiter.h and 500/25 in config.h before; the sidecar ran with 500/25).
TEST(Config, UnstatedSectionsAreTheComponentsDefaults) {
  auto c = ParseConfig(kMinimal, "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rate_limit.increase_per_second, RateLimiterOptions{}.increase_per_second);
  EXPECT_EQ(c->rate_limit.min_rate, 25.0);
  EXPECT_EQ(c->rate_limit.increase_per_second, 500.0);
  EXPECT_EQ(c->rate_limit.recovery, RateLimiterOptions::Recovery::kCubic);
  EXPECT_EQ(c->retry.max_attempts, RetryOptions{}.max_attempts);
  EXPECT_EQ(c->batching.linger, BatchingOptions{}.linger);
  EXPECT_EQ(c->buffer.max_bytes, BufferOptions{}.max_bytes);
  EXPECT_EQ(c->server.max_streams, ServiceLimits{}.max_streams);
  EXPECT_EQ(c->dead_letter.max_files, DeadLetterOptions{}.max_files);
}

TEST(Config, RateLimitRecoveryAndCubicTimeFillTheLimiterOptions) {
  auto c = ParseConfig(
      std::string(kMinimal) + "rate_limit:\n  recovery: additive\n  cubic_recovery: 1500ms\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rate_limit.recovery, RateLimiterOptions::Recovery::kAdditive);
  EXPECT_DOUBLE_EQ(c->rate_limit.cubic_recovery_seconds, 1.5);
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "rate_limit:\n  recovery: linear\n").message(),
              HasSubstr("test.yaml: rate_limit.recovery: must be cubic or additive"));
  EXPECT_FALSE(c->rate_limit.fleet);
  auto f = ParseConfig(std::string(kMinimal) + "rate_limit:\n  fleet: true\n", "t.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->rate_limit.fleet);
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "rate_limit:\n  fleet: 8\n").message(),
              HasSubstr("test.yaml: rate_limit.fleet: must be true or false (got \"8\")"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "retry:\n  max_attempts: 0\n").message(),
              HasSubstr("test.yaml: retry.max_attempts: must be an integer between 1 and 1000"));
  EXPECT_THAT(
      ErrorOf(std::string(kMinimal) + "server:\n  max_inflight_ops_per_stream: -5\n").message(),
      HasSubstr("server.max_inflight_ops_per_stream: must be an integer between 1 and"));
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
  absl::Status s =
      ErrorOf(std::string(kMinimal) + "batching:\n  linger: 5ms\nbatching:\n  linger: 2s\n");
  EXPECT_THAT(s.message(), HasSubstr("batching: is given twice"));
}

TEST(Config, BadDurationIsRejected) {
  absl::Status s = ErrorOf(std::string(kMinimal) + "batching:\n  linger: fast\n");
  EXPECT_THAT(s.message(), HasSubstr("batching.linger"));
  EXPECT_THAT(s.message(), HasSubstr("duration"));
}

TEST(Config, UnknownFateHoldParsesAndIsBounded) {
  auto c =
      ParseConfig(std::string(kMinimal) + "batching:\n  unknown_fate_hold: 1500ms\n", "test.yaml");
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
  absl::Status s =
      ErrorOf(std::string(kMinimal) + "dynamodb:\n  credentials:\n    access_key_id: a\n");
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
)",
                       "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.unix_socket_mode, 0600);
  EXPECT_EQ(c->server.max_inflight_ops_per_stream, 500);
  EXPECT_EQ(c->server.tls_client_ca_file, "/ca.pem");
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "server:\n  unix_socket_mode: rw\n").message(),
              HasSubstr("server.unix_socket_mode"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "server:\n  tls: {cert_file: /c.pem}\n").message(),
              HasSubstr("server.tls"));
  EXPECT_THAT(
      ErrorOf(std::string(kMinimal) + "server:\n  tls: {client_ca_file: /ca.pem}\n").message(),
      HasSubstr("server.tls"));
}

TEST(Config, MaxUnaryCallsParsesAndIsBounded) {
  auto c = ParseConfig(std::string(kMinimal) + "server:\n  max_unary_calls: 7\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.max_unary_calls, 7);
  EXPECT_EQ(ParseConfig(kMinimal, "t.yaml")->server.max_unary_calls, 1024);
  absl::Status s = ErrorOf(std::string(kMinimal) + "server:\n  max_unary_calls: 0\n");
  EXPECT_THAT(s.message(), HasSubstr("server.max_unary_calls"));
}

TEST(Config, GrpcMemoryBytesParsesAndIsBounded) {
  auto c = ParseConfig(std::string(kMinimal) + "server:\n  grpc_memory_bytes: 16MiB\n", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.grpc_memory_bytes, 16ull << 20);
  EXPECT_EQ(ParseConfig(kMinimal, "t.yaml")->server.grpc_memory_bytes, 64ull << 20);
  absl::Status s = ErrorOf(std::string(kMinimal) + "server:\n  grpc_memory_bytes: 1000\n");
  EXPECT_THAT(s.message(), HasSubstr("test.yaml: server.grpc_memory_bytes: must be between"));
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

// --- security: values that end up in URLs and listeners ----------------------

std::string WithDynamoDb(const std::string& key, const std::string& value) {
  return std::string(kMinimal) + "dynamodb:\n  " + key + ": \"" + value + "\"\n";
}

TEST(Config, RegionThatIsNotLettersDigitsHyphensIsRejected) {
  for (const char* bad : {"x@127.0.0.1:9/", "us-east-1.evil.com", "us east 1", "-us-east-1",
                          "us-east-1-", "us-east-1/", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}) {
    absl::Status s = ErrorOf(WithDynamoDb("region", bad));
    EXPECT_THAT(std::string(s.message()), HasSubstr("test.yaml: dynamodb.region: must be")) << bad;
  }
  for (const char* good : {"us-east-1", "eu-west-2", "us-gov-west-1", "cn-north-1", "local"}) {
    EXPECT_TRUE(ParseConfig(WithDynamoDb("region", good), "test.yaml").ok()) << good;
  }
}

TEST(Config, EndpointWithUserInfoPathOrBadPortIsRejected) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://x@127.0.0.1:8000", "user info"},
      {"https://dynamodb.us-east-1.amazonaws.com@evil.example", "user info"},
      {"http://127.0.0.1:8000/path", "no path"},
      {"http://127.0.0.1:8000/?q=1", "no path"},
      {"http://127.0.0.1:8000#frag", "no path"},
      {"http://127.0.0.1:99999", "port"},
      {"http://127.0.0.1:", "empty port"},
      {"http://", "host"},
      {"http://[::1", "unclosed"},
      {"ftp://127.0.0.1", "http:// or https://"},
      {"http://exa mple.com", "host may hold"},
  };
  for (const auto& [bad, why] : cases) {
    absl::Status s = ErrorOf(WithDynamoDb("endpoint", bad));
    EXPECT_THAT(std::string(s.message()), HasSubstr("test.yaml: dynamodb.endpoint:")) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr(why)) << bad;
  }
  for (const char* good : {"http://127.0.0.1:8000", "http://127.0.0.1:8000/", "https://[::1]:8443",
                           "https://dynamodb.us-east-1.amazonaws.com", "http://localhost:8000",
                           "https://vpce-1a2b.dynamodb.us-east-1.vpce.amazonaws.com"}) {
    EXPECT_TRUE(ParseConfig(WithDynamoDb("endpoint", good), "test.yaml").ok()) << good;
  }
}

const char* EvilRegionEnv(const char* name) {
  return std::string(name) == "DYNAMO_BATCHER_REGION" ? "x@127.0.0.1:9/" : nullptr;
}
const char* EvilEndpointEnv(const char* name) {
  return std::string(name) == "DYNAMO_BATCHER_ENDPOINT" ? "http://u:p@127.0.0.1:9" : nullptr;
}

TEST(Config, RegionAndEndpointFromTheEnvironmentAreValidatedAndNamed) {
  auto c = ParseConfig(kMinimal, "t.yaml");
  ASSERT_TRUE(c.ok());
  absl::Status s = ApplyEnvironment(&*c, &EvilRegionEnv);
  EXPECT_THAT(std::string(s.message()), HasSubstr("environment: DYNAMO_BATCHER_REGION: must be"));
  EXPECT_EQ(c->dynamodb.region, "us-east-1");  // untouched
  s = ApplyEnvironment(&*c, &EvilEndpointEnv);
  EXPECT_THAT(std::string(s.message()), HasSubstr("environment: DYNAMO_BATCHER_ENDPOINT:"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("user info"));
}

const char* NoEnv(const char*) { return nullptr; }
const char* AnyInterfaceEnv(const char* name) {
  return std::string(name) == "DYNAMO_BATCHER_LISTEN" ? "0.0.0.0:50051" : nullptr;
}

TEST(Config, NonLoopbackListenerWithoutTlsIsRefused) {
  for (const char* addr : {"0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "my-host:50051",
                           "127.example.invalid:50051"}) {
    auto c = ParseConfig(std::string(kMinimal) + "listen: \"" + addr + "\"\n", "t.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    absl::Status s = ApplyEnvironment(&*c, &NoEnv);
    EXPECT_THAT(std::string(s.message()), HasSubstr("t.yaml: listen:")) << addr;
    EXPECT_THAT(std::string(s.message()), HasSubstr("server.allow_insecure_remote")) << addr;
  }
  for (const char* addr : {"127.0.0.1:50051", "127.1.2.3:1", "[::1]:50051", "localhost:50051",
                           "unix:///run/db.sock"}) {
    auto c = ParseConfig(std::string(kMinimal) + "listen: \"" + addr + "\"\n", "t.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(ApplyEnvironment(&*c, &NoEnv).ok()) << addr;
  }
}

TEST(Config, NonLoopbackListenerFromTheEnvironmentIsRefusedNamingTheVariable) {
  auto c = ParseConfig(kMinimal, "t.yaml");
  ASSERT_TRUE(c.ok());
  absl::Status s = ApplyEnvironment(&*c, &AnyInterfaceEnv);
  EXPECT_THAT(std::string(s.message()), HasSubstr("environment: DYNAMO_BATCHER_LISTEN:"));
}

TEST(Config, NonLoopbackListenerIsAllowedWithTlsOrExplicitOptIn) {
  auto opted = ParseConfig(
      std::string(kMinimal) + "listen: 0.0.0.0:50051\nserver:\n  allow_insecure_remote: true\n",
      "t.yaml");
  ASSERT_TRUE(opted.ok()) << opted.status();
  EXPECT_TRUE(ApplyEnvironment(&*opted, &NoEnv).ok());
  EXPECT_TRUE(ListenIsRemote(*opted));
  auto tls = ParseConfig(
      std::string(kMinimal) +
          "listen: 0.0.0.0:50051\nserver:\n  tls: {cert_file: c.pem, key_file: k.pem}\n",
      "t.yaml");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(ApplyEnvironment(&*tls, &NoEnv).ok());
}

TEST(Config, ShippedContainerConfigListensOnLoopback) {
  auto c = LoadConfig(std::string(DYNAMO_BATCHER_SOURCE_DIR) + "/deploy/container-config.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(ListenIsRemote(*c)) << c->listen;
}

}  // namespace
}  // namespace dynamo_batcher
