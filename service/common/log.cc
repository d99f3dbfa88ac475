#include "service/common/log.h"

#include <atomic>
#include <cstdio>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace dynamo_batcher {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void AppendJsonEscaped(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void Emit(LogLevel level, absl::string_view msg, LogFields fields, int64_t suppressed) {
  std::string line = "{\"ts\":";
  AppendJsonEscaped(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
                    &line);
  line.append(",\"level\":\"").append(LevelName(level)).append("\",\"msg\":");
  AppendJsonEscaped(msg, &line);
  for (const auto& [k, v] : fields) {
    line.push_back(',');
    AppendJsonEscaped(k, &line);
    line.push_back(':');
    AppendJsonEscaped(v, &line);
  }
  if (suppressed > 0) absl::StrAppend(&line, ",\"suppressed\":", suppressed);
  line.append("}\n");
  fwrite(line.data(), 1, line.size(), stderr);
}

struct Limiter {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::pair<absl::Time, int64_t>> last ABSL_GUARDED_BY(mu);
};
Limiter& GetLimiter() {
  static Limiter* l = new Limiter;
  return *l;
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("must be debug, info, warn or error (got \"", name, "\")"));
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void Log(LogLevel level, absl::string_view msg, LogFields fields) {
  if (!LogEnabled(level)) return;
  Emit(level, msg, fields, 0);
}

void LogRateLimited(LogLevel level, absl::string_view key, absl::Duration period,
                    absl::string_view msg, LogFields fields) {
  if (!LogEnabled(level)) return;
  int64_t suppressed = 0;
  {
    Limiter& l = GetLimiter();
    absl::MutexLock lock(&l.mu);
    auto now = absl::Now();
    auto [it, inserted] = l.last.try_emplace(std::string(key), now, 0);
    if (!inserted) {
      if (now - it->second.first < period) {
        ++it->second.second;
        return;
      }
      suppressed = it->second.second;
      it->second = {now, 0};
    }
  }
  Emit(level, msg, fields, suppressed);
}

}  // namespace dynamo_batcher
