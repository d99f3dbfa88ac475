#include "service/batching/table_batcher.h"

#include <algorithm>
#include <queue>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dynamo_batcher {
namespace {

// DynamoDB's per-call item limit.
constexpr size_t kMaxItemsPerCall = 25;
// Bytes of a BatchWriteItem body besides the request elements:
// {"RequestItems":{"<table>":[...]},"ReturnConsumedCapacity":"TOTAL"} with
// room for a long table name.
constexpr size_t kBodyOverheadBytes = 100;
// Recycled entries (and key states) kept around to avoid an allocation per op.
constexpr size_t kMaxFreeEntries = 4096;
// A recycled key state keeps its key's buffer up to this size.
constexpr size_t kKeepKeyBytes = 64;
// Key-index capacity kept when a table drains (~200 KB); beyond it the index
// is released so an idle sidecar's RSS falls back after a burst.
constexpr size_t kKeepKeyCapacity = 4096;
// Under a known rate-independent loss the backoff grows for this many
// attempts and then stays (retry.base 25 ms: at most 200 ms).
constexpr uint32_t kRateIndependentBackoffAttempts = 4;

bool OnlyKeyRangeReasons(const BatchResult& r) {
  if (!r.throttled || r.throttle_reasons.empty()) return false;
  for (const std::string& reason : r.throttle_reasons) {
    if (reason.find("KeyRangeThroughputExceeded") == std::string::npos) return false;
  }
  return true;
}

constexpr char kCoalescedMessage[] = "replaced by a later write to the same key, which was written";

}  // namespace

// Per key there is at most one entry in the key's "in flight" slot (sent and
// awaiting its result, or waiting to be re-sent as half of a bisected call)
// and at most one "next" entry (ready, blocked behind the in-flight one, or
// in backoff). An entry is the newest op for the key plus the older ops it
// replaced; they share its fate.
struct TableBatcher::Impl {
  enum class State { kReady, kBlocked, kBackoff, kInFlight, kBisectPending };

  struct KeyState;

  struct Entry {
    Op head;
    KeyState* ks = nullptr;     // its key's state while the entry is live
    std::vector<Op> coalesced;  // older ops answered with the head
    State state = State::kReady;
    absl::Time ready_since;      // kReady: when it joined the ready FIFO
    absl::Time ready_at;         // kBackoff: when it may go again
    uint64_t seq = 0;            // kReady: position in the ready FIFO
    uint64_t flush_gen = 0;      // flushes_ when it became blocked/backoff
    uint64_t gen = 0;            // bumped on recycling (heap lazy deletion)
    uint32_t free_attempts = 0;  // calls of head that do not count (bisected)
    size_t bytes = 0;            // MemoryBytes() of head + coalesced
    size_t ops() const { return 1 + coalesced.size(); }
  };

  // Per key: the key's bytes and its two slots. Allocated once per key and
  // recycled (LIFO, so a new key usually lands in memory just used); entries
  // point to theirs, so only Add and the key's removal look the key up, and
  // the index's slots are 8-byte pointers (a probe group spans 2 cache lines
  // instead of 12, which the prefetch of a lookup covers).
  struct KeyState {
    std::string key;
    Entry* inflight = nullptr;
    Entry* next = nullptr;
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(absl::string_view k) const { return absl::Hash<absl::string_view>{}(k); }
    size_t operator()(const KeyState* s) const { return (*this)(absl::string_view(s->key)); }
  };
  struct KeyEq {
    using is_transparent = void;
    static absl::string_view View(absl::string_view k) { return k; }
    static absl::string_view View(const KeyState* s) { return s->key; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(a) == View(b);
    }
  };

  struct HeapItem {
    absl::Time ready_at;
    Entry* entry;
    uint64_t gen;
  };
  struct HeapLater {
    bool operator()(const HeapItem& a, const HeapItem& b) const { return a.ready_at > b.ready_at; }
  };

  explicit Impl(TableBatcher* b) : self(b) {
    uint64_t seed = b->options_.rng_seed;
    if (seed == 0) {
      std::random_device rd;
      seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    rng.seed(seed);
    max_items = std::clamp<size_t>(b->options_.max_items, 1, kMaxItemsPerCall);
    max_inflight = static_cast<size_t>(std::max(1, b->options_.max_inflight_calls));
  }

  ~Impl() {
    for (KeyState* ks : keys) {
      delete ks->inflight;
      delete ks->next;
      delete ks;
    }
    for (Entry* e : free_entries) delete e;
    for (KeyState* ks : free_keys) delete ks;
  }

  // The state of `key`, made (both slots empty) if the key has none; one
  // probe either way.
  KeyState* FindOrAddKey(const std::string& key) {
    auto it = keys.lazy_emplace(absl::string_view(key), [&](const auto& construct) {
      KeyState* ks;
      if (free_keys.empty()) {
        ks = new KeyState();
      } else {
        ks = free_keys.back();
        free_keys.pop_back();
      }
      ks->key = key;
      construct(ks);
    });
    return *it;
  }

  // The key leaves the index once it has neither an in-flight nor a next
  // entry; its state is recycled, so no entry may point to it after.
  void RemoveKeyIfUnused(KeyState* ks) {
    if (ks->inflight != nullptr || ks->next != nullptr) return;
    keys.erase(absl::string_view(ks->key));
    // A recycled state keeps a short key's buffer for the next key; a long
    // one's (keys reach 3 KB) is freed, so the pool stays small when idle.
    if (ks->key.capacity() > kKeepKeyBytes) std::string().swap(ks->key);
    if (free_keys.size() < kMaxFreeEntries) {
      free_keys.push_back(ks);
    } else {
      delete ks;
    }
    // A burst grows the key index to its peak and flat_hash_set never
    // shrinks: hand that memory back once the table has drained.
    if (keys.empty() && keys.capacity() > kKeepKeyCapacity) decltype(keys)().swap(keys);
  }

  // --- entry lifecycle -----------------------------------------------------

  Entry* NewEntry() {
    if (free_entries.empty()) return new Entry();
    Entry* e = free_entries.back();
    free_entries.pop_back();
    return e;
  }

  void Release(Entry* e) {
    e->head = Op();
    e->ks = nullptr;
    e->coalesced.clear();
    e->free_attempts = 0;
    e->bytes = 0;
    ++e->gen;
    if (free_entries.size() < kMaxFreeEntries) {
      free_entries.push_back(e);
    } else {
      delete e;
    }
  }

  void PushReady(Entry* e, absl::Time now) {
    e->state = State::kReady;
    e->ready_since = now;
    e->seq = next_seq++;
    ready.push_back(e);
  }

  // Blocked or backoff entry becoming sendable. If a Flush happened while it
  // waited, it is sent without linger (and so is everything before it).
  void Wake(Entry* e, absl::Time now) {
    if (ParkIfHeldOrPaced(e, now)) return;
    PushReady(e, now);
    if (e->flush_gen < flushes) flush_marker = e->seq;
  }

  // An entry about to become sendable waits instead (parked in backoff,
  // still coalescing newer writes) while its key is held for unknown fate
  // or its partition key is paced and out of tokens.
  bool ParkIfHeldOrPaced(Entry* e, absl::Time now) {
    const absl::Time held = HeldUntil(e->head.write.key, now);
    if (held > now) {
      Park(e, held);
      return true;
    }
    absl::Time ready_at;
    if (!pacer.TryAcquire(PartitionKeyPart(e->head.write.key), now, &ready_at)) {
      Park(e, ready_at);
      return true;
    }
    return false;
  }

  // The partition keys of a call's entries and which came back unprocessed.
  std::vector<KeyPacer::Item> PacerItems(const std::vector<Entry*>& group,
                                         const absl::flat_hash_set<std::string_view>* lost) {
    std::vector<KeyPacer::Item> items;
    items.reserve(group.size());
    for (const Entry* e : group) {
      items.push_back({PartitionKeyPart(e->head.write.key),
                       lost == nullptr || lost->contains(e->head.write.key)});
    }
    return items;
  }

  // --- unknown fate ---------------------------------------------------------

  // Until when `key` may not be sent (a past time if it may).
  absl::Time HeldUntil(const std::string& key, absl::Time now) const {
    if (holds.empty()) return absl::InfinitePast();  // the usual case: no hashing
    auto it = holds.find(key);
    if (it == holds.end() || it->second <= now) return absl::InfinitePast();
    return it->second;
  }

  void Hold(const std::string& key, absl::Time until) {
    absl::Time& t = holds[key];
    if (until > t) {
      t = until;
      hold_expiry.emplace_back(until, key);
      ++self->stats_.unknown_fate_holds;
    }
  }

  // Drops expired holds. Every hold lasts the same time from a `now` that
  // never decreases, so expiry order is insertion order.
  void PruneHolds(absl::Time now) {
    while (!hold_expiry.empty() && hold_expiry.front().first <= now) {
      auto it = holds.find(hold_expiry.front().second);
      if (it != holds.end() && it->second <= now) holds.erase(it);
      hold_expiry.pop_front();
    }
  }

  // Entry `e` waits in backoff until `until` (a held key); newer writes keep
  // coalescing into it there.
  void Park(Entry* e, absl::Time until) {
    e->state = State::kBackoff;
    e->ready_at = until;
    e->flush_gen = flushes;
    backoff.push(HeapItem{until, e, e->gen});
  }

  void PromoteBackoff(absl::Time now) {
    while (!backoff.empty() && backoff.top().ready_at <= now) {
      HeapItem item = backoff.top();
      backoff.pop();
      if (item.entry->gen != item.gen || item.entry->state != State::kBackoff) continue;
      Wake(item.entry, now);
    }
  }

  double U01() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }

  // --- results -------------------------------------------------------------

  void Emit(Op&& op, Outcome outcome, const std::string& code, const std::string& message,
            std::vector<OpResult>* results) {
    --pending_ops;
    pending_bytes -= op.MemoryBytes();
    // Built in place: the op is moved once, empty strings are not copied.
    OpResult& r = results->emplace_back();
    r.op = std::move(op);
    r.outcome = outcome;
    if (!code.empty()) r.error_code = code;
    if (!message.empty()) r.message = message;
  }

  void EmitWritten(Entry* e, std::vector<OpResult>* results) {
    static const std::string kEmpty;
    static const std::string kCoalesced(kCoalescedMessage);
    // Older ops first, the newest (head) last: results reach a stream in
    // this order, so a client whose stream breaks in between never holds a
    // WRITTEN for the newest write while an older one to the same key is
    // still unanswered (and would be re-sent over it).
    for (Op& op : e->coalesced) {
      Emit(std::move(op), Outcome::kCoalesced, kEmpty, kCoalesced, results);
    }
    Emit(std::move(e->head), Outcome::kWritten, kEmpty, kEmpty, results);
  }

  void EmitFailed(Entry* e, const std::string& code, const std::string& message,
                  std::vector<OpResult>* results) {
    Emit(std::move(e->head), Outcome::kFailed, code, message, results);
    for (Op& op : e->coalesced) {
      Emit(std::move(op), Outcome::kFailed, code, message, results);
    }
  }

  // The in-flight entry `e` of its key is done (answered or merged away):
  // frees the key's in-flight slot and lets a blocked successor go.
  void ClearInflight(Entry* e, absl::Time now) {
    KeyState* ks = e->ks;
    if (ks == nullptr) return;  // cannot happen; be safe
    if (ks->inflight == e) ks->inflight = nullptr;
    if (ks->next != nullptr && ks->next->state == State::kBlocked) Wake(ks->next, now);
    RemoveKeyIfUnused(ks);
  }

  void Written(Entry* e, absl::Time now, std::vector<OpResult>* results) {
    ClearInflight(e, now);
    EmitWritten(e, results);
    Release(e);
  }

  void Failed(Entry* e, absl::Time now, const std::string& code, const std::string& message,
              std::vector<OpResult>* results) {
    ClearInflight(e, now);
    EmitFailed(e, code, message, results);
    Release(e);
  }

  // Schedules another attempt for in-flight entry `e` after a retryable
  // answer (`code`/`message` describe it), unless a newer write for the key
  // is waiting: then `e` is merged into that one and never re-sent, so an old
  // value cannot land after a newer one.
  //
  // `rate_independent`: the table's rate limiter knows the loss does not
  // depend on the rate (RateLimiter::LossIsRateIndependent) and this answer
  // is part of it (UnprocessedItems or a throttle). Then the backoff stops
  // growing at kRateIndependentBackoffAttempts: waiting longer does not make
  // the next attempt likelier to land, and every retry still passes the
  // table's token bucket, so the table is not sent more. The attempt count
  // (max_attempts) and op_deadline are unchanged.
  void Retry(Entry* e, absl::Time now, const std::string& code, const std::string& message,
             std::optional<absl::Duration> retry_after, bool rate_independent,
             std::vector<OpResult>* results) {
    KeyState* ks = e->ks;
    if (ks == nullptr) return;  // cannot happen; be safe
    if (ks->inflight == e) ks->inflight = nullptr;
    if (ks->next != nullptr) {
      Entry* n = ks->next;
      n->coalesced.reserve(n->coalesced.size() + e->ops());
      n->coalesced.push_back(std::move(e->head));
      for (Op& op : e->coalesced) n->coalesced.push_back(std::move(op));
      n->bytes += e->bytes;
      ++self->stats_.coalesced;
      Release(e);
      if (n->state == State::kBlocked) Wake(n, now);
      return;
    }
    const RetryPolicy& policy = self->retry_;
    const uint32_t attempts =
        e->head.attempts > e->free_attempts ? e->head.attempts - e->free_attempts : 0;
    const uint32_t growth =
        rate_independent ? std::min(attempts, kRateIndependentBackoffAttempts) : attempts;
    absl::Duration delay = policy.Backoff(std::max<uint32_t>(growth, 1), U01());
    if (retry_after.has_value() && *retry_after > delay) delay = *retry_after;
    absl::Time retry_at = now + delay;
    retry_at = std::max(retry_at, HeldUntil(e->head.write.key, now));
    const RetryDecision decision = policy.MayRetry(attempts, e->head.arrival, retry_at);
    if (!decision.may_retry()) {
      const std::string what =
          decision.stop == RetryDecision::Stop::kDeadlineExceeded
              ? absl::StrCat("op deadline of ", absl::FormatDuration(policy.options().op_deadline),
                             " would pass before the next attempt (", attempts, " attempts)")
              : absl::StrCat("gave up after ", attempts, " attempts");
      const std::string msg =
          absl::StrCat(what, "; last error: ", code, message.empty() ? "" : ": ", message);
      EmitFailed(e, decision.code(), msg, results);
      Release(e);
      RemoveKeyIfUnused(ks);  // neither in flight nor next any more
      return;
    }
    e->state = State::kBackoff;
    e->ready_at = retry_at;
    e->flush_gen = flushes;
    ks->next = e;
    backoff.push(HeapItem{retry_at, e, e->gen});
    ++self->stats_.retries;
    if (self->backoff_observer_) self->backoff_observer_(delay);
  }

  // --- batch cutting -------------------------------------------------------

  // How many ready entries the next batch would take (>= 1 if any).
  size_t CountTake() const {
    const size_t budget = self->options_.max_request_bytes;
    size_t total = kBodyOverheadBytes;
    size_t n = 0;
    for (auto it = ready.begin(); it != ready.end() && n < max_items; ++it) {
      const size_t add = (*it)->head.write.request_json.size() + (n > 0 ? 1 : 0);
      if (n > 0 && total + add > budget) break;
      total += add;
      ++n;
    }
    return n;
  }

  // Whether the ready FIFO should be cut now, given `n` = CountTake().
  bool CutDue(size_t n, absl::Time now) const {
    if (ready.empty()) return false;
    if (n == max_items || n < ready.size()) return true;  // full (items or bytes)
    const Entry* front = ready.front();
    if (front->seq <= flush_marker) return true;
    return front->ready_since + self->options_.linger <= now;
  }

  Batch Launch(std::vector<Entry*> group, bool is_bisect) {
    Batch batch;
    batch.id = next_batch_id++;
    batch.is_bisect = is_bisect;
    batch.request_jsons.reserve(group.size());
    batch.keys.reserve(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      Entry* e = group[i];
      if (i + kPrefetchAhead < group.size())
        __builtin_prefetch(group[i + kPrefetchAhead]->ks);  // its key state, made at Add
      if (e->state == State::kReady) {
        // Leaves the key's "next" slot for its "in flight" slot; later
        // writes to the key now wait behind it.
        e->ks->next = nullptr;
        e->ks->inflight = e;
      }
      e->state = State::kInFlight;
      ++e->head.attempts;
      batch.request_jsons.push_back(&e->head.write.request_json);
      batch.keys.push_back(&e->head.write.key);
      batch.body_bytes += e->head.write.request_json.size();
      inflight_ops += e->ops();
      inflight_bytes += e->bytes;
    }
    inflight.emplace(batch.id, std::move(group));
    ++self->stats_.batches;
    return batch;
  }

  TableBatcher* self;
  std::mt19937_64 rng;
  size_t max_items = kMaxItemsPerCall;
  size_t max_inflight = 1;

  absl::flat_hash_set<KeyState*, KeyHash, KeyEq> keys;
  std::vector<KeyState*> free_keys;
  std::deque<Entry*> ready;
  std::priority_queue<HeapItem, std::vector<HeapItem>, HeapLater> backoff;
  std::deque<std::vector<Entry*>> bisect;  // halves of rejected calls, sent first
  absl::flat_hash_map<uint64_t, std::vector<Entry*>> inflight;
  std::vector<Entry*> free_entries;
  KeyPacer pacer;
  // Keys of calls with unknown fate -> until when they are held.
  absl::flat_hash_map<std::string, absl::Time> holds;
  std::deque<std::pair<absl::Time, std::string>> hold_expiry;

  uint64_t next_batch_id = 1;
  uint64_t next_seq = 1;
  uint64_t flush_marker = 0;  // ready entries with seq <= this skip linger
  uint64_t flushes = 0;

  size_t pending_ops = 0;
  size_t pending_bytes = 0;
  size_t inflight_ops = 0;
  size_t inflight_bytes = 0;
};

TableBatcher::TableBatcher(TableSchema schema, BatchingOptions options, RetryPolicy retry,
                           RateLimiter limiter)
    : schema_(std::move(schema)),
      options_(options),
      retry_(retry),
      limiter_(limiter),
      impl_(std::make_unique<Impl>(this)) {}

TableBatcher::~TableBatcher() = default;

void TableBatcher::Reconfigure(const BatchingOptions& options, const RetryPolicy& retry,
                               const RateLimiterOptions& rate, absl::Time now) {
  const uint64_t seed = options_.rng_seed;
  options_ = options;
  options_.rng_seed = seed;  // the generator is already seeded
  retry_ = retry;
  limiter_.UpdateOptions(rate, now);
  impl_->max_items = std::clamp<size_t>(options_.max_items, 1, kMaxItemsPerCall);
  impl_->max_inflight = static_cast<size_t>(std::max(1, options_.max_inflight_calls));
}

void TableBatcher::Add(Op op, absl::Time now) {
  Impl& m = *impl_;
  const size_t bytes = op.MemoryBytes();
  ++m.pending_ops;
  m.pending_bytes += bytes;
  Impl::KeyState* ks = m.FindOrAddKey(op.write.key);
  if (ks->next != nullptr) {
    // Queued, blocked or backing off: the new op takes the entry over; the
    // entry keeps its place in the queue (or its backoff time).
    Impl::Entry* e = ks->next;
    e->coalesced.push_back(std::move(e->head));
    e->head = std::move(op);
    e->bytes += bytes;
    e->free_attempts = 0;
    ++stats_.coalesced;
    return;
  }
  Impl::Entry* e = m.NewEntry();
  e->head = std::move(op);
  e->bytes = bytes;
  e->flush_gen = m.flushes;
  e->ks = ks;
  ks->next = e;
  if (ks->inflight != nullptr) {
    e->state = Impl::State::kBlocked;
  } else if (!m.ParkIfHeldOrPaced(e, now)) {
    m.PushReady(e, now);
  }
}

void TableBatcher::PrefetchKey(const std::string& key) const {
  impl_->keys.prefetch(absl::string_view(key));
}

std::optional<Batch> TableBatcher::TakeBatch(absl::Time now) {
  Impl& m = *impl_;
  m.PruneHolds(now);
  m.PromoteBackoff(now);
  if (m.inflight.size() >= m.max_inflight) return std::nullopt;
  absl::Time ready_at;
  if (!m.bisect.empty()) {
    if (!limiter_.TryAcquire(static_cast<double>(m.bisect.front().size()), now, &ready_at)) {
      return std::nullopt;
    }
    std::vector<Impl::Entry*> group = std::move(m.bisect.front());
    m.bisect.pop_front();
    return m.Launch(std::move(group), /*is_bisect=*/true);
  }
  const size_t n = m.CountTake();
  if (!m.CutDue(n, now)) return std::nullopt;
  if (!limiter_.TryAcquire(static_cast<double>(n), now, &ready_at)) return std::nullopt;
  std::vector<Impl::Entry*> group(m.ready.begin(), m.ready.begin() + n);
  m.ready.erase(m.ready.begin(), m.ready.begin() + n);
  return m.Launch(std::move(group), /*is_bisect=*/false);
}

void TableBatcher::Flush() {
  Impl& m = *impl_;
  ++m.flushes;
  m.flush_marker = m.next_seq - 1;
}

void TableBatcher::OnBatchResult(uint64_t batch_id, const BatchResult& result, absl::Time now,
                                 std::vector<OpResult>* results) {
  Impl& m = *impl_;
  auto it = m.inflight.find(batch_id);
  if (it == m.inflight.end()) return;  // unknown or already answered
  std::vector<Impl::Entry*> group = std::move(it->second);
  m.inflight.erase(it);
  for (Impl::Entry* e : group) {
    m.inflight_ops -= e->ops();
    m.inflight_bytes -= e->bytes;
  }
  const double sent = static_cast<double>(group.size());

  switch (result.kind) {
    case BatchResult::Kind::kSuccess: {
      if (result.unprocessed_keys.empty()) {
        for (size_t i = 0; i < group.size(); ++i) {
          if (i + kPrefetchAhead < group.size()) {
            m.keys.prefetch(absl::string_view(group[i + kPrefetchAhead]->head.write.key));
          }
          m.Written(group[i], now, results);
        }
        limiter_.OnResult(sent, 0, false, now);
        break;
      }
      absl::flat_hash_set<std::string_view> unprocessed(result.unprocessed_keys.begin(),
                                                        result.unprocessed_keys.end());
      // Loss concentrated on a few partition keys paces those keys, and
      // their items stay out of the table rate's feedback. Computed before
      // the entries are answered (their keys live in them).
      size_t hot_sent = 0;
      size_t hot_lost = 0;
      m.pacer.OnCall(m.PacerItems(group, &unprocessed), limiter_.MeasuredRate(), now, &hot_sent,
                     &hot_lost);
      static const std::string kCode = "UnprocessedItems";
      static const std::string kMessage =
          "DynamoDB returned the item in UnprocessedItems (throttled)";
      const bool rate_independent = limiter_.LossIsRateIndependent();
      size_t n = 0;
      for (Impl::Entry* e : group) {
        if (unprocessed.contains(e->head.write.key)) {
          ++n;
          m.Retry(e, now, kCode, kMessage, result.retry_after, rate_independent, results);
        } else {
          m.Written(e, now, results);
        }
      }
      stats_.unprocessed_items += n;
      limiter_.OnResult(sent - static_cast<double>(hot_sent),
                        static_cast<double>(n - std::min(n, hot_lost)), false, now);
      break;
    }
    case BatchResult::Kind::kRetryable: {
      // Only a throttle can be part of a known rate-independent loss; 5xx,
      // timeouts and connection errors keep the growing backoff.
      const bool rate_independent = result.throttled && limiter_.LossIsRateIndependent();
      // Only throttling lowers the rate: 5xx, timeouts and connection errors
      // say nothing about the table's capacity, and backoff spaces them.
      // A throttle DynamoDB blames only on hot partition-key ranges says
      // nothing about the table's capacity: it backs off, the table rate
      // stays.
      if (!OnlyKeyRangeReasons(result)) {
        limiter_.OnResult(sent, result.throttled ? sent : 0, result.throttled, now);
      } else {
        m.pacer.OnKeyRangeThrottle(m.PacerItems(group, nullptr), limiter_.MeasuredRate(), now);
      }
      if (result.unknown_fate && options_.unknown_fate_hold > absl::ZeroDuration()) {
        for (Impl::Entry* e : group) m.Hold(e->head.write.key, now + options_.unknown_fate_hold);
      }
      for (Impl::Entry* e : group) {
        if (result.never_sent) ++e->free_attempts;
        m.Retry(e, now, result.error_code, result.message, result.retry_after, rate_independent,
                results);
      }
      break;
    }
    case BatchResult::Kind::kValidation: {
      if (group.size() == 1) {
        m.Failed(group.front(), now, result.error_code, result.message, results);
        break;
      }
      // Split until the bad items are isolated. The halves keep the keys'
      // in-flight slots (newer writes stay blocked) and go out before
      // anything else; calls rejected this way do not count as attempts.
      const size_t half = group.size() / 2;
      std::vector<Impl::Entry*> first(group.begin(), group.begin() + half);
      std::vector<Impl::Entry*> second(group.begin() + half, group.end());
      for (Impl::Entry* e : group) {
        e->state = Impl::State::kBisectPending;
        ++e->free_attempts;
      }
      m.bisect.push_back(std::move(first));
      m.bisect.push_back(std::move(second));
      break;
    }
    case BatchResult::Kind::kFatal:
      for (Impl::Entry* e : group) {
        m.Failed(e, now, result.error_code, result.message, results);
      }
      break;
  }
}

void TableBatcher::FailQueued(const std::string& code, const std::string& message,
                              std::vector<OpResult>* results) {
  Impl& m = *impl_;
  std::vector<Impl::KeyState*> emptied;  // not erased while the index is walked
  for (Impl::KeyState* ks : m.keys) {
    if (ks->next != nullptr) {
      m.EmitFailed(ks->next, code, message, results);
      m.Release(ks->next);
      ks->next = nullptr;
    }
    if (ks->inflight != nullptr && ks->inflight->state == Impl::State::kBisectPending) {
      m.EmitFailed(ks->inflight, code, message, results);
      m.Release(ks->inflight);
      ks->inflight = nullptr;
    }
    emptied.push_back(ks);
  }
  for (Impl::KeyState* ks : emptied) m.RemoveKeyIfUnused(ks);
  m.ready.clear();
  m.bisect.clear();
  m.backoff = {};
}

absl::Time TableBatcher::NextWakeup(absl::Time now) const {
  const Impl& m = *impl_;
  // Only a result can free a slot, and the caller wakes up for results.
  if (m.inflight.size() >= m.max_inflight) return absl::InfiniteFuture();
  absl::Time t = absl::InfiniteFuture();
  if (!m.backoff.empty()) t = std::min(t, m.backoff.top().ready_at);
  if (!m.bisect.empty()) {
    return std::min(t, limiter_.ReadyAt(static_cast<double>(m.bisect.front().size()), now));
  }
  if (!m.ready.empty()) {
    const size_t n = m.CountTake();
    const absl::Time cut = m.CutDue(n, now) ? now : m.ready.front()->ready_since + options_.linger;
    t = std::min(t, std::max(cut, limiter_.ReadyAt(static_cast<double>(n), now)));
  }
  return t;
}

size_t TableBatcher::queued_items() const { return impl_->pending_ops - impl_->inflight_ops; }
size_t TableBatcher::queued_bytes() const { return impl_->pending_bytes - impl_->inflight_bytes; }
size_t TableBatcher::inflight_calls() const { return impl_->inflight.size(); }
size_t TableBatcher::pending_ops() const { return impl_->pending_ops; }
size_t TableBatcher::pending_bytes() const { return impl_->pending_bytes; }
size_t TableBatcher::key_index_capacity() const { return impl_->keys.capacity(); }
size_t TableBatcher::paced_keys(absl::Time now) { return impl_->pacer.paced_keys(now); }
size_t TableBatcher::held_keys(absl::Time now) const {
  size_t n = 0;
  for (const auto& [key, until] : impl_->holds) n += until > now ? 1 : 0;
  return n;
}

}  // namespace dynamo_batcher
