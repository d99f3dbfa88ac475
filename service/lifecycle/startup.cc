#include "service/lifecycle/startup.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"

namespace dynamo_batcher {
namespace {

std::string KeyName(const KeyAttribute& k) {
  return absl::StrCat(k.name, ":", KeyTypeName(k.type));
}

}  // namespace

absl::StatusOr<bool> ResolveKeySchemas(std::vector<TableConfig>* tables,
                                       const StartupOptions& options, TableChecker* checker,
                                       const std::function<void(absl::Duration)>& sleep,
                                       const std::function<bool()>& stop_requested) {
  bool reached_dynamodb = false;
  std::minstd_rand rng(std::random_device{}());  // only if the backoff has jitter
  for (TableConfig& t : *tables) {
    if (options.create_tables && t.schema_from_config) {
      absl::Status s = checker->CreateTableIfMissing(t.schema);
      if (!s.ok()) {
        Log(LogLevel::kError, "cannot create table",
            {{"table", t.schema.name}, {"error", s.ToString()}});
        return s;
      }
      reached_dynamodb = true;
    }
    if (t.schema_from_config) continue;
    for (uint32_t attempt = 1;; ++attempt) {
      absl::StatusOr<TableSchema> schema = checker->DescribeTable(t.schema.name);
      if (schema.ok()) {
        t.schema = *std::move(schema);
        reached_dynamodb = true;
        Log(LogLevel::kInfo, "key schema from DescribeTable",
            {{"table", t.schema.name},
             {"partition_key", KeyName(t.schema.partition_key)},
             {"sort_key", t.schema.sort_key ? KeyName(*t.schema.sort_key) : "-"}});
        break;
      }
      const absl::StatusCode code = schema.status().code();
      if (code == absl::StatusCode::kNotFound || code == absl::StatusCode::kPermissionDenied ||
          static_cast<int>(attempt) >= options.max_describe_attempts) {
        Log(LogLevel::kError,
            "cannot read the table's key schema (give it in the config, or fix access)",
            {{"table", t.schema.name}, {"error", schema.status().ToString()}});
        return schema.status();
      }
      Log(LogLevel::kWarn, "DescribeTable failed; retrying",
          {{"table", t.schema.name}, {"error", schema.status().ToString()}});
      if (stop_requested()) {
        return absl::CancelledError("stopped by a signal during start-up");
      }
      sleep(options.describe_backoff.Next(attempt, rng));
    }
  }
  return reached_dynamodb;
}

}  // namespace dynamo_batcher
