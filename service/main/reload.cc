#include "service/main/reload.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "service/auth/sigv4.h"
#include "service/common/log.h"

namespace dynamo_batcher {
namespace {

RateLimiterOptions RateFromConfig(const Config& config, const TableConfig& table) {
  RateLimiterOptions rate = config.rate_limit;
  if (table.max_rate > 0) {
    rate.max_rate = table.max_rate;
    rate.initial_rate = table.max_rate;
  }
  return rate;
}

bool SameKey(const KeyAttribute& a, const KeyAttribute& b) {
  return a.name == b.name && a.type == b.type;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ShortHash(const std::string& text) { return Sha256Hex(text).substr(0, 16); }

}  // namespace

std::vector<EngineTable> EngineTablesFromConfig(const Config& config) {
  std::vector<EngineTable> tables;
  for (const auto& t : config.tables) {
    EngineTable et;
    et.schema = t.schema;
    et.rate = RateFromConfig(config, t);
    tables.push_back(et);
  }
  return tables;
}

EngineLiveSettings LiveSettingsFromConfig(const Config& config) {
  EngineLiveSettings s;
  s.batching = config.batching;
  s.retry = config.retry;
  s.max_buffer_bytes = config.buffer.max_bytes;
  s.max_table_buffer_bytes = config.buffer.max_table_bytes;
  for (const auto& t : config.tables) s.rates.push_back(RateFromConfig(config, t));
  return s;
}

EngineOptions EngineOptionsFromConfig(const Config& config) {
  EngineLiveSettings live = LiveSettingsFromConfig(config);
  EngineOptions o;
  o.batching = live.batching;
  o.retry = live.retry;
  o.max_buffer_bytes = live.max_buffer_bytes;
  o.max_table_buffer_bytes = live.max_table_buffer_bytes;
  o.dead_letter = config.dead_letter;
  o.inflight_grace = config.dynamodb.call_timeout + absl::Seconds(2);
  return o;
}

std::vector<std::string> RestartOnlyChanges(const Config& a, const Config& b) {
  std::vector<std::string> out;
  auto check = [&out](bool same, const char* key) {
    if (!same) out.push_back(key);
  };
  check(a.listen == b.listen, "listen");
  check(a.metrics_listen == b.metrics_listen, "metrics_listen");
  check(a.dynamodb.region == b.dynamodb.region, "dynamodb.region");
  check(a.dynamodb.endpoint == b.dynamodb.endpoint, "dynamodb.endpoint");
  check(a.dynamodb.call_timeout == b.dynamodb.call_timeout, "dynamodb.call_timeout");
  check(a.dynamodb.connect_timeout == b.dynamodb.connect_timeout, "dynamodb.connect_timeout");
  check(a.dynamodb.max_connections == b.dynamodb.max_connections, "dynamodb.max_connections");
  check(a.dynamodb.tls_verify == b.dynamodb.tls_verify, "dynamodb.tls_verify");
  check(a.dynamodb.ca_file == b.dynamodb.ca_file, "dynamodb.ca_file");
  check(a.dynamodb.access_key_id == b.dynamodb.access_key_id &&
            a.dynamodb.secret_access_key == b.dynamodb.secret_access_key &&
            a.dynamodb.session_token == b.dynamodb.session_token,
        "dynamodb credentials");
  check(a.dynamodb.create_tables == b.dynamodb.create_tables, "dynamodb.create_tables");
  std::vector<std::string> names_a, names_b;
  for (const auto& t : a.tables) names_a.push_back(t.schema.name);
  for (const auto& t : b.tables) names_b.push_back(t.schema.name);
  if (names_a != names_b) {
    out.push_back("tables");
  } else {
    for (size_t i = 0; i < a.tables.size(); ++i) {
      const TableConfig& ta = a.tables[i];
      const TableConfig& tb = b.tables[i];
      // Schema from DescribeTable at start, none in the new file either:
      // nothing to compare. Otherwise the new file's schema must match.
      if (!tb.schema_from_config && !ta.schema_from_config) continue;
      const std::string prefix = absl::StrCat("tables[", ta.schema.name, "]");
      if (!tb.schema_from_config) {
        out.push_back(absl::StrCat(prefix, " key schema (now from DescribeTable)"));
        continue;
      }
      if (!SameKey(ta.schema.partition_key, tb.schema.partition_key)) {
        out.push_back(absl::StrCat(prefix, ".partition_key"));
      }
      const bool same_sort =
          ta.schema.sort_key.has_value() == tb.schema.sort_key.has_value() &&
          (!ta.schema.sort_key || SameKey(*ta.schema.sort_key, *tb.schema.sort_key));
      if (!same_sort) out.push_back(absl::StrCat(prefix, ".sort_key"));
    }
  }
  const auto& sa = a.server;
  const auto& sb = b.server;
  check(sa.max_message_bytes == sb.max_message_bytes, "server.max_message_bytes");
  check(sa.grpc_memory_bytes == sb.grpc_memory_bytes, "server.grpc_memory_bytes");
  check(sa.max_ops_per_message == sb.max_ops_per_message, "server.max_ops_per_message");
  check(sa.max_streams == sb.max_streams, "server.max_streams");
  check(sa.max_inflight_ops_per_stream == sb.max_inflight_ops_per_stream,
        "server.max_inflight_ops_per_stream");
  check(sa.unix_socket_mode == sb.unix_socket_mode, "server.unix_socket_mode");
  check(sa.tls_cert_file == sb.tls_cert_file && sa.tls_key_file == sb.tls_key_file &&
            sa.tls_client_ca_file == sb.tls_client_ca_file,
        "server.tls");
  check(a.drain_timeout == b.drain_timeout, "drain_timeout");
  check(a.dead_letter.path == b.dead_letter.path &&
            a.dead_letter.max_bytes == b.dead_letter.max_bytes &&
            a.dead_letter.max_files == b.dead_letter.max_files,
        "dead_letter");
  return out;
}

Config MergeLiveKeys(const Config& running, const Config& next) {
  Config merged = running;
  merged.log = next.log;
  merged.batching = next.batching;
  merged.retry = next.retry;
  merged.rate_limit = next.rate_limit;
  merged.buffer = next.buffer;
  // Per-table ceilings follow the table by name; the table list itself is
  // restart-only.
  for (auto& t : merged.tables) {
    for (const auto& n : next.tables) {
      if (n.schema.name == t.schema.name) t.max_rate = n.max_rate;
    }
  }
  return merged;
}

ConfigReloader::ConfigReloader(std::string path, Config running, Engine* engine, Metrics* metrics)
    : path_(std::move(path)), running_(std::move(running)), engine_(engine), metrics_(metrics) {
  auto text = ReadText(path_);
  hash_ = text.ok() ? ShortHash(*text) : "unknown";
  metrics_->SetConfigHash(hash_);
  metrics_->config_reload_success().Set(1);
  metrics_->config_last_reload_timestamp().Set(
      absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
}

absl::Status ConfigReloader::Reload() {
  // One read: the hash is of exactly the bytes that were validated.
  absl::StatusOr<Config> next = absl::InternalError("unread");
  auto text = ReadText(path_);
  if (text.ok()) {
    next = ParseConfig(*text, path_);
    if (next.ok()) {
      absl::Status env =
          ApplyEnvironment(&*next, [](const char* n) -> const char* { return std::getenv(n); });
      if (!env.ok()) next = env;
    }
  } else {
    next = text.status();
  }
  LogLevel level = LogLevel::kInfo;
  if (next.ok()) {
    absl::StatusOr<LogLevel> parsed = ParseLogLevel(next->log.level);
    if (parsed.ok()) {
      level = *parsed;
    } else {
      next = absl::InvalidArgumentError(
          absl::StrCat(path_, ": log.level: ", parsed.status().message()));
    }
  }
  if (!next.ok()) {
    metrics_->config_reload_success().Set(0);
    metrics_->ConfigReloads("failure").Increment();
    Log(LogLevel::kError, "config reload refused; the running configuration is kept",
        {{"config", path_}, {"error", std::string(next.status().message())}});
    return next.status();
  }
  const std::vector<std::string> restart_only = RestartOnlyChanges(running_, *next);
  Config merged = MergeLiveKeys(running_, *next);
  engine_->Reconfigure(LiveSettingsFromConfig(merged));
  SetLogLevel(level);
  running_ = std::move(merged);
  hash_ = ShortHash(*text);
  metrics_->SetConfigHash(hash_);
  metrics_->config_reload_success().Set(1);
  metrics_->config_last_reload_timestamp().Set(
      absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  metrics_->ConfigReloads("success").Increment();
  Log(LogLevel::kInfo, "config reloaded",
      {{"config", path_},
       {"hash", hash_},
       {"log_level", running_.log.level},
       {"linger", absl::FormatDuration(running_.batching.linger)},
       {"max_items", absl::StrCat(running_.batching.max_items)},
       {"max_inflight_calls", absl::StrCat(running_.batching.max_inflight_calls)},
       {"retry_max_attempts", absl::StrCat(running_.retry.max_attempts)},
       {"buffer_max_bytes", absl::StrCat(running_.buffer.max_bytes)}});
  if (!restart_only.empty()) {
    Log(LogLevel::kWarn, "config reload: these changes need a restart and are not applied",
        {{"config", path_}, {"keys", absl::StrJoin(restart_only, ",")}});
  }
  return absl::OkStatus();
}

}  // namespace dynamo_batcher
