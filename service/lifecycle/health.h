#pragma once

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dynamo_batcher {

// The sidecar's one serving state, behind gRPC health ("" and the
// WriteBatcher service), /readyz and the ready gauge: NOT_SERVING until
// DynamoDB answered once, SERVING then, NOT_SERVING for good once shutdown
// begins (a late readiness probe can no longer turn it back on).
//
// Thread-safety: every method may be called from any thread. `publish` runs
// under the lock, so publications arrive in the order of the changes.
//
// Usage:
//   HealthState health([&](bool on) { grpc_health->SetServingStatus(on); ... });
//   health.SetServing(true);    // DynamoDB answered
//   health.BeginShutdown();     // SIGTERM
class HealthState {
 public:
  // Publishes NOT_SERVING at once.
  explicit HealthState(std::function<void(bool serving)> publish);

  // Ignored once BeginShutdown was called.
  void SetServing(bool on);
  // NOT_SERVING, final.
  void BeginShutdown();

  bool serving() const;
  bool shutting_down() const;

 private:
  mutable absl::Mutex mu_;
  std::function<void(bool)> publish_ ABSL_GUARDED_BY(mu_);
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool final_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dynamo_batcher
