#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "service/config/config.h"
#include "service/engine/engine.h"
#include "service/metrics/metrics.h"

namespace dynamo_batcher {

// The one mapping from Config to the engine's settings, used at start-up and
// on every reload, so a reloaded file means exactly what it would mean after
// a restart.
std::vector<EngineTable> EngineTablesFromConfig(const Config& config);
EngineOptions EngineOptionsFromConfig(const Config& config);
EngineLiveSettings LiveSettingsFromConfig(const Config& config);

// Keys whose new value differs from the running one but only takes effect
// after a restart (listeners, DynamoDB connection and credentials, the
// tables and their key schemas, server limits, TLS, dead-letter file,
// drain_timeout), as dotted names ("listen", "tables[events].partition_key").
// A table whose key schema came from DescribeTable is compared by name only
// when the new config does not give a schema either.
std::vector<std::string> RestartOnlyChanges(const Config& running, const Config& next);

// `running` with every live key (log level, batching, retry, rate limits,
// per-table max_rate, buffer budgets) taken from `next`; restart-only keys
// keep their running values.
Config MergeLiveKeys(const Config& running, const Config& next);

// Reloads the configuration file on request (SIGHUP): re-reads and validates
// it; an invalid file is logged and the running configuration kept; live keys
// are handed to the engine (which applies them on its own thread) and the log
// level is set; changed restart-only keys are logged as needing a restart.
// Keeps dynamo_batcher_config_hash / _config_reload_success /
// _config_last_reload_timestamp_seconds / _config_reloads_total.
//
// Thread-safety: Reload from one thread at a time (the signal thread).
//
// Usage:
//   ConfigReloader reloader(path, config, &engine, &metrics);
//   ... on SIGHUP: reloader.Reload();
class ConfigReloader {
 public:
  // `running` is the configuration the process started with (key schemas
  // resolved). Reads the file once more to record its hash.
  ConfigReloader(std::string path, Config running, Engine* engine, Metrics* metrics);

  // OK when the file was valid and its live keys are now in effect (also
  // when some restart-only keys changed: those are logged, not applied).
  absl::Status Reload();

  const Config& running() const { return running_; }
  const std::string& hash() const { return hash_; }

 private:
  std::string path_;
  Config running_;
  Engine* engine_;
  Metrics* metrics_;
  std::string hash_;
};

}  // namespace dynamo_batcher
