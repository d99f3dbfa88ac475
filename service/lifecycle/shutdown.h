#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/lifecycle/health.h"

namespace dynamo_batcher {

// What the drain sequence drives. The sidecar implements it over the
// Engine, the WriteBatcher service and the grpc::Server; tests with a fake.
//
// Thread-safety: called from the thread running RunDrain only.
class DrainTarget {
 public:
  virtual ~DrainTarget() = default;
  // New streams and calls are refused from now on.
  virtual void StopAccepting() = 0;
  // Flushes what is buffered and waits up to `timeout` for results; then
  // fails what is left. True when nothing failed and nothing is left.
  virtual bool DrainBuffered(absl::Duration timeout) = 0;
  virtual uint64_t pending_ops() const = 0;
  virtual uint64_t failed_ops() const = 0;
  virtual int active_streams() const = 0;
  // No stream or call is left to answer.
  virtual bool idle() const = 0;
  // Shuts the gRPC server down, waiting at most `grace` for open calls.
  virtual void ShutdownServer(absl::Duration grace) = 0;
};

struct DrainOptions {
  std::string signal = "SIGTERM";  // what started the drain, for the log
  absl::Duration drain_timeout = absl::Seconds(20);
  // How long streams and calls get to finish after the engine drained.
  absl::Duration server_grace = absl::Seconds(2);
  // Once idle: a moment for the last unary answers to leave (a unary call
  // counts as done at Finish).
  absl::Duration idle_grace = absl::Milliseconds(250);
  // A second engine drain for ops submitted while gRPC shut down.
  absl::Duration final_drain = absl::Seconds(1);
  absl::Duration poll = absl::Milliseconds(5);
};

// The graceful drain (G7), after SIGTERM: health NOT_SERVING for good, new
// streams refused, the engine drained for up to drain_timeout, then the
// gRPC server shut down (cut short once nothing is left to answer), then
// one more engine drain for ops whose message was read as the drain began.
// Returns whether it was clean: nothing failed since `failed_before` and
// nothing is left pending. Logs each step.
//
// `sleep` waits between polls (tests pass one that advances a FakeClock).
//
// Thread-safety: a plain function, run by one thread.
bool RunDrain(DrainTarget* target, HealthState* health, const DrainOptions& options,
              uint64_t failed_before, const Clock& clock,
              const std::function<void(absl::Duration)>& sleep);

// The longest a shutdown may take before Watchdog forces exit: the drain,
// then up to one call_timeout for calls already sent to DynamoDB (their items
// may land, so they are waited for, not failed), plus the gRPC shutdown grace.
absl::Duration ShutdownHardLimit(absl::Duration drain_timeout, absl::Duration call_timeout);

// Calls `expire` unless cancelled within `limit`, so a stuck shutdown still
// ends the process. Cancelled by its destructor.
//
// Thread-safety: Cancel from any thread; `expire` runs on the watchdog's
// own thread.
//
// Usage:
//   Watchdog watchdog(ShutdownHardLimit(...), [] { _exit(1); });
class Watchdog {
 public:
  Watchdog(absl::Duration limit, std::function<void()> expire);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Cancel();

 private:
  std::atomic<bool> cancel_requested_{false};
  absl::Notification cancelled_;
  std::thread thread_;
};

}  // namespace dynamo_batcher
