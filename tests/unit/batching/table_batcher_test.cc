#include "service/batching/table_batcher.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);
const std::string kTable = "events";

std::string PutJson(const std::string& key, uint64_t v) {
  return absl::StrCat(R"({"PutRequest":{"Item":{"pk":{"S":")", key, R"("},"v":{"N":")", v,
                      R"("}}}})");
}

// The test's delete elements carry the op id after the key so the model test
// can tell two deletes of one key apart; the batcher treats them as opaque.
std::string DeleteJson(const std::string& key, uint64_t id) {
  return absl::StrCat(R"({"DeleteRequest":{"Key":{"pk":{"S":")", key, R"("}}},"id":)", id, "}");
}

Op MakeOp(uint64_t id, const std::string& key, absl::Time arrival, bool is_delete = false) {
  Op op;
  op.id = id;
  op.table = &kTable;
  op.write.is_delete = is_delete;
  op.write.key = key;
  op.write.request_json = is_delete ? DeleteJson(key, id) : PutJson(key, id);
  op.write.item_size = op.write.request_json.size();
  op.arrival = arrival;
  return op;
}

TableSchema Schema() {
  TableSchema s;
  s.name = kTable;
  s.partition_key = {"pk", KeyType::kS};
  return s;
}

BatchingOptions Options() {
  BatchingOptions o;
  o.max_items = 25;
  o.linger = absl::Milliseconds(5);
  o.max_inflight_calls = 8;
  o.rng_seed = 1;
  return o;
}

RetryOptions Retry() {
  RetryOptions r;
  r.base = absl::Milliseconds(25);
  r.cap = absl::Seconds(1);
  r.max_attempts = 5;
  r.op_deadline = absl::Seconds(60);
  return r;
}

std::unique_ptr<TableBatcher> MakeBatcher(BatchingOptions o = Options(), RetryOptions r = Retry(),
                                          RateLimiterOptions l = {}) {
  return std::make_unique<TableBatcher>(Schema(), o, RetryPolicy(r), RateLimiter(l));
}

std::vector<std::string> Keys(const Batch& b) {
  std::vector<std::string> out;
  for (const std::string* k : b.keys) out.push_back(*k);
  return out;
}

BatchResult Success(std::vector<std::string> unprocessed = {}) {
  BatchResult r;
  r.kind = BatchResult::Kind::kSuccess;
  r.unprocessed_keys = std::move(unprocessed);
  return r;
}

BatchResult Throttled() {
  BatchResult r;
  r.kind = BatchResult::Kind::kRetryable;
  r.throttled = true;
  r.error_code = "ProvisionedThroughputExceededException";
  r.message = "The level of configured provisioned throughput for the table was exceeded";
  return r;
}

BatchResult Validation() {
  BatchResult r;
  r.kind = BatchResult::Kind::kValidation;
  r.error_code = "ValidationException";
  r.message = "One or more parameter values were invalid";
  return r;
}

BatchResult Fatal() {
  BatchResult r;
  r.kind = BatchResult::Kind::kFatal;
  r.error_code = "ResourceNotFoundException";
  r.message = "Requested resource not found";
  return r;
}

// id -> result, failing on a second result for one op.
std::map<uint64_t, OpResult> ById(const std::vector<OpResult>& results) {
  std::map<uint64_t, OpResult> out;
  for (const OpResult& r : results) {
    EXPECT_TRUE(out.emplace(r.op.id, r).second) << "two results for op " << r.op.id;
  }
  return out;
}

// Advances *now wake-up by wake-up until a batch comes out (bounded).
std::optional<Batch> NextBatch(TableBatcher* b, absl::Time* now) {
  for (int i = 0; i < 100; ++i) {
    const absl::Time wake = b->NextWakeup(*now);
    if (wake == absl::InfiniteFuture()) return std::nullopt;
    *now = std::max(*now, wake);
    if (auto batch = b->TakeBatch(*now)) return batch;
  }
  return std::nullopt;
}

TEST(Batcher, FlushesWhenTwentyFiveItemsAreBuffered) {
  auto b = MakeBatcher();
  for (int i = 0; i < 24; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
  EXPECT_EQ(b->NextWakeup(kT0), kT0 + absl::Milliseconds(5));
  b->Add(MakeOp(24, "k24", kT0), kT0);
  b->Add(MakeOp(25, "k25", kT0), kT0);
  EXPECT_EQ(b->NextWakeup(kT0), kT0);
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->request_jsons.size(), 25u);
  EXPECT_EQ(*batch->keys[0], "k0");
  EXPECT_EQ(*batch->request_jsons[0], PutJson("k0", 0));
  EXPECT_FALSE(batch->is_bisect);
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());  // one left, lingering
  EXPECT_EQ(b->queued_items(), 1u);
  EXPECT_EQ(b->pending_ops(), 26u);
  EXPECT_EQ(b->inflight_calls(), 1u);
  EXPECT_EQ(b->stats().batches, 1u);
}

// A burst grows the per-key index; once every op is answered its memory is
// handed back, so an idle sidecar does not keep the burst's peak.
TEST(Batcher, ReleasesKeyIndexMemoryWhenDrained) {
  auto b = MakeBatcher();
  absl::Time now = kT0;
  for (int i = 0; i < 20000; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), now), now);
  EXPECT_GE(b->key_index_capacity(), 20000u);
  std::vector<OpResult> results;
  for (int i = 0; i < 2000 && b->pending_ops() > 0; ++i) {
    b->Flush();
    auto batch = NextBatch(b.get(), &now);
    ASSERT_TRUE(batch.has_value());
    b->OnBatchResult(batch->id, Success(), now, &results);
  }
  EXPECT_EQ(b->pending_ops(), 0u);
  EXPECT_EQ(results.size(), 20000u);
  EXPECT_LE(b->key_index_capacity(), 4096u);
  // Still works afterwards.
  b->Add(MakeOp(20000, "k0", now), now);
  b->Flush();
  auto batch = NextBatch(b.get(), &now);
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(Keys(*batch), std::vector<std::string>{"k0"});
}

TEST(Batcher, CutsWhenOldestWaitedLinger) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "a", kT0), kT0);
  b->Add(MakeOp(2, "b", kT0), kT0 + absl::Milliseconds(3));
  EXPECT_FALSE(b->TakeBatch(kT0 + absl::Microseconds(4999)).has_value());
  EXPECT_EQ(b->NextWakeup(kT0 + absl::Milliseconds(4)), kT0 + absl::Milliseconds(5));
  auto batch = b->TakeBatch(kT0 + absl::Milliseconds(5));
  ASSERT_TRUE(batch.has_value());
  EXPECT_THAT(Keys(*batch), ElementsAre("a", "b"));
  EXPECT_EQ(b->NextWakeup(kT0 + absl::Milliseconds(5)), absl::InfiniteFuture());
}

TEST(Batcher, FlushSendsPartialBatch) {
  auto b = MakeBatcher();
  for (int i = 0; i < 3; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
  b->Flush();
  b->Add(MakeOp(3, "k3", kT0), kT0);  // after the flush: waits for linger
  EXPECT_EQ(b->NextWakeup(kT0), kT0);
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  EXPECT_THAT(Keys(*batch), ElementsAre("k0", "k1", "k2", "k3"));
  // The flush is over: new items linger again.
  b->Add(MakeOp(4, "k4", kT0), kT0);
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
  EXPECT_TRUE(b->TakeBatch(kT0 + absl::Milliseconds(5)).has_value());
}

TEST(Batcher, FlushDoesNotCoverLaterItemsWhenAlone) {
  auto b = MakeBatcher();
  b->Flush();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
}

TEST(Batcher, CoalescesDuplicatesWithinQueue) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Add(MakeOp(2, "k2", kT0), kT0);
  b->Add(MakeOp(3, "k1", kT0), kT0 + absl::Milliseconds(1));
  EXPECT_EQ(b->stats().coalesced, 1u);
  EXPECT_EQ(b->queued_items(), 3u);
  EXPECT_EQ(b->pending_ops(), 3u);
  auto batch = b->TakeBatch(kT0 + absl::Milliseconds(5));  // k1 kept its place
  ASSERT_TRUE(batch.has_value());
  EXPECT_THAT(Keys(*batch), ElementsAre("k1", "k2"));
  EXPECT_EQ(*batch->request_jsons[0], PutJson("k1", 3));
  EXPECT_EQ(b->queued_items(), 0u);
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Success(), kT0 + absl::Milliseconds(9), &results);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 3u);
  EXPECT_EQ(by_id[1].outcome, Outcome::kCoalesced);
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);
  EXPECT_EQ(by_id[3].outcome, Outcome::kWritten);
  EXPECT_EQ(by_id[3].op.attempts, 1u);
  EXPECT_EQ(b->pending_ops(), 0u);
  EXPECT_EQ(b->pending_bytes(), 0u);
}

TEST(Batcher, CoalescedIsNotAnsweredBeforeHeadIsWritten) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Add(MakeOp(2, "k1", kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Success({"k1"}), kT0, &results);
  EXPECT_TRUE(results.empty());  // head retried; the coalesced op waits with it
  EXPECT_EQ(b->pending_ops(), 2u);
  EXPECT_EQ(b->queued_items(), 2u);
}

TEST(Batcher, NeverTwoWritesToOneKeyInOneBatch) {
  auto b = MakeBatcher();
  uint64_t id = 0;
  for (int round = 0; round < 10; ++round) {
    for (const char* k : {"a", "b", "a", "c", "a", "b"}) b->Add(MakeOp(++id, k, kT0), kT0);
  }
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  EXPECT_THAT(Keys(*batch), ElementsAre("a", "b", "c"));
  EXPECT_EQ(*batch->request_jsons[0], PutJson("a", 59));
  EXPECT_EQ(*batch->request_jsons[1], PutJson("b", 60));
  EXPECT_EQ(*batch->request_jsons[2], PutJson("c", 58));
  EXPECT_EQ(b->stats().coalesced, 57u);
}

TEST(Batcher, NewerWriteWaitsBehindInFlight) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto first = b->TakeBatch(kT0);
  ASSERT_TRUE(first.has_value());
  b->Add(MakeOp(2, "k1", kT0), kT0);
  b->Add(MakeOp(3, "k2", kT0), kT0);
  EXPECT_EQ(b->stats().coalesced, 0u);  // never merged with the in-flight one
  const absl::Time t1 = kT0 + absl::Milliseconds(5);
  auto second = b->TakeBatch(t1);
  ASSERT_TRUE(second.has_value());
  EXPECT_THAT(Keys(*second), ElementsAre("k2"));  // k1 is blocked
  EXPECT_FALSE(b->TakeBatch(t1 + absl::Seconds(1)).has_value());
  EXPECT_EQ(b->NextWakeup(t1), absl::InfiniteFuture());
  EXPECT_EQ(b->queued_items(), 1u);

  std::vector<OpResult> results;
  const absl::Time t2 = kT0 + absl::Seconds(2);
  b->OnBatchResult(first->id, Success(), t2, &results);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 1u);
  EXPECT_EQ(by_id[1].outcome, Outcome::kWritten);
  // Unblocked now; it waits linger like any newly ready item.
  EXPECT_EQ(b->NextWakeup(t2), t2 + absl::Milliseconds(5));
  auto third = b->TakeBatch(t2 + absl::Milliseconds(5));
  ASSERT_TRUE(third.has_value());
  EXPECT_THAT(Keys(*third), ElementsAre("k1"));
  EXPECT_EQ(*third->request_jsons[0], PutJson("k1", 2));
}

TEST(Batcher, FlushCoversWriteBlockedAtFlushTime) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto first = b->TakeBatch(kT0);
  ASSERT_TRUE(first.has_value());
  b->Add(MakeOp(2, "k1", kT0), kT0);
  b->Flush();
  std::vector<OpResult> results;
  b->OnBatchResult(first->id, Success(), kT0 + absl::Milliseconds(1), &results);
  auto second = b->TakeBatch(kT0 + absl::Milliseconds(1));  // no linger
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*second->request_jsons[0], PutJson("k1", 2));
}

TEST(Batcher, PutThenDeleteOnOneKey) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Add(MakeOp(2, "k1", kT0, /*is_delete=*/true), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->request_jsons.size(), 1u);
  EXPECT_EQ(*batch->request_jsons[0], DeleteJson("k1", 2));
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Success(), kT0, &results);
  auto by_id = ById(results);
  EXPECT_EQ(by_id[1].outcome, Outcome::kCoalesced);
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);
}

TEST(Batcher, DeleteThenPutOnOneKey) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0, /*is_delete=*/true), kT0);
  b->Add(MakeOp(2, "k1", kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->request_jsons.size(), 1u);
  EXPECT_EQ(*batch->request_jsons[0], PutJson("k1", 2));
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Success(), kT0, &results);
  auto by_id = ById(results);
  EXPECT_EQ(by_id[1].outcome, Outcome::kCoalesced);
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);
}

TEST(Batcher, UnprocessedItemsAreRetriedWithBackoff) {
  auto b = MakeBatcher();
  for (const char* k : {"k1", "k2", "k3"}) b->Add(MakeOp(k[1] - '0', k, kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  const absl::Time t1 = kT0 + absl::Milliseconds(10);
  b->OnBatchResult(batch->id, Success({"k2"}), t1, &results);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 2u);
  EXPECT_EQ(by_id[1].outcome, Outcome::kWritten);
  EXPECT_EQ(by_id[3].outcome, Outcome::kWritten);
  EXPECT_EQ(b->stats().unprocessed_items, 1u);
  EXPECT_EQ(b->stats().retries, 1u);
  EXPECT_EQ(b->pending_ops(), 1u);
  EXPECT_EQ(b->queued_items(), 1u);
  EXPECT_EQ(b->inflight_calls(), 0u);

  // Backoff after one call: U(0, base = 25ms).
  const absl::Time wake = b->NextWakeup(t1);
  EXPECT_GE(wake, t1);
  EXPECT_LE(wake, t1 + absl::Milliseconds(25));
  if (wake > t1) {
    EXPECT_FALSE(b->TakeBatch(wake - absl::Nanoseconds(1)).has_value());
  }
  EXPECT_FALSE(b->TakeBatch(wake).has_value());  // back in the queue; lingers
  auto retry = b->TakeBatch(wake + absl::Milliseconds(5));
  ASSERT_TRUE(retry.has_value());
  EXPECT_THAT(Keys(*retry), ElementsAre("k2"));
  results.clear();
  b->OnBatchResult(retry->id, Success(), wake + absl::Milliseconds(6), &results);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].op.id, 2u);
  EXPECT_EQ(results[0].outcome, Outcome::kWritten);
  EXPECT_EQ(results[0].op.attempts, 2u);
  EXPECT_EQ(b->pending_ops(), 0u);
}

// Under a loss that does not depend on the rate (30% of every call's items
// come back unprocessed, whatever is sent), the rate limiter learns a loss
// floor; from then on the backoff of unprocessed items stops growing at
// U(0, 200 ms): waiting longer does not make the next attempt likelier to
// land. Items that bounce 5+ times (about 40 of the ~20,000 here) would
// otherwise wait up to 0.4-3.2 s. Every op still gets exactly one result.
TEST(Batcher, BackoffStopsGrowingUnderAKnownRateIndependentLoss) {
  RetryOptions r = Retry();
  r.cap = absl::Seconds(5);
  r.max_attempts = 15;
  auto b = MakeBatcher(Options(), r);
  std::mt19937_64 rng(7);
  bool known = false;
  absl::Duration longest_once_known;
  size_t retries_once_known = 0;
  b->set_backoff_observer([&](absl::Duration d) {
    if (!known) return;
    ++retries_once_known;
    longest_once_known = std::max(longest_once_known, d);
  });
  struct Call {
    absl::Time at;
    Batch batch;
  };
  std::vector<Call> inflight;
  std::map<uint64_t, int> results_per_op;
  uint64_t next_id = 1;
  std::vector<OpResult> results;
  const absl::Time end = kT0 + absl::Seconds(20);
  for (absl::Time now = kT0; now < end; now += absl::Milliseconds(1)) {
    for (int i = 0; i < 2; ++i, ++next_id) {  // 2,000 ops/s over 5,000 keys
      b->Add(MakeOp(next_id, absl::StrCat("k", next_id % 5000), now), now);
    }
    for (auto it = inflight.begin(); it != inflight.end();) {
      if (it->at > now) {
        ++it;
        continue;
      }
      std::vector<std::string> lost;
      for (const std::string* k : it->batch.keys) {
        if (std::uniform_real_distribution<double>(0, 1)(rng) < 0.3) lost.push_back(*k);
      }
      known = b->rate_limiter().LossIsRateIndependent();
      b->OnBatchResult(it->batch.id, Success(lost), now, &results);
      it = inflight.erase(it);
    }
    while (auto batch = b->TakeBatch(now))
      inflight.push_back({now + absl::Milliseconds(10), *batch});
    for (const OpResult& res : results) ++results_per_op[res.op.id];
    results.clear();
  }
  ASSERT_GT(b->rate_limiter().loss_floor(), 0.2) << "the loss was not recognised";
  ASSERT_GT(retries_once_known, 1000u);
  EXPECT_LE(longest_once_known, absl::Milliseconds(200));
  for (const auto& [id, n] : results_per_op) ASSERT_EQ(n, 1) << "op " << id;
}

TEST(Batcher, RetryAfterHeaderIsHonoured) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  BatchResult r = Throttled();
  r.retry_after = absl::Seconds(2);
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, r, kT0, &results);
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(b->NextWakeup(kT0), kT0 + absl::Seconds(2));
}

TEST(Batcher, NewerWriteReplacesOpInBackoff) {
  auto b = MakeBatcher();
  std::vector<std::string> sent;
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  sent.push_back(*batch->request_jsons[0]);
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Success({"k1"}), kT0, &results);
  const absl::Time wake = b->NextWakeup(kT0);
  b->Add(MakeOp(2, "k1", kT0), kT0);  // while v1 backs off
  EXPECT_EQ(b->stats().coalesced, 1u);
  EXPECT_EQ(b->NextWakeup(kT0), wake);  // keeps the backoff time
  absl::Time now = kT0;
  for (int i = 0; i < 100 && b->pending_ops() > 0; ++i) {
    now = std::max(now, b->NextWakeup(now));
    while (auto next = b->TakeBatch(now)) {
      for (const std::string* j : next->request_jsons) sent.push_back(*j);
      b->OnBatchResult(next->id, Success(), now, &results);
    }
  }
  EXPECT_THAT(sent, ElementsAre(PutJson("k1", 1), PutJson("k1", 2)));
  auto by_id = ById(results);
  EXPECT_EQ(by_id[1].outcome, Outcome::kCoalesced);
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);
}

TEST(Batcher, RetryOfOldValueNeverLandsAfterNewer) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto first = b->TakeBatch(kT0);
  ASSERT_TRUE(first.has_value());
  b->Add(MakeOp(2, "k1", kT0), kT0);  // v2 blocked behind v1
  std::vector<OpResult> results;
  b->OnBatchResult(first->id, Success({"k1"}), kT0 + absl::Milliseconds(1), &results);
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(b->stats().retries, 0u);  // v1 is not re-sent: v2 replaces it
  EXPECT_EQ(b->stats().coalesced, 1u);
  EXPECT_EQ(b->stats().unprocessed_items, 1u);
  auto second = b->TakeBatch(kT0 + absl::Milliseconds(6));
  ASSERT_TRUE(second.has_value());
  ASSERT_EQ(second->request_jsons.size(), 1u);
  EXPECT_EQ(*second->request_jsons[0], PutJson("k1", 2));
  b->OnBatchResult(second->id, Success(), kT0 + absl::Milliseconds(7), &results);
  auto by_id = ById(results);
  EXPECT_EQ(by_id[1].outcome, Outcome::kCoalesced);
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);
  EXPECT_EQ(b->pending_ops(), 0u);
}

BatchResult TimedOut() {
  BatchResult r;
  r.kind = BatchResult::Kind::kRetryable;
  r.unknown_fate = true;
  r.error_code = "Timeout";
  r.message = "timeout";
  return r;
}

// A call that timed out may still be applied by DynamoDB later. A newer
// write to one of its keys, blocked behind it, must not go out before
// unknown_fate_hold has passed since the call ended; other keys are free.
TEST(Batcher, UnknownFateHoldsNewerWriteBlockedBehindTheCall) {
  BatchingOptions o = Options();
  o.unknown_fate_hold = absl::Seconds(3);
  auto b = MakeBatcher(o);
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto first = b->TakeBatch(kT0);
  ASSERT_TRUE(first.has_value());
  b->Add(MakeOp(2, "k1", kT0), kT0);  // blocked behind the call
  std::vector<OpResult> results;
  const absl::Time ended = kT0 + absl::Seconds(10);
  b->OnBatchResult(first->id, TimedOut(), ended, &results);
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(b->held_keys(ended), 1u);
  b->Add(MakeOp(3, "k2", ended), ended);  // another key: not held
  absl::Time now = ended;
  auto other = NextBatch(b.get(), &now);
  ASSERT_TRUE(other.has_value());
  EXPECT_THAT(Keys(*other), ElementsAre("k2"));
  EXPECT_LT(now, ended + absl::Milliseconds(100));
  EXPECT_FALSE(b->TakeBatch(ended + absl::Seconds(3) - absl::Milliseconds(1)).has_value());
  auto held = NextBatch(b.get(), &now);
  ASSERT_TRUE(held.has_value());
  EXPECT_GE(now, ended + absl::Seconds(3));
  ASSERT_EQ(held->request_jsons.size(), 1u);
  EXPECT_EQ(*held->request_jsons[0], PutJson("k1", 2));  // v1 is never re-sent over it
  b->OnBatchResult(held->id, Success(), now, &results);
  auto by_id = ById(results);
  EXPECT_EQ(by_id[1].outcome, Outcome::kCoalesced);
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);
  EXPECT_EQ(b->held_keys(now), 0u);
}

// The hold covers writes that arrive after the call ended too, and the
// retry of the unknown-fate write itself (it backs off at least that long).
TEST(Batcher, UnknownFateHoldsRetryAndLaterArrivals) {
  BatchingOptions o = Options();
  o.unknown_fate_hold = absl::Seconds(2);
  auto b = MakeBatcher(o);
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto first = b->TakeBatch(kT0);
  ASSERT_TRUE(first.has_value());
  std::vector<OpResult> results;
  const absl::Time ended = kT0 + absl::Seconds(1);
  b->OnBatchResult(first->id, TimedOut(), ended, &results);
  EXPECT_EQ(b->NextWakeup(ended), ended + absl::Seconds(2));
  b->Add(MakeOp(2, "k1", ended), ended);
  b->Flush();
  EXPECT_FALSE(b->TakeBatch(ended + absl::Milliseconds(1999)).has_value());
  auto next = b->TakeBatch(ended + absl::Seconds(2));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next->request_jsons[0], PutJson("k1", 2));
}

// A write to a key whose earlier call failed for good after a timeout
// (retries exhausted) still waits out the hold.
TEST(Batcher, UnknownFateHoldOutlivesTheFailedOp) {
  BatchingOptions o = Options();
  o.unknown_fate_hold = absl::Seconds(2);
  RetryOptions r = Retry();
  r.max_attempts = 1;
  auto b = MakeBatcher(o, r);
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  auto first = b->TakeBatch(kT0);
  ASSERT_TRUE(first.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(first->id, TimedOut(), kT0, &results);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kFailed);
  b->Add(MakeOp(2, "k1", kT0), kT0);
  b->Flush();
  EXPECT_FALSE(b->TakeBatch(kT0 + absl::Milliseconds(1999)).has_value());
  EXPECT_TRUE(b->TakeBatch(kT0 + absl::Seconds(2)).has_value());
}

// Errors with a known fate (an answer came back) and a zero hold do not
// delay anything.
TEST(Batcher, KnownFateErrorsAreNotHeld) {
  for (bool zero_hold : {false, true}) {
    BatchingOptions o = Options();
    if (zero_hold) o.unknown_fate_hold = absl::ZeroDuration();
    auto b = MakeBatcher(o);
    b->Add(MakeOp(1, "k1", kT0), kT0);
    b->Flush();
    auto first = b->TakeBatch(kT0);
    ASSERT_TRUE(first.has_value());
    b->Add(MakeOp(2, "k1", kT0), kT0);
    std::vector<OpResult> results;
    BatchResult r = zero_hold ? TimedOut() : Throttled();
    b->OnBatchResult(first->id, r, kT0, &results);
    absl::Time now = kT0;
    ASSERT_TRUE(NextBatch(b.get(), &now).has_value());
    EXPECT_LT(now, kT0 + absl::Milliseconds(100)) << "zero_hold=" << zero_hold;
  }
}

TEST(Batcher, CoalescedOpsFailWithTheirHead) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Add(MakeOp(2, "k1", kT0), kT0);
  b->Add(MakeOp(3, "k1", kT0, true), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Fatal(), kT0, &results);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 3u);
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(by_id[id].outcome, Outcome::kFailed) << id;
    EXPECT_EQ(by_id[id].error_code, "ResourceNotFoundException");
    EXPECT_EQ(by_id[id].message, "Requested resource not found");
  }
}

TEST(Batcher, MaxInflightCallsRespected) {
  BatchingOptions o = Options();
  o.max_inflight_calls = 2;
  auto b = MakeBatcher(o);
  for (int i = 0; i < 100; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  auto a = b->TakeBatch(kT0);
  auto c = b->TakeBatch(kT0);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
  EXPECT_EQ(b->inflight_calls(), 2u);
  EXPECT_EQ(b->NextWakeup(kT0), absl::InfiniteFuture());
  EXPECT_EQ(b->queued_items(), 50u);
  std::vector<OpResult> results;
  b->OnBatchResult(a->id, Success(), kT0, &results);
  EXPECT_EQ(results.size(), 25u);
  EXPECT_EQ(b->NextWakeup(kT0), kT0);
  EXPECT_TRUE(b->TakeBatch(kT0).has_value());
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
}

TEST(Batcher, MultipleCallsInFlightKeepPerKeyRule) {
  auto b = MakeBatcher();
  for (int i = 0; i < 25; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  auto a = b->TakeBatch(kT0);
  ASSERT_TRUE(a.has_value());
  b->Add(MakeOp(100, "k1", kT0), kT0);
  for (int i = 25; i < 49; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  b->Add(MakeOp(101, "k2", kT0), kT0);
  b->Flush();
  auto c = b->TakeBatch(kT0);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->request_jsons.size(), 24u);
  const std::vector<std::string> keys_a = Keys(*a);
  std::set<std::string> in_a(keys_a.begin(), keys_a.end());
  for (const std::string& k : Keys(*c)) EXPECT_EQ(in_a.count(k), 0u) << k;
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(a->id, Success(), kT0 + absl::Milliseconds(1), &results);
  auto d = b->TakeBatch(kT0 + absl::Milliseconds(1));  // blocked at Flush: no linger
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(Keys(*d), UnorderedElementsAre("k1", "k2"));
}

// A server that rejects, as a whole, any call holding a bad key.
void RunAgainstValidatingServer(TableBatcher* b, const std::set<std::string>& bad,
                                std::vector<OpResult>* results, int* calls, int* bisect_calls) {
  absl::Time now = kT0;
  for (int i = 0; i < 1000 && b->pending_ops() > 0; ++i) {
    now = std::max(now, b->NextWakeup(now));
    ASSERT_NE(now, absl::InfiniteFuture());
    while (auto batch = b->TakeBatch(now)) {
      ++*calls;
      if (batch->is_bisect) ++*bisect_calls;
      bool has_bad = false;
      for (const std::string* k : batch->keys) has_bad |= bad.count(*k) > 0;
      b->OnBatchResult(batch->id, has_bad ? Validation() : Success(), now, results);
    }
  }
  EXPECT_EQ(b->pending_ops(), 0u);
}

TEST(Batcher, BisectionIsolatesOneBadItemOutOf25) {
  auto b = MakeBatcher();
  for (int i = 0; i < 25; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  std::vector<OpResult> results;
  int calls = 0, bisect_calls = 0;
  RunAgainstValidatingServer(b.get(), {"k17"}, &results, &calls, &bisect_calls);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 25u);
  for (int i = 0; i < 25; ++i) {
    if (i == 17) {
      EXPECT_EQ(by_id[i].outcome, Outcome::kFailed);
      EXPECT_EQ(by_id[i].error_code, "ValidationException");
      EXPECT_THAT(by_id[i].message, HasSubstr("invalid"));
    } else {
      EXPECT_EQ(by_id[i].outcome, Outcome::kWritten) << i;
    }
  }
  EXPECT_EQ(calls - bisect_calls, 1);
  EXPECT_LE(calls, 1 + 2 * 5);  // two halves per level, ceil(log2(25)) = 5 levels
  EXPECT_EQ(b->stats().retries, 0u);
}

TEST(Batcher, BisectionIsolatesThreeBadItems) {
  RetryOptions r = Retry();
  r.max_attempts = 2;  // bisected calls must not use up attempts
  auto b = MakeBatcher(Options(), r);
  for (int i = 0; i < 25; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  std::vector<OpResult> results;
  int calls = 0, bisect_calls = 0;
  RunAgainstValidatingServer(b.get(), {"k0", "k12", "k24"}, &results, &calls, &bisect_calls);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 25u);
  int written = 0, failed = 0;
  for (auto& [id, res] : by_id) {
    if (res.outcome == Outcome::kWritten) ++written;
    if (res.outcome == Outcome::kFailed) {
      ++failed;
      EXPECT_TRUE(id == 0 || id == 12 || id == 24) << id;
      EXPECT_EQ(res.error_code, "ValidationException");
    }
  }
  EXPECT_EQ(written, 22);
  EXPECT_EQ(failed, 3);
  EXPECT_GT(bisect_calls, 0);
}

TEST(Batcher, BisectHalvesGoBeforeNewWorkAndKeepKeysBlocked) {
  auto b = MakeBatcher();
  for (int i = 0; i < 4; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Validation(), kT0, &results);
  EXPECT_TRUE(results.empty());
  b->Add(MakeOp(10, "k0", kT0), kT0);  // must wait for k0's bisected send
  for (int i = 20; i < 45; ++i) b->Add(MakeOp(i, absl::StrCat("n", i), kT0), kT0);
  auto h1 = b->TakeBatch(kT0);
  auto h2 = b->TakeBatch(kT0);
  ASSERT_TRUE(h1.has_value());
  ASSERT_TRUE(h2.has_value());
  EXPECT_TRUE(h1->is_bisect);
  EXPECT_TRUE(h2->is_bisect);
  EXPECT_THAT(Keys(*h1), ElementsAre("k0", "k1"));
  EXPECT_THAT(Keys(*h2), ElementsAre("k2", "k3"));
  auto next = b->TakeBatch(kT0);
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->is_bisect);
  for (const std::string& k : Keys(*next)) EXPECT_NE(k, "k0");
}

TEST(Batcher, BisectedCallsDoNotCountAsAttempts) {
  RetryOptions r = Retry();
  r.max_attempts = 2;
  auto b = MakeBatcher(Options(), r);
  b->Add(MakeOp(1, "bad", kT0), kT0);
  b->Add(MakeOp(2, "good", kT0), kT0);
  b->Flush();
  absl::Time now = kT0;
  auto whole = b->TakeBatch(now);
  ASSERT_TRUE(whole.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(whole->id, Validation(), now, &results);
  auto h1 = b->TakeBatch(now);
  auto h2 = b->TakeBatch(now);
  ASSERT_TRUE(h1.has_value() && h2.has_value());
  EXPECT_THAT(Keys(*h1), ElementsAre("bad"));
  EXPECT_THAT(Keys(*h2), ElementsAre("good"));
  b->OnBatchResult(h1->id, Validation(), now, &results);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kFailed);
  EXPECT_EQ(results[0].error_code, "ValidationException");
  // "good" has been carried by two calls, but only one counts: it may retry.
  b->OnBatchResult(h2->id, Throttled(), now, &results);
  ASSERT_EQ(results.size(), 1u);
  auto retry = NextBatch(b.get(), &now);
  ASSERT_TRUE(retry.has_value());
  b->OnBatchResult(retry->id, Success(), now, &results);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].outcome, Outcome::kWritten);
  EXPECT_EQ(results[1].op.attempts, 3u);  // real calls are still reported
}

TEST(Batcher, FatalFailsWholeBatch) {
  auto b = MakeBatcher();
  for (int i = 0; i < 3; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Fatal(), kT0, &results);
  ASSERT_EQ(results.size(), 3u);
  for (const OpResult& r : results) {
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_EQ(r.error_code, "ResourceNotFoundException");
  }
  EXPECT_EQ(b->pending_ops(), 0u);
  EXPECT_EQ(b->queued_bytes(), 0u);
  EXPECT_EQ(b->NextWakeup(kT0), absl::InfiniteFuture());
  // The keys are free again.
  b->Add(MakeOp(9, "k0", kT0), kT0);
  b->Flush();
  EXPECT_TRUE(b->TakeBatch(kT0).has_value());
}

TEST(Batcher, RetriesExhausted) {
  RetryOptions r = Retry();
  r.max_attempts = 3;
  auto b = MakeBatcher(Options(), r);
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Flush();
  std::vector<OpResult> results;
  absl::Time now = kT0;
  int calls = 0;
  for (int i = 0; i < 100 && b->pending_ops() > 0; ++i) {
    now = std::max(now, b->NextWakeup(now));
    while (auto batch = b->TakeBatch(now)) {
      ++calls;
      b->OnBatchResult(batch->id, Throttled(), now, &results);
    }
  }
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kFailed);
  EXPECT_EQ(results[0].error_code, "RetriesExhausted");
  EXPECT_EQ(results[0].op.attempts, 3u);
  EXPECT_THAT(results[0].message, HasSubstr("ProvisionedThroughputExceededException"));
  EXPECT_THAT(results[0].message, HasSubstr("provisioned throughput"));
  EXPECT_EQ(b->stats().retries, 2u);
}

TEST(Batcher, DeadlineExceeded) {
  RetryOptions r = Retry();
  r.max_attempts = 100;
  r.op_deadline = absl::Seconds(1);
  auto b = MakeBatcher(Options(), r);
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Add(MakeOp(2, "k2", kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  // The answer itself comes after the deadline.
  b->OnBatchResult(batch->id, Success({"k1"}), kT0 + absl::Seconds(2), &results);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 2u);
  EXPECT_EQ(by_id[1].outcome, Outcome::kFailed);
  EXPECT_EQ(by_id[1].error_code, "DeadlineExceeded");
  EXPECT_THAT(by_id[1].message, HasSubstr("UnprocessedItems"));
  EXPECT_EQ(by_id[2].outcome, Outcome::kWritten);

  // A Retry-After that would land past the deadline fails it too.
  b->Add(MakeOp(3, "k3", kT0 + absl::Seconds(2)), kT0 + absl::Seconds(2));
  b->Flush();
  auto again = b->TakeBatch(kT0 + absl::Seconds(2));
  ASSERT_TRUE(again.has_value());
  BatchResult t = Throttled();
  t.retry_after = absl::Seconds(5);
  results.clear();
  b->OnBatchResult(again->id, t, kT0 + absl::Seconds(2), &results);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].error_code, "DeadlineExceeded");
  EXPECT_EQ(b->pending_ops(), 0u);
}

TEST(Batcher, FailQueuedLeavesInFlight) {
  auto b = MakeBatcher();
  b->Add(MakeOp(1, "k1", kT0), kT0);
  b->Add(MakeOp(3, "k3", kT0), kT0);
  b->Flush();
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  std::vector<OpResult> results;
  b->OnBatchResult(batch->id, Success({"k3"}), kT0, &results);  // k3 backs off
  ASSERT_EQ(results.size(), 1u);
  b->Add(MakeOp(4, "k4", kT0), kT0);
  b->Flush();
  auto inflight = b->TakeBatch(kT0);
  ASSERT_TRUE(inflight.has_value());
  EXPECT_THAT(Keys(*inflight), ElementsAre("k4"));
  b->Add(MakeOp(5, "k4", kT0), kT0);  // blocked
  b->Add(MakeOp(2, "k2", kT0), kT0);  // queued
  b->Add(MakeOp(6, "k2", kT0), kT0);  // coalesced into it
  EXPECT_EQ(b->pending_ops(), 5u);
  results.clear();
  b->FailQueued("ShuttingDown", "drain timeout reached", &results);
  auto by_id = ById(results);
  ASSERT_EQ(by_id.size(), 4u);
  for (uint64_t id : {2, 3, 5, 6}) {
    EXPECT_EQ(by_id[id].outcome, Outcome::kFailed) << id;
    EXPECT_EQ(by_id[id].error_code, "ShuttingDown");
  }
  EXPECT_EQ(b->pending_ops(), 1u);
  EXPECT_EQ(b->queued_items(), 0u);
  EXPECT_EQ(b->queued_bytes(), 0u);
  EXPECT_EQ(b->inflight_calls(), 1u);
  EXPECT_EQ(b->NextWakeup(kT0), absl::InfiniteFuture());
  EXPECT_FALSE(b->TakeBatch(kT0 + absl::Seconds(10)).has_value());
  results.clear();
  b->OnBatchResult(inflight->id, Success(), kT0, &results);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].op.id, 4u);
  EXPECT_EQ(results[0].outcome, Outcome::kWritten);
  EXPECT_EQ(b->pending_ops(), 0u);
}

TEST(Batcher, RequestBytesLimit) {
  BatchingOptions o = Options();
  o.max_request_bytes = 1000;
  auto b = MakeBatcher(o);
  for (int i = 0; i < 10; ++i) {
    Op op = MakeOp(i, absl::StrCat("k", i), kT0);
    op.write.request_json.resize(300, ' ');
    b->Add(std::move(op), kT0);
  }
  Op big = MakeOp(99, "big", kT0);
  big.write.request_json.resize(5000, ' ');
  b->Add(std::move(big), kT0);
  size_t items = 0;
  int calls = 0;
  // Full by bytes: cut without waiting for linger.
  while (auto batch = b->TakeBatch(kT0)) {
    ++calls;
    items += batch->request_jsons.size();
    EXPECT_EQ(batch->body_bytes, batch->request_jsons.size() == 1 && *batch->keys[0] == "big"
                                     ? 5000u
                                     : 300u * batch->request_jsons.size());
    if (*batch->keys[0] != "big") {
      EXPECT_EQ(batch->request_jsons.size(), 2u);
    }
  }
  EXPECT_EQ(calls, 5);  // five pairs; the oversized one alone is not "full"
  EXPECT_EQ(items, 10u);
  auto big_batch = b->TakeBatch(kT0 + absl::Milliseconds(5));
  ASSERT_TRUE(big_batch.has_value());
  EXPECT_THAT(Keys(*big_batch), ElementsAre("big"));  // over budget, but never stuck
}

TEST(Batcher, RateLimiterDefersBatches) {
  RateLimiterOptions l;
  l.initial_rate = 100;  // items/s; bucket = 25 items
  l.max_rate = 100;
  auto b = MakeBatcher(Options(), Retry(), l);
  for (int i = 0; i < 50; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  ASSERT_TRUE(b->TakeBatch(kT0).has_value());
  EXPECT_FALSE(b->TakeBatch(kT0).has_value());
  EXPECT_EQ(b->NextWakeup(kT0), kT0 + absl::Milliseconds(250));
  EXPECT_FALSE(b->TakeBatch(kT0 + absl::Milliseconds(249)).has_value());
  EXPECT_TRUE(b->TakeBatch(kT0 + absl::Milliseconds(250)).has_value());
}

TEST(Batcher, ThrottlingLowersTheRateOtherErrorsDoNot) {
  auto b = MakeBatcher();
  for (int i = 0; i < 25; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  auto batch = b->TakeBatch(kT0);
  ASSERT_TRUE(batch.has_value());
  const double before = b->rate_limiter().rate();
  std::vector<OpResult> results;
  BatchResult unavailable;
  unavailable.kind = BatchResult::Kind::kRetryable;
  unavailable.error_code = "HTTP 503";
  b->OnBatchResult(batch->id, unavailable, kT0 + absl::Milliseconds(10), &results);
  EXPECT_EQ(b->rate_limiter().rate(), before);
  absl::Time now = kT0 + absl::Milliseconds(10);
  auto again = NextBatch(b.get(), &now);
  ASSERT_TRUE(again.has_value());
  b->OnBatchResult(again->id, Throttled(), now, &results);
  EXPECT_LT(b->rate_limiter().rate(), 1e6);
}

// Random adds, flushes and (out-of-order, partly failing) answers over a few
// keys, checking the per-key guarantees at every step against a model.
// ThrottlingReasons that blame only a hot key range leave the table rate
// alone; table-level reasons lower it as before.
TEST(Batcher, KeyRangeThrottlesDoNotLowerTheTableRate) {
  for (const char* reason :
       {"TableWriteKeyRangeThroughputExceeded", "TableWriteProvisionedThroughputExceeded"}) {
    RateLimiterOptions l;
    l.initial_rate = 1000;
    l.max_rate = 1000;
    auto b = MakeBatcher(Options(), Retry(), l);
    b->Add(MakeOp(1, "k1", kT0), kT0);
    b->Flush();
    auto batch = b->TakeBatch(kT0);
    ASSERT_TRUE(batch.has_value());
    BatchResult r = Throttled();
    r.throttle_reasons = {reason};
    std::vector<OpResult> results;
    b->OnBatchResult(batch->id, r, kT0 + absl::Milliseconds(1), &results);
    const bool key_range = std::string(reason).find("KeyRange") != std::string::npos;
    if (key_range) {
      EXPECT_EQ(b->rate_limiter().rate(), 1000) << reason;
    } else {
      EXPECT_LT(b->rate_limiter().rate(), 1000) << reason;
    }
    EXPECT_EQ(b->stats().retries, 1u) << reason;  // backs off either way
  }
}

// A canonical key of a pk+sk table: tag, 4-byte big-endian length, bytes.
std::string CanonicalKey(const std::string& pk, int sk) {
  std::string out;
  for (const std::string& v : {pk, std::to_string(sk)}) {
    const uint32_t n = static_cast<uint32_t>(v.size());
    out += 'S';
    out += static_cast<char>(n >> 24);
    out += static_cast<char>(n >> 16);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n);
    out += v;
  }
  return out;
}

// A hot partition key (DynamoDB leaves most of its items unprocessed while
// the rest of each call goes through) is paced on its own: the table rate
// stays, the other keys keep flowing, and the hot key's writes wait while
// still coalescing newer writes to the same item.
TEST(Batcher, HotPartitionKeyIsPacedNotTheTable) {
  RateLimiterOptions l;
  l.initial_rate = 1000;
  l.max_rate = 1000;
  auto b = MakeBatcher(Options(), Retry(), l);
  absl::Time now = kT0;
  uint64_t id = 1;
  std::vector<OpResult> results;
  size_t cold_sent = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 10; ++i) b->Add(MakeOp(id++, CanonicalKey("hot", i), now), now);
    for (int i = 0; i < 15; ++i) {
      b->Add(MakeOp(id++, CanonicalKey("c" + std::to_string(round * 15 + i), 0), now), now);
    }
    b->Flush();
    while (auto batch = b->TakeBatch(now)) {
      std::vector<std::string> unprocessed;
      int hot_ok = 0;
      for (const std::string* k : batch->keys) {
        if (PartitionKeyPart(*k) == PartitionKeyPart(CanonicalKey("hot", 0))) {
          if (++hot_ok > 2) unprocessed.push_back(*k);  // 2 per call get through
        } else {
          ++cold_sent;
        }
      }
      b->OnBatchResult(batch->id, Success(unprocessed), now + absl::Milliseconds(5), &results);
    }
    now += absl::Milliseconds(50);
  }
  EXPECT_EQ(b->paced_keys(now), 1u);
  EXPECT_EQ(b->rate_limiter().rate(), 1000) << "the table rate is not lowered for a hot key";
  EXPECT_EQ(cold_sent, 20u * 15u) << "every other key was sent in its round";
  // A newer write to a parked hot item coalesces into it.
  const uint64_t coalesced = b->stats().coalesced;
  b->Add(MakeOp(id++, CanonicalKey("hot", 3), now), now);
  EXPECT_EQ(b->stats().coalesced, coalesced + 1);
}

TEST(Batcher, RandomizedModel) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    auto chance = [&](int percent) {
      return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
    };
    BatchingOptions o = Options();
    o.max_items = 1 + seed % 6;
    o.max_inflight_calls = 1 + static_cast<int>(seed % 4);
    o.rng_seed = seed;
    RetryOptions r;
    r.base = absl::Milliseconds(1);
    r.cap = absl::Milliseconds(20);
    r.max_attempts = seed % 2 == 0 ? 1000 : 6;
    r.op_deadline = absl::Hours(1000);
    RateLimiterOptions l;
    l.min_rate = 5000;  // the limiter is tested on its own; keep calls flowing
    auto b = MakeBatcher(o, r, l);

    struct Sent {
      Batch batch;
      std::vector<std::string> keys;  // copies, to check the pointers stay valid
      std::vector<std::string> jsons;
    };
    std::vector<Sent> outstanding;
    std::set<std::string> keys_in_flight;
    std::map<uint64_t, std::string> op_key;
    std::map<std::string, uint64_t> last_op;  // model: last added op per key
    std::map<std::string, uint64_t> server;   // key -> op id applied last
    std::map<uint64_t, OpResult> answered;
    std::set<uint64_t> bad_ops;
    uint64_t next_id = 1;
    absl::Time now = kT0;

    auto id_of = [](const std::string& json) {
      // PutJson: ..."v":{"N":"<id>"}}}}   DeleteJson: ...,"id":<id>}
      size_t p = json.rfind(":\"");
      size_t q = json.rfind(":");
      std::string digits;
      if (json.rfind("\"id\":") != std::string::npos) {
        digits = json.substr(q + 1);
      } else {
        digits = json.substr(p + 2);
      }
      digits = digits.substr(0, digits.find_first_not_of("0123456789"));
      uint64_t id = 0;
      EXPECT_TRUE(absl::SimpleAtoi(digits, &id)) << json;
      return id;
    };
    auto collect = [&](std::vector<OpResult>& results) {
      for (OpResult& res : results) {
        ASSERT_TRUE(answered.emplace(res.op.id, res).second) << "double answer " << res.op.id;
      }
      results.clear();
    };
    auto take_all = [&]() {
      while (auto batch = b->TakeBatch(now)) {
        Sent s;
        std::set<std::string> in_batch;
        for (size_t i = 0; i < batch->keys.size(); ++i) {
          s.keys.push_back(*batch->keys[i]);
          s.jsons.push_back(*batch->request_jsons[i]);
          ASSERT_TRUE(in_batch.insert(*batch->keys[i]).second) << "duplicate key in batch";
          ASSERT_TRUE(keys_in_flight.insert(*batch->keys[i]).second) << "key twice in flight";
          ASSERT_EQ(op_key[id_of(s.jsons.back())], s.keys.back());
        }
        ASSERT_LE(batch->keys.size(), o.max_items);
        s.batch = std::move(*batch);
        outstanding.push_back(std::move(s));
      }
    };
    auto answer = [&](size_t index, bool only_success) {
      Sent s = std::move(outstanding[index]);
      outstanding.erase(outstanding.begin() + index);
      for (size_t i = 0; i < s.keys.size(); ++i) {
        ASSERT_EQ(*s.batch.keys[i], s.keys[i]);
        ASSERT_EQ(*s.batch.request_jsons[i], s.jsons[i]);
        keys_in_flight.erase(s.keys[i]);
      }
      bool has_bad = false;
      for (const std::string& j : s.jsons) has_bad |= bad_ops.count(id_of(j)) > 0;
      BatchResult res;
      int dice = std::uniform_int_distribution<int>(0, 99)(rng);
      if (has_bad) {
        res = Validation();
      } else if (only_success || dice < 55) {
        res = Success();
      } else if (dice < 80) {
        std::vector<std::string> unprocessed;
        for (const std::string& k : s.keys) {
          if (chance(50)) unprocessed.push_back(k);
        }
        res = Success(unprocessed);
      } else if (dice < 97) {
        res = Throttled();
      } else {
        res = Fatal();
      }
      if (res.kind == BatchResult::Kind::kSuccess) {
        std::set<std::string> un(res.unprocessed_keys.begin(), res.unprocessed_keys.end());
        for (size_t i = 0; i < s.keys.size(); ++i) {
          if (un.count(s.keys[i])) continue;
          const uint64_t id = id_of(s.jsons[i]);
          auto it = server.find(s.keys[i]);
          if (it != server.end()) {
            ASSERT_GT(id, it->second) << "older write landed after a newer one";
          }
          server[s.keys[i]] = id;
        }
      }
      std::vector<OpResult> results;
      b->OnBatchResult(s.batch.id, res, now, &results);
      collect(results);
    };

    for (int step = 0; step < 3000; ++step) {
      const int action = std::uniform_int_distribution<int>(0, 99)(rng);
      if (action < 45) {
        const uint64_t id = next_id++;
        const std::string key = absl::StrCat("k", std::uniform_int_distribution<int>(0, 19)(rng));
        if (chance(2)) bad_ops.insert(id);
        op_key[id] = key;
        last_op[key] = id;
        b->Add(MakeOp(id, key, now, chance(20)), now);
      } else if (action < 75) {
        if (!outstanding.empty()) {
          answer(std::uniform_int_distribution<size_t>(0, outstanding.size() - 1)(rng), false);
        }
      } else if (action < 78) {
        b->Flush();
      } else {
        now += absl::Microseconds(std::uniform_int_distribution<int>(0, 4000)(rng));
      }
      if (HasFatalFailure()) return;
      take_all();
      if (HasFatalFailure()) return;
      ASSERT_EQ(b->pending_ops(), op_key.size() - answered.size());
      ASSERT_EQ(b->inflight_calls(), outstanding.size());
      ASSERT_LE(b->queued_items(), b->pending_ops());
    }
    // Drain: everything answered successfully (bad items still fail).
    for (int i = 0; i < 100000 && b->pending_ops() > 0; ++i) {
      while (!outstanding.empty()) answer(0, true);
      if (HasFatalFailure()) return;
      if (b->pending_ops() == 0) break;
      const absl::Time wake = b->NextWakeup(now);
      ASSERT_NE(wake, absl::InfiniteFuture()) << b->pending_ops() << " ops stuck";
      now = std::max(now, wake);
      take_all();
      if (HasFatalFailure()) return;
    }
    ASSERT_EQ(b->pending_ops(), 0u);
    ASSERT_EQ(b->pending_bytes(), 0u);
    ASSERT_EQ(answered.size(), op_key.size());

    int written = 0, coalesced = 0;
    for (auto& [id, res] : answered) {
      const std::string& key = op_key[id];
      switch (res.outcome) {
        case Outcome::kWritten:
          ++written;
          break;
        case Outcome::kCoalesced: {
          ++coalesced;
          // Some later op on the key was written.
          bool newer_written = false;
          for (auto it = answered.upper_bound(id); it != answered.end(); ++it) {
            if (op_key[it->first] == key && it->second.outcome == Outcome::kWritten) {
              newer_written = true;
              break;
            }
          }
          EXPECT_TRUE(newer_written) << "op " << id;
          break;
        }
        case Outcome::kFailed:
          EXPECT_FALSE(res.error_code.empty());
          break;
        case Outcome::kRejected:
          ADD_FAILURE() << "the core never rejects";
      }
    }
    // The run exercised what it is meant to.
    EXPECT_GT(written, 300);
    EXPECT_GT(coalesced, 100);
    EXPECT_GT(b->stats().retries, 100u);
    EXPECT_GT(b->stats().batches, 300u);
    // Last write wins: where the last op on a key was written, the server
    // holds it.
    for (auto& [key, id] : last_op) {
      if (answered[id].outcome == Outcome::kWritten) {
        EXPECT_EQ(server[key], id) << key;
      }
      if (bad_ops.count(id) == 0 && r.max_attempts == 1000) {
        // Without attempt limits only validation or fatal errors fail an op.
        if (answered[id].outcome == Outcome::kFailed) {
          EXPECT_THAT(answered[id].error_code,
                      ::testing::AnyOf("ResourceNotFoundException", "ValidationException"));
        }
      }
    }
  }
}

}  // namespace
}  // namespace dynamo_batcher

namespace dynamo_batcher {
namespace {

TEST(TableBatcherReconfigure, NewMaxItemsAndLingerApplyToOpsAlreadyQueued) {
  BatchingOptions slow = Options();
  slow.linger = absl::Seconds(60);
  auto b = MakeBatcher(slow);
  for (uint64_t i = 0; i < 10; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  EXPECT_FALSE(b->TakeBatch(kT0 + absl::Seconds(1)).has_value());  // lingering

  BatchingOptions fast = Options();
  fast.linger = absl::Milliseconds(5);
  fast.max_items = 3;
  const absl::Time now = kT0 + absl::Seconds(1);
  b->Reconfigure(fast, RetryPolicy(Retry()), RateLimiterOptions{}, now);
  std::vector<size_t> sizes;
  while (auto batch = b->TakeBatch(now)) sizes.push_back(batch->request_jsons.size());
  EXPECT_THAT(sizes, ElementsAre(3, 3, 3, 1));
}

TEST(TableBatcherReconfigure, NewMaxInflightCallsLimitsConcurrency) {
  auto b = MakeBatcher();
  for (uint64_t i = 0; i < 100; ++i) b->Add(MakeOp(i, absl::StrCat("k", i), kT0), kT0);
  BatchingOptions one = Options();
  one.max_inflight_calls = 1;
  b->Reconfigure(one, RetryPolicy(Retry()), RateLimiterOptions{}, kT0);
  int batches = 0;
  while (b->TakeBatch(kT0 + absl::Seconds(1))) ++batches;
  EXPECT_EQ(batches, 1);
}

}  // namespace
}  // namespace dynamo_batcher
