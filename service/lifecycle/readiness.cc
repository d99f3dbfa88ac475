#include "service/lifecycle/readiness.h"

#include <random>
#include <utility>

#include "service/common/log.h"

namespace dynamo_batcher {

ReadinessProbe::ReadinessProbe(Options options, TableChecker* checker,
                               std::function<bool()> reached, HealthState* health)
    : options_(std::move(options)),
      checker_(checker),
      reached_(std::move(reached)),
      health_(health) {}

ReadinessProbe::~ReadinessProbe() { Stop(); }

bool ReadinessProbe::ProbeOnce() {
  if (!probed_ok_ && !reached_()) {
    absl::StatusOr<TableSchema> s = checker_->DescribeTable(options_.table);
    if (s.ok()) {
      probed_ok_ = true;
    } else {
      LogRateLimited(LogLevel::kWarn, "readiness", absl::Seconds(30),
                     "DynamoDB not reachable yet; health NOT_SERVING",
                     {{"error", s.status().ToString()}});
    }
  }
  if (probed_ok_ || reached_()) {
    health_->SetServing(true);
    return true;
  }
  return false;
}

void ReadinessProbe::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void ReadinessProbe::RequestStop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

void ReadinessProbe::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

void ReadinessProbe::Run() {
  std::minstd_rand rng(std::random_device{}());  // only if the backoff has jitter
  for (uint32_t failures = 1;; ++failures) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    if (ProbeOnce()) return;
    const absl::Duration delay = options_.backoff.Next(failures, rng);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), delay);
  }
}

}  // namespace dynamo_batcher
