#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/batching/rate_limiter.h"
#include "service/batching/retry_policy.h"
#include "service/batching/table_batcher.h"
#include "service/common/types.h"
#include "service/dynamodb/dynamodb_options.h"
#include "service/engine/buffer_options.h"
#include "service/engine/dead_letter.h"
#include "service/http/http_transport.h"
#include "service/server/service_limits.h"

namespace dynamo_batcher {

struct TableConfig {
  TableSchema schema;
  // True when the key schema came from config; false: DescribeTable at start.
  bool schema_from_config = false;
  double max_rate = 0;  // static ceiling, items/s; 0 = none
};

// The whole configuration. Each section is the owning component's own
// options struct (BatchingOptions, RetryOptions, RateLimiterOptions,
// BufferOptions, ServiceLimits, DeadLetterOptions), so a default exists in
// exactly one place: that struct. ParseConfig overwrites only what the file
// states. config.yaml states every option with that same default, except
// where a comment says the example differs (checked by config_test).
struct Config {
  std::string source;  // file name, for messages

  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";

  struct Log {
    std::string level = "info";  // debug | info | warn | error
  } log;

  // dynamodb.*: the defaults are the client's and the transport's own.
  struct DynamoDb {
    std::string region = DynamoDbOptions().region;
    std::string endpoint;  // empty: the region's AWS endpoint
    absl::Duration call_timeout = DynamoDbOptions().call_timeout;
    absl::Duration connect_timeout = CurlTransportOptions().connect_timeout;
    int max_connections = static_cast<int>(CurlTransportOptions().max_connections);
    bool tls_verify = TlsOptions().verify;
    std::string ca_file;
    // Static credentials for local use (dynalite, DynamoDB Local).
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;
    // Development only: create missing tables (PAY_PER_REQUEST) at start.
    bool create_tables = false;
  } dynamodb;

  std::vector<TableConfig> tables;

  // batching.{linger, max_items, max_inflight_calls, unknown_fate_hold}.
  BatchingOptions batching;
  // retry.{base, cap, max_attempts, op_deadline}.
  RetryOptions retry;
  // rate_limit.{decrease_factor, increase_per_second, min_rate, recovery,
  // cubic_recovery}; the per-table ceiling is TableConfig::max_rate.
  RateLimiterOptions rate_limit;
  // buffer.{max_bytes, max_table_bytes}.
  BufferOptions buffer;

  // server.*: the service's limits, plus the listener's own settings.
  struct Server : ServiceLimits {
    uint64_t max_message_bytes = 8ull << 20;
    // Memory gRPC may use for its transport (read buffers, HTTP/2 flow-control
    // windows, messages being received): a grpc::ResourceQuota on the server.
    // Under pressure gRPC shrinks its windows and stops reading sockets.
    uint64_t grpc_memory_bytes = 64ull << 20;
    // File mode of the socket when `listen` is unix:///path.
    int unix_socket_mode = 0660;
    // TLS for the gRPC port (both files, PEM). client_ca_file turns on mTLS:
    // clients must present a certificate signed by it.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_client_ca_file;
    // A non-loopback `listen` without TLS is refused unless this is true
    // (then warned about at start-up): gRPC has no authentication of its own.
    bool allow_insecure_remote = false;
  } server;

  absl::Duration drain_timeout = absl::Seconds(20);

  // dead_letter.{path, max_bytes, max_files}.
  DeadLetterOptions dead_letter;
};

// Parses and validates YAML text. Errors name `source`, the key and the rule:
// "config.yaml: batching.max_items: must be between 1 and 25 (got 30)".
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& source);

// Reads `path`, then ParseConfig, then ApplyEnvironment with the process env.
absl::StatusOr<Config> LoadConfig(const std::string& path);

// 12-factor overrides: DYNAMO_BATCHER_LISTEN, DYNAMO_BATCHER_METRICS_LISTEN,
// DYNAMO_BATCHER_ENDPOINT, DYNAMO_BATCHER_REGION, validated like the file's
// keys. Also refuses the final `listen` when it is reachable from other hosts
// without TLS and server.allow_insecure_remote is not set. `getenv` is
// injectable for tests.
absl::Status ApplyEnvironment(Config* config, const char* (*getenv_fn)(const char*));

// Whether `listen` can be reached from other hosts (not loopback, not a
// unix socket).
bool ListenIsRemote(const Config& config);

// Parses "256MiB", "64KB", "1048576" into bytes.
absl::StatusOr<uint64_t> ParseByteSize(const std::string& text);

}  // namespace dynamo_batcher
