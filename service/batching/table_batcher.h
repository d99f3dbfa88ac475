#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "service/batching/key_pacer.h"
#include "service/batching/rate_limiter.h"
#include "service/batching/retry_policy.h"
#include "service/common/batch_result.h"
#include "service/common/types.h"

namespace dynamo_batcher {

struct BatchingOptions {
  size_t max_items = 25;  // per call, 1..25
  absl::Duration linger = absl::Milliseconds(5);
  size_t max_request_bytes = 16 * 1024 * 1024 - 64 * 1024;  // body budget per call
  int max_inflight_calls = 8;                               // concurrent calls for this table
  uint64_t rng_seed = 0;                                    // jitter; 0 = seeded from random_device
  // After a call ends with unknown fate (timeout, connection lost after the
  // request may have been sent), DynamoDB may still apply it later. Every key
  // it carried is then held: nothing for that key -- neither the retry of
  // the same write nor a newer write -- is sent before this long after the
  // call ended. DynamoDB states no bound on how late such a request can be
  // applied, so this is a chosen bound, not a certainty.
  absl::Duration unknown_fate_hold = absl::Seconds(5);
};

// One BatchWriteItem call's worth of ops for one table, handed to the engine.
// The pointers in request_jsons and keys point into the TableBatcher and stay
// valid until OnBatchResult for this id (or the batcher's destructor).
struct Batch {
  uint64_t id = 0;
  // The DynamoDB request elements, in the order they were taken. The engine
  // joins them into {"RequestItems":{"<table>":[...]}}.
  std::vector<const std::string*> request_jsons;
  // Canonical keys parallel to request_jsons.
  std::vector<const std::string*> keys;
  size_t body_bytes = 0;   // sum of request_jsons sizes
  bool is_bisect = false;  // part of splitting a call rejected as a whole
};

// Counters the engine turns into metrics. Monotonic.
struct TableBatcherStats {
  uint64_t coalesced = 0;
  uint64_t batches = 0;
  uint64_t retries = 0;  // op re-sends scheduled
  uint64_t unprocessed_items = 0;
  uint64_t unknown_fate_holds = 0;  // keys held after a call of unknown fate
};

// The batching core for one table: coalescing, per-key ordering, batch
// cutting, retry scheduling. Pure logic: takes `now`, never sleeps, reads no
// clock and does no I/O.
//
// Guarantees (docs/guarantees.md G2-G5):
//  - last write in arrival order wins per key; a replaced op is answered
//    COALESCED once its replacement is WRITTEN (FAILED if it fails);
//  - never two writes to one key in one batch, nor two in flight at once:
//    a newer write waits behind the in-flight one and replaces a retrying one;
//  - a batch is cut at max_items, when its oldest item waited `linger`, or on
//    Flush;
//  - retries: capped exponential backoff with full jitter per op;
//  - hot partitions: unprocessed items or key-range throttles concentrated
//    on a few partition-key values pace those values (KeyPacer), not the
//    table; a paced key's writes wait parked and keep coalescing;
//  - unknown fate: after a call that may still land (timeout, connection
//    lost), none of its keys is sent again before unknown_fate_hold has
//    passed since the call ended, so a late landing cannot overwrite a newer
//    write sent after it.
//
// Thread-safety: none; the engine calls it from one thread (or under a lock).
//
// Usage:
//   TableBatcher b(schema, options, retry, limiter);
//   b.Add(std::move(op), now);
//   while (auto batch = b.TakeBatch(now)) send(*batch);
//   ... later: b.OnBatchResult(batch.id, result, now, &results);
class TableBatcher {
 public:
  TableBatcher(TableSchema schema, BatchingOptions options, RetryPolicy retry, RateLimiter limiter);
  ~TableBatcher();
  TableBatcher(const TableBatcher&) = delete;
  TableBatcher& operator=(const TableBatcher&) = delete;

  const TableSchema& schema() const { return schema_; }

  // Takes ownership of a validated op. If a write to the same key is queued
  // or backing off, the older one is coalesced into this one.
  void Add(Op op, absl::Time now);

  // Hints that `key` is about to be added or answered: its slot of the key
  // index is fetched into the cache while earlier ops are handled. At
  // saturation the index holds ~10^5 keys and a lookup is mostly a cache
  // miss; callers prefetch kPrefetchAhead ops ahead. No effect on behaviour.
  void PrefetchKey(const std::string& key) const;
  static constexpr size_t kPrefetchAhead = 4;

  // The next batch to send now, or nullopt. Call until nullopt. Respects
  // the cut rules, in-flight concurrency and the rate limiter.
  std::optional<Batch> TakeBatch(absl::Time now);

  // Everything queued now is sent without waiting for linger: what is ready
  // at once, what is blocked behind an in-flight write or backing off as
  // soon as it becomes ready. Later arrivals linger as usual.
  void Flush();

  // Applies DynamoDB's answer for batch `batch_id`. Final results are
  // appended to `results`; retried ops go back to backoff (or, if a newer
  // write for the key is waiting, are merged into it and never re-sent).
  // kValidation of a multi-item call splits it in halves that are sent
  // before anything else (Batch::is_bisect); such rejected calls do not count
  // toward max_attempts. Only throttling (a throttled kRetryable, or
  // unprocessed items) lowers the rate; other errors just back off.
  // Unknown ids are ignored.
  void OnBatchResult(uint64_t batch_id, const BatchResult& result, absl::Time now,
                     std::vector<OpResult>* results);

  // Fails every op not in flight (queued, blocked, backing off) with
  // `code`/`message`, e.g. when the drain timeout is reached.
  void FailQueued(const std::string& code, const std::string& message,
                  std::vector<OpResult>* results);

  // Earliest time at which TakeBatch could return something without new
  // input (linger expiry, backoff expiry, rate-limiter tokens), or
  // absl::InfiniteFuture() -- also while all max_inflight_calls are busy,
  // since only a result can change that. Call TakeBatch first: expired
  // backoffs are moved to the queue there.
  absl::Time NextWakeup(absl::Time now) const;

  size_t queued_items() const;  // ops not yet answered and not in flight
  size_t queued_bytes() const;  // their MemoryBytes()
  size_t inflight_calls() const;
  size_t pending_ops() const;              // every op not yet answered (incl. in flight)
  size_t pending_bytes() const;            // MemoryBytes() of every op not yet answered
  size_t key_index_capacity() const;       // slots of the per-key index (memory held)
  size_t held_keys(absl::Time now) const;  // keys held for unknown fate at `now`
  // Partition-key values paced on their own at `now` (hot partitions).
  size_t paced_keys(absl::Time now);
  const TableBatcherStats& stats() const { return stats_; }
  // Called with every backoff delay scheduled (for the backoff histogram).
  void set_backoff_observer(std::function<void(absl::Duration)> observer) {
    backoff_observer_ = std::move(observer);
  }
  const RateLimiter& rate_limiter() const { return limiter_; }

  // New settings from a config reload. Ops queued now are cut with the new
  // max_items and linger; ops already in backoff keep their scheduled time;
  // calls in flight are not touched. The rate limiter keeps its adaptive
  // state (see RateLimiter::UpdateOptions).
  void Reconfigure(const BatchingOptions& options, const RetryPolicy& retry,
                   const RateLimiterOptions& rate, absl::Time now);

 private:
  struct Impl;
  TableSchema schema_;
  BatchingOptions options_;
  RetryPolicy retry_;
  RateLimiter limiter_;
  TableBatcherStats stats_;
  std::function<void(absl::Duration)> backoff_observer_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamo_batcher
