#include "service/engine/engine.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/codec/codec.h"
#include "service/common/log.h"

namespace dynamo_batcher {

struct Engine::Table {
  TableSchema schema;
  std::unique_ptr<TableBatcher> batcher;
  Metrics::Table* m = nullptr;
  std::atomic<uint64_t> bytes{0};
  // Flush epochs: ops submitted get the current epoch; a Flush closes it.
  uint64_t epoch = 0;
  std::map<uint64_t, uint64_t> outstanding;  // epoch -> unanswered ops
  // In-flight calls: batch id -> (send time, items).
  absl::flat_hash_map<uint64_t, std::pair<absl::Time, size_t>> inflight;
  TableBatcherStats last_stats;
  std::unique_ptr<LocalHistogram> op_latency;
  std::string name_label;
};

Engine::Engine(std::vector<EngineTable> tables, EngineOptions options, BatchWriter* writer,
               Metrics* metrics, Clock* clock)
    : options_(std::move(options)),
      writer_(writer),
      metrics_(metrics),
      clock_(clock),
      dead_letter_(options_.dead_letter),
      waiters_(new std::atomic<int>[tables.size()]),
      max_buffer_bytes_(options_.max_buffer_bytes),
      max_table_buffer_bytes_(options_.max_table_buffer_bytes) {
  for (size_t i = 0; i < tables.size(); ++i) waiters_[i].store(0);
  for (size_t i = 0; i < tables.size(); ++i) {
    auto t = std::make_unique<Table>();
    t->schema = tables[i].schema;
    BatchingOptions b = options_.batching;
    t->batcher = std::make_unique<TableBatcher>(t->schema, b, RetryPolicy(options_.retry),
                                                RateLimiter(tables[i].rate));
    t->m = &metrics_->table(i);
    prometheus::Histogram* backoff = t->m->backoff_seconds;
    t->batcher->set_backoff_observer(
        [backoff](absl::Duration d) { backoff->Observe(absl::ToDoubleSeconds(d)); });
    t->m->queue_budget_bytes->Set(static_cast<double>(options_.max_table_buffer_bytes));
    t->op_latency =
        std::make_unique<LocalHistogram>(t->m->op_latency_seconds, Metrics::OpLatencyBuckets());
    index_[t->schema.name] = static_cast<int>(i);
    tables_.push_back(std::move(t));
  }
}

Engine::~Engine() { Stop(); }

absl::Status Engine::Start() {
  absl::Status s = dead_letter_.Open();
  if (!s.ok()) return s;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  dead_letter_.Sync();
}

const TableSchema& Engine::schema(int table) const { return tables_[table]->schema; }
const std::string* Engine::table_name(int table) const { return &tables_[table]->schema.name; }

int Engine::TableIndex(absl::string_view name) const {
  // Looked up for every op: a sidecar has a few tables, and comparing a few
  // names (most differ in length or first bytes) is cheaper than hashing one.
  if (tables_.size() <= kLinearTableLookup) {
    for (size_t i = 0; i < tables_.size(); ++i) {
      if (tables_[i]->schema.name == name) return static_cast<int>(i);
    }
    return -1;
  }
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

bool Engine::BudgetAvailable(int table) const {
  return tables_[table]->bytes.load(std::memory_order_relaxed) <
             max_table_buffer_bytes_.load(std::memory_order_relaxed) &&
         total_bytes_.load(std::memory_order_relaxed) <
             max_buffer_bytes_.load(std::memory_order_relaxed);
}

bool Engine::TryReserve(int table, uint64_t bytes) {
  if (waiters_[table].load() > 0 || total_blocked_.load()) return false;
  if (!BudgetAvailable(table)) return false;
  Charge(table, bytes);
  return true;
}

std::shared_ptr<Engine::ReserveTicket> Engine::ReserveAsync(int table, uint64_t bytes,
                                                            absl::Time deadline,
                                                            std::function<void(bool)> done) {
  auto ticket = std::make_shared<ReserveTicket>();
  absl::MutexLock lock(&mu_);
  waiters_[table].fetch_add(1);
  inbox_budget_.push_back({table, bytes, deadline, std::move(done), ticket});
  Wake();
  return ticket;
}

void Engine::Charge(int table, uint64_t bytes) {
  tables_[table]->bytes.fetch_add(bytes, std::memory_order_relaxed);
  total_bytes_.fetch_add(bytes, std::memory_order_relaxed);
}

void Engine::Release(int table, uint64_t bytes) {
  tables_[table]->bytes.fetch_sub(bytes, std::memory_order_relaxed);
  total_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  // waiters_ counts every queued reservation, in the inbox or on the engine
  // thread's list (which only that thread may read).
  bool queued = false;
  for (size_t t = 0; t < tables_.size() && !queued; ++t) queued = waiters_[t].load() > 0;
  if (!queued) return;
  absl::MutexLock lock(&mu_);
  Wake();
}

void Engine::Poke() {
  absl::MutexLock lock(&mu_);
  Wake();
}

void Engine::Submit(int table, std::vector<Op> ops) {
  if (ops.empty()) return;
  pending_ops_.fetch_add(ops.size(), std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  inbox_ops_.emplace_back(table, std::move(ops));
  Wake();
}

void Engine::Flush(int table, std::function<void(uint64_t)> done) {
  absl::MutexLock lock(&mu_);
  inbox_flushes_.push_back({table, std::move(done)});
  Wake();
}

void Engine::Reconfigure(EngineLiveSettings settings) {
  absl::MutexLock lock(&mu_);
  inbox_settings_ = std::move(settings);
  Wake();
}

void Engine::ApplySettings(const EngineLiveSettings& s, absl::Time now) {
  options_.batching = s.batching;
  options_.retry = s.retry;
  options_.max_buffer_bytes = s.max_buffer_bytes;
  options_.max_table_buffer_bytes = s.max_table_buffer_bytes;
  max_buffer_bytes_.store(s.max_buffer_bytes, std::memory_order_relaxed);
  max_table_buffer_bytes_.store(s.max_table_buffer_bytes, std::memory_order_relaxed);
  const RetryPolicy retry(s.retry);
  for (size_t i = 0; i < tables_.size() && i < s.rates.size(); ++i) {
    tables_[i]->batcher->Reconfigure(s.batching, retry, s.rates[i], now);
    tables_[i]->m->queue_budget_bytes->Set(static_cast<double>(s.max_table_buffer_bytes));
  }
}

void Engine::Wake() {
  if (!wake_pending_) {
    wake_pending_ = true;
    cv_.Signal();
  }
}

bool Engine::Drain(absl::Duration timeout) {
  const uint64_t failed_before = failed_ops_.load();
  auto flushed = std::make_shared<std::atomic<bool>>(false);
  Flush(-1, [flushed](uint64_t) { flushed->store(true); });
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline && pending_ops_.load() > 0) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (pending_ops_.load() > 0) {
    Log(LogLevel::kWarn, "drain timeout reached; failing what is left",
        {{"pending_ops", absl::StrCat(pending_ops_.load())}});
    {
      absl::MutexLock lock(&mu_);
      fail_queued_ = true;
      Wake();
    }
    // In-flight calls come back within the call timeout; retries are refused.
    const absl::Time hard = absl::Now() + options_.inflight_grace;
    while (absl::Now() < hard && pending_ops_.load() > 0) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  const bool clean = pending_ops_.load() == 0 && failed_ops_.load() == failed_before;
  return clean;
}

void Engine::Run() {
  // Named so per-thread profiles (top -H, /proc/PID/task, perf) tell it apart.
  pthread_setname_np(pthread_self(), "engine");
  std::vector<std::pair<int, std::vector<Op>>> ops;
  std::vector<Completion> completions;
  std::vector<FlushRequest> flushes;
  std::vector<BudgetWaiter> budget;
  std::optional<EngineLiveSettings> settings;
  absl::Time next_wakeup = absl::InfiniteFuture();
  for (;;) {
    bool fail_queued = false;
    {
      absl::MutexLock lock(&mu_);
      // Queued reservations are re-checked (their deadlines) every 50 ms.
      // Fixed before the wait: recomputed after each timeout, it would move
      // on forever and a waiter's deadline would pass unanswered.
      absl::Time wake = next_wakeup;
      if (!budget_waiters_.empty()) {
        wake = std::min(wake, clock_->Now() + absl::Milliseconds(50));
      }
      while (!wake_pending_ && !stop_) {
        const absl::Time now = clock_->Now();
        if (now >= wake) break;
        if (wake == absl::InfiniteFuture()) {
          cv_.Wait(&mu_);
        } else {
          cv_.WaitWithTimeout(&mu_, wake - now);
        }
      }
      if (stop_) break;
      wake_pending_ = false;
      ops.swap(inbox_ops_);
      completions.swap(inbox_completions_);
      flushes.swap(inbox_flushes_);
      budget.swap(inbox_budget_);
      settings.swap(inbox_settings_);
      fail_queued = fail_queued_;
    }
    absl::Time now = clock_->Now();
    if (settings) {
      ApplySettings(*settings, now);
      settings.reset();
    }
    for (auto& [t, batch] : ops) {
      Table& table = *tables_[t];
      table.outstanding[table.epoch] += batch.size();
      constexpr size_t kAhead = TableBatcher::kPrefetchAhead;
      for (size_t i = 0; i < batch.size(); ++i) {
        if (i + kAhead < batch.size()) table.batcher->PrefetchKey(batch[i + kAhead].write.key);
        Op& op = batch[i];
        op.epoch = table.epoch;
        table.batcher->Add(std::move(op), now);
      }
    }
    ops.clear();
    for (auto& c : completions) HandleCompletion(std::move(c), now);
    completions.clear();
    for (auto& f : flushes) StartFlush(std::move(f));
    flushes.clear();
    for (auto& b : budget) budget_waiters_.push_back(std::move(b));
    budget.clear();

    if (fail_queued) {
      draining_failed_ = true;
      for (size_t i = 0; i < tables_.size(); ++i) {
        std::vector<OpResult> results;
        tables_[i]->batcher->FailQueued(
            "ShuttingDown", "the sidecar shut down before this write could be sent (drain_timeout)",
            &results);
        DeliverResults(static_cast<int>(i), &results, now);
      }
    }
    SendReady(now);
    FlushDeliveries();
    CheckFlushWaiters();
    ServeBudgetWaiters();
    PublishGauges();
    dead_letter_.MaybeSync(absl::Now());

    next_wakeup = absl::InfiniteFuture();
    for (auto& t : tables_) next_wakeup = std::min(next_wakeup, t->batcher->NextWakeup(now));
  }
}

void Engine::SendReady(absl::Time now) {
  for (size_t i = 0; i < tables_.size(); ++i) {
    Table& t = *tables_[i];
    while (auto batch = t.batcher->TakeBatch(now)) {
      // A fresh string, moved down to the transport: the body is not copied.
      std::string body;
      BuildBatchWriteBody(t.schema.name, batch->request_jsons, &body);
      t.inflight[batch->id] = {now, batch->request_jsons.size()};
      t.m->batches_sent->Increment();
      t.m->batch_size->Observe(static_cast<double>(batch->request_jsons.size()));
      metrics_->inflight_requests().Increment();
      const int table = static_cast<int>(i);
      const uint64_t id = batch->id;
      writer_->BatchWriteItem(t.schema, std::move(body), [this, table, id](BatchWriteResponse r) {
        absl::MutexLock lock(&mu_);
        inbox_completions_.push_back({table, id, std::move(r)});
        Wake();
      });
    }
  }
}

void Engine::CountThrottleReasons(const std::string& table, const BatchResult& result) {
  if (result.throttle_reasons.empty()) {
    metrics_->ThrottleReasons(table, "Unspecified").Increment();
    return;
  }
  for (const std::string& reason : result.throttle_reasons) {
    metrics_->ThrottleReasons(table, reason).Increment();
    // An account quota is not something this sidecar's pacing can fix: the
    // operator must raise the quota or spread the load.
    if (absl::EndsWith(reason, "AccountLimitExceeded")) {
      LogRateLimited(LogLevel::kError, absl::StrCat("account-limit/", table), absl::Seconds(10),
                     "DynamoDB throttled on an account-level quota; request a quota increase",
                     {{"table", table}, {"reason", reason}, {"message", result.message}});
    }
  }
}

void Engine::HandleCompletion(Completion c, absl::Time now) {
  Table& t = *tables_[c.table];
  metrics_->inflight_requests().Decrement();
  auto it = t.inflight.find(c.batch_id);
  size_t sent = 0;
  if (it != t.inflight.end()) {
    t.m->batch_write_seconds->Observe(absl::ToDoubleSeconds(now - it->second.first));
    sent = it->second.second;
    t.inflight.erase(it);
  }
  const BatchWriteResponse& r = c.response;
  if (r.consumed_wcu > 0) t.m->consumed_wcu->Increment(r.consumed_wcu);
  if (!r.error_class.empty()) metrics_->HttpErrors(r.error_class).Increment();
  if (r.result.kind == BatchResult::Kind::kSuccess) {
    had_success_.store(true, std::memory_order_relaxed);
    if (!r.result.unprocessed_keys.empty()) {
      metrics_->ThrottleEvents(t.schema.name, "UnprocessedItems").Increment();
      LogRateLimited(LogLevel::kInfo, absl::StrCat("unprocessed/", t.schema.name),
                     absl::Seconds(10),
                     "DynamoDB returned unprocessed items; retrying with backoff",
                     {{"table", t.schema.name},
                      {"unprocessed", absl::StrCat(r.result.unprocessed_keys.size())},
                      {"sent", absl::StrCat(sent)}});
    }
  } else if (r.result.throttled) {
    metrics_->ThrottleEvents(t.schema.name, r.result.error_code).Increment();
    CountThrottleReasons(t.schema.name, r.result);
    LogRateLimited(LogLevel::kInfo, absl::StrCat("throttled/", t.schema.name), absl::Seconds(10),
                   "BatchWriteItem throttled; retrying with backoff",
                   {{"table", t.schema.name}, {"error_code", r.result.error_code}});
  } else if (r.result.kind != BatchResult::Kind::kSuccess) {
    LogRateLimited(LogLevel::kWarn,
                   absl::StrCat("callerr/", t.schema.name, "/", r.result.error_code),
                   absl::Seconds(10), "BatchWriteItem call failed",
                   {{"table", t.schema.name},
                    {"error_code", r.result.error_code},
                    {"message", r.result.message},
                    {"http_status", absl::StrCat(r.http_status)}});
  }
  // Reused for every completion (DeliverResults leaves it empty): no
  // allocation and no regrowth per call.
  std::vector<OpResult>& results = completion_results_;
  t.batcher->OnBatchResult(c.batch_id, r.result, now, &results);
  bool fail_now;
  {
    absl::MutexLock lock(&mu_);
    fail_now = fail_queued_;
  }
  if (fail_now) {
    t.batcher->FailQueued("ShuttingDown",
                          absl::StrCat("the sidecar shut down before this write was accepted; "
                                       "last error: ",
                                       r.result.error_code, " ", r.result.message),
                          &results);
  }
  DeliverResults(c.table, &results, now);
  // A call that answered a great many coalesced ops does not pin their room.
  if (results.capacity() > kMaxSpareResultsCapacity) std::vector<OpResult>().swap(results);
}

void Engine::DeliverResults(int table, std::vector<OpResult>* results, absl::Time now) {
  Table& t = *tables_[table];
  // Counters the core keeps as stats become metrics by difference.
  const TableBatcherStats& s = t.batcher->stats();
  if (s.coalesced > t.last_stats.coalesced) {
    t.m->coalesced->Increment(static_cast<double>(s.coalesced - t.last_stats.coalesced));
  }
  if (s.retries > t.last_stats.retries) {
    t.m->retries->Increment(static_cast<double>(s.retries - t.last_stats.retries));
  }
  if (s.unprocessed_items > t.last_stats.unprocessed_items) {
    t.m->unprocessed_items->Increment(
        static_cast<double>(s.unprocessed_items - t.last_stats.unprocessed_items));
  }
  t.last_stats = s;
  if (results->empty()) return;
  uint64_t released = 0;
  uint64_t written_put = 0, written_delete = 0;
  const absl::Time wall = absl::Now();
  for (OpResult& r : *results) {
    released += r.op.MemoryBytes();
    t.op_latency->Observe(absl::ToDoubleSeconds(now - r.op.arrival));
    auto e = t.outstanding.find(r.op.epoch);
    if (e != t.outstanding.end() && --e->second == 0) t.outstanding.erase(e);
    switch (r.outcome) {
      case Outcome::kWritten:
        (r.op.write.is_delete ? written_delete : written_put)++;
        break;
      case Outcome::kFailed: {
        failed_ops_.fetch_add(1, std::memory_order_relaxed);
        metrics_->Failed(t.schema.name, r.error_code).Increment();
        LogRateLimited(LogLevel::kWarn, absl::StrCat("failed/", t.schema.name, "/", r.error_code),
                       absl::Seconds(5), "write FAILED",
                       {{"table", t.schema.name},
                        {"id", absl::StrCat(r.op.id)},
                        {"error_code", r.error_code},
                        {"message", r.message},
                        {"attempts", absl::StrCat(r.op.attempts)}});
        if (dead_letter_.enabled()) {
          absl::Status st =
              dead_letter_.Append(t.schema.name, r, wall - (now - r.op.arrival), wall);
          if (st.ok()) {
            t.m->dead_lettered->Increment();
          } else {
            LogRateLimited(LogLevel::kError, "deadletter", absl::Seconds(5),
                           "cannot write the dead-letter file", {{"error", st.ToString()}});
          }
        }
        break;
      }
      default:
        break;
    }
  }
  if (written_put) t.m->written_put->Increment(static_cast<double>(written_put));
  if (written_delete) t.m->written_delete->Increment(static_cast<double>(written_delete));
  t.bytes.fetch_sub(released, std::memory_order_relaxed);
  total_bytes_.fetch_sub(released, std::memory_order_relaxed);
  // Delivered once per round and sink (FlushDeliveries): a stream takes all
  // its results of a round under one lock, in one write.
  for (OpResult& r : *results) {
    ++undelivered_;
    ResultSink* key = r.op.sink.get();
    auto [it, added] = delivery_index_.try_emplace(key, deliveries_.size());
    if (added) {
      deliveries_.emplace_back();
      deliveries_.back().sink = r.op.sink;
      if (!spare_results_.empty()) {
        deliveries_.back().results = std::move(spare_results_.back());
        spare_results_.pop_back();
      }
    }
    deliveries_[it->second].results.push_back(std::move(r));
  }
  results->clear();
}

void Engine::FlushDeliveries() {
  if (deliveries_.empty()) return;
  std::vector<Delivery> out;
  out.swap(deliveries_);
  delivery_index_.clear();
  const uint64_t n = undelivered_;
  undelivered_ = 0;
  for (Delivery& d : out) {
    for (OpResult& r : d.results) r.op.sink.reset();
    if (d.sink) d.sink->DeliverAll(&d.results);
    // The emptied vector serves a later round (a few, of modest capacity:
    // a burst's big vectors are freed).
    d.results.clear();
    if (spare_results_.size() < kMaxSpareResults &&
        d.results.capacity() <= kMaxSpareResultsCapacity) {
      spare_results_.push_back(std::move(d.results));
    }
  }
  // Only now: Drain() returns once this reaches 0, so every result must
  // already be with its sink.
  pending_ops_.fetch_sub(n, std::memory_order_relaxed);
}

void Engine::StartFlush(FlushRequest req) {
  FlushWaiter w;
  w.ops = 0;
  w.done = std::move(req.done);
  for (size_t i = 0; i < tables_.size(); ++i) {
    if (req.table >= 0 && static_cast<int>(i) != req.table) continue;
    Table& t = *tables_[i];
    for (auto& [epoch, n] : t.outstanding) w.ops += n;
    w.epochs.emplace_back(static_cast<int>(i), t.epoch);
    ++t.epoch;
    t.batcher->Flush();
  }
  flush_waiters_.push_back(std::move(w));
}

void Engine::CheckFlushWaiters() {
  for (auto it = flush_waiters_.begin(); it != flush_waiters_.end();) {
    bool done = true;
    for (auto& [table, epoch] : it->epochs) {
      auto& out = tables_[table]->outstanding;
      if (!out.empty() && out.begin()->first <= epoch) {
        done = false;
        break;
      }
    }
    if (done) {
      it->done(it->ops);
      it = flush_waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void Engine::ServeBudgetWaiters() {
  const absl::Time wall = absl::Now();
  // Strict arrival order per table: once a table's first waiter does not
  // fit, its later waiters wait too. A waiter that does not fit the total
  // budget stops everyone (the total is shared).
  std::vector<bool> blocked(tables_.size(), false);
  bool total_blocked = false;
  std::vector<std::pair<std::function<void(bool)>, bool>> calls;
  for (auto it = budget_waiters_.begin(); it != budget_waiters_.end();) {
    const int t = it->table;
    if (it->ticket->cancelled()) {
      waiters_[t].fetch_sub(1);
      it = budget_waiters_.erase(it);
      continue;
    }
    // The deadline first: a caller already told DEADLINE_EXCEEDED or
    // RESOURCE_EXHAUSTED must never have its op written.
    if (wall >= it->deadline) {
      waiters_[t].fetch_sub(1);
      calls.emplace_back(std::move(it->done), false);
      it = budget_waiters_.erase(it);
      continue;
    }
    if (total_blocked || blocked[t]) {
      ++it;
      continue;
    }
    if (BudgetAvailable(t)) {
      Charge(t, it->bytes);
      waiters_[t].fetch_sub(1);
      calls.emplace_back(std::move(it->done), true);
      it = budget_waiters_.erase(it);
    } else {
      blocked[t] = true;
      total_blocked = total_bytes_.load(std::memory_order_relaxed) >=
                      max_buffer_bytes_.load(std::memory_order_relaxed);
      ++it;
    }
  }
  total_blocked_.store(total_blocked);
  for (auto& [done, ok] : calls) done(ok);
}

void Engine::PublishGauges() {
  for (auto& t : tables_) {
    t->m->queue_items->Set(static_cast<double>(t->batcher->queued_items()));
    t->m->queue_bytes->Set(static_cast<double>(t->bytes.load(std::memory_order_relaxed)));
    double rate = t->batcher->rate_limiter().rate();
    t->m->send_rate_limit->Set(rate >= 1e9 ? 0 : rate);
    t->m->paced_keys->Set(static_cast<double>(t->batcher->paced_keys(clock_->Now())));
    t->op_latency->Publish();
  }
}

}  // namespace dynamo_batcher
