// The engine's buffer budget: reservations in arrival order per table, a
// waiter past its deadline never reserved, cancelled waiters leave the queue,
// one table's full budget never holds another's.

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/engine/engine.h"
#include "tests/support/fake_writer.h"

namespace dynamo_batcher {
namespace {

class EngineBudget : public ::testing::Test {
 protected:
  EngineBudget() : metrics_({"events", "users"}) {
    std::vector<EngineTable> tables(2);
    tables[0].schema.name = "events";
    tables[1].schema.name = "users";
    EngineOptions options;
    options.max_table_buffer_bytes = 1000;
    options.max_buffer_bytes = 100000;
    engine_ = std::make_unique<Engine>(tables, options, &writer_, &metrics_, &clock_);
  }

  Metrics metrics_;
  testing_util::FakeWriter writer_;  // never answers: no call is sent here anyway
  SteadyClock clock_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineBudget, TryReserveDoesNotOvertakeAQueuedWaiter) {
  // The engine thread is not started: the waiter stays queued.
  ASSERT_TRUE(engine_->TryReserve(0, 2000));  // table 0 full
  engine_->ReserveAsync(0, 10, absl::InfiniteFuture(), [](bool) {});
  engine_->Release(0, 2000);  // space again, but the waiter came first
  EXPECT_FALSE(engine_->TryReserve(0, 10));
  // Another table is not held by table 0's waiter.
  EXPECT_TRUE(engine_->TryReserve(1, 10));
}

TEST_F(EngineBudget, CancelledWaiterLeavesTheQueueUncalled) {
  ASSERT_TRUE(engine_->Start().ok());
  ASSERT_TRUE(engine_->TryReserve(0, 2000));
  std::atomic<int> calls{0};
  auto ticket = engine_->ReserveAsync(0, 10, absl::InfiniteFuture(), [&calls](bool) { ++calls; });
  ticket->Cancel();
  engine_->Release(0, 2000);
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (!engine_->TryReserve(0, 10) && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_LT(absl::Now(), until) << "the cancelled waiter still blocks the table";
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(engine_->buffered_bytes(), 10u);  // only the TryReserve above
}

TEST_F(EngineBudget, WaiterPastItsDeadlineIsNotReservedEvenWhenSpaceIsFree) {
  ASSERT_TRUE(engine_->Start().ok());
  std::promise<bool> result;
  // Space is free, but the caller's deadline has passed: it was already told
  // DEADLINE_EXCEEDED, so the op must not be reserved (and written).
  engine_->ReserveAsync(0, 10, absl::Now() - absl::Seconds(1),
                        [&result](bool ok) { result.set_value(ok); });
  auto f = result.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(f.get());
  EXPECT_EQ(engine_->buffered_bytes(), 0u);
}

TEST_F(EngineBudget, WaiterIsRefusedAtItsDeadlineWhenNothingElseHappens) {
  ASSERT_TRUE(engine_->Start().ok());
  ASSERT_TRUE(engine_->TryReserve(0, 2000));  // table 0 full; nothing frees it
  std::promise<bool> result;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(200);
  engine_->ReserveAsync(0, 10, deadline, [&result](bool ok) { result.set_value(ok); });
  auto f = result.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the waiter's deadline passed unanswered";
  EXPECT_FALSE(f.get());
  EXPECT_GE(absl::Now(), deadline);
  EXPECT_EQ(engine_->buffered_bytes(), 2000u);
}

TEST_F(EngineBudget, WaitersOfATableAreServedInArrivalOrder) {
  ASSERT_TRUE(engine_->Start().ok());
  ASSERT_TRUE(engine_->TryReserve(0, 2000));
  std::mutex mu;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    engine_->ReserveAsync(0, 400, absl::InfiniteFuture(), [&, i](bool ok) {
      std::lock_guard<std::mutex> lock(mu);
      if (ok) order.push_back(i);
    });
  }
  engine_->Release(0, 2000);
  // 400 + 400 + 400 fills the 1000-byte budget (one may overshoot).
  absl::SleepFor(absl::Milliseconds(300));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  }
  engine_->Release(0, 1200);
  absl::SleepFor(absl::Milliseconds(300));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace dynamo_batcher
