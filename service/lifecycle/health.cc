#include "service/lifecycle/health.h"

#include <utility>

namespace dynamo_batcher {

HealthState::HealthState(std::function<void(bool)> publish) {
  absl::MutexLock lock(&mu_);
  publish_ = std::move(publish);
  publish_(false);
}

void HealthState::SetServing(bool on) {
  absl::MutexLock lock(&mu_);
  if (final_) return;
  serving_ = on;
  publish_(on);
}

void HealthState::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  if (final_) return;
  final_ = true;
  serving_ = false;
  publish_(false);
}

bool HealthState::serving() const {
  absl::MutexLock lock(&mu_);
  return serving_;
}

bool HealthState::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return final_;
}

}  // namespace dynamo_batcher
