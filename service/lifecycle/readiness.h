#pragma once

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/backoff.h"
#include "service/lifecycle/health.h"
#include "service/lifecycle/table_checker.h"

namespace dynamo_batcher {

// Turns health SERVING once DynamoDB answered: at once if `reached()` says
// it already did (start-up's DescribeTable or CreateTable, or a successful
// write), otherwise after a DescribeTable of `table` succeeds, probed with
// backoff. Ends once SERVING, or when stopped.
//
// Thread-safety: Start, RequestStop and Stop from one owner thread; the
// probe runs on a thread of its own.
//
// Usage:
//   ReadinessProbe probe(options, &checker, [&] { return engine.had_success(); }, &health);
//   probe.Start();
//   ... probe.RequestStop();   // shutdown: never waits
//   ... probe.Stop();          // joins, at most one DescribeTable call away
class ReadinessProbe {
 public:
  struct Options {
    std::string table;  // probed with DescribeTable
    ExponentialBackoff backoff{absl::Milliseconds(250), absl::Seconds(5), 2.0,
                               ExponentialBackoff::kNoJitter};
  };

  ReadinessProbe(Options options, TableChecker* checker, std::function<bool()> reached,
                 HealthState* health);
  ~ReadinessProbe();  // Stop()

  // One step, on the caller's thread: true (and health SERVING) when
  // DynamoDB has answered.
  bool ProbeOnce();

  void Start();
  // Asks the probe thread to end; returns at once.
  void RequestStop();
  // RequestStop, then waits for the thread.
  void Stop();

 private:
  void Run();

  const Options options_;
  TableChecker* const checker_;
  const std::function<bool()> reached_;
  HealthState* const health_;
  bool probed_ok_ = false;  // probe thread (or ProbeOnce's caller) only

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dynamo_batcher
