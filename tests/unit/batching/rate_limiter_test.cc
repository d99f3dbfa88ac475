#include "service/batching/rate_limiter.h"

#include <cstdio>
#include <deque>
#include <random>

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);

RateLimiterOptions Limited(double rate) {
  RateLimiterOptions o;
  o.initial_rate = rate;
  o.max_rate = 10000;
  o.min_rate = 5;
  o.decrease_factor = 0.7;
  o.increase_per_second = 100;
  o.burst_seconds = 0.1;
  return o;
}

// Sends `rate` items/s in 25-item batches for `seconds`, starting at *now.
void SendSteadily(RateLimiter* l, double rate, double seconds, absl::Time* now) {
  const absl::Duration step = absl::Seconds(25.0 / rate);
  const int n = static_cast<int>(seconds * rate / 25.0);
  for (int i = 0; i < n; ++i) {
    absl::Time ready_at;
    ASSERT_TRUE(l->TryAcquire(25, *now, &ready_at)) << i;
    *now += step;
  }
}

TEST(RateLimiter, AcquireUntilEmptyThenRefill) {
  RateLimiter l(Limited(1000));  // bucket = max(0.1 * 1000, 25) = 100 items
  absl::Time ready_at;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(l.TryAcquire(25, kT0, &ready_at)) << i;
  EXPECT_FALSE(l.TryAcquire(25, kT0, &ready_at));
  EXPECT_EQ(ready_at, kT0 + absl::Milliseconds(25));
  EXPECT_EQ(l.ReadyAt(25, kT0), kT0 + absl::Milliseconds(25));
  EXPECT_FALSE(l.TryAcquire(25, kT0 + absl::Milliseconds(24), &ready_at));
  EXPECT_TRUE(l.TryAcquire(25, kT0 + absl::Milliseconds(25), &ready_at));
  // The bucket never holds more than its depth, however long it idles.
  const absl::Time later = kT0 + absl::Seconds(60);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(l.TryAcquire(25, later, &ready_at));
  EXPECT_FALSE(l.TryAcquire(1, later, &ready_at));
}

TEST(RateLimiter, FullBatchAlwaysFitsEvenAtTinyRate) {
  RateLimiter l(Limited(5));  // 0.1 s * 5/s = 0.5 items, but depth is 25
  absl::Time ready_at;
  EXPECT_TRUE(l.TryAcquire(25, kT0, &ready_at));
  EXPECT_FALSE(l.TryAcquire(25, kT0, &ready_at));
  EXPECT_EQ(ready_at, kT0 + absl::Seconds(5));
  EXPECT_TRUE(l.TryAcquire(25, ready_at, &ready_at));
}

TEST(RateLimiter, ThrottleDecreasesMultiplicatively) {
  RateLimiter l(Limited(1000));
  absl::Time now = kT0;
  SendSteadily(&l, 1000, 3, &now);
  l.OnResult(25, 0, /*throttled=*/true, now);
  EXPECT_NEAR(l.rate(), 700, 15);
}

TEST(RateLimiter, PartialUnprocessedDecreasesByTheFraction) {
  RateLimiter l(Limited(1000));
  absl::Time now = kT0;
  SendSteadily(&l, 1000, 3, &now);
  l.OnResult(25, 15, false, now);  // 60% unprocessed: 1 - 0.3 * 0.6 = 0.82
  EXPECT_NEAR(l.rate(), 820, 15);

  // A small fraction still cuts by the floor (30% of a full decrease), so
  // the rate does not ride the capacity edge.
  RateLimiter l1(Limited(1000));
  now = kT0;
  SendSteadily(&l1, 1000, 3, &now);
  l1.OnResult(25, 1, false, now);  // 4% unprocessed: floor 0.3 -> 1 - 0.3 * 0.3
  EXPECT_NEAR(l1.rate(), 910, 15);

  RateLimiter l2(Limited(1000));
  now = kT0;
  SendSteadily(&l2, 1000, 3, &now);
  l2.OnResult(25, 25, false, now);  // all unprocessed: like a throttle
  EXPECT_NEAR(l2.rate(), 700, 15);
}

TEST(RateLimiter, OnlyOneDecreasePerWindow) {
  RateLimiter l(Limited(1000));
  absl::Time now = kT0;
  SendSteadily(&l, 1000, 3, &now);
  // Eight concurrent calls come back throttled together.
  for (int i = 0; i < 8; ++i) l.OnResult(25, 0, true, now + absl::Milliseconds(i));
  EXPECT_NEAR(l.rate(), 700, 15);
  // A larger fraction in the same window deepens that one decrease...
  RateLimiter l2(Limited(1000));
  now = kT0;
  SendSteadily(&l2, 1000, 3, &now);
  l2.OnResult(25, 1, false, now);
  const double after_small = l2.rate();
  EXPECT_NEAR(after_small, 1000 * (1 - 0.3 * 0.3), 15);  // the floor
  l2.OnResult(25, 0, true, now + absl::Milliseconds(10));
  EXPECT_NEAR(l2.rate(), 700, 15);
  // ...and after the window, a new throttle decreases again.
  l2.OnResult(25, 0, true, now + absl::Milliseconds(150));
  EXPECT_LT(l2.rate(), 700 * 0.75);
}

TEST(RateLimiter, RecoversAdditivelyUpToMaxRate) {
  RateLimiterOptions o = Limited(1000);
  o.max_rate = 1500;
  o.recovery = RateLimiterOptions::Recovery::kAdditive;
  RateLimiter l(o);
  absl::Time now = kT0;
  SendSteadily(&l, 1000, 3, &now);
  l.OnResult(25, 0, true, now);
  const double low = l.rate();
  EXPECT_NEAR(low, 700, 15);
  // Successes inside the decrease window do not raise it.
  l.OnResult(25, 0, false, now + absl::Milliseconds(50));
  EXPECT_DOUBLE_EQ(l.rate(), low);
  // 2 s later: +100/s per second.
  l.OnResult(25, 0, false, now + absl::Seconds(2));
  EXPECT_NEAR(l.rate(), low + 200, 1e-6);
  l.OnResult(25, 0, false, now + absl::Seconds(3));
  EXPECT_NEAR(l.rate(), low + 300, 1e-6);
  l.OnResult(25, 0, false, now + absl::Seconds(60));
  EXPECT_DOUBLE_EQ(l.rate(), 1500);
}

TEST(RateLimiter, CubicRecoveryClimbsBackThenFlattensThenProbes) {
  RateLimiterOptions o = Limited(1000);
  o.max_rate = 5000;
  o.increase_per_second = 1;  // additive floor out of the way
  o.recovery = RateLimiterOptions::Recovery::kCubic;
  o.cubic_recovery_seconds = 2.0;
  RateLimiter l(o);
  absl::Time now = kT0;
  SendSteadily(&l, 1000, 3, &now);
  const absl::Time cut = now;
  l.OnResult(25, 0, true, cut);
  const double low = l.rate();
  ASSERT_NEAR(low, 700, 15);
  const double base = low / 0.7;  // the rate it was cut from
  auto at = [&](double seconds) {
    l.OnResult(25, 0, false, cut + absl::Milliseconds(static_cast<int64_t>(seconds * 1000)));
    return l.rate();
  };
  const double r05 = at(0.5);
  const double r10 = at(1.0);
  const double r20 = at(2.0);
  const double r25 = at(2.5);
  const double r40 = at(4.0);
  // Concave: most of the way back in the first second...
  EXPECT_GT(r05 - low, 0.5 * (base - low));
  EXPECT_GT(r10 - r05, 0);
  EXPECT_LT(r10 - r05, r05 - low);
  // ...back at the old rate after cubic_recovery_seconds, flat around it...
  EXPECT_NEAR(r20, base, 5);
  EXPECT_LT(r25 - r20, 0.02 * base);
  // ...then convex probing beyond it.
  EXPECT_GT(r40 - base, 0.2 * base);
  EXPECT_LE(r40, o.max_rate);
}

// Fleet mode: after a decrease limited by the delivered rate, no CUBIC climb
// back to the rate it was cut from (each sidecar of a fleet returning to its
// own level keeps the fleet unfair); many small calls without a loss do not
// count as quiet until 2,500 items went through; then the convex probe
// claims capacity that may have appeared.
TEST(RateLimiter, FleetModeClimbsOnlyAdditivelyUntilQuietItemsThenProbes) {
  RateLimiterOptions o = Limited(1000);
  o.max_rate = 5000;
  o.fleet = true;
  RateLimiter l(o);
  absl::Time now = kT0;
  for (int i = 0; i < 120; ++i) {  // 3 s of 1,000 items/s, all accepted
    absl::Time ready_at;
    ASSERT_TRUE(l.TryAcquire(25, now, &ready_at)) << i;
    l.OnResult(25, 0, false, now);
    now += absl::Milliseconds(25);
  }
  ASSERT_GT(l.DeliveredRate(now), 900);
  const absl::Time cut = now;
  l.OnResult(25, 0, true, cut);
  const double low = l.rate();
  // Guarded: not the full 30% cut, but at least 95% of what was delivered.
  EXPECT_GT(low, 0.9 * 1000);
  EXPECT_LT(low, 1000);
  // 2,000 accepted 1-item calls over 2 s: additive only (4 items/s per
  // second), although the default mode's CUBIC would be back at the old
  // rate after ~1.1 s.
  now = cut;
  for (int i = 0; i < 2000; ++i) {
    now += absl::Milliseconds(1);
    l.OnResult(1, 0, false, now);
  }
  EXPECT_LE(l.rate(), low + RateLimiter::kFleetIncrease * 2 + 1e-6);
  // 500 more: 2,500 items without a loss. 4 s later the convex probe has
  // gone far beyond what the additive step gives.
  for (int i = 0; i < 500; ++i) {
    now += absl::Milliseconds(1);
    l.OnResult(1, 0, false, now);
  }
  const absl::Time quiet = now;
  for (int i = 0; i < 40; ++i) {
    now += absl::Milliseconds(100);
    l.OnResult(1, 0, false, now);
  }
  const double additive_only = low + RateLimiter::kFleetIncrease * absl::ToDoubleSeconds(now - cut);
  EXPECT_GT(l.rate(), additive_only + 500) << "4 s after " << absl::FormatTime(quiet);
  EXPECT_LE(l.rate(), o.max_rate);
}

TEST(RateLimiter, NeverBelowMinRate) {
  RateLimiter l(Limited(10));
  absl::Time now = kT0;
  for (int i = 0; i < 50; ++i) {
    l.OnResult(25, 0, true, now);
    now += absl::Milliseconds(200);
  }
  EXPECT_DOUBLE_EQ(l.rate(), 5);
  absl::Time ready_at;
  EXPECT_TRUE(l.TryAcquire(25, now, &ready_at));  // bucket still fits a batch
}

TEST(RateLimiter, FirstThrottleFromUnlimitedLandsNearMeasuredRate) {
  RateLimiter l;  // defaults: initial 1e9 items/s
  EXPECT_GE(l.rate(), 1e8);
  absl::Time now = kT0;
  SendSteadily(&l, 4000, 5, &now);
  EXPECT_NEAR(l.MeasuredRate(), 4000, 200);
  l.OnResult(25, 0, true, now);
  EXPECT_NEAR(l.rate(), 4000 * 0.7, 150);
  // And the bucket shrank with it: no 1e8-item burst left.
  absl::Time ready_at;
  int passed = 0;
  while (passed < 1000 && l.TryAcquire(25, now, &ready_at)) ++passed;
  EXPECT_LE(passed * 25, 300);
}

TEST(RateLimiter, LateThrottleAnswerDecreasesFromTheSendingRate) {
  RateLimiter l;
  absl::Time now = kT0;
  SendSteadily(&l, 4000, 3, &now);
  l.OnResult(25, 0, true, now + absl::Seconds(2));  // a slow answer
  EXPECT_NEAR(l.rate(), 4000 * 0.7, 150);
}

TEST(RateLimiter, BurstAfterIdleIsNotAveragedWithTheSilence) {
  RateLimiter l;
  absl::Time now = kT0;
  SendSteadily(&l, 100, 3, &now);
  now += absl::Seconds(30);
  absl::Time ready_at;
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(l.TryAcquire(25, now, &ready_at));
  now += absl::Milliseconds(2);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(l.TryAcquire(25, now, &ready_at));
  l.OnResult(25, 0, true, now + absl::Milliseconds(20));
  // 400 items within ~2 ms read as thousands of items/s, not 13/s.
  EXPECT_GT(l.rate(), 5000);
}

TEST(RateLimiter, MeasuredRateIsSaneRightAfterStart) {
  RateLimiter l;
  absl::Time now = kT0;
  SendSteadily(&l, 2000, 0.1, &now);  // 200 items in 100 ms
  EXPECT_NEAR(l.MeasuredRate(), 2000, 400);
}

// A closed-loop simulation of one table's sender against a model backend:
// demand `offered` items/s in 25-item calls, answered after 10 ms; the
// backend has a capacity (token bucket, 1 s burst; 0 = unlimited), loses
// `item_loss` of the accepted items at random (UnprocessedItems whatever the
// rate) and refuses `call_throttle` of the calls whole at random.
struct SimResult {
  double goodput = 0;          // accepted items/s over the last half
  double mean_rate = 0;        // mean rate() over the last half
  double throttled_calls = 0;  // share of calls with any loss, last half
};

SimResult Simulate(RateLimiter* l, double offered, double capacity, double item_loss,
                   double call_throttle, double seconds, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const absl::Duration tick = absl::Milliseconds(1);
  const absl::Duration latency = absl::Milliseconds(10);
  absl::Time now = kT0;
  const absl::Time end = kT0 + absl::Seconds(seconds);
  const absl::Time half = kT0 + absl::Seconds(seconds / 2);
  double backlog = 0;
  double bucket = capacity;
  struct Call {
    absl::Time at;
    double sent, lost;
    bool throttled;
  };
  std::deque<Call> inflight;
  double accepted = 0, rate_sum = 0, ticks = 0, calls = 0, lossy = 0;
  while (now < end) {
    backlog = std::min(backlog + offered * absl::ToDoubleSeconds(tick), 5000.0);
    if (capacity > 0) bucket = std::min(capacity, bucket + capacity * absl::ToDoubleSeconds(tick));
    while (backlog >= 25 && inflight.size() < 8) {
      absl::Time ready_at;
      if (!l->TryAcquire(25, now, &ready_at)) break;
      backlog -= 25;
      Call c{now + latency, 25, 0, false};
      if (u(rng) < call_throttle) {
        c.throttled = true;
        c.lost = 25;
      } else {
        for (int i = 0; i < 25; ++i) {
          bool ok = capacity <= 0 || bucket >= 1;
          if (ok && capacity > 0) bucket -= 1;
          if (ok && u(rng) < item_loss) ok = false;
          if (!ok) c.lost += 1;
        }
        if (c.lost == 25 && capacity > 0) c.throttled = true;
      }
      inflight.push_back(c);
    }
    while (!inflight.empty() && inflight.front().at <= now) {
      const Call c = inflight.front();
      inflight.pop_front();
      l->OnResult(c.sent, c.throttled ? 0 : c.lost, c.throttled, now);
      backlog += c.lost;  // retried
      if (now >= half) {
        accepted += c.sent - c.lost;
        ++calls;
        if (c.lost > 0) ++lossy;
      }
    }
    if (now >= half) {
      rate_sum += std::min(l->rate(), 1e6);
      ++ticks;
    }
    now += tick;
  }
  SimResult r;
  r.goodput = accepted / (seconds / 2);
  r.mean_rate = rate_sum / ticks;
  r.throttled_calls = calls > 0 ? lossy / calls : 0;
  return r;
}

RateLimiterOptions Defaults() {
  RateLimiterOptions o;  // unlimited start, CUBIC, as the sidecar runs
  o.min_rate = 25;
  o.increase_per_second = 500;
  return o;
}

// 30% of every call's items come back unprocessed and 10% of calls are
// throttled whole, whatever the rate. Before: each loss was a decrease and
// the rate collapsed to min_rate (25 items/s). Now the first decreases are
// found not to help and are undone.
TEST(RateLimiter, RateIndependentLossDoesNotCollapseTheRate) {
  RateLimiter l(Defaults());
  const SimResult r = Simulate(&l, 3000, 0, 0.3, 0.1, 20);
  std::printf(
      "[figures] random loss: goodput %.0f items/s of 3000 offered, mean rate %.0f, "
      "floor %.2f, decreases undone %llu\n",
      r.goodput, r.mean_rate, l.loss_floor(),
      static_cast<unsigned long long>(l.reverted_decreases()));
  EXPECT_GE(r.goodput,
            0.9 * 3000 * 0.7 * 0.9);  // the offered rate times what the loss lets through
  EXPECT_GE(r.mean_rate, 2000);
}

// The same controller still follows a real capacity limit: the decreases
// help there (the lost share falls as the rate falls) and are kept.
TEST(RateLimiter, CapacityLimitIsStillFollowed) {
  RateLimiter l(Defaults());
  const SimResult r = Simulate(&l, 6000, 2000, 0, 0, 20);
  std::printf("[figures] capacity 2000/s at 3x: goodput %.0f, mean rate %.0f, lossy calls %.1f%%\n",
              r.goodput, r.mean_rate, 100 * r.throttled_calls);
  EXPECT_GE(r.goodput, 0.9 * 2000);
  EXPECT_LE(r.mean_rate, 1.5 * 2000);
  EXPECT_LE(r.throttled_calls, 0.15);
}

// Both at once: 30% random loss on top of a capacity limit. The loss floor
// is learnt, and the capacity still bounds the rate.
TEST(RateLimiter, CapacityLimitIsFollowedOnTopOfRandomLoss) {
  RateLimiter l(Defaults());
  const SimResult r = Simulate(&l, 6000, 2000, 0.3, 0, 20);
  std::printf(
      "[figures] capacity 2000/s at 3x + 30%% random loss: goodput %.0f, mean rate %.0f, "
      "floor %.2f\n",
      r.goodput, r.mean_rate, l.loss_floor());
  EXPECT_GE(r.goodput, 0.85 * 2000 * 0.7);
  EXPECT_LE(r.mean_rate, 2.0 * 2000);
}

}  // namespace
}  // namespace dynamo_batcher

namespace dynamo_batcher {
namespace {

RateLimiterOptions Ceiling(double rate) {
  RateLimiterOptions o = Limited(rate);
  o.max_rate = rate;
  return o;
}

TEST(RateLimiterUpdateOptions, RateAtTheCeilingFollowsANewCeiling) {
  RateLimiter l(Ceiling(100));
  RateLimiterOptions o = Ceiling(400);
  o.initial_rate = 1;  // ignored by UpdateOptions
  l.UpdateOptions(o, kT0);
  EXPECT_DOUBLE_EQ(l.rate(), 400);
  l.UpdateOptions(Ceiling(50), kT0);
  EXPECT_DOUBLE_EQ(l.rate(), 50);
}

TEST(RateLimiterUpdateOptions, ThrottledRateIsKeptUnderAHigherCeiling) {
  RateLimiter l(Ceiling(1000));
  l.OnResult(25, 0, /*throttled=*/true, kT0);
  const double throttled = l.rate();
  ASSERT_LT(throttled, 1000);
  l.UpdateOptions(Ceiling(5000), kT0);
  EXPECT_DOUBLE_EQ(l.rate(), throttled);  // adaptive state survives a reload
  l.UpdateOptions(Ceiling(10), kT0);
  EXPECT_DOUBLE_EQ(l.rate(), 10);  // but never above the new ceiling
}

}  // namespace
}  // namespace dynamo_batcher
