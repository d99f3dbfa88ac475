#include "service/auth/refreshing_credentials.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/auth/auth_fakes.h"

namespace dynamo_batcher {
namespace {

using testing_auth::FakeWallClock;

// Collects background refreshes; the test runs them when it chooses.
struct ManualExecutor {
  std::deque<std::function<void()>> tasks;
  std::function<void(std::function<void()>)> Fn() {
    return [this](std::function<void()> t) { tasks.push_back(std::move(t)); };
  }
  void RunAll() {
    while (!tasks.empty()) {
      auto t = std::move(tasks.front());
      tasks.pop_front();
      t();
    }
  }
};

AwsCredentials Creds(const std::string& id, absl::Time expiration) {
  AwsCredentials c;
  c.access_key_id = id;
  c.secret_access_key = "secret-" + id;
  c.session_token = "token-" + id;
  c.expiration = expiration;
  return c;
}

struct Fixture {
  FakeWallClock clock;
  ManualExecutor executor;
  int fetches = 0;
  std::vector<absl::StatusOr<AwsCredentials>> script;  // answers, in order
  std::vector<std::string> failures;
  bool never_block = false;

  std::unique_ptr<RefreshingCredentialsProvider> Make() {
    RefreshOptions o;
    o.never_block = never_block;
    o.wall_now = clock.Fn();
    o.run_async = executor.Fn();
    o.on_failure = [this](const std::string& name, const absl::Status& s) {
      failures.push_back(absl::StrCat(name, ": ", s.message()));
    };
    return std::make_unique<RefreshingCredentialsProvider>(
        "test",
        [this]() -> absl::StatusOr<AwsCredentials> {
          const size_t i = static_cast<size_t>(fetches++);
          if (i < script.size()) return script[i];
          return absl::UnavailableError("script exhausted");
        },
        o);
  }
};

TEST(RefreshingCredentials, FetchesOnceAndServesTheCacheUntilTheRefreshWindow) {
  Fixture f;
  f.script = {Creds("one", f.clock.Now() + absl::Hours(1))};
  auto p = f.Make();
  for (int i = 0; i < 5; ++i) {
    auto c = p->GetCredentials();
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->access_key_id, "one");
  }
  f.clock.Advance(absl::Minutes(54));  // 6 min left: not yet
  ASSERT_TRUE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 1);
  EXPECT_TRUE(f.executor.tasks.empty());
}

TEST(RefreshingCredentials, RefreshesInTheBackgroundFiveMinutesBeforeExpiry) {
  Fixture f;
  const absl::Time start = f.clock.Now();
  f.script = {Creds("one", start + absl::Hours(1)), Creds("two", start + absl::Hours(2))};
  auto p = f.Make();
  ASSERT_TRUE(p->GetCredentials().ok());
  f.clock.Advance(absl::Minutes(55) + absl::Seconds(1));
  // Due: one background refresh is queued; callers keep the old credentials.
  EXPECT_EQ(p->GetCredentials()->access_key_id, "one");
  EXPECT_EQ(p->GetCredentials()->access_key_id, "one");
  EXPECT_EQ(f.executor.tasks.size(), 1u) << "one refresh at a time";
  f.executor.RunAll();
  EXPECT_EQ(p->GetCredentials()->access_key_id, "two");
  EXPECT_EQ(f.fetches, 2);
}

TEST(RefreshingCredentials, ShortLivedCredentialsRefreshWhenFifteenPercentRemain) {
  Fixture f;
  const absl::Time start = f.clock.Now();
  f.script = {Creds("one", start + absl::Minutes(10)), Creds("two", start + absl::Minutes(20))};
  auto p = f.Make();
  ASSERT_TRUE(p->GetCredentials().ok());
  f.clock.Advance(absl::Minutes(8));  // 2 min left > 1.5 min
  ASSERT_TRUE(p->GetCredentials().ok());
  EXPECT_TRUE(f.executor.tasks.empty());
  f.clock.Advance(absl::Seconds(31));  // 1 min 29 s left
  ASSERT_TRUE(p->GetCredentials().ok());
  EXPECT_EQ(f.executor.tasks.size(), 1u);
}

TEST(RefreshingCredentials, FailedRefreshKeepsOldCredentialsUntilExpiryAndIsCounted) {
  Fixture f;
  const absl::Time start = f.clock.Now();
  f.script = {Creds("one", start + absl::Hours(1)), absl::UnavailableError("STS down"),
              absl::UnavailableError("STS still down")};
  auto p = f.Make();
  ASSERT_TRUE(p->GetCredentials().ok());
  f.clock.Advance(absl::Minutes(56));
  EXPECT_EQ(p->GetCredentials()->access_key_id, "one");
  f.executor.RunAll();
  EXPECT_EQ(p->RefreshFailures(), 1u);
  ASSERT_EQ(f.failures.size(), 1u);
  EXPECT_EQ(f.failures[0], "test: STS down");
  // Still valid: the old credentials are served; no retry within 10 s.
  EXPECT_EQ(p->GetCredentials()->access_key_id, "one");
  EXPECT_TRUE(f.executor.tasks.empty());
  f.clock.Advance(absl::Seconds(11));
  EXPECT_EQ(p->GetCredentials()->access_key_id, "one");
  EXPECT_EQ(f.executor.tasks.size(), 1u) << "retried after the minimum interval";
  f.executor.RunAll();
  EXPECT_EQ(p->RefreshFailures(), 2u);
  // Expired: now the error is what callers get.
  f.clock.Advance(absl::Minutes(5));
  auto c = p->GetCredentials();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "script exhausted");
  EXPECT_EQ(p->RefreshFailures(), 3u);
}

TEST(RefreshingCredentials, FailureWithoutCredentialsIsNotRetriedOnEveryCall) {
  Fixture f;
  f.script = {absl::UnavailableError("down")};
  auto p = f.Make();
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 1);
  f.clock.Advance(absl::Seconds(10));
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 2);
}

TEST(RefreshingCredentials, CredentialsWithoutExpirationAreRefetchedHourly) {
  Fixture f;
  AwsCredentials forever;
  forever.access_key_id = "A";
  forever.secret_access_key = "S";
  f.script = {forever, forever};
  auto p = f.Make();
  ASSERT_TRUE(p->GetCredentials().ok());
  f.clock.Advance(absl::Minutes(59));
  ASSERT_TRUE(p->GetCredentials().ok());
  EXPECT_TRUE(f.executor.tasks.empty());
  f.clock.Advance(absl::Minutes(2));
  ASSERT_TRUE(p->GetCredentials().ok());
  EXPECT_EQ(f.executor.tasks.size(), 1u);
}

TEST(RefreshingCredentials, ConcurrentCallersShareOneFetch) {
  FakeWallClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> fetches{0};
  RefreshOptions o;
  o.wall_now = clock.Fn();
  const absl::Time exp = clock.Now() + absl::Hours(1);
  RefreshingCredentialsProvider p(
      "test",
      [&]() -> absl::StatusOr<AwsCredentials> {
        fetches++;
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
        return Creds("shared", exp);
      },
      o);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto c = p.GetCredentials();
      if (c.ok() && c->access_key_id == "shared") ok++;
    });
  }
  // Let the threads pile up behind the one fetch, then release it.
  for (int i = 0; i < 200 && fetches.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  EXPECT_EQ(fetches.load(), 1);
  EXPECT_EQ(ok.load(), 8);
}

TEST(RefreshingCredentials, DefaultExecutorRefreshesOnItsOwnThread) {
  FakeWallClock clock;
  std::atomic<int> fetches{0};
  RefreshOptions o;
  o.wall_now = clock.Fn();
  const absl::Time start = clock.Now();
  {
    RefreshingCredentialsProvider p(
        "test",
        [&]() -> absl::StatusOr<AwsCredentials> {
          const int n = ++fetches;
          return Creds(n == 1 ? "one" : "two", start + absl::Hours(n));
        },
        o);
    ASSERT_EQ(p.GetCredentials()->access_key_id, "one");
    clock.Advance(absl::Minutes(58));
    EXPECT_EQ(p.GetCredentials()->access_key_id, "one");
    // Bounded wait for the worker thread.
    std::string id;
    for (int i = 0; i < 400; ++i) {
      id = p.GetCredentials()->access_key_id;
      if (id == "two") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(id, "two");
  }  // destructor joins the worker
  EXPECT_EQ(fetches.load(), 2);
}

TEST(RefreshingCredentials, WithoutCredentialsFailuresBackOffFromOneSecond) {
  Fixture f;
  f.script = {absl::UnavailableError("down"), absl::UnavailableError("down"),
              absl::UnavailableError("down")};
  auto p = f.Make();
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 1);
  f.clock.Advance(absl::Milliseconds(999));
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 1);
  f.clock.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 2);  // after 1 s
  f.clock.Advance(absl::Milliseconds(1999));
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 2);
  f.clock.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.fetches, 3);  // then after 2 s
}

TEST(RefreshingCredentials, NeverBlockReturnsUnavailableAndFetchesInTheBackground) {
  Fixture f;
  f.never_block = true;
  const absl::Time start = f.clock.Now();
  f.script = {absl::UnavailableError("STS down"), Creds("one", start + absl::Hours(1))};
  auto p = f.Make();
  auto c = p->GetCredentials();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(f.fetches, 0) << "the caller's thread did no I/O";
  ASSERT_EQ(f.executor.tasks.size(), 1u);
  EXPECT_FALSE(p->GetCredentials().ok());
  EXPECT_EQ(f.executor.tasks.size(), 1u) << "one fetch at a time";
  f.executor.RunAll();
  c = p->GetCredentials();
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StrContains(c.status().message(), "STS down")) << c.status();
  EXPECT_TRUE(f.executor.tasks.empty()) << "backing off";
  f.clock.Advance(absl::Seconds(1));
  EXPECT_FALSE(p->GetCredentials().ok());
  f.executor.RunAll();
  ASSERT_TRUE(p->GetCredentials().ok());
  EXPECT_EQ(p->GetCredentials()->access_key_id, "one");
}

TEST(RefreshingCredentials, NeverBlockCallerIsNotHeldByAStalledFetch) {
  // A credentials endpoint that never answers (until released): with the
  // real background thread, GetCredentials must come back at once, also
  // after the cached credentials expired.
  FakeWallClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> fetches{0};
  const absl::Time start = clock.Now();
  RefreshOptions o;
  o.wall_now = clock.Fn();
  o.never_block = true;
  {
    RefreshingCredentialsProvider p(
        "stalling",
        [&]() -> absl::StatusOr<AwsCredentials> {
          if (++fetches == 1) return Creds("one", start + absl::Hours(1));
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return release; });
          return Creds("two", start + absl::Hours(3));
        },
        o);
    ASSERT_TRUE(p.GetCredentialsBlocking().ok());
    clock.Advance(absl::Hours(2));  // expired; the refresh stalls
    for (int i = 0; i < 20; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto c = p.GetCredentials();
      EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
      EXPECT_FALSE(c.ok());
    }
    for (int i = 0; i < 400 && fetches.load() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(fetches.load(), 2) << "one background fetch, however many callers";
    {
      std::lock_guard<std::mutex> lock(mu);
      release = true;
    }
    cv.notify_all();
    std::string id;
    for (int i = 0; i < 400 && id != "two"; ++i) {
      auto c = p.GetCredentials();
      if (c.ok()) id = c->access_key_id;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(id, "two");
  }
}

}  // namespace
}  // namespace dynamo_batcher
