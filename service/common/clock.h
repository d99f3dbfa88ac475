#pragma once

#include <atomic>
#include <chrono>

#include "absl/time/time.h"

namespace dynamo_batcher {

// Source of "now" for the threaded parts. The pure core never reads a clock:
// it takes `now` as an argument, so tests drive it with FakeClock.
//
// Thread-safety: implementations are safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time. Only differences are meaningful; the epoch is arbitrary.
  virtual absl::Time Now() const = 0;
};

// Monotonic clock backed by std::chrono::steady_clock.
class SteadyClock : public Clock {
 public:
  absl::Time Now() const override {
    return absl::UnixEpoch() +
           absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }
};

// A clock that moves only when told to. For tests.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(1))
      : now_ns_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(now_ns_.load()); }
  void AdvanceTime(absl::Duration d) { now_ns_ += absl::ToInt64Nanoseconds(d); }
  void SetTime(absl::Time t) { now_ns_ = absl::ToUnixNanos(t); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace dynamo_batcher
