#include "service/lifecycle/signals.h"

#include <pthread.h>

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

// One test: the mask it sets stays for the whole process.
TEST(ProcessSignals, BlockedSignalsWaitForTheOwnerInsteadOfKillingTheProcess) {
  ProcessSignals signals;
  EXPECT_FALSE(signals.StopPending());

  // SIGHUP (reload) is not a stop.
  ASSERT_EQ(pthread_kill(pthread_self(), SIGHUP), 0);
  EXPECT_FALSE(signals.StopPending());
  EXPECT_EQ(signals.Wait(), SIGHUP);

  // A SIGTERM during start-up stays pending (the process lives on) and
  // start-up loops can see it; Wait then consumes it.
  ASSERT_EQ(pthread_kill(pthread_self(), SIGTERM), 0);
  EXPECT_TRUE(signals.StopPending());
  EXPECT_EQ(signals.Wait(), SIGTERM);
  EXPECT_FALSE(signals.StopPending());

  ASSERT_EQ(pthread_kill(pthread_self(), SIGINT), 0);
  EXPECT_TRUE(signals.StopPending());
  EXPECT_EQ(signals.Wait(), SIGINT);

  // SIGPIPE is ignored: raising it does not end the test.
  ASSERT_EQ(pthread_kill(pthread_self(), SIGPIPE), 0);

  EXPECT_STREQ(ProcessSignals::Name(SIGTERM), "SIGTERM");
  EXPECT_STREQ(ProcessSignals::Name(SIGINT), "SIGINT");
  EXPECT_STREQ(ProcessSignals::Name(SIGHUP), "SIGHUP");
}

}  // namespace
}  // namespace dynamo_batcher
