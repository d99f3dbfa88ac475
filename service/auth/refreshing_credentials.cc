#include "service/auth/refreshing_credentials.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/common/log.h"

namespace dynamo_batcher {

RefreshingCredentialsProvider::RefreshingCredentialsProvider(std::string name, Fetch fetch,
                                                             RefreshOptions options)
    : name_(std::move(name)), fetch_(std::move(fetch)), options_(std::move(options)) {
  if (!options_.wall_now) options_.wall_now = [] { return absl::Now(); };
}

RefreshingCredentialsProvider::~RefreshingCredentialsProvider() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (worker_.joinable()) worker_.join();
}

bool RefreshingCredentialsProvider::Usable(absl::Time now) const {
  if (!cached_) return false;
  return !cached_->expiration || now < *cached_->expiration;
}

bool RefreshingCredentialsProvider::RefreshDue(absl::Time now) const {
  if (!cached_ || now < next_attempt_) return false;
  if (!cached_->expiration) return now - fetched_at_ >= options_.refresh_without_expiration;
  const absl::Duration lifetime =
      std::max(absl::ZeroDuration(), *cached_->expiration - fetched_at_);
  const absl::Duration ahead =
      std::min(options_.refresh_ahead, lifetime * options_.refresh_ahead_fraction);
  return now >= *cached_->expiration - ahead;
}

void RefreshingCredentialsProvider::Complete(const absl::StatusOr<AwsCredentials>& result,
                                             absl::Time started) {
  refreshing_ = false;
  ++generation_;
  const absl::Time now = options_.wall_now();
  if (result.ok()) {
    cached_ = *result;
    fetched_at_ = started;
    last_error_ = absl::OkStatus();
    consecutive_failures_ = 0;
    // Credentials that come back already inside the refresh window (IMDS
    // hands out the same ones until close to expiry) must not make every
    // call refresh again.
    next_attempt_ = RefreshDue(now) ? now + options_.min_attempt_interval : absl::InfinitePast();
  } else {
    failures_.fetch_add(1);
    last_error_ = result.status();
    ++consecutive_failures_;
    absl::Duration wait = options_.min_attempt_interval;
    if (!Usable(now)) {
      // Nothing to serve meanwhile: back off from retry_initial.
      wait = options_.retry_initial;
      for (int i = 1; i < consecutive_failures_ && wait < options_.min_attempt_interval; ++i) {
        wait *= 2;
      }
      wait = std::min(wait, options_.min_attempt_interval);
    }
    next_attempt_ = now + wait;
    Log(LogLevel::kWarn, "credentials refresh failed",
        {{"provider", name_},
         {"error", std::string(result.status().message())},
         {"have_valid_credentials", Usable(now) ? "true" : "false"},
         {"retry_in", absl::FormatDuration(wait)}});
    if (options_.on_failure) options_.on_failure(name_, result.status());
  }
  done_cv_.SignalAll();
}

void RefreshingCredentialsProvider::StartBackgroundRefresh() {
  refreshing_ = true;
  auto task = [this] {
    const absl::Time started = options_.wall_now();
    absl::StatusOr<AwsCredentials> result = fetch_();
    absl::MutexLock lock(&mu_);
    Complete(result, started);
  };
  if (options_.run_async) {
    options_.run_async(std::move(task));
    return;
  }
  // The previous worker has finished its task (refreshing_ was false), so
  // this join does not wait for a fetch.
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread(std::move(task));
}

absl::StatusOr<AwsCredentials> RefreshingCredentialsProvider::GetCredentials() {
  return Get(/*may_block=*/!options_.never_block);
}

absl::StatusOr<AwsCredentials> RefreshingCredentialsProvider::GetCredentialsBlocking() {
  return Get(/*may_block=*/true);
}

absl::StatusOr<AwsCredentials> RefreshingCredentialsProvider::Get(bool may_block) {
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = options_.wall_now();
    if (Usable(now)) {
      if (!refreshing_ && !stopping_ && RefreshDue(now)) StartBackgroundRefresh();
      return *cached_;
    }
    if (!may_block) {
      // The caller must not wait on I/O: fetch in the background and let it
      // come back (writes retry until their deadline).
      if (!refreshing_ && !stopping_ && now >= next_attempt_) StartBackgroundRefresh();
      return absl::UnavailableError(
          absl::StrCat("not available yet (", refreshing_ ? "fetching" : "retrying",
                       last_error_.ok() ? "" : "; last error: ", last_error_.message(), ")"));
    }
    // Nothing valid: wait for a fetch already under way rather than start one.
    if (refreshing_) {
      const uint64_t gen = generation_;
      while (generation_ == gen) done_cv_.Wait(&mu_);
      now = options_.wall_now();
      if (Usable(now)) return *cached_;
      if (!last_error_.ok()) return last_error_;
    }
    if (now < next_attempt_ && !last_error_.ok()) return last_error_;
    refreshing_ = true;
  }
  // This caller fetches, without the lock: others wait on done_cv_.
  const absl::Time started = options_.wall_now();
  absl::StatusOr<AwsCredentials> result = fetch_();
  absl::MutexLock lock(&mu_);
  Complete(result, started);
  if (!result.ok()) return result.status();
  return *cached_;
}

}  // namespace dynamo_batcher
