#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"
#include "service/auth/provider_util.h"

namespace dynamo_batcher {

// Called after each failed refresh with the provider's name and the error
// (which never holds a secret). The sidecar wires it to
// dynamo_batcher_credentials_refresh_failures_total.
using RefreshFailureCallback =
    std::function<void(const std::string& provider, const absl::Status& error)>;

struct RefreshOptions {
  // Refresh when min(refresh_ahead, refresh_ahead_fraction * lifetime) is
  // left before expiry; lifetime = expiration - time fetched.
  absl::Duration refresh_ahead = absl::Minutes(5);
  double refresh_ahead_fraction = 0.15;
  // No new attempt sooner than this after a failed one (or after a success
  // that still left the credentials inside the refresh window).
  absl::Duration min_attempt_interval = absl::Seconds(10);
  // With nothing valid cached (start-up, or expired), failed fetches are
  // retried sooner: after retry_initial, doubling up to min_attempt_interval.
  absl::Duration retry_initial = absl::Seconds(1);
  // GetCredentials never waits for a fetch: with nothing valid cached it
  // starts one in the background (unless one is running or backing off) and
  // returns UNAVAILABLE at once. For callers on threads that must not block
  // (the engine); GetCredentialsBlocking still waits.
  bool never_block = false;
  // Credentials without an expiration are re-fetched (in the background)
  // this often.
  absl::Duration refresh_without_expiration = absl::Hours(1);
  WallClockFunction wall_now;  // default absl::Now
  // Runs a background refresh. Default: a thread of the provider's own
  // (joined in the destructor). Tests pass a manual executor.
  std::function<void(std::function<void()>)> run_async;
  RefreshFailureCallback on_failure;
};

// Caches credentials from a `Fetch` function and refreshes them ahead of
// expiry.
//
// - While the cached credentials are valid, GetCredentials returns them at
//   once; when the refresh window is reached one background refresh starts
//   (never two at a time) and callers keep the cached credentials meanwhile.
// - With nothing valid cached, one caller fetches; concurrent callers wait
//   for that single fetch instead of starting their own.
// - A failed refresh is logged (warn, no secrets), counted and reported to
//   `on_failure`; the old credentials stay in use until they expire. With
//   nothing valid cached, retries back off from retry_initial to
//   min_attempt_interval.
// - With never_block, GetCredentials returns UNAVAILABLE instead of waiting
//   whenever nothing valid is cached, and the fetch runs in the background.
//
// Thread-safety: all methods may be called from any thread. `Fetch` is
// never run twice at once.
//
// Usage:
//   RefreshingCredentialsProvider p("imds", [&] { return FetchFromImds(); }, {});
//   absl::StatusOr<AwsCredentials> c = p.GetCredentials();
class RefreshingCredentialsProvider : public CredentialsProvider {
 public:
  using Fetch = std::function<absl::StatusOr<AwsCredentials>()>;

  RefreshingCredentialsProvider(std::string name, Fetch fetch, RefreshOptions options);
  ~RefreshingCredentialsProvider() override;
  RefreshingCredentialsProvider(const RefreshingCredentialsProvider&) = delete;
  RefreshingCredentialsProvider& operator=(const RefreshingCredentialsProvider&) = delete;

  absl::StatusOr<AwsCredentials> GetCredentials() override;
  // Waits for a fetch when nothing valid is cached, whatever never_block says.
  absl::StatusOr<AwsCredentials> GetCredentialsBlocking() override;
  std::string Name() const override { return name_; }
  uint64_t RefreshFailures() const override { return failures_.load(); }

 private:
  bool Usable(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RefreshDue(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a fetch outcome; clears refreshing_ and wakes waiters.
  void Complete(const absl::StatusOr<AwsCredentials>& result, absl::Time started)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartBackgroundRefresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<AwsCredentials> Get(bool may_block);

  const std::string name_;
  const Fetch fetch_;
  RefreshOptions options_;
  std::atomic<uint64_t> failures_{0};

  absl::Mutex mu_;
  absl::CondVar done_cv_;  // signalled when a fetch completes
  std::optional<AwsCredentials> cached_ ABSL_GUARDED_BY(mu_);
  absl::Time fetched_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time next_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  bool refreshing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped per completed fetch
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;  // default run_async only
};

}  // namespace dynamo_batcher
