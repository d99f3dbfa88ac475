#include "service/lifecycle/readiness.h"

#include <atomic>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lifecycle_fakes.h"

namespace dynamo_batcher {
namespace {

ReadinessProbe::Options Fast(absl::Duration backoff = absl::Milliseconds(1)) {
  ReadinessProbe::Options o;
  o.table = "events";
  o.backoff = ExponentialBackoff(backoff, backoff, 2.0, ExponentialBackoff::kNoJitter);
  return o;
}

bool WaitFor(const std::function<bool()>& cond, absl::Duration limit = absl::Seconds(10)) {
  const absl::Time until = absl::Now() + limit;
  while (!cond()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TEST(ReadinessProbe, ServingAtOnceWhenDynamoDbAlreadyAnswered) {
  FakeTableChecker checker;
  HealthState health([](bool) {});
  ReadinessProbe probe(
      Fast(), &checker, [] { return true; }, &health);
  EXPECT_TRUE(probe.ProbeOnce());
  EXPECT_TRUE(health.serving());
  EXPECT_TRUE(checker.described().empty());  // no call needed
}

TEST(ReadinessProbe, DescribeTableSuccessTurnsServing) {
  FakeTableChecker checker;
  checker.Script({absl::UnavailableError("503"), Schema("events", "pk")});
  HealthState health([](bool) {});
  ReadinessProbe probe(
      Fast(), &checker, [] { return false; }, &health);
  EXPECT_FALSE(probe.ProbeOnce());
  EXPECT_FALSE(health.serving());
  EXPECT_TRUE(probe.ProbeOnce());
  EXPECT_TRUE(health.serving());
  EXPECT_EQ(checker.described().size(), 2u);
  EXPECT_EQ(checker.described()[0], "events");
}

TEST(ReadinessProbe, ASuccessfulWriteTurnsServingWithoutDescribeTable) {
  FakeTableChecker checker;  // DescribeTable keeps failing
  HealthState health([](bool) {});
  std::atomic<bool> wrote{false};
  ReadinessProbe probe(
      Fast(), &checker, [&] { return wrote.load(); }, &health);
  probe.Start();
  ASSERT_TRUE(WaitFor([&] { return checker.described().size() >= 3; }));
  EXPECT_FALSE(health.serving());
  wrote = true;
  EXPECT_TRUE(WaitFor([&] { return health.serving(); }));
  probe.Stop();
}

TEST(ReadinessProbe, ThreadProbesUntilDynamoDbAnswersThenEnds) {
  FakeTableChecker checker;
  checker.Script(
      {absl::UnavailableError("a"), absl::UnavailableError("b"), absl::DeadlineExceededError("c")});
  checker.SetFallback(Schema("events", "pk"));
  HealthState health([](bool) {});
  ReadinessProbe probe(
      Fast(), &checker, [] { return false; }, &health);
  probe.Start();
  ASSERT_TRUE(WaitFor([&] { return health.serving(); }));
  probe.Stop();
  EXPECT_EQ(checker.described().size(), 4u);  // nothing after success
}

TEST(ReadinessProbe, StopDoesNotWaitForTheBackoff) {
  FakeTableChecker checker;  // always failing
  HealthState health([](bool) {});
  ReadinessProbe probe(
      Fast(absl::Hours(1)), &checker, [] { return false; }, &health);
  probe.Start();
  ASSERT_TRUE(WaitFor([&] { return checker.described().size() == 1; }));
  const absl::Time start = absl::Now();
  probe.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(health.serving());
}

TEST(ReadinessProbe, ShutdownWinsOverALateSuccess) {
  FakeTableChecker checker;
  checker.SetFallback(Schema("events", "pk"));
  HealthState health([](bool) {});
  health.BeginShutdown();
  ReadinessProbe probe(
      Fast(), &checker, [] { return false; }, &health);
  probe.ProbeOnce();
  EXPECT_FALSE(health.serving());
}

}  // namespace
}  // namespace dynamo_batcher
