#include "service/server/write_service.h"

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/codec/codec.h"
#include "service/common/log.h"

namespace dynamo_batcher {
namespace v1 = ::dynamobatcher::v1;

void ToProto(const OpResult& r, v1::WriteResult* out) {
  out->set_id(r.op.id);
  switch (r.outcome) {
    case Outcome::kWritten: out->set_outcome(v1::WRITTEN); break;
    case Outcome::kCoalesced: out->set_outcome(v1::COALESCED); break;
    case Outcome::kFailed: out->set_outcome(v1::FAILED); break;
    case Outcome::kRejected: out->set_outcome(v1::REJECTED); break;
  }
  if (!r.error_code.empty()) out->set_error_code(r.error_code);
  if (!r.message.empty()) out->set_message(r.message);
  out->set_attempts(r.op.attempts);
  if (r.op.table != nullptr) out->set_table(*r.op.table);
}

namespace {

void Reject(v1::WriteResult* out, const v1::WriteOp& op, const std::string& code,
            const std::string& message) {
  out->Clear();
  out->set_id(op.id());
  out->set_outcome(v1::REJECTED);
  out->set_error_code(code);
  out->set_message(message);
  out->set_table(op.table());
}

// One Write stream. Owned by shared_ptr: gRPC holds a reference until OnDone,
// and every op it submitted holds one (as its ResultSink) until answered, so
// late results never touch freed memory.
class WriteReactor final
    : public grpc::ServerBidiReactor<v1::WriteRequest, v1::WriteResponse>,
      public ResultSink,
      public WriteBatcherService::DrainListener,
      public std::enable_shared_from_this<WriteReactor> {
 public:
  explicit WriteReactor(WriteBatcherService* service) : service_(service) {}

  void Begin() {
    self_ = shared_from_this();
    service_->metrics()->active_streams().Increment();
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_pending_ = true;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_pending_ = false;
      // Finished while this read waited (drain or cancel): the message, if
      // any, is discarded unread; the client learns it from the status.
      if (finished_) return;
      if (!ok) half_closed_ = true;
    }
    if (!ok) {
      StopReading();
      return;
    }
    Process();
  }

  // The drain began: a stream idle in a read, with every op answered, can
  // finish now instead of waiting for the client's next message.
  void OnDrain() override {
    bool finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  void OnWriteDone(bool ok) override {
    bool start = false;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) broken_ = true;
      start = TakeWriteLocked();
      if (!start) finish = ShouldFinishLocked();
    }
    if (start) StartWrite(&out_);
    if (finish) DoFinish();
  }

  void OnCancel() override {
    bool finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken_ = true;
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  void OnDone() override {
    service_->RemoveStream(this);
    service_->metrics()->active_streams().Decrement();
    service_->active_streams_counter().fetch_sub(1);
    std::shared_ptr<WriteReactor> keep = std::move(self_);
    // `keep` may be the last reference; the object dies with it.
  }

  void Deliver(OpResult result) override {
    bool start = false;
    bool finish = false;
    bool resume = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --outstanding_;
      if (finished_) return;
      ToProto(result, pending_.add_results());
      start = TakeWriteLocked();
      // Resume a stream paused at its in-flight cap once half has drained.
      if (read_paused_ && outstanding_ <= service_->limits().max_inflight_ops_per_stream / 2) {
        read_paused_ = false;
        if (service_->draining() || broken_) {
          read_done_ = true;
        } else {
          resume = true;
          read_pending_ = true;
        }
      }
      if (!start && !resume) finish = ShouldFinishLocked();
    }
    if (start) StartWrite(&out_);
    if (resume) StartRead(&request_);
    if (finish) DoFinish();
  }

 private:
  void Process() {
    Engine* engine = service_->engine();
    const absl::Time now = SteadyClock().Now();
    const int n = request_.ops_size();
    groups_.assign(engine->table_count(), {});
    group_bytes_.assign(engine->table_count(), 0);
    std::vector<v1::WriteResult> rejected;
    if (n > service_->limits().max_ops_per_message) {
      const std::string msg = absl::StrCat(
          "WriteRequest.ops: ", n, " ops in one message, more than server.max_ops_per_message (",
          service_->limits().max_ops_per_message, "); split it");
      for (const auto& op : request_.ops()) {
        rejected.emplace_back();
        Reject(&rejected.back(), op, "TooManyOps", msg);
        service_->metrics()->Rejected(engine->TableIndex(op.table()) >= 0 ? op.table() : "",
                                      "TooManyOps").Increment();
      }
    } else {
      for (int i = 0; i < n; ++i) {
        int table = -1;
        Op op;
        v1::WriteResult r;
        if (service_->PrepareOp(request_.ops(i), now, &table, &op, &r)) {
          op.sink = shared_from_this();
          group_bytes_[table] += op.MemoryBytes();
          groups_[table].push_back(std::move(op));
        } else {
          rejected.push_back(std::move(r));
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      outstanding_ += n;
      outstanding_ -= static_cast<int64_t>(rejected.size());
      for (auto& r : rejected) *pending_.add_results() = std::move(r);
    }
    rejected.clear();
    next_group_ = 0;
    SubmitGroups();
  }

  // Submits the per-table groups in order, waiting for buffer space where the
  // budget is full; reads the next message only when all are in.
  void SubmitGroups() {
    Engine* engine = service_->engine();
    while (next_group_ < groups_.size()) {
      const int t = static_cast<int>(next_group_);
      if (groups_[t].empty()) {
        ++next_group_;
        continue;
      }
      if (!engine->TryReserve(t, group_bytes_[t])) {
        std::weak_ptr<WriteReactor> weak = weak_from_this();
        engine->ReserveAsync(t, group_bytes_[t], absl::InfiniteFuture(), [weak](bool ok) {
          if (auto self = weak.lock()) self->OnReserved(ok);
        });
        return;
      }
      engine->Submit(t, std::move(groups_[t]));
      groups_[t].clear();
      ++next_group_;
    }
    AfterSubmit();
  }

  void OnReserved(bool ok) {
    if (!ok) return;  // infinite deadline: only on shutdown
    const int t = static_cast<int>(next_group_);
    service_->engine()->Submit(t, std::move(groups_[t]));
    groups_[t].clear();
    ++next_group_;
    SubmitGroups();
  }

  void AfterSubmit() {
    bool start = false;
    bool finish = false;
    bool read = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      start = TakeWriteLocked();
      if (service_->draining() || broken_) {
        read_done_ = true;
      } else if (outstanding_ >= service_->limits().max_inflight_ops_per_stream) {
        read_paused_ = true;  // Deliver resumes it
      } else {
        read = true;
        read_pending_ = true;
      }
      if (!start) finish = ShouldFinishLocked();
    }
    if (start) StartWrite(&out_);
    if (read) StartRead(&request_);
    if (finish) DoFinish();
  }

  void StopReading() {
    bool finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_done_ = true;
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  // Moves pending results into out_ if no write is in flight.
  bool TakeWriteLocked() {
    if (writing_ || finished_ || broken_ || pending_.results_size() == 0) return false;
    out_.Clear();
    out_.Swap(&pending_);
    writing_ = true;
    return true;
  }

  bool ShouldFinishLocked() {
    if (finished_ || writing_) return false;
    // While draining, a read still waiting for the client will not be used.
    const bool reads_over = read_done_ || (read_pending_ && service_->draining());
    if (broken_ || (reads_over && outstanding_ == 0 && pending_.results_size() == 0)) {
      finished_ = true;
      return true;
    }
    return false;
  }

  void DoFinish() {
    bool draining = service_->draining();
    bool broken;
    bool half_closed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken = broken_;
      half_closed = half_closed_;
    }
    if (broken) {
      Finish(grpc::Status::CANCELLED);
    } else if (draining && !half_closed) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "dynamo-batcher is draining (shutting down); every op read from this "
                          "stream has its result; send the rest to another instance"));
    } else {
      Finish(grpc::Status::OK);
    }
  }

  WriteBatcherService* service_;
  std::shared_ptr<WriteReactor> self_;
  v1::WriteRequest request_;
  std::vector<std::vector<Op>> groups_;
  std::vector<uint64_t> group_bytes_;
  size_t next_group_ = 0;

  std::mutex mu_;
  v1::WriteResponse pending_;  // guarded by mu_
  v1::WriteResponse out_;      // owned by the write in flight
  int64_t outstanding_ = 0;    // ops read, result not yet queued
  bool writing_ = false;
  bool read_done_ = false;
  bool read_pending_ = false;  // a StartRead awaits OnReadDone
  bool half_closed_ = false;   // the client finished writing
  bool read_paused_ = false;  // at max_inflight_ops_per_stream
  bool broken_ = false;
  bool finished_ = false;
};

class RefusingReactor final
    : public grpc::ServerBidiReactor<v1::WriteRequest, v1::WriteResponse> {
 public:
  explicit RefusingReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// Finishes a unary call and counts it out of WriteBatcherService::idle().
void FinishUnary(grpc::ServerUnaryReactor* reactor, std::atomic<int>* calls,
                 grpc::Status status) {
  reactor->Finish(std::move(status));
  calls->fetch_sub(1);
}

// Answers one unary Put/Delete once its result arrives.
class UnarySink final : public ResultSink {
 public:
  UnarySink(grpc::ServerUnaryReactor* reactor, v1::WriteResult* response,
            std::atomic<int>* calls)
      : reactor_(reactor), response_(response), calls_(calls) {}
  void Deliver(OpResult result) override {
    ToProto(result, response_);
    FinishUnary(reactor_, calls_, grpc::Status::OK);
  }

 private:
  grpc::ServerUnaryReactor* reactor_;
  v1::WriteResult* response_;
  std::atomic<int>* calls_;
};

}  // namespace

WriteBatcherService::WriteBatcherService(Engine* engine, Metrics* metrics, ServiceLimits limits)
    : engine_(engine), metrics_(metrics), limits_(limits) {}

void WriteBatcherService::BeginDrain() {
  std::vector<std::shared_ptr<DrainListener>> open;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    draining_.store(true);
    for (auto& [key, weak] : streams_) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) s->OnDrain();
}

bool WriteBatcherService::AddStream(const std::shared_ptr<DrainListener>& stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  if (draining_.load()) return false;
  streams_[stream.get()] = stream;
  return true;
}

void WriteBatcherService::RemoveStream(const DrainListener* stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.erase(stream);
}

bool WriteBatcherService::PrepareOp(const v1::WriteOp& wire, absl::Time now, int* table, Op* op,
                                    v1::WriteResult* rejected) {
  const int t = engine_->TableIndex(wire.table());
  if (t < 0) {
    Reject(rejected, wire, "UnknownTable",
           absl::StrCat("op ", wire.id(), ": table: \"", wire.table(),
                        "\" is not a configured table of this sidecar"));
    metrics_->Rejected("", "UnknownTable").Increment();
    return false;
  }
  Metrics::Table& m = metrics_->table(t);
  (wire.has_delete_key() ? m.received_delete : m.received_put)->Increment();
  Rejection why;
  if (!EncodeWriteOp(wire, engine_->schema(t), &op->write, &why)) {
    Reject(rejected, wire, why.code, why.message);
    metrics_->Rejected(wire.table(), why.code).Increment();
    return false;
  }
  op->id = wire.id();
  op->table = engine_->table_name(t);
  op->arrival = now;
  *table = t;
  return true;
}

grpc::ServerBidiReactor<v1::WriteRequest, v1::WriteResponse>* WriteBatcherService::Write(
    grpc::CallbackServerContext* /*context*/) {
  if (draining_.load()) {
    return new RefusingReactor(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                            "dynamo-batcher is draining (shutting down)"));
  }
  if (active_streams_.fetch_add(1) >= limits_.max_streams) {
    active_streams_.fetch_sub(1);
    return new RefusingReactor(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("too many open Write streams (server.max_streams = ", limits_.max_streams,
                     "); reuse one stream per client")));
  }
  auto reactor = std::make_shared<WriteReactor>(this);
  if (!AddStream(reactor)) {  // the drain began since the check above
    active_streams_.fetch_sub(1);
    return new RefusingReactor(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                            "dynamo-batcher is draining (shutting down)"));
  }
  reactor->Begin();
  // A BeginDrain between AddStream and Begin found no read to abandon.
  if (draining_.load()) reactor->OnDrain();
  return reactor.get();
}

grpc::ServerUnaryReactor* WriteBatcherService::Single(grpc::CallbackServerContext* context,
                                                      v1::WriteOp wire,
                                                      v1::WriteResult* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (draining_.load()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "dynamo-batcher is draining (shutting down)"));
    return reactor;
  }
  unary_calls_.fetch_add(1);
  int table = -1;
  Op op;
  if (!PrepareOp(wire, clock_.Now(), &table, &op, response)) {
    FinishUnary(reactor, &unary_calls_, grpc::Status::OK);
    return reactor;
  }
  op.sink = std::make_shared<UnarySink>(reactor, response, &unary_calls_);
  const uint64_t bytes = op.MemoryBytes();
  if (engine_->TryReserve(table, bytes)) {
    std::vector<Op> ops;
    ops.push_back(std::move(op));
    engine_->Submit(table, std::move(ops));
    return reactor;
  }
  absl::Time deadline = absl::FromChrono(context->deadline());
  deadline = std::min(deadline, absl::Now() + limits_.default_unary_wait);
  auto held = std::make_shared<Op>(std::move(op));
  engine_->ReserveAsync(table, bytes, deadline, [this, table, held, reactor](bool ok) {
    if (!ok) {
      FinishUnary(reactor, &unary_calls_,
                  grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               "dynamo-batcher buffer is full (buffer.max_bytes / "
                               "buffer.max_table_bytes) and no space freed up before the "
                               "call's deadline"));
      return;
    }
    std::vector<Op> ops;
    ops.push_back(std::move(*held));
    engine_->Submit(table, std::move(ops));
  });
  return reactor;
}

grpc::ServerUnaryReactor* WriteBatcherService::Put(grpc::CallbackServerContext* context,
                                                   const v1::PutRequest* request,
                                                   v1::WriteResult* response) {
  v1::WriteOp op;
  op.set_id(request->id());
  op.set_table(request->table());
  *op.mutable_put() = request->item();
  return Single(context, std::move(op), response);
}

grpc::ServerUnaryReactor* WriteBatcherService::Delete(grpc::CallbackServerContext* context,
                                                      const v1::DeleteRequest* request,
                                                      v1::WriteResult* response) {
  v1::WriteOp op;
  op.set_id(request->id());
  op.set_table(request->table());
  *op.mutable_delete_key() = request->key();
  return Single(context, std::move(op), response);
}

grpc::ServerUnaryReactor* WriteBatcherService::Flush(grpc::CallbackServerContext* context,
                                                     const v1::FlushRequest* request,
                                                     v1::FlushResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  int table = -1;
  if (!request->table().empty()) {
    table = engine_->TableIndex(request->table());
    if (table < 0) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("FlushRequest.table: \"", request->table(),
                       "\" is not a configured table of this sidecar")));
      return reactor;
    }
  }
  unary_calls_.fetch_add(1);
  engine_->Flush(table, [this, reactor, response](uint64_t ops) {
    response->set_ops(ops);
    FinishUnary(reactor, &unary_calls_, grpc::Status::OK);
  });
  return reactor;
}

}  // namespace dynamo_batcher
