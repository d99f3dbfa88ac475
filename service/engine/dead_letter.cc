#include "service/engine/dead_letter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "service/codec/codec.h"
#include "service/common/log.h"

namespace dynamo_batcher {
namespace {

constexpr absl::string_view kPutPrefix = "{\"PutRequest\":{\"Item\":";
constexpr absl::string_view kDeletePrefix = "{\"DeleteRequest\":{\"Key\":";

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

DeadLetterWriter::DeadLetterWriter(DeadLetterOptions options) : options_(std::move(options)) {}

DeadLetterWriter::~DeadLetterWriter() {
  if (file_ != nullptr) {
    Sync();
    fclose(file_);
  }
}

absl::Status DeadLetterWriter::Open() {
  if (!enabled()) return absl::OkStatus();
  // The file holds whole items: readable by the sidecar's user only. A
  // symlink planted at the path is refused rather than followed, and a file
  // someone else created there is not written to.
  const int fd =
      open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat(
        "dead_letter.path: cannot open ", options_.path, ": ", strerror(err),
        err == ELOOP ? " (a symbolic link; the dead-letter file must be a regular file)" : ""));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("dead_letter.path: ", options_.path,
                     " must be a regular file owned by the sidecar's user"));
  }
  if ((st.st_mode & 077) != 0) {
    // Left by an older version or another tool: tighten it before writing.
    if (fchmod(fd, 0600) != 0) {
      close(fd);
      return absl::UnavailableError(absl::StrCat("dead_letter.path: cannot chmod 0600 ",
                                                 options_.path, ": ", strerror(errno)));
    }
    Log(LogLevel::kWarn, "dead-letter file was readable by others; mode set to 0600",
        {{"path", options_.path}});
  }
  if (!dir_checked_) {
    dir_checked_ = true;
    const std::string dir = DirectoryOf(options_.path);
    struct stat dst;
    if (stat(dir.c_str(), &dst) == 0 && (dst.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      Log(LogLevel::kWarn,
          "dead-letter directory is writable by other users: they can delete or replace "
          "the dead-letter files; use a directory only the sidecar's user can write",
          {{"directory", dir}});
    }
  }
  file_ = fdopen(fd, "a");
  if (file_ == nullptr) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("dead_letter.path: cannot open ", options_.path, ": ", strerror(err)));
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
  if (req.size() >= prefix.size() + 2 &&
      absl::string_view(req).substr(0, prefix.size()) == prefix) {
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
    return absl::UnavailableError(
        absl::StrCat("dead-letter write to ", options_.path, " failed: ", strerror(errno)));
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
