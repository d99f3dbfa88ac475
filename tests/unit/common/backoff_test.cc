#include "service/common/backoff.h"

#include <cstdint>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

TEST(ExponentialBackoff, BoundDoublesFromInitialUpToMax) {
  ExponentialBackoff b(absl::Milliseconds(200), absl::Seconds(5));
  EXPECT_EQ(b.Bound(1), absl::Milliseconds(200));
  EXPECT_EQ(b.Bound(2), absl::Milliseconds(400));
  EXPECT_EQ(b.Bound(5), absl::Milliseconds(3200));
  EXPECT_EQ(b.Bound(6), absl::Seconds(5));
  EXPECT_EQ(b.Bound(0), absl::Milliseconds(200));  // taken as the first failure
}

TEST(ExponentialBackoff, HugeFailureCountsDoNotOverflow) {
  ExponentialBackoff b(absl::Milliseconds(25), absl::Seconds(5));
  for (uint32_t n : {63u, 64u, 65u, 1000u, std::numeric_limits<uint32_t>::max()}) {
    EXPECT_EQ(b.Bound(n), absl::Seconds(5)) << n;
  }
}

TEST(ExponentialBackoff, OtherMultipliers) {
  ExponentialBackoff triple(absl::Milliseconds(10), absl::Seconds(1), 3.0,
                            ExponentialBackoff::kNoJitter);
  EXPECT_EQ(triple.Bound(3), absl::Milliseconds(90));
  // Below 1 is taken as 1: a constant delay, never a shrinking one.
  ExponentialBackoff flat(absl::Milliseconds(10), absl::Seconds(1), 0.5,
                          ExponentialBackoff::kNoJitter);
  EXPECT_EQ(flat.multiplier(), 1.0);
  EXPECT_EQ(flat.Bound(1000000), absl::Milliseconds(10));
}

TEST(ExponentialBackoff, NoJitterIsTheBoundWhateverTheRandomness) {
  ExponentialBackoff b(absl::Milliseconds(200), absl::Seconds(5), 2.0,
                       ExponentialBackoff::kNoJitter);
  for (double u : {0.0, 0.3, 0.999}) EXPECT_EQ(b.Delay(3, u), absl::Milliseconds(800));
  std::mt19937_64 rng(1);
  EXPECT_EQ(b.Next(2, rng), absl::Milliseconds(400));
}

TEST(ExponentialBackoff, FullJitterScalesTheBound) {
  ExponentialBackoff b(absl::Milliseconds(25), absl::Seconds(5));
  EXPECT_EQ(b.jitter(), ExponentialBackoff::kFullJitter);
  EXPECT_EQ(b.Delay(1, 0.0), absl::ZeroDuration());
  EXPECT_EQ(b.Delay(1, 0.5), absl::Microseconds(12500));
  EXPECT_EQ(b.Delay(3, 0.5), absl::Milliseconds(50));
  EXPECT_EQ(b.Delay(30, 0.75), absl::Milliseconds(3750));
}

TEST(ExponentialBackoff, EqualJitterKeepsAtLeastHalfTheBound) {
  ExponentialBackoff b(absl::Milliseconds(100), absl::Seconds(1), 2.0, 0.5);
  EXPECT_EQ(b.Delay(1, 0.0), absl::Milliseconds(50));
  EXPECT_EQ(b.Delay(1, 0.5), absl::Milliseconds(75));
  EXPECT_LT(b.Delay(1, 0.9999999), absl::Milliseconds(100));
}

TEST(ExponentialBackoff, OutOfRangeRandomnessIsClampedNotTrusted) {
  ExponentialBackoff b(absl::Milliseconds(25), absl::Seconds(5));
  EXPECT_LE(b.Delay(100, 1.5), absl::Seconds(5));  // nextafter(1, 0) * 5s rounds to 5s
  EXPECT_EQ(b.Delay(100, -1.0), absl::ZeroDuration());
  EXPECT_EQ(b.Delay(100, std::numeric_limits<double>::quiet_NaN()), absl::ZeroDuration());
}

TEST(ExponentialBackoff, NonPositiveDurationsMeanNoDelay) {
  EXPECT_EQ(ExponentialBackoff(absl::ZeroDuration(), absl::Seconds(1)).Delay(3, 0.5),
            absl::ZeroDuration());
  EXPECT_EQ(ExponentialBackoff(absl::Milliseconds(5), -absl::Seconds(1)).Bound(3),
            absl::ZeroDuration());
}

TEST(ExponentialBackoff, NextDrawsWithinTheBoundAndAveragesHalfOfIt) {
  ExponentialBackoff b(absl::Milliseconds(100), absl::Seconds(2));
  std::mt19937_64 rng(42);
  double sum = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const absl::Duration d = b.Next(4, rng);
    ASSERT_GE(d, absl::ZeroDuration());
    ASSERT_LT(d, absl::Milliseconds(800));
    sum += absl::ToDoubleSeconds(d);
  }
  EXPECT_NEAR(sum / n, 0.4, 0.4 * 0.02);
}

}  // namespace
}  // namespace dynamo_batcher
