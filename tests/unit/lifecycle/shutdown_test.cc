#include "service/lifecycle/shutdown.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"

namespace dynamo_batcher {
namespace {

using ::testing::ElementsAre;

// Engine, service and server in one fake on a fake clock; records the
// sequence of calls.
class FakeDrainTarget : public DrainTarget {
 public:
  explicit FakeDrainTarget(FakeClock* clock) : clock_(clock) {}

  void StopAccepting() override { calls.push_back("StopAccepting"); }
  bool DrainBuffered(absl::Duration timeout) override {
    calls.push_back(absl::StrCat("Drain(", absl::FormatDuration(timeout), ")"));
    failed += fail_on_drain;
    fail_on_drain = 0;
    pending = left_after_drain;
    return drain_result;
  }
  uint64_t pending_ops() const override { return pending; }
  uint64_t failed_ops() const override { return failed; }
  int active_streams() const override { return 3; }
  bool idle() const override { return clock_->Now() >= idle_at; }
  void ShutdownServer(absl::Duration grace) override {
    calls.push_back(absl::StrCat("Shutdown(", absl::FormatDuration(grace), ")"));
    pending += submitted_during_shutdown;
  }

  uint64_t pending = 10;
  uint64_t failed = 0;
  uint64_t fail_on_drain = 0;
  uint64_t left_after_drain = 0;
  uint64_t submitted_during_shutdown = 0;
  bool drain_result = true;
  absl::Time idle_at = absl::InfinitePast();
  std::vector<std::string> calls;

 private:
  FakeClock* clock_;
};

struct Fixture {
  FakeClock clock;
  FakeDrainTarget target{&clock};
  std::vector<bool> published;
  HealthState health{[this](bool on) { published.push_back(on); }};
  DrainOptions options;

  bool Run(uint64_t failed_before = 0) {
    return RunDrain(&target, &health, options, failed_before, clock,
                    [this](absl::Duration d) { clock.AdvanceTime(d); });
  }
};

TEST(RunDrain, HealthGoesDownFirstThenEngineThenServer) {
  Fixture f;
  f.health.SetServing(true);
  f.options.drain_timeout = absl::Seconds(20);
  EXPECT_TRUE(f.Run());
  EXPECT_TRUE(f.health.shutting_down());
  EXPECT_THAT(f.published, ElementsAre(false, true, false));
  // Idle at once: the server gets only the short grace for last answers.
  EXPECT_THAT(f.target.calls, ElementsAre("StopAccepting", "Drain(20s)", "Shutdown(250ms)"));
}

TEST(RunDrain, WaitsForOpenStreamsUpToTheGraceThenCutsShort) {
  Fixture f;
  const absl::Time start = f.clock.Now();
  f.target.idle_at = start + absl::Milliseconds(700);
  EXPECT_TRUE(f.Run());
  EXPECT_EQ(f.clock.Now() - start, absl::Milliseconds(700));
  EXPECT_THAT(f.target.calls, ElementsAre("StopAccepting", "Drain(20s)", "Shutdown(250ms)"));
}

TEST(RunDrain, StreamsThatNeverEndCostTheWholeGraceOnly) {
  Fixture f;
  const absl::Time start = f.clock.Now();
  f.target.idle_at = absl::InfiniteFuture();
  EXPECT_TRUE(f.Run());
  EXPECT_EQ(f.clock.Now() - start, absl::Seconds(2));
  EXPECT_THAT(f.target.calls, ElementsAre("StopAccepting", "Drain(20s)", "Shutdown(0)"));
}

TEST(RunDrain, OpsSubmittedDuringShutdownAreDrainedOnceMore) {
  Fixture f;
  f.target.submitted_during_shutdown = 4;
  EXPECT_TRUE(f.Run());
  EXPECT_THAT(f.target.calls,
              ElementsAre("StopAccepting", "Drain(20s)", "Shutdown(250ms)", "Drain(1s)"));
  EXPECT_EQ(f.target.pending, 0u);
}

TEST(RunDrain, NotCleanWhenSomethingFailedDuringTheDrain) {
  Fixture f;
  f.target.failed = 2;  // before the signal: not the drain's fault
  f.target.fail_on_drain = 1;
  EXPECT_FALSE(f.Run(/*failed_before=*/2));
}

TEST(RunDrain, FailuresBeforeTheDrainDoNotCount) {
  Fixture f;
  f.target.failed = 2;
  EXPECT_TRUE(f.Run(/*failed_before=*/2));
}

TEST(RunDrain, NotCleanWhenOpsAreLeftPending) {
  Fixture f;
  f.target.left_after_drain = 3;  // survives both drains
  f.target.drain_result = true;   // even if the engine says otherwise
  EXPECT_FALSE(f.Run());
}

TEST(ShutdownHardLimit, DrainPlusOneCallPlusGrace) {
  EXPECT_EQ(ShutdownHardLimit(absl::Seconds(20), absl::Seconds(10)), absl::Seconds(40));
}

TEST(Watchdog, FiresWhenNotCancelled) {
  absl::Notification fired;
  Watchdog watchdog(absl::Milliseconds(10), [&] { fired.Notify(); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(Watchdog, CancelledWatchdogNeverFires) {
  std::atomic<bool> fired{false};
  {
    Watchdog watchdog(absl::Hours(1), [&] { fired = true; });
    watchdog.Cancel();
    watchdog.Cancel();  // idempotent
  }                     // joins at once
  {
    Watchdog watchdog(absl::Hours(1), [&] { fired = true; });
  }  // the destructor cancels
  EXPECT_FALSE(fired.load());
}

}  // namespace
}  // namespace dynamo_batcher
