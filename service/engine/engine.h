#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/batching/table_batcher.h"
#include "service/common/clock.h"
#include "service/common/types.h"
#include "service/dynamodb/batch_writer.h"
#include "service/engine/buffer_options.h"
#include "service/engine/dead_letter.h"
#include "service/metrics/metrics.h"

namespace dynamo_batcher {

struct EngineTable {
  TableSchema schema;
  RateLimiterOptions rate;
};

struct EngineOptions {
  BatchingOptions batching;
  RetryOptions retry;
  uint64_t max_buffer_bytes = BufferOptions{}.max_bytes;
  uint64_t max_table_buffer_bytes = BufferOptions{}.max_table_bytes;
  DeadLetterOptions dead_letter;
  // After drain_timeout, how long to wait for calls already in flight (their
  // writes may land, so they are not failed blindly): call_timeout + margin.
  absl::Duration inflight_grace = absl::Seconds(15);
};

// What a config reload may change while the engine runs (the rest of
// EngineOptions and the tables' key schemas need a restart). `rates` has one
// entry per table, in the constructor's order.
struct EngineLiveSettings {
  BatchingOptions batching;
  RetryOptions retry;
  uint64_t max_buffer_bytes = BufferOptions{}.max_bytes;
  uint64_t max_table_buffer_bytes = BufferOptions{}.max_table_bytes;
  std::vector<RateLimiterOptions> rates;
};

// Turns submitted ops into BatchWriteItem calls: the one component that owns
// a thread and timers. It runs the pure TableBatchers on its own thread,
// hands batches to a BatchWriter (the DynamoDB client; asynchronous, answers
// come back on the writer's thread and are queued here), delivers results to
// their sinks, keeps the metrics and the dead-letter file. Time comes from
// the Clock it is given.
//
// Thread-safety: every public method may be called from any thread.
//
// Usage:
//   Engine engine(tables, options, &ddb, &metrics, &clock);  // ddb: a BatchWriter
//   engine.Start();
//   if (engine.TryReserve(t, bytes)) engine.Submit(t, std::move(ops));
//   engine.Drain(absl::Seconds(20));
class Engine {
 public:
  Engine(std::vector<EngineTable> tables, EngineOptions options, BatchWriter* writer,
         Metrics* metrics, Clock* clock);
  ~Engine();

  absl::Status Start();
  // Stops the thread; ops still buffered are not answered. Use Drain first.
  void Stop();

  // -1 when `name` is not a configured table.
  int TableIndex(absl::string_view name) const;
  const TableSchema& schema(int table) const;
  const std::string* table_name(int table) const;
  size_t table_count() const { return tables_.size(); }

  // Buffer budgets. Reserve before Submit; bytes are released when ops get
  // their result. A reservation succeeds while the table and the total are
  // under budget (one message may overshoot, so any message can pass).
  // Reservations of a table are served in arrival order: TryReserve fails
  // while waiters of that table are queued, so it never overtakes them. A
  // table's waiters never hold another table's reservations, except that a
  // waiter blocked on the total budget blocks every table (it is first).
  bool TryReserve(int table, uint64_t bytes);
  // Cancels a queued reservation (see ReserveAsync); thread-safe, idempotent.
  class ReserveTicket {
   public:
    void Cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }

   private:
    std::atomic<bool> cancelled_{false};
  };
  // Calls `done(true)` once `bytes` could be reserved (and reserves them), or
  // `done(false)` at `deadline` (checked first: a waiter past its deadline is
  // never reserved). `done` runs on the engine thread. Once the returned
  // ticket is cancelled, `done` is not called (unless it is already running)
  // and the waiter leaves the queue.
  std::shared_ptr<ReserveTicket> ReserveAsync(int table, uint64_t bytes, absl::Time deadline,
                                              std::function<void(bool)> done);
  // Counts `bytes` held outside the engine (e.g. results not yet sent to a
  // client) against the budgets, without waiting: memory the budget bounds.
  void Charge(int table, uint64_t bytes);
  // Returns unused or charged bytes (ops rejected after reservation, results
  // sent).
  void Release(int table, uint64_t bytes);

  // Takes validated ops whose MemoryBytes() were reserved.
  void Submit(int table, std::vector<Op> ops);

  // Sends what is buffered for `table` (-1: all) and calls `done(n)` once the
  // n ops buffered or in flight at this moment all have results.
  void Flush(int table, std::function<void(uint64_t)> done);

  // Applies new live settings on the engine thread (between two rounds, so
  // a batch is never cut half with old and half with new settings).
  // `settings.rates` must have table_count() entries.
  void Reconfigure(EngineLiveSettings settings);

  // Graceful drain: flushes everything, waits up to `timeout` for results,
  // then fails what is left (dead-lettered). True when nothing failed
  // during the drain and nothing was left unanswered.
  bool Drain(absl::Duration timeout);

  uint64_t pending_ops() const { return pending_ops_.load(); }
  uint64_t failed_ops() const { return failed_ops_.load(); }
  // True once DynamoDB has answered a call with 200.
  bool had_success() const { return had_success_.load(); }
  uint64_t buffered_bytes() const { return total_bytes_.load(); }

  // Makes the engine thread read the clock again now (its timers wait in
  // real time for what the Clock says is left). For tests that move a
  // FakeClock: call after AdvanceTime.
  void Poke();

 private:
  struct Table;
  struct Completion {
    int table;
    uint64_t batch_id;
    BatchWriteResponse response;
  };
  struct FlushWaiter {
    std::vector<std::pair<int, uint64_t>> epochs;  // table, last epoch covered
    uint64_t ops;
    std::function<void(uint64_t)> done;
  };
  struct BudgetWaiter {
    int table;
    uint64_t bytes;
    absl::Time deadline;
    std::function<void(bool)> done;
    std::shared_ptr<ReserveTicket> ticket;
  };
  struct FlushRequest {
    int table;
    std::function<void(uint64_t)> done;
  };

  void Run();
  void Wake() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendReady(absl::Time now);
  void CountThrottleReasons(const std::string& table, const BatchResult& result);
  void HandleCompletion(Completion c, absl::Time now);
  // Accounts `results` and queues them for their sinks (FlushDeliveries).
  void DeliverResults(int table, std::vector<OpResult>* results, absl::Time now);
  // Hands the round's results to their sinks, one DeliverAll per sink.
  void FlushDeliveries();
  void StartFlush(FlushRequest req);
  void CheckFlushWaiters();
  void ServeBudgetWaiters();
  void PublishGauges();
  void ApplySettings(const EngineLiveSettings& settings, absl::Time now);
  bool BudgetAvailable(int table) const;

  // Up to this many tables, TableIndex compares names instead of hashing.
  static constexpr size_t kLinearTableLookup = 8;
  std::vector<std::unique_ptr<Table>> tables_;
  absl::flat_hash_map<std::string, int> index_;
  EngineOptions options_;
  BatchWriter* writer_;
  Metrics* metrics_;
  Clock* clock_;
  DeadLetterWriter dead_letter_;

  std::atomic<uint64_t> total_bytes_{0};
  std::atomic<uint64_t> pending_ops_{0};
  std::atomic<uint64_t> failed_ops_{0};
  std::atomic<bool> had_success_{false};
  // Queued reservations per table (inbox included); TryReserve yields to them.
  std::unique_ptr<std::atomic<int>[]> waiters_;
  // The first queued waiter is blocked on the total budget: every table yields.
  std::atomic<bool> total_blocked_{false};
  // Budgets, read by gRPC threads; changed by Reconfigure.
  std::atomic<uint64_t> max_buffer_bytes_;
  std::atomic<uint64_t> max_table_buffer_bytes_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_queued_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<int, std::vector<Op>>> inbox_ops_ ABSL_GUARDED_BY(mu_);
  std::vector<Completion> inbox_completions_ ABSL_GUARDED_BY(mu_);
  std::vector<FlushRequest> inbox_flushes_ ABSL_GUARDED_BY(mu_);
  std::vector<BudgetWaiter> inbox_budget_ ABSL_GUARDED_BY(mu_);
  std::optional<EngineLiveSettings> inbox_settings_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int, uint64_t>> inbox_release_ ABSL_GUARDED_BY(mu_);

  // Engine-thread state (Run and what it calls; no lock).
  std::vector<FlushWaiter> flush_waiters_;
  std::vector<BudgetWaiter> budget_waiters_;
  bool draining_failed_ = false;
  struct Delivery {
    std::shared_ptr<ResultSink> sink;
    std::vector<OpResult> results;
  };
  std::vector<Delivery> deliveries_;                               // this round's results, by sink
  absl::flat_hash_map<const ResultSink*, size_t> delivery_index_;  // into deliveries_
  uint64_t undelivered_ = 0;  // results in deliveries_ (still in pending_ops_)
  // Emptied result vectors of earlier rounds, reused (their capacity kept).
  static constexpr size_t kMaxSpareResults = 64;
  static constexpr size_t kMaxSpareResultsCapacity = 1024;
  std::vector<std::vector<OpResult>> spare_results_;
  std::vector<OpResult> completion_results_;  // HandleCompletion's, reused

  std::thread thread_;
};

}  // namespace dynamo_batcher
