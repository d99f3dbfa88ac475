#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/common/types.h"

namespace dynamo_batcher {

struct DeadLetterOptions {
  std::string path;                   // empty: disabled
  uint64_t max_bytes = 256ull << 20;  // rotate beyond this
  int max_files = 3;                  // path, path.1 .. path.(max_files-1)
  absl::Duration fsync_interval = absl::Milliseconds(200);
};

// Appends FAILED writes as JSON lines so nothing disappears silently:
// {"table":..,"op":"put"|"delete","item"|"key":{DynamoDB JSON},
//  "id":..,"error_code":..,"message":..,"attempts":..,
//  "first_seen":"RFC3339","failed_at":"RFC3339"}
// `batchctl replay FILE` sends them again.
//
// The files are created 0600 (rotations keep that mode), opened with
// O_NOFOLLOW and only when owned by the sidecar's user; a directory writable
// by group or others is warned about once.
//
// fsync is batched: at most once per fsync_interval, and on Sync()/close.
// Thread-safety: none; owned by the engine thread.
class DeadLetterWriter {
 public:
  explicit DeadLetterWriter(DeadLetterOptions options);
  ~DeadLetterWriter();

  bool enabled() const { return !options_.path.empty(); }
  absl::Status Open();
  // `first_seen` is wall-clock time of arrival.
  absl::Status Append(const std::string& table, const OpResult& result, absl::Time first_seen,
                      absl::Time now);
  // fsyncs if anything was written since the last sync.
  void Sync();
  // fsyncs if the interval has passed.
  void MaybeSync(absl::Time now);

 private:
  absl::Status Rotate();

  DeadLetterOptions options_;
  FILE* file_ = nullptr;
  uint64_t size_ = 0;
  bool dirty_ = false;
  bool dir_checked_ = false;
  absl::Time last_sync_ = absl::InfinitePast();
};

}  // namespace dynamo_batcher
