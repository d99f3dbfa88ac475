#include "service/batching/retry_policy.h"

#include <random>

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

RetryOptions Opts() {
  RetryOptions o;
  o.base = absl::Milliseconds(25);
  o.cap = absl::Seconds(5);
  o.max_attempts = 5;
  o.op_deadline = absl::Seconds(10);
  return o;
}

absl::Duration Bound(uint32_t attempts) {
  absl::Duration d = absl::Milliseconds(25);
  for (uint32_t i = 1; i < attempts; ++i) d *= 2;
  return std::min(d, absl::Seconds(5));
}

TEST(RetryPolicy, BackoffStaysWithinCappedExponentialBound) {
  RetryPolicy p(Opts());
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (uint32_t attempts = 1; attempts <= 12; ++attempts) {
    for (int i = 0; i < 200; ++i) {
      absl::Duration d = p.Backoff(attempts, u(rng));
      EXPECT_GE(d, absl::ZeroDuration());
      EXPECT_LE(d, Bound(attempts)) << attempts;
    }
  }
  EXPECT_EQ(p.Backoff(1, 0.0), absl::ZeroDuration());
  EXPECT_EQ(p.Backoff(1, 0.5), absl::Microseconds(12500));
  EXPECT_EQ(p.Backoff(3, 0.5), absl::Milliseconds(50));
}

TEST(RetryPolicy, MeanIsHalfTheBound) {
  RetryPolicy p(Opts());
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (uint32_t attempts : {1u, 4u, 9u}) {
    double sum = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) sum += absl::ToDoubleSeconds(p.Backoff(attempts, u(rng)));
    const double bound = absl::ToDoubleSeconds(Bound(attempts));
    EXPECT_NEAR(sum / n, bound / 2, bound * 0.02) << attempts;
  }
}

TEST(RetryPolicy, CapIsReached) {
  RetryPolicy p(Opts());
  // 25ms * 2^8 = 6.4s > 5s cap.
  EXPECT_EQ(p.Backoff(9, 0.999999), absl::Seconds(5) * 0.999999);
  EXPECT_EQ(p.Backoff(30, 0.5), absl::Milliseconds(2500));
}

TEST(RetryPolicy, HugeAttemptCountsDoNotOverflow) {
  RetryPolicy p(Opts());
  for (uint32_t attempts : {63u, 64u, 65u, 100u, 1000u, 4294967295u}) {
    absl::Duration d = p.Backoff(attempts, 0.75);
    EXPECT_EQ(d, absl::Milliseconds(3750)) << attempts;
  }
  // Out-of-range randomness is clamped, not trusted.
  EXPECT_LE(p.Backoff(100, 1.5), absl::Seconds(5));
  EXPECT_EQ(p.Backoff(100, -1.0), absl::ZeroDuration());
}

TEST(RetryPolicy, RetriesExhaustedAtMaxAttempts) {
  RetryPolicy p(Opts());
  const absl::Time t0 = absl::UnixEpoch() + absl::Hours(1);
  EXPECT_TRUE(p.MayRetry(4, t0, t0 + absl::Seconds(1)).may_retry());
  EXPECT_STREQ(p.MayRetry(4, t0, t0 + absl::Seconds(1)).code(), "");
  const RetryDecision d = p.MayRetry(5, t0, t0 + absl::Seconds(1));
  EXPECT_FALSE(d.may_retry());
  EXPECT_EQ(d.stop, RetryDecision::Stop::kRetriesExhausted);
  EXPECT_STREQ(d.code(), "RetriesExhausted");
}

TEST(RetryPolicy, DeadlineExceededWhenRetryWouldBeLate) {
  RetryPolicy p(Opts());
  const absl::Time t0 = absl::UnixEpoch() + absl::Hours(1);
  EXPECT_TRUE(p.MayRetry(1, t0, t0 + absl::Seconds(10)).may_retry());
  const RetryDecision d = p.MayRetry(1, t0, t0 + absl::Seconds(10) + absl::Nanoseconds(1));
  EXPECT_FALSE(d.may_retry());
  EXPECT_EQ(d.stop, RetryDecision::Stop::kDeadlineExceeded);
  EXPECT_STREQ(d.code(), "DeadlineExceeded");
}

}  // namespace
}  // namespace dynamo_batcher
