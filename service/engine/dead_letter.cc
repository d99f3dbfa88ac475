#include "service/engine/dead_letter.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "service/codec/codec.h"

namespace dynamo_batcher {
namespace {

constexpr absl::string_view kPutPrefix = "{\"PutRequest\":{\"Item\":";
constexpr absl::string_view kDeletePrefix = "{\"DeleteRequest\":{\"Key\":";

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace

DeadLetterWriter::DeadLetterWriter(DeadLetterOptions options)
    : options_(std::move(options)) {}

DeadLetterWriter::~DeadLetterWriter() {
  if (file_ != nullptr) {
    Sync();
    fclose(file_);
  }
}

absl::Status DeadLetterWriter::Open() {
  if (!enabled()) return absl::OkStatus();
  file_ = fopen(options_.path.c_str(), "ae");
  if (file_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("dead_letter.path: cannot open ",
                                               options_.path, ": ", strerror(errno)));
  }
  fseek(file_, 0, SEEK_END);
  size_ = static_cast<uint64_t>(ftell(file_));
  return absl::OkStatus();
}

absl::Status DeadLetterWriter::Rotate() {
  Sync();
  fclose(file_);
  file_ = nullptr;
  for (int i = options_.max_files - 1; i >= 1; --i) {
    std::string from = i == 1 ? options_.path : absl::StrCat(options_.path, ".", i - 1);
    std::string to = absl::StrCat(options_.path, ".", i);
    rename(from.c_str(), to.c_str());
  }
  if (options_.max_files <= 1) unlink(options_.path.c_str());
  size_ = 0;
  return Open();
}

absl::Status DeadLetterWriter::Append(const std::string& table, const OpResult& result,
                                      absl::Time first_seen, absl::Time now) {
  if (!enabled()) return absl::OkStatus();
  if (file_ == nullptr) {
    absl::Status s = Open();
    if (!s.ok()) return s;
  }
  const std::string& req = result.op.write.request_json;
  absl::string_view prefix = result.op.write.is_delete ? kDeletePrefix : kPutPrefix;
  absl::string_view body;
  if (req.size() >= prefix.size() + 2 && absl::string_view(req).substr(0, prefix.size()) == prefix) {
    body = absl::string_view(req).substr(prefix.size(), req.size() - prefix.size() - 2);
  }
  std::string line = "{\"table\":";
  AppendJsonString(table, &line);
  absl::StrAppend(&line, ",\"op\":\"", result.op.write.is_delete ? "delete" : "put", "\",\"",
                  result.op.write.is_delete ? "key" : "item", "\":", body.empty() ? "null" : body,
                  ",\"id\":", result.op.id, ",\"error_code\":");
  AppendJsonString(result.error_code, &line);
  line.append(",\"message\":");
  AppendJsonString(result.message, &line);
  absl::StrAppend(&line, ",\"attempts\":", result.op.attempts, ",\"first_seen\":\"",
                  Rfc3339(first_seen), "\",\"failed_at\":\"", Rfc3339(now), "\"}\n");
  if (size_ > 0 && size_ + line.size() > options_.max_bytes) {
    absl::Status s = Rotate();
    if (!s.ok()) return s;
  }
  if (fwrite(line.data(), 1, line.size(), file_) != line.size()) {
    return absl::UnavailableError(absl::StrCat("dead-letter write to ", options_.path,
                                               " failed: ", strerror(errno)));
  }
  size_ += line.size();
  dirty_ = true;
  MaybeSync(now);
  return absl::OkStatus();
}

void DeadLetterWriter::Sync() {
  if (file_ == nullptr || !dirty_) return;
  fflush(file_);
  fsync(fileno(file_));
  dirty_ = false;
}

void DeadLetterWriter::MaybeSync(absl::Time now) {
  if (!dirty_) return;
  if (now - last_sync_ >= options_.fsync_interval) {
    Sync();
    last_sync_ = now;
  } else if (file_ != nullptr) {
    fflush(file_);
  }
}

}  // namespace dynamo_batcher
