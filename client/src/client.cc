#include "dynamo_batcher/client.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dynamobatcher/v1/batcher.grpc.pb.h"
#include "service/common/backoff.h"

namespace dynamo_batcher {

namespace {

using Stream = grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>;

// The framing overhead of one op inside a WriteRequest (tag, length, id).
constexpr size_t kOpOverheadBytes = 16;
// How long a graceful close waits for the sidecar to end a half-closed stream.
constexpr absl::Duration kHalfCloseGrace = absl::Milliseconds(500);
// Upper bound on how long the deadline reaper sleeps between scans.
constexpr absl::Duration kReaperMaxSleep = absl::Milliseconds(100);

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

WriteOutcome ClientFailure(absl::Status status) {
  WriteOutcome o;
  o.error_code = absl::StatusCodeToString(status.code());
  o.message = std::string(status.message());
  o.status = std::move(status);
  return o;
}

struct PendingOp {
  std::shared_ptr<const v1::WriteOp> op;
  size_t bytes = 0;
  absl::Time enqueued;
  absl::Time deadline;
  Client::Callback callback;
  bool queued = false;  // in send_queue_, not yet taken into a message
  bool sent = false;    // written to some stream at least once
  // Where it was last sent: the slot's stream number and the 1-based index
  // of its message on that stream (the sidecar names a message that does
  // not parse by that index).
  uint64_t stream = 0;
  uint64_t message = 0;
  // Resolved, callback being delivered; erased once it has run, so that
  // Flush returns only after callbacks (and futures) are done.
  bool claimed = false;
};

// An op taken out of the pending set with its final outcome; delivered
// outside every lock.
struct Resolution {
  Client::Callback callback;
  WriteOutcome outcome;
};

}  // namespace

std::string WriteOutcome::DebugString() const {
  if (!status.ok()) return absl::StrCat("client error: ", status.ToString());
  std::string s = v1::Outcome_Name(outcome);
  if (!error_code.empty()) absl::StrAppend(&s, " ", error_code);
  if (!message.empty()) absl::StrAppend(&s, ": ", message);
  absl::StrAppend(&s, " (attempts ", attempts, ")");
  return s;
}

class Client::Impl {
 public:
  explicit Impl(ClientOptions options) : options_(std::move(options)) {}
  ~Impl() { Shutdown(); }

  void Start();
  void Submit(std::string table, Item item, bool is_delete, Callback callback);
  absl::Status Flush(const std::string& table, absl::Duration timeout);
  absl::Status Close(absl::Duration timeout);
  void Shutdown();
  Stats GetStats() const;
  std::shared_ptr<grpc::Channel> channel() const;

  // Called by slots.
  void Deliver(std::vector<Resolution> done);
  const ClientOptions& options() const { return options_; }

  std::atomic<uint64_t> messages_sent_{0};
  std::atomic<uint64_t> ops_sent_{0};
  std::atomic<uint64_t> ops_resent_{0};
  std::atomic<uint64_t> reconnects_{0};

 private:
  class Slot;

  // Returns OK with a slot reserved, or why not.
  absl::Status AcquireBudget();
  void ReleaseBudget(size_t n);
  Slot& SlotFor(const std::string& table);
  void ReaperLoop();

  const ClientOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> closed_{false};
  std::atomic<bool> shut_down_{false};

  mutable absl::Mutex budget_mu_;
  absl::CondVar budget_cv_;
  size_t inflight_ ABSL_GUARDED_BY(budget_mu_) = 0;

  absl::Mutex reaper_mu_;
  absl::CondVar reaper_cv_;
  bool reaper_stop_ ABSL_GUARDED_BY(reaper_mu_) = false;
  std::thread reaper_;

  std::atomic<uint64_t> submitted_{0};
  std::atomic<uint64_t> resolved_{0};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> coalesced_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> client_errors_{0};
};

// One Write stream slot: owns a channel, a sender thread (which also manages
// reconnects) and, per live stream, a reader thread. All ops of a slot live
// in `ops_` ordered by id, which is also arrival and deadline order.
class Client::Impl::Slot {
 public:
  Slot(Impl* impl, int index);
  ~Slot() { Stop(/*graceful=*/false); }

  void Start() {
    thread_ = std::thread([this] {
      Run();
      absl::MutexLock lock(&mu_);
      run_done_ = true;
      cv_.SignalAll();
    });
  }
  void Enqueue(std::shared_ptr<v1::WriteOp> op, size_t bytes, Callback callback,
               std::atomic<uint64_t>& next_id);
  // Sends ops with id <= upto at once, without lingering.
  void RequestFlush(uint64_t upto);
  // Waits until no op with id <= upto (of `table`, or any when empty) is
  // waiting to be sent / waiting for its result.
  bool WaitSent(uint64_t upto, const std::string& table, absl::Time deadline);
  bool WaitResolved(uint64_t upto, const std::string& table, absl::Time deadline);
  absl::Time NextDeadline();
  void ExpireDue(absl::Time now);
  // Stops the threads and resolves what is left with CANCELLED.
  void Stop(bool graceful);

  v1::WriteBatcher::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  void Run();
  void ReadLoop(Stream* stream);
  void WriteLoop(Stream* stream);
  void FailInvalid(const grpc::ClientContext& context, const grpc::Status& status);
  bool AnyPendingLocked(uint64_t upto, const std::string& table, bool only_queued)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks an op resolved and takes its callback; the entry stays until
  // EraseDelivered.
  Client::Callback ClaimLocked(PendingOp& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseDelivered(const std::vector<uint64_t>& ids);
  // Usable: present and not resolved yet.
  bool LiveLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = ops_.find(id);
    return it != ops_.end() && !it->second.claimed;
  }

  Impl* const impl_;
  const ClientOptions& options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WriteBatcher::Stub> stub_;

  absl::Mutex mu_;
  // Signalled on new ops, stream breakage, flush requests and shutdown.
  absl::CondVar cv_;
  // Signalled on resolutions and sends while someone waits in Flush.
  absl::CondVar progress_cv_;
  std::map<uint64_t, PendingOp> ops_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> send_queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flush_upto_ ABSL_GUARDED_BY(mu_) = 0;
  int progress_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool reader_done_ ABSL_GUARDED_BY(mu_) = false;
  bool got_result_ ABSL_GUARDED_BY(mu_) = false;
  // A stream is open and has carried traffic; decides DEADLINE_EXCEEDED
  // versus UNAVAILABLE for ops that time out.
  bool healthy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool graceful_ ABSL_GUARDED_BY(mu_) = false;
  bool run_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  uint64_t stream_number_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t messages_on_stream_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
  bool stopped_ = false;  // only touched by Stop's caller
};

Client::Impl::Slot::Slot(Impl* impl, int index) : impl_(impl), options_(impl->options()) {
  grpc::ChannelArguments args;
  const int backoff_ms =
      static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.reconnect_backoff)));
  const int max_backoff_ms = static_cast<int>(
      std::max<int64_t>(backoff_ms, absl::ToInt64Milliseconds(options_.max_reconnect_backoff)));
  // gRPC's own reconnect backoff defaults to 1 s .. 120 s; keep it in line
  // with ours so a restarted sidecar is found quickly.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, backoff_ms);
  // Also the minimum connect timeout: keep room for a TLS handshake.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::max(backoff_ms, 1000));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  // A distinct argument per slot gives each slot its own connection.
  args.SetInt("dynamo_batcher.client_slot", index);
  std::shared_ptr<grpc::ChannelCredentials> creds =
      options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials();
  channel_ = grpc::CreateCustomChannel(options_.target, creds, args);
  stub_ = v1::WriteBatcher::NewStub(channel_);
}

void Client::Impl::Slot::Enqueue(std::shared_ptr<v1::WriteOp> op, size_t bytes, Callback callback,
                                 std::atomic<uint64_t>& next_id) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      // Ids are drawn under the slot lock so that they increase in the
      // order ops enter this slot.
      const uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
      op->set_id(id);
      const absl::Time now = absl::Now();
      PendingOp& p = ops_[id];
      p.op = std::move(op);
      p.bytes = bytes;
      p.enqueued = now;
      p.deadline = now + options_.op_deadline;
      p.callback = std::move(callback);
      p.queued = true;
      send_queue_.push_back(id);
      queued_bytes_ += bytes;
      // Wake the sender when a linger period starts or a message is full.
      if (ops_.size() == 1 || send_queue_.size() == 1 ||
          send_queue_.size() >= options_.max_ops_per_message ||
          queued_bytes_ >= options_.max_message_bytes) {
        cv_.Signal();
      }
      return;
    }
  }
  std::vector<Resolution> done;
  done.push_back(
      {std::move(callback), ClientFailure(absl::CancelledError("client is shutting down"))});
  impl_->Deliver(std::move(done));
}

void Client::Impl::Slot::RequestFlush(uint64_t upto) {
  absl::MutexLock lock(&mu_);
  flush_upto_ = std::max(flush_upto_, upto);
  cv_.SignalAll();
}

bool Client::Impl::Slot::AnyPendingLocked(uint64_t upto, const std::string& table,
                                          bool only_queued) {
  for (const auto& [id, p] : ops_) {
    if (id > upto) break;
    if (only_queued && !p.queued) continue;
    if (table.empty() || p.op->table() == table) return true;
  }
  return false;
}

bool Client::Impl::Slot::WaitSent(uint64_t upto, const std::string& table, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  ++progress_waiters_;
  bool ok = true;
  while (AnyPendingLocked(upto, table, /*only_queued=*/true)) {
    if (stopping_ || progress_cv_.WaitWithDeadline(&mu_, deadline)) {
      ok = !AnyPendingLocked(upto, table, true);
      break;
    }
  }
  --progress_waiters_;
  return ok;
}

bool Client::Impl::Slot::WaitResolved(uint64_t upto, const std::string& table,
                                      absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  ++progress_waiters_;
  bool ok = true;
  while (AnyPendingLocked(upto, table, /*only_queued=*/false)) {
    if (stopping_ || progress_cv_.WaitWithDeadline(&mu_, deadline)) {
      ok = !AnyPendingLocked(upto, table, false);
      break;
    }
  }
  --progress_waiters_;
  return ok;
}

absl::Time Client::Impl::Slot::NextDeadline() {
  absl::MutexLock lock(&mu_);
  return ops_.empty() ? absl::InfiniteFuture() : ops_.begin()->second.deadline;
}

Client::Callback Client::Impl::Slot::ClaimLocked(PendingOp& p) {
  if (p.queued) queued_bytes_ -= p.bytes;
  p.queued = false;
  p.claimed = true;
  return std::move(p.callback);
}

void Client::Impl::Slot::EraseDelivered(const std::vector<uint64_t>& ids) {
  absl::MutexLock lock(&mu_);
  for (uint64_t id : ids) ops_.erase(id);
  if (progress_waiters_ > 0) progress_cv_.SignalAll();
}

void Client::Impl::Slot::ExpireDue(absl::Time now) {
  std::vector<Resolution> done;
  std::vector<uint64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = ops_.begin(); it != ops_.end() && it->second.deadline <= now; ++it) {
      if (it->second.claimed) continue;
      absl::Status status =
          healthy_ ? absl::DeadlineExceededError(
                         absl::StrCat("no result from the sidecar within op_deadline (",
                                      absl::FormatDuration(options_.op_deadline), ")"))
                   : absl::UnavailableError(absl::StrCat(
                         "sidecar at ", options_.target, " unreachable until op_deadline: ",
                         last_error_.ok() ? "no stream established" : last_error_.ToString()));
      done.push_back({ClaimLocked(it->second), ClientFailure(std::move(status))});
      ids.push_back(it->first);
    }
  }
  if (done.empty()) return;
  impl_->Deliver(std::move(done));
  EraseDelivered(ids);
}

void Client::Impl::Slot::Stop(bool graceful) {
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    graceful_ = graceful;
    if (context_ != nullptr && !graceful) context_->TryCancel();
    cv_.SignalAll();
    progress_cv_.SignalAll();
    if (graceful) {
      // The sender may be stuck in a Write the sidecar does not read; a
      // graceful stop gets a bounded grace, then the stream is cancelled.
      const absl::Time until = absl::Now() + 2 * kHalfCloseGrace;
      while (!run_done_ && !cv_.WaitWithDeadline(&mu_, until)) {
      }
      if (!run_done_ && context_ != nullptr) context_->TryCancel();
    }
  }
  if (thread_.joinable()) thread_.join();
  std::vector<Resolution> done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = ops_.begin(); it != ops_.end();) {
      if (it->second.claimed) {  // being delivered by the reaper right now
        ++it;
        continue;
      }
      done.push_back({ClaimLocked(it->second), ClientFailure(absl::CancelledError(
                                                   "client closed before the sidecar answered"))});
      it = ops_.erase(it);
    }
    send_queue_.clear();
    queued_bytes_ = 0;
  }
  if (!done.empty()) impl_->Deliver(std::move(done));
}

void Client::Impl::Slot::Run() {
  // Consecutive streams that ended without delivering a result. Full jitter:
  // clients that lost the same sidecar do not all reconnect at once.
  const dynamo_batcher::ExponentialBackoff backoff(options_.reconnect_backoff,
                                                   options_.max_reconnect_backoff, 2.0,
                                                   dynamo_batcher::ExponentialBackoff::kFullJitter);
  std::minstd_rand rng(std::random_device{}());
  uint32_t failures = 0;
  bool first_stream = true;
  while (true) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      // Streams are opened lazily: an idle client holds no stream.
      while (!stopping_ && ops_.empty()) cv_.Wait(&mu_);
      if (stopping_) return;
      context_ = &context;
      ++stream_number_;
      messages_on_stream_ = 0;
      broken_ = false;
      reader_done_ = false;
      got_result_ = false;
      // Everything without a result goes (again) in id order: ops of the
      // broken stream first, then those that arrived since.
      send_queue_.clear();
      queued_bytes_ = 0;
      uint64_t resent = 0;
      for (auto& [id, p] : ops_) {
        if (p.claimed) continue;
        send_queue_.push_back(id);
        queued_bytes_ += p.bytes;
        p.queued = true;
        if (p.sent) ++resent;
      }
      impl_->ops_resent_ += resent;
      if (!first_stream) ++impl_->reconnects_;
    }
    first_stream = false;

    std::unique_ptr<Stream> stream = stub_->Write(&context);
    std::thread reader([this, s = stream.get()] { ReadLoop(s); });
    WriteLoop(stream.get());

    bool graceful;
    {
      absl::MutexLock lock(&mu_);
      graceful = stopping_ && graceful_ && !broken_;
    }
    if (graceful) {
      // Half-close so the sidecar ends the stream cleanly.
      stream->WritesDone();
      absl::MutexLock lock(&mu_);
      const absl::Time until = absl::Now() + kHalfCloseGrace;
      while (!reader_done_ && !cv_.WaitWithDeadline(&mu_, until)) {
      }
    }
    {
      // A stream the sidecar ended (the reader saw its end) keeps the
      // sidecar's status; cancelling it now would replace it with CANCELLED.
      absl::MutexLock lock(&mu_);
      if (!reader_done_) context.TryCancel();
    }
    reader.join();
    const grpc::Status status = stream->Finish();
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) FailInvalid(context, status);

    bool progressed;
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      healthy_ = false;
      progressed = got_result_;
      if (!status.ok()) last_error_ = FromGrpc(status);
      if (stopping_) return;
    }
    failures = progressed ? 1 : failures + 1;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time until = absl::Now() + backoff.Next(failures, rng);
      while (!stopping_ && !cv_.WaitWithDeadline(&mu_, until)) {
      }
      if (stopping_) return;
    }
  }
}

// The sidecar ended the stream because a message did not parse: re-sending
// it would fail the same way on every stream, so the ops of that message
// (named by the sidecar's trailer; without one, every op sent on the stream
// and unanswered) fail with the sidecar's status.
void Client::Impl::Slot::FailInvalid(const grpc::ClientContext& context,
                                     const grpc::Status& status) {
  uint64_t bad = 0;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto t = trailers.find("dynamo-batcher-bad-message");
  if (t != trailers.end() &&
      !absl::SimpleAtoi(absl::string_view(t->second.data(), t->second.size()), &bad)) {
    bad = 0;
  }
  std::vector<Resolution> done;
  std::vector<uint64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, p] : ops_) {
      if (p.claimed || !p.sent || p.stream != stream_number_) continue;
      if (bad != 0 && p.message != bad) continue;
      done.push_back({ClaimLocked(p), ClientFailure(absl::InvalidArgumentError(
                                          absl::StrCat("sidecar: ", status.error_message())))});
      ids.push_back(id);
    }
  }
  if (done.empty()) return;
  impl_->Deliver(std::move(done));
  EraseDelivered(ids);
}

void Client::Impl::Slot::WriteLoop(Stream* stream) {
  const size_t max_ops = options_.max_ops_per_message;
  const size_t max_bytes = options_.max_message_bytes;
  std::vector<std::shared_ptr<const v1::WriteOp>> batch;
  v1::WriteRequest request;
  while (true) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stopping_ || broken_) return;
        while (!send_queue_.empty() && !LiveLocked(send_queue_.front())) {
          send_queue_.pop_front();  // resolved (expired) while queued
        }
        if (send_queue_.empty()) {
          cv_.Wait(&mu_);
          continue;
        }
        const uint64_t front = send_queue_.front();
        const absl::Time send_at = ops_.at(front).enqueued + options_.linger;
        if (send_queue_.size() >= max_ops || queued_bytes_ >= max_bytes || flush_upto_ >= front ||
            absl::Now() >= send_at) {
          break;
        }
        cv_.WaitWithDeadline(&mu_, send_at);
      }
      size_t bytes = 0;
      while (!send_queue_.empty() && batch.size() < max_ops) {
        auto it = ops_.find(send_queue_.front());
        if (it == ops_.end() || it->second.claimed) {
          send_queue_.pop_front();
          continue;
        }
        PendingOp& p = it->second;
        if (!batch.empty() && bytes + p.bytes > max_bytes) break;
        bytes += p.bytes;
        queued_bytes_ -= p.bytes;
        p.queued = false;
        p.sent = true;
        p.stream = stream_number_;
        p.message = messages_on_stream_ + 1;
        batch.push_back(p.op);
        send_queue_.pop_front();
      }
      if (!batch.empty()) ++messages_on_stream_;
    }
    if (batch.empty()) continue;
    request.Clear();
    request.mutable_ops()->Reserve(static_cast<int>(batch.size()));
    for (const auto& op : batch) *request.add_ops() = *op;
    if (!stream->Write(request)) {
      absl::MutexLock lock(&mu_);
      broken_ = true;
      return;
    }
    ++impl_->messages_sent_;
    impl_->ops_sent_ += batch.size();
    absl::MutexLock lock(&mu_);
    healthy_ = true;
    if (progress_waiters_ > 0) progress_cv_.SignalAll();
  }
}

void Client::Impl::Slot::ReadLoop(Stream* stream) {
  v1::WriteResponse response;
  while (stream->Read(&response)) {
    std::vector<Resolution> done;
    std::vector<uint64_t> ids;
    done.reserve(response.results_size());
    ids.reserve(response.results_size());
    {
      absl::MutexLock lock(&mu_);
      got_result_ = true;
      healthy_ = true;
      for (v1::WriteResult& r : *response.mutable_results()) {
        auto it = ops_.find(r.id());
        if (it == ops_.end() || it->second.claimed) continue;  // expired, duplicate
        WriteOutcome o;
        o.outcome = r.outcome();
        o.error_code = std::move(*r.mutable_error_code());
        o.message = std::move(*r.mutable_message());
        o.attempts = r.attempts();
        done.push_back({ClaimLocked(it->second), std::move(o)});
        ids.push_back(it->first);
      }
    }
    if (done.empty()) continue;
    impl_->Deliver(std::move(done));
    EraseDelivered(ids);
  }
  absl::MutexLock lock(&mu_);
  broken_ = true;
  reader_done_ = true;
  cv_.SignalAll();
}

// ---------------------------------------------------------------------------

void Client::Impl::Start() {
  for (int i = 0; i < options_.streams; ++i) {
    slots_.push_back(std::make_unique<Slot>(this, i));
  }
  for (auto& slot : slots_) slot->Start();
  reaper_ = std::thread([this] { ReaperLoop(); });
}

Client::Impl::Slot& Client::Impl::SlotFor(const std::string& table) {
  if (slots_.size() == 1) return *slots_[0];
  return *slots_[absl::Hash<std::string>()(table) % slots_.size()];
}

absl::Status Client::Impl::AcquireBudget() {
  absl::MutexLock lock(&budget_mu_);
  if (inflight_ < options_.max_inflight_ops) {
    ++inflight_;
    return absl::OkStatus();
  }
  if (options_.when_full == ClientOptions::WhenFull::kFail) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "client in-flight budget full (max_inflight_ops=", options_.max_inflight_ops, ")"));
  }
  const absl::Time deadline = absl::Now() + options_.op_deadline;
  while (inflight_ >= options_.max_inflight_ops) {
    if (closed_.load()) return absl::CancelledError("client is shutting down");
    if (budget_cv_.WaitWithDeadline(&budget_mu_, deadline) &&
        inflight_ >= options_.max_inflight_ops) {
      return absl::DeadlineExceededError("client in-flight budget stayed full for op_deadline");
    }
  }
  ++inflight_;
  return absl::OkStatus();
}

void Client::Impl::ReleaseBudget(size_t n) {
  absl::MutexLock lock(&budget_mu_);
  inflight_ -= n;
  if (options_.when_full == ClientOptions::WhenFull::kBlock) budget_cv_.SignalAll();
}

void Client::Impl::Submit(std::string table, Item item, bool is_delete, Callback callback) {
  ++submitted_;
  absl::Status admitted =
      closed_.load() ? absl::FailedPreconditionError("client is closed") : AcquireBudget();
  if (!admitted.ok()) {
    // Not counted in the budget: resolved right here.
    ++resolved_;
    ++client_errors_;
    callback(ClientFailure(std::move(admitted)));
    return;
  }
  auto op = std::make_shared<v1::WriteOp>();
  op->set_table(std::move(table));
  if (is_delete) {
    *op->mutable_delete_key() = std::move(item).proto();
  } else {
    *op->mutable_put() = std::move(item).proto();
  }
  const size_t bytes = op->ByteSizeLong() + kOpOverheadBytes;
  SlotFor(op->table()).Enqueue(std::move(op), bytes, std::move(callback), next_id_);
}

void Client::Impl::Deliver(std::vector<Resolution> done) {
  ReleaseBudget(done.size());
  for (Resolution& r : done) {
    ++resolved_;
    if (!r.outcome.status.ok()) {
      ++client_errors_;
    } else {
      switch (r.outcome.outcome) {
        case v1::WRITTEN:
          ++written_;
          break;
        case v1::COALESCED:
          ++coalesced_;
          break;
        case v1::FAILED:
          ++failed_;
          break;
        case v1::REJECTED:
          ++rejected_;
          break;
        default:
          break;
      }
    }
    if (r.callback) r.callback(std::move(r.outcome));
  }
}

absl::Status Client::Impl::Flush(const std::string& table, absl::Duration timeout) {
  if (shut_down_.load()) return absl::FailedPreconditionError("client is closed");
  const absl::Time deadline = absl::Now() + timeout;
  const uint64_t upto = next_id_.load() - 1;
  std::vector<Slot*> slots;
  if (table.empty()) {
    for (auto& s : slots_) slots.push_back(s.get());
  } else {
    slots.push_back(&SlotFor(table));
  }
  for (Slot* s : slots) s->RequestFlush(upto);
  for (Slot* s : slots) {
    if (!s->WaitSent(upto, table, deadline)) {
      return absl::DeadlineExceededError(
          "Flush: ops could not be sent to the sidecar before the timeout");
    }
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  v1::FlushRequest request;
  request.set_table(table);
  v1::FlushResponse response;
  grpc::Status status = slots_[0]->stub().Flush(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("Flush RPC: ", status.error_message()));
  }
  for (Slot* s : slots) {
    if (!s->WaitResolved(upto, table, deadline)) {
      return absl::DeadlineExceededError("Flush: not every op had its result before the timeout");
    }
  }
  return absl::OkStatus();
}

absl::Status Client::Impl::Close(absl::Duration timeout) {
  if (closed_.exchange(true)) return absl::OkStatus();
  {
    absl::MutexLock lock(&budget_mu_);
    budget_cv_.SignalAll();
  }
  absl::Status status = Flush("", timeout);
  for (auto& s : slots_) s->Stop(/*graceful=*/true);
  Shutdown();
  return status;
}

void Client::Impl::Shutdown() {
  if (shut_down_.exchange(true)) return;
  closed_ = true;
  {
    absl::MutexLock lock(&budget_mu_);
    budget_cv_.SignalAll();
  }
  for (auto& s : slots_) s->Stop(/*graceful=*/false);
  {
    absl::MutexLock lock(&reaper_mu_);
    reaper_stop_ = true;
    reaper_cv_.SignalAll();
  }
  if (reaper_.joinable()) reaper_.join();
}

void Client::Impl::ReaperLoop() {
  while (true) {
    absl::Time next = absl::Now() + kReaperMaxSleep;
    for (auto& s : slots_) next = std::min(next, s->NextDeadline());
    {
      absl::MutexLock lock(&reaper_mu_);
      while (!reaper_stop_ && !reaper_cv_.WaitWithDeadline(&reaper_mu_, next)) {
      }
      if (reaper_stop_) return;
    }
    const absl::Time now = absl::Now();
    for (auto& s : slots_) s->ExpireDue(now);
  }
}

Client::Stats Client::Impl::GetStats() const {
  Stats s;
  s.ops_submitted = submitted_.load();
  s.ops_resolved = resolved_.load();
  s.written = written_.load();
  s.coalesced = coalesced_.load();
  s.failed = failed_.load();
  s.rejected = rejected_.load();
  s.client_errors = client_errors_.load();
  s.messages_sent = messages_sent_.load();
  s.ops_sent = ops_sent_.load();
  s.ops_resent = ops_resent_.load();
  s.reconnects = reconnects_.load();
  {
    absl::MutexLock lock(&budget_mu_);
    s.inflight = inflight_;
  }
  return s;
}

std::shared_ptr<grpc::Channel> Client::Impl::channel() const {
  return slots_.empty() ? nullptr : slots_[0]->channel();
}

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target is empty");
  if (options.streams < 1 || options.streams > 64) {
    return absl::InvalidArgumentError("streams must be in [1, 64]");
  }
  if (options.max_ops_per_message < 1) {
    return absl::InvalidArgumentError("max_ops_per_message must be >= 1");
  }
  if (options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError("max_message_bytes must be >= 1024");
  }
  if (options.max_inflight_ops < 1) {
    return absl::InvalidArgumentError("max_inflight_ops must be >= 1");
  }
  if (options.linger < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("linger must be >= 0");
  }
  if (options.op_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("op_deadline must be > 0");
  }
  if (options.reconnect_backoff <= absl::ZeroDuration() ||
      options.max_reconnect_backoff < options.reconnect_backoff) {
    return absl::InvalidArgumentError("reconnect_backoff must be > 0 and <= max_reconnect_backoff");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  impl->Start();
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() { impl_->Shutdown(); }

void Client::Put(std::string table, Item item, Callback callback) {
  impl_->Submit(std::move(table), std::move(item), false, std::move(callback));
}

void Client::Delete(std::string table, Item key, Callback callback) {
  impl_->Submit(std::move(table), std::move(key), true, std::move(callback));
}

std::future<WriteOutcome> Client::Put(std::string table, Item item) {
  auto promise = std::make_shared<std::promise<WriteOutcome>>();
  std::future<WriteOutcome> f = promise->get_future();
  Put(std::move(table), std::move(item),
      [promise](WriteOutcome o) { promise->set_value(std::move(o)); });
  return f;
}

std::future<WriteOutcome> Client::Delete(std::string table, Item key) {
  auto promise = std::make_shared<std::promise<WriteOutcome>>();
  std::future<WriteOutcome> f = promise->get_future();
  Delete(std::move(table), std::move(key),
         [promise](WriteOutcome o) { promise->set_value(std::move(o)); });
  return f;
}

absl::StatusOr<WriteOutcome> Client::PutSync(std::string table, Item item) {
  WriteOutcome o = Put(std::move(table), std::move(item)).get();
  if (!o.status.ok()) return o.status;
  return o;
}

absl::StatusOr<WriteOutcome> Client::DeleteSync(std::string table, Item key) {
  WriteOutcome o = Delete(std::move(table), std::move(key)).get();
  if (!o.status.ok()) return o.status;
  return o;
}

absl::Status Client::Flush(std::string table, absl::Duration timeout) {
  return impl_->Flush(table, timeout);
}

absl::Status Client::Close(absl::Duration timeout) { return impl_->Close(timeout); }

Client::Stats Client::stats() const { return impl_->GetStats(); }

std::shared_ptr<grpc::Channel> Client::channel() const { return impl_->channel(); }

}  // namespace dynamo_batcher
