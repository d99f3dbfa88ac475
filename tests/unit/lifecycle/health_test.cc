#include "service/lifecycle/health.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::testing::ElementsAre;

TEST(HealthState, StartsNotServingAndPublishesIt) {
  std::vector<bool> published;
  HealthState health([&](bool on) { published.push_back(on); });
  EXPECT_FALSE(health.serving());
  EXPECT_THAT(published, ElementsAre(false));
}

TEST(HealthState, ServingUntilShutdownThenNeverAgain) {
  std::vector<bool> published;
  HealthState health([&](bool on) { published.push_back(on); });
  health.SetServing(true);
  EXPECT_TRUE(health.serving());
  health.BeginShutdown();
  EXPECT_FALSE(health.serving());
  EXPECT_TRUE(health.shutting_down());
  health.SetServing(true);  // a late readiness probe
  EXPECT_FALSE(health.serving());
  health.BeginShutdown();  // idempotent
  EXPECT_THAT(published, ElementsAre(false, true, false));
}

// /readyz reads serving() while gRPC health is being set: it must never
// report SERVING before gRPC health says so.
TEST(HealthState, ReadersSeeServingOnlyAfterItWasPublished) {
  absl::Notification in_publish;
  absl::Notification release;
  std::atomic<bool> published{false};
  HealthState health([&](bool on) {
    if (!on) return;
    in_publish.Notify();
    release.WaitForNotification();
    published = true;
  });
  std::thread setter([&] { health.SetServing(true); });
  in_publish.WaitForNotification();
  bool seen = false;
  bool published_when_seen = false;
  std::thread reader([&] {
    seen = health.serving();
    published_when_seen = published.load();
  });
  absl::SleepFor(absl::Milliseconds(20));
  release.Notify();
  setter.join();
  reader.join();
  EXPECT_TRUE(seen);
  EXPECT_TRUE(published_when_seen);
}

}  // namespace
}  // namespace dynamo_batcher
