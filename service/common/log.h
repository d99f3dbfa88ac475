#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dynamo_batcher {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Structured logs: one JSON object per line on stderr,
// {"ts":"...","level":"info","msg":"...","key":"value",...}.
// Thread-safety: all functions may be called from any thread.
using LogFields = std::initializer_list<std::pair<absl::string_view, std::string>>;

void SetLogLevel(LogLevel level);
// "debug", "info", "warn" or "error"; INVALID_ARGUMENT "must be debug, info,
// warn or error (got \"<name>\")" for anything else.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, absl::string_view msg, LogFields fields = {});

// Like Log, but at most once per `period` for the same `key`; the next line
// that passes carries "suppressed":N, so a throttling storm cannot flood logs.
void LogRateLimited(LogLevel level, absl::string_view key, absl::Duration period,
                    absl::string_view msg, LogFields fields = {});

}  // namespace dynamo_batcher
