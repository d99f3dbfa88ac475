// A model of the world the rate limiter lives in, fast enough for the unit
// suite: N sidecars (each a real RateLimiter fed the way TableBatcher feeds
// it) share one table whose capacity is a token bucket, as DynamoDB and the
// fault proxy's capacity model meet them; on top, faults that do not depend
// on the rate (random whole-call throttles, random UnprocessedItems, 500s).
// The clock is simulated (1 ms steps), so a 60 s run takes a fraction of a
// second and every figure is repeatable from its seed.
//
// Issue 11's goals are checked here for the fleet (8 and 32 sidecars at 2.4x
// overload: goodput >= 90% of capacity, Jain >= 0.9, throttled calls < 10%)
// together with what must not break while meeting them: rate-independent
// loss must not collapse the rate (the prometheus_test mix and issue 11's
// mix (1)), and one sidecar alone still follows a table's capacity.
// tests/integration/throttling_test.cc checks the same against dynalite.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "service/batching/rate_limiter.h"

namespace dynamo_batcher {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);

struct World {
  int sidecars = 1;
  double offered = 1000;        // items/s per sidecar
  double message_ms = 20;       // one message of offered*message_ms items each
  double capacity = 0;          // table WCU/s (items are < 1 KB); 0 = unlimited
  double capacity_later = 0;    // if > 0: the capacity from capacity_at on
  double capacity_at = 0;       // seconds
  double burst_seconds = 1;     // the table bucket's depth
  double call_throttle = 0;     // calls refused whole at random
  double call_unprocessed = 0;  // calls that lose a random non-empty subset
  double item_unprocessed = 0;  // each item lost at random
  double call_500 = 0;          // calls answered 500 at random
  double latency_ms = 10;       // answer after latency_ms + U(0, latency_ms)
  double retry_ms = 50;         // unprocessed/throttled items retried after this
  double linger_ms = 5;         // a partial batch waits at most this long
  int max_inflight = 8;         // concurrent calls per sidecar
  double seconds = 60;
  double measure_from = 0.4;  // figures over [measure_from * seconds, seconds)
  uint32_t seed = 1;
};

struct Figures {
  double goodput = 0;  // accepted items/s, all sidecars
  double jain = 0;
  double lossy_calls = 0;    // share of calls with any item lost
  double offered_share = 0;  // goodput / offered (all sidecars)
  std::vector<double> per_sidecar;
  std::string Describe() const {
    std::string s = absl::StrCat("goodput ", static_cast<int>(goodput), " items/s, Jain ", jain,
                                 ", throttled calls ", 100 * lossy_calls, "%; per sidecar:");
    for (double x : per_sidecar) absl::StrAppend(&s, " ", static_cast<int>(x));
    return s;
  }
};

Figures Simulate(const World& w, const RateLimiterOptions& options) {
  std::mt19937_64 rng(w.seed);
  std::uniform_real_distribution<double> u(0, 1);
  struct Call {
    absl::Time at;
    int sent, lost;
    bool throttled;
    bool error = false;  // a 500: retried, and heard as "not throttled"
  };
  struct Sidecar {
    explicit Sidecar(const RateLimiterOptions& o) : limiter(o) {}
    RateLimiter limiter;
    double arrived = 0;  // fractional arrivals not yet queued
    int queued = 0;
    absl::Time oldest = absl::InfiniteFuture();
    std::deque<std::pair<absl::Time, int>> retries;
    std::deque<Call> inflight;  // not ordered by time; scanned
    double accepted = 0, calls = 0, lossy = 0;
    absl::Time next_message;
  };
  std::vector<Sidecar> fleet;
  fleet.reserve(w.sidecars);
  for (int i = 0; i < w.sidecars; ++i) {
    fleet.emplace_back(options);
    // Sidecars do not start in step.
    fleet.back().next_message = kT0 + absl::Milliseconds(u(rng) * w.message_ms);
  }
  const absl::Duration tick = absl::Milliseconds(1);
  const absl::Time end = kT0 + absl::Seconds(w.seconds);
  const absl::Time from = kT0 + absl::Seconds(w.seconds * w.measure_from);
  double bucket = w.capacity * w.burst_seconds;
  const absl::Time change_at = kT0 + absl::Seconds(w.capacity_at);
  for (absl::Time now = kT0; now < end; now += tick) {
    const double capacity =
        w.capacity_later > 0 && now >= change_at ? w.capacity_later : w.capacity;
    if (capacity > 0) {
      bucket = std::min(capacity * w.burst_seconds, bucket + capacity * 0.001);
    }
    for (int k = 0; k < w.sidecars; ++k) {
      // Visit the sidecars in a different order each tick: none is always
      // first at the table's bucket.
      Sidecar& s = fleet[(k + static_cast<int>(rng() % w.sidecars)) % w.sidecars];
      while (s.next_message <= now) {
        s.arrived += w.offered * w.message_ms / 1000;
        const int n = static_cast<int>(s.arrived);
        s.arrived -= n;
        if (n > 0 && s.queued == 0) s.oldest = now;
        s.queued = std::min(s.queued + n, 200000);
        s.next_message += absl::Milliseconds(w.message_ms);
      }
      while (!s.retries.empty() && s.retries.front().first <= now) {
        if (s.queued == 0) s.oldest = now;
        s.queued += s.retries.front().second;
        s.retries.pop_front();
      }
      // Answers.
      for (auto it = s.inflight.begin(); it != s.inflight.end();) {
        if (it->at > now) {
          ++it;
          continue;
        }
        const Call c = *it;
        it = s.inflight.erase(it);
        s.limiter.OnResult(c.sent, c.throttled ? c.sent : (c.error ? 0 : c.lost), c.throttled, now);
        if (c.lost > 0) s.retries.emplace_back(now + absl::Milliseconds(w.retry_ms), c.lost);
        if (now >= from) {
          s.accepted += c.sent - c.lost;
          ++s.calls;
          if (c.lost > 0) ++s.lossy;
        }
      }
      // Sends: full batches, or what lingered long enough.
      while (static_cast<int>(s.inflight.size()) < w.max_inflight && s.queued > 0 &&
             (s.queued >= 25 || now - s.oldest >= absl::Milliseconds(w.linger_ms))) {
        const int n = std::min(s.queued, 25);
        absl::Time ready_at;
        if (!s.limiter.TryAcquire(n, now, &ready_at)) break;
        s.queued -= n;
        if (s.queued > 0) s.oldest = now;
        Call c{now + absl::Milliseconds(w.latency_ms * (1 + u(rng))), n, 0, false};
        const double r = u(rng);
        if (r < w.call_throttle) {
          c.throttled = true;
          c.lost = n;
        } else if (r < w.call_throttle + w.call_500) {
          c.lost = n;  // retried; says nothing about capacity
          c.error = true;
        } else {
          int fit = n;
          if (capacity > 0) {
            fit = std::min(n, static_cast<int>(bucket));
            bucket -= fit;
          }
          if (fit == 0) {
            c.throttled = true;  // nothing fitted: the whole call is refused
            c.lost = n;
          } else {
            c.lost = n - fit;
            for (int i = 0; i < fit; ++i) {
              if (u(rng) < w.item_unprocessed) ++c.lost;
            }
            if (c.lost < n && u(rng) < w.call_unprocessed) {
              const int kept = n - c.lost;
              c.lost += kept == 1 ? 1 : 1 + static_cast<int>(u(rng) * (kept - 1));
            }
          }
        }
        s.inflight.push_back(c);
      }
    }
  }
  Figures f;
  const double window = w.seconds * (1 - w.measure_from);
  double sum = 0, sum_sq = 0, calls = 0, lossy = 0;
  for (const Sidecar& s : fleet) {
    const double x = s.accepted / window;
    f.per_sidecar.push_back(x);
    sum += x;
    sum_sq += x * x;
    calls += s.calls;
    lossy += s.lossy;
  }
  if (getenv("FLEET_DEBUG")) {
    for (const Sidecar& s : fleet) {
      std::printf("  sidecar: accepted %.0f/s rate %.0f floor %.2f reverted %llu lossy %.2f\n",
                  s.accepted / window, s.limiter.rate(), s.limiter.loss_floor(),
                  static_cast<unsigned long long>(s.limiter.reverted_decreases()),
                  s.calls > 0 ? s.lossy / s.calls : 0.0);
    }
  }
  f.goodput = sum;
  f.jain = sum_sq > 0 ? sum * sum / (w.sidecars * sum_sq) : 0;
  f.lossy_calls = calls > 0 ? lossy / calls : 0;
  f.offered_share = sum / (w.offered * w.sidecars);
  return f;
}

RateLimiterOptions Alone() { return RateLimiterOptions{}; }  // the sidecar's defaults
RateLimiterOptions InAFleet() {
  RateLimiterOptions o;
  o.fleet = true;  // rate_limit.fleet: true
  return o;
}

World Fleet(int n, uint32_t seed) {
  World w;
  w.sidecars = n;
  w.capacity = 1600;
  w.offered = 2.4 * w.capacity / n;
  w.latency_ms = 15;
  w.seed = seed;
  return w;
}

constexpr uint32_t kSeeds = 8;

struct Summary {
  double worst_goodput = 1e18, worst_jain = 1, worst_lossy = 0;
  double mean_jain = 0, mean_lossy = 0;
};

Summary RunSeeds(int n, const RateLimiterOptions& options, const char* label) {
  Summary s;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    const Figures f = Simulate(Fleet(n, seed), options);
    std::printf("[figures] model: %s, %d sidecars at 2.4x, seed %u: %s\n", label, n, seed,
                f.Describe().c_str());
    s.worst_goodput = std::min(s.worst_goodput, f.goodput);
    s.worst_jain = std::min(s.worst_jain, f.jain);
    s.worst_lossy = std::max(s.worst_lossy, f.lossy_calls);
    s.mean_jain += f.jain / kSeeds;
    s.mean_lossy += f.lossy_calls / kSeeds;
  }
  std::printf(
      "[figures] model: %s, %d sidecars, %u seeds: mean Jain %.3f (worst %.3f), mean throttled "
      "calls %.1f%% (worst %.1f%%), worst goodput %.0f items/s of 1600\n",
      label, n, kSeeds, s.mean_jain, s.worst_jain, 100 * s.mean_lossy, 100 * s.worst_lossy,
      s.worst_goodput);
  return s;
}

// Issue 11's fleet goal: goodput >= 90% of capacity, Jain >= 0.9, throttled
// calls < 10%, for 8 and 32 sidecars, with rate_limit.fleet. Held on the mean
// over the seeds, and every seed within a margin.
class FleetModel : public ::testing::TestWithParam<int> {};

TEST_P(FleetModel, FleetModeSharesOneTableGently) {
  const Summary s = RunSeeds(GetParam(), InAFleet(), "fleet mode");
  EXPECT_GE(s.worst_goodput, 0.9 * 1600);
  EXPECT_GE(s.mean_jain, 0.9);
  EXPECT_LT(s.mean_lossy, 0.10);
  EXPECT_GE(s.worst_jain, 0.9);
  EXPECT_LT(s.worst_lossy, 0.12);
}

// The same fleet without rate_limit.fleet: what fleet mode is for. Each
// sidecar's own experiments say its decreases do not help (the others keep
// the table overloaded), some take the loss for rate-independent and stop
// yielding, and the additive probe (500 items/s per second each) adds up
// over the fleet.
TEST_P(FleetModel, WithoutFleetModeTheFleetThrottlesMore) {
  const Summary alone = RunSeeds(GetParam(), Alone(), "default mode");
  const Summary fleet = RunSeeds(GetParam(), InAFleet(), "fleet mode");
  EXPECT_LT(fleet.mean_lossy, 0.5 * alone.mean_lossy);
  // Fairness: the default mode's is poor at 8 sidecars and, measured, about
  // the same as fleet mode's at 32.
  EXPECT_GT(fleet.mean_jain, alone.mean_jain - 0.05);
}

INSTANTIATE_TEST_SUITE_P(Sidecars, FleetModel, ::testing::Values(8, 32));

// One sidecar alone at 2.4x a table's capacity, in either mode: goodput at
// the capacity, few throttled calls.
TEST(FleetModelAlone, OneSidecarFollowsTheCapacity) {
  for (const bool fleet : {false, true}) {
    const Summary s = RunSeeds(1, fleet ? InAFleet() : Alone(), fleet ? "fleet mode" : "default");
    EXPECT_GE(s.worst_goodput, 0.95 * 1600) << fleet;
    EXPECT_LT(s.worst_lossy, 0.05) << fleet;
  }
}

// The table's capacity doubles (on-demand scaling, a raised provisioned
// capacity, or half of the fleet went away): the sidecars must claim it, not
// stay where the old capacity had put them. 1600 -> 3200 WCU/s at 30 s, 2.4x
// the old capacity offered; figures over the last 30 s of 90.
TEST(FleetModelCapacity, FollowsACapacityIncrease) {
  for (const int n : {1, 8}) {
    for (const bool fleet : {false, true}) {
      double worst = 1e18;
      for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
        World w = Fleet(n, seed);
        w.capacity_later = 3200;
        w.capacity_at = 30;
        w.seconds = 90;
        w.measure_from = 60.0 / 90;
        const Figures f = Simulate(w, fleet ? InAFleet() : Alone());
        worst = std::min(worst, f.goodput);
      }
      std::printf(
          "[figures] model: %s, %d sidecars, capacity 1600 -> 3200 at 30 s: worst goodput "
          "over 60-90 s %.0f items/s (%u seeds)\n",
          fleet ? "fleet mode" : "default mode", n, worst, kSeeds);
      EXPECT_GE(worst, 0.9 * 3200) << n << " sidecars, fleet " << fleet;
    }
  }
}

World PrometheusMix(uint32_t seed) {
  // prometheus_test's mix: 400 ops/s over two tables (200 items/s per
  // table, a message every 50 ms), 10% of calls throttled whole and 10%
  // losing a random subset, whatever the rate.
  World w;
  w.offered = 200;
  w.message_ms = 50;
  w.call_throttle = 0.1;
  w.call_unprocessed = 0.1;
  w.seed = seed;
  return w;
}

World IssueMix(uint32_t seed) {
  // Issue 11's mix (1): 30% of every call's items unprocessed, 10% of calls
  // throttled, 2% 500s, at a load the sidecar could carry without them.
  World w;
  w.offered = 3000;
  w.item_unprocessed = 0.3;
  w.call_throttle = 0.1;
  w.call_500 = 0.02;
  w.seed = seed;
  return w;
}

// Both random-loss mixes, every seed: each must get at least its share of
// the offered load through.
void ExpectKeepsUpWithRandomLoss(const RateLimiterOptions& options, const char* label,
                                 double prometheus_min, double issue_min) {
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    const Figures p = Simulate(PrometheusMix(seed), options);
    const Figures i = Simulate(IssueMix(seed), options);
    std::printf(
        "[figures] model: %s, seed %u: prometheus mix %.0f%% of offered, "
        "issue 11 mix (1) %.0f%% of offered\n",
        label, seed, 100 * p.offered_share, 100 * i.offered_share);
    EXPECT_GE(p.offered_share, prometheus_min) << "seed " << seed;
    EXPECT_GE(i.offered_share, issue_min) << "seed " << seed;
  }
}

// Rate-independent loss must not collapse the rate: everything offered is
// written (the default mode, at a low and a high rate).
TEST(FleetModelRandomLoss, DefaultModeKeepsUp) {
  ExpectKeepsUpWithRandomLoss(Alone(), "default mode", 0.95, 0.95);
}

// Fleet mode under the same losses: issue 11's mix (1) still does not
// collapse (the decreases are found useless and undone at that rate). At
// prometheus_test's low rate and frequent random throttles the verification
// is too slow and the gentle probe too weak: the rate sags, but the guard
// (never far below what was delivered) stops it well above min_rate. This is
// the price of fleet mode, stated in docs/throttling.md.
TEST(FleetModelRandomLoss, FleetModeDoesNotCollapse) {
  ExpectKeepsUpWithRandomLoss(InAFleet(), "fleet mode", 0.15, 0.9);
}

}  // namespace
}  // namespace dynamo_batcher
