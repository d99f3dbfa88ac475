#include "service/server/write_service.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dynamobatcher/internal/write_request.pb.h"
#include "prometheus/counter.h"
#include "service/codec/codec.h"
#include "service/common/log.h"
#include "service/server/wire_check.h"

namespace dynamo_batcher {
namespace v1 = ::dynamobatcher::v1;
namespace wire = ::dynamobatcher::internal;

void ToProto(const OpResult& r, v1::WriteResult* out) {
  out->set_id(r.op.id);
  switch (r.outcome) {
    case Outcome::kWritten:
      out->set_outcome(v1::WRITTEN);
      break;
    case Outcome::kCoalesced:
      out->set_outcome(v1::COALESCED);
      break;
    case Outcome::kFailed:
      out->set_outcome(v1::FAILED);
      break;
    case Outcome::kRejected:
      out->set_outcome(v1::REJECTED);
      break;
  }
  if (!r.error_code.empty()) out->set_error_code(r.error_code);
  if (!r.message.empty()) out->set_message(r.message);
  out->set_attempts(r.op.attempts);
  if (r.op.table != nullptr) out->set_table(*r.op.table);
}

namespace {

// WriteResponse's wire format, written directly: a stream's results are
// appended as ready-framed `results` entries (field 1 of WriteResponse) to
// one buffer, and a write takes a run of them as the serialized response.
// No WriteResult message is built, moved, sized or freed per result.
constexpr char kResultsTag = (1 << 3) | 2;  // WriteResponse.results, length-delimited

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* WriteVarint(uint64_t v, char* w) {
  while (v >= 0x80) {
    *w++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *w++ = static_cast<char>(v);
  return w;
}

void AppendVarint(uint64_t v, std::string* out) {
  char buf[10];
  out->append(buf, WriteVarint(v, buf) - buf);
}

size_t StringFieldSize(const std::string& s) {
  return s.empty() ? 0 : 1 + VarintSize(s.size()) + s.size();
}

char* WriteStringField(int field, const std::string& s, char* w) {
  if (s.empty()) return w;
  *w++ = static_cast<char>((field << 3) | 2);
  w = WriteVarint(s.size(), w);
  std::memcpy(w, s.data(), s.size());
  return w + s.size();
}

v1::Outcome ProtoOutcome(Outcome o) {
  switch (o) {
    case Outcome::kWritten:
      return v1::WRITTEN;
    case Outcome::kCoalesced:
      return v1::COALESCED;
    case Outcome::kFailed:
      return v1::FAILED;
    case Outcome::kRejected:
      return v1::REJECTED;
  }
  return v1::OUTCOME_UNSPECIFIED;
}

}  // namespace

// Fields in number order, proto3 defaults left out, as protobuf writes them.
size_t AppendResultEntry(const OpResult& r, std::string* out) {
  static const std::string kNoTable;
  const std::string& table = r.op.table != nullptr ? *r.op.table : kNoTable;
  const uint64_t outcome = static_cast<uint64_t>(ProtoOutcome(r.outcome));
  const size_t body =
      (r.op.id != 0 ? 1 + VarintSize(r.op.id) : 0) + (outcome != 0 ? 1 + VarintSize(outcome) : 0) +
      StringFieldSize(r.error_code) + StringFieldSize(r.message) +
      (r.op.attempts != 0 ? 1 + VarintSize(r.op.attempts) : 0) + StringFieldSize(table);
  const size_t total = 1 + VarintSize(body) + body;
  const size_t before = out->size();
  out->resize(before + total);
  char* w = &(*out)[before];
  *w++ = kResultsTag;
  w = WriteVarint(body, w);
  if (r.op.id != 0) {
    *w++ = static_cast<char>((1 << 3) | 0);
    w = WriteVarint(r.op.id, w);
  }
  if (outcome != 0) {
    *w++ = static_cast<char>((2 << 3) | 0);
    w = WriteVarint(outcome, w);
  }
  w = WriteStringField(3, r.error_code, w);
  w = WriteStringField(4, r.message, w);
  if (r.op.attempts != 0) {
    *w++ = static_cast<char>((5 << 3) | 0);
    w = WriteVarint(r.op.attempts, w);
  }
  WriteStringField(6, table, w);
  return total;
}

namespace {

// The same for a result already built as a message (rejections).
size_t AppendResultEntry(const v1::WriteResult& m, std::string* out) {
  const size_t before = out->size();
  out->push_back(kResultsTag);
  AppendVarint(m.ByteSizeLong(), out);
  m.AppendToString(out);
  return out->size() - before;
}

template <typename WireOp>
void Reject(v1::WriteResult* out, const WireOp& op, const std::string& code,
            const std::string& message) {
  out->Clear();
  out->set_id(op.id());
  out->set_outcome(v1::REJECTED);
  out->set_error_code(code);
  out->set_message(message);
  // DynamoDB table names are at most 255 bytes; anything else is cut.
  out->set_table(EscapeForMessage(op.table(), 255));
}

// One Write stream. Owned by shared_ptr: gRPC holds a reference until OnDone,
// and every op it submitted holds one (as its ResultSink) until answered, so
// late results never touch freed memory. Ops still waiting for budget when
// the stream ends are dropped (never submitted), so they hold no reference.
class WriteReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                           public ResultSink,
                           public WriteBatcherService::DrainListener,
                           public std::enable_shared_from_this<WriteReactor> {
 public:
  WriteReactor(WriteBatcherService* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context) {}

  void Begin() {
    self_ = shared_from_this();
    service_->metrics()->active_streams().Increment();
    {
      absl::MutexLock lock(&mu_);
      read_pending_ = true;
    }
    StartRead(&raw_request_);
  }

  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
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
    ++messages_read_;
    std::string why;
    // Parsed as the private view, explained (if it fails) as the API's type.
    bool parsed = ParseRequest(raw_request_, &request_, v1::WriteRequest::descriptor(), &why);
    if (parsed && ViewNeedsApiParse(request_)) {
      // An op with both put and delete_key: v1's oneof keeps the later one,
      // which only a v1 parse knows. Rare (no encoder writes both), so the
      // API's own type, parsed afresh, is good enough.
      DoneWith(&request_);
      v1::WriteRequest api;
      parsed = ParseRequest(raw_request_, &api, &why);
      raw_request_.Clear();
      if (parsed) {
        Process(&api);
        return;
      }
    }
    raw_request_.Clear();
    if (!parsed) {
      service_->CountInvalidMessage("Write");
      {
        absl::MutexLock lock(&mu_);
        invalid_ = absl::StrCat("WriteRequest message ", messages_read_, " of this stream: ", why,
                                "; earlier messages were answered, later ones not read");
      }
      StopReading();
      return;
    }
    Process(&request_);
  }

  // The drain began: a stream idle in a read, with every op answered, can
  // finish now instead of waiting for the client's next message.
  void OnDrain() override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  void OnWriteDone(bool ok) override {
    bool start = false;
    bool finish = false;
    bool resume = false;
    std::vector<std::pair<int, uint64_t>> charges;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      charges.swap(out_charges_);
      unsent_ -= out_ops_;
      out_ops_ = 0;
      if (!ok) {
        broken_ = true;
        AbandonWaitingLocked();
      }
      start = TakeWriteLocked();
      resume = MaybeResumeLocked();
      if (!start && !resume) finish = ShouldFinishLocked();
    }
    ReleaseCharges(charges);
    if (start) StartWrite(&out_);
    if (resume) StartRead(&raw_request_);
    if (finish) DoFinish();
  }

  void OnCancel() override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      broken_ = true;
      AbandonWaitingLocked();
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&mu_);
      broken_ = true;
      AbandonWaitingLocked();
    }
    service_->RemoveStream(this);
    service_->metrics()->active_streams().Decrement();
    service_->active_streams_counter().fetch_sub(1);
    std::shared_ptr<WriteReactor> keep = std::move(self_);
    // `keep` may be the last reference; the object dies with it.
  }

  void Deliver(OpResult result) override {
    std::vector<OpResult> one;
    one.push_back(std::move(result));
    DeliverAll(&one);
  }

  void DeliverAll(std::vector<OpResult>* results) override {
    bool start = false;
    bool finish = false;
    Engine* engine = service_->engine();
    {
      absl::MutexLock lock(&mu_);
      outstanding_ -= static_cast<int64_t>(results->size());
      if (finished_) {
        results->clear();
        return;
      }
      const std::string* last_name = nullptr;
      int table = -1;
      // A result waiting to be sent holds memory: it counts against the
      // budget until written, so a client that does not read is bounded.
      // Charged once per run of one table's results (the budget counters
      // are shared with every thread; one update per result bounced them).
      uint64_t charge = 0;
      for (OpResult& result : *results) {
        if (result.op.table != last_name) {
          if (table >= 0 && charge > 0) engine->Charge(table, charge);
          charge = 0;
          last_name = result.op.table;
          table = last_name != nullptr ? engine->TableIndex(*last_name) : -1;
        }
        Pending p;
        p.size = AppendResultEntry(result, &pending_wire_);
        p.table = table;
        p.bytes = p.size + sizeof(Pending);
        if (table >= 0) charge += p.bytes;
        pending_.push_back(p);
      }
      if (table >= 0 && charge > 0) engine->Charge(table, charge);
      start = TakeWriteLocked();
      if (!start) finish = ShouldFinishLocked();
    }
    results->clear();
    if (start) StartWrite(&out_);
    if (finish) DoFinish();
  }

 private:
  // One result waiting to be written: its entry's bytes in pending_wire_.
  struct Pending {
    size_t size = 0;  // bytes of its `results` entry in pending_wire_
    int table = -1;
    uint64_t bytes = 0;  // charged to `table`'s budget when table >= 0
  };

  // What the reused view may hold after Clear(): a cleared protobuf keeps
  // the union of every shape parsed into it (each op slot its largest items,
  // each attribute slot its longest name), so the bound is on the largest
  // shape since the view was last replaced, not on the last message.
  struct ViewShape {
    int ops = 0;
    int attributes = 0;      // of one item
    size_t name_bytes = 0;   // an attribute name's capacity
    size_t table_bytes = 0;  // a table name's capacity
  };
  static constexpr size_t kViewKeepBytes = 64 << 10;

  // Bytes the view can hold with this shape: per op its table name and two
  // items (put, delete_key), per attribute its entry, cleared value and name.
  static size_t ViewBytes(const ViewShape& shape) {
    const size_t attribute = sizeof(void*) + sizeof(wire::Attribute) + sizeof(v1::AttributeValue) +
                             sizeof(std::string) + shape.name_bytes;
    const size_t item = sizeof(wire::Item) + static_cast<size_t>(shape.attributes) * attribute;
    const size_t op =
        sizeof(void*) + sizeof(wire::WriteOp) + sizeof(std::string) + shape.table_bytes + 2 * item;
    return static_cast<size_t>(shape.ops) * op;
  }

  // Done with the reused view: cleared for the next message (what it holds
  // is kept), or replaced once what it can hold passes kViewKeepBytes.
  void DoneWith(wire::WriteRequest* request) {
    ViewShape& shape = view_shape_;
    shape.ops = std::max(shape.ops, request->ops_size());
    for (const wire::WriteOp& op : request->ops()) {
      shape.table_bytes = std::max(shape.table_bytes, op.table().capacity());
      for (const wire::Item* item : {&op.put(), &op.delete_key()}) {
        shape.attributes = std::max(shape.attributes, item->attributes_size());
        for (const wire::Attribute& a : item->attributes()) {
          shape.name_bytes = std::max(shape.name_bytes, a.key().capacity());
        }
      }
    }
    if (ViewBytes(shape) > kViewKeepBytes) {
      *request = wire::WriteRequest();
      shape = ViewShape();
    } else {
      request->Clear();
    }
  }
  void DoneWith(v1::WriteRequest* request) { request->Clear(); }

  // Validates, encodes and submits the ops of one message (`request`: the
  // reused view, or a v1 parse of a message the view cannot answer for).
  template <typename Request>
  void Process(Request* request) {
    Engine* engine = service_->engine();
    const absl::Time now = SteadyClock().Now();
    const int n = request->ops_size();
    std::vector<std::vector<Op>> groups(engine->table_count());
    std::vector<uint64_t> group_bytes(engine->table_count(), 0);
    std::vector<v1::WriteResult> rejected;
    if (n > service_->limits().max_ops_per_message) {
      const std::string msg = absl::StrCat(
          "WriteRequest.ops: ", n, " ops in one message, more than server.max_ops_per_message (",
          service_->limits().max_ops_per_message, "); split it");
      for (const auto& op : request->ops()) {
        rejected.emplace_back();
        Reject(&rejected.back(), op, "TooManyOps", msg);
        service_->metrics()
            ->Rejected(engine->TableIndex(op.table()) >= 0 ? op.table() : "", "TooManyOps")
            .Increment();
      }
    } else {
      const std::shared_ptr<WriteReactor> self = shared_from_this();
      for (int i = 0; i < n; ++i) {
        int table = -1;
        Op op;
        v1::WriteResult r;
        if (service_->PrepareOp(request->ops(i), now, &table, &op, &r)) {
          op.sink = self;
          group_bytes[table] += op.MemoryBytes();
          // Room for the rest of the message at once (exact when it names
          // one table): no regrowth moving the ops already in.
          if (groups[table].empty()) groups[table].reserve(static_cast<size_t>(n - i));
          groups[table].push_back(std::move(op));
        } else {
          rejected.push_back(std::move(r));
        }
      }
    }
    DoneWith(request);
    // Each table's ops are reserved and submitted on their own: one table's
    // full budget never holds another table's ops. Per table, ops keep
    // their arrival order (the next message is read only once all are in).
    std::vector<std::pair<int, std::vector<Op>>> submit_now;
    std::vector<int> wait;
    uint64_t seq;
    {
      absl::MutexLock lock(&mu_);
      outstanding_ += n;
      unsent_ += n;
      outstanding_ -= static_cast<int64_t>(rejected.size());
      for (const auto& r : rejected) {
        Pending p;
        p.size = AppendResultEntry(r, &pending_wire_);
        pending_.push_back(p);
      }
      waiting_.assign(engine->table_count(), WaitingGroup{});
      seq = ++message_seq_;
      for (size_t t = 0; t < groups.size(); ++t) {
        if (groups[t].empty()) continue;
        if (broken_) {  // ended while this message was parsed: never submitted
          outstanding_ -= static_cast<int64_t>(groups[t].size());
          unsent_ -= static_cast<int64_t>(groups[t].size());
          groups[t].clear();
          continue;
        }
        if (engine->TryReserve(static_cast<int>(t), group_bytes[t])) {
          submit_now.emplace_back(static_cast<int>(t), std::move(groups[t]));
        } else {
          waiting_[t].ops = std::move(groups[t]);
          waiting_[t].bytes = group_bytes[t];
          waiting_[t].active = true;
          ++waiting_groups_;
          wait.push_back(static_cast<int>(t));
        }
      }
    }
    rejected.clear();
    for (auto& [t, ops] : submit_now) engine->Submit(t, std::move(ops));
    if (wait.empty()) {
      AfterSubmit();
      return;
    }
    for (int t : wait) {
      std::weak_ptr<WriteReactor> weak = weak_from_this();
      auto ticket =
          engine->ReserveAsync(t, group_bytes[t], absl::InfiniteFuture(), [weak, t](bool ok) {
            if (auto self = weak.lock()) self->OnReserved(t, ok);
          });
      absl::MutexLock lock(&mu_);
      // Once every group was reserved, the next message may already be in
      // waiting_: its groups are not this ticket's.
      if (message_seq_ == seq) waiting_[t].ticket = ticket;
      if (abandoned_) ticket->Cancel();
    }
  }

  struct WaitingGroup {
    std::vector<Op> ops;
    uint64_t bytes = 0;
    bool active = false;
    std::shared_ptr<Engine::ReserveTicket> ticket;
  };

  // The budget for table `t` was reserved (ok) for this stream's waiting ops.
  void OnReserved(int t, bool ok) {
    std::vector<Op> ops;
    bool release = false;
    bool all_in = false;
    {
      absl::MutexLock lock(&mu_);
      WaitingGroup& g = waiting_[t];
      if (!g.active) {
        // The stream ended meanwhile: the ops were dropped unsubmitted.
        release = ok;
      } else {
        g.active = false;
        ops = std::move(g.ops);
        g.ops.clear();
        all_in = --waiting_groups_ == 0;
        if (!ok) {  // no deadline is set: only if the engine gave up
          outstanding_ -= static_cast<int64_t>(ops.size());
          unsent_ -= static_cast<int64_t>(ops.size());
          ops.clear();
        }
      }
    }
    if (release) {
      uint64_t bytes;
      {
        absl::MutexLock lock(&mu_);
        bytes = waiting_[t].bytes;
      }
      service_->engine()->Release(t, bytes);
      return;
    }
    if (!ops.empty()) service_->engine()->Submit(t, std::move(ops));
    if (all_in) AfterSubmit();
  }

  // The stream ended: ops still waiting for budget are never submitted.
  void AbandonWaitingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (abandoned_) return;
    abandoned_ = true;
    for (WaitingGroup& g : waiting_) {
      if (!g.active) continue;
      g.active = false;
      if (g.ticket) g.ticket->Cancel();
      outstanding_ -= static_cast<int64_t>(g.ops.size());
      unsent_ -= static_cast<int64_t>(g.ops.size());
      g.ops.clear();  // drops their references to this stream
    }
    waiting_groups_ = 0;
  }

  void AfterSubmit() {
    bool start = false;
    bool finish = false;
    bool read = false;
    {
      absl::MutexLock lock(&mu_);
      start = TakeWriteLocked();
      if (service_->draining() || broken_) {
        read_done_ = true;
      } else if (unsent_ >= service_->limits().max_inflight_ops_per_stream) {
        read_paused_ = true;  // OnWriteDone resumes it
      } else {
        read = true;
        read_pending_ = true;
      }
      if (!start) finish = ShouldFinishLocked();
    }
    if (start) StartWrite(&out_);
    if (read) StartRead(&raw_request_);
    if (finish) DoFinish();
  }

  // Resume a stream paused at its in-flight cap once half has been sent.
  bool MaybeResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!read_paused_ || unsent_ > service_->limits().max_inflight_ops_per_stream / 2) {
      return false;
    }
    read_paused_ = false;
    if (service_->draining() || broken_) {
      read_done_ = true;
      return false;
    }
    read_pending_ = true;
    return true;
  }

  void StopReading() {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      read_done_ = true;
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  // Moves pending results (at most max_response_bytes of them) into out_ if
  // no write is in flight.
  bool TakeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || broken_ || pending_.empty()) return false;
    size_t bytes = 0;
    int64_t n = 0;
    const size_t max = service_->limits().max_response_bytes;
    while (!pending_.empty()) {
      const Pending& p = pending_.front();
      if (n > 0 && bytes + p.size > max) break;
      bytes += p.size;
      if (p.table >= 0) {  // released when written, once per run of one table
        if (!out_charges_.empty() && out_charges_.back().first == p.table) {
          out_charges_.back().second += p.bytes;
        } else {
          out_charges_.emplace_back(p.table, p.bytes);
        }
      }
      pending_.pop_front();
      ++n;
    }
    out_ops_ = n;
    // The entries taken are, back to back, a serialized WriteResponse.
    grpc::Slice slice(pending_wire_.data() + pending_head_, bytes);
    out_ = grpc::ByteBuffer(&slice, 1);
    pending_head_ += bytes;
    ConsumePendingWireLocked();
    writing_ = true;
    return true;
  }

  // Drops the bytes before pending_head_ (already taken by a write): at
  // once when nothing is left, else once they are half the buffer. A large
  // buffer is given back when it empties (a backlog does not pin memory).
  void ConsumePendingWireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pending_.empty()) {
      pending_head_ = 0;
      if (pending_wire_.capacity() > kKeepWireBytes) {
        std::string().swap(pending_wire_);
      } else {
        pending_wire_.clear();
      }
    } else if (pending_head_ > pending_wire_.size() / 2) {
      pending_wire_.erase(0, pending_head_);
      pending_head_ = 0;
    }
  }

  bool ShouldFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return false;
    // While draining, a read still waiting for the client will not be used.
    const bool reads_over = read_done_ || (read_pending_ && service_->draining());
    if (broken_ || (reads_over && outstanding_ == 0 && pending_.empty() && waiting_groups_ == 0)) {
      finished_ = true;
      return true;
    }
    return false;
  }

  void ReleaseCharges(const std::vector<std::pair<int, uint64_t>>& charges) {
    Engine* engine = service_->engine();
    for (const auto& [t, bytes] : charges) engine->Release(t, bytes);
  }

  void DoFinish() {
    bool draining = service_->draining();
    bool broken;
    bool half_closed;
    std::string invalid;
    std::vector<std::pair<int, uint64_t>> charges;
    {
      absl::MutexLock lock(&mu_);
      broken = broken_;
      half_closed = half_closed_;
      invalid = invalid_;
      // Results that will never be sent give their budget back.
      for (const Pending& p : pending_) {
        if (p.table >= 0) charges.emplace_back(p.table, p.bytes);
      }
      pending_.clear();
      ConsumePendingWireLocked();
    }
    ReleaseCharges(charges);
    if (broken) {
      Finish(grpc::Status::CANCELLED);
    } else if (!invalid.empty()) {
      context_->AddTrailingMetadata(kBadMessageTrailer, absl::StrCat(messages_read_));
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, invalid));
    } else if (draining && !half_closed) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "dynamo-batcher is draining (shutting down); every op read from this "
                          "stream has its result; send the rest to another instance"));
    } else {
      Finish(grpc::Status::OK);
    }
  }

  WriteBatcherService* service_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<WriteReactor> self_;
  grpc::ByteBuffer raw_request_;
  // The private view of WriteRequest (internal/write_request.proto), reused
  // from message to message. (An arena per message parsed faster but let a
  // client that never reads grow RSS ~8 MiB more under load: its blocks.)
  wire::WriteRequest request_;
  ViewShape view_shape_;        // the largest shape request_ held since replaced
  uint64_t messages_read_ = 0;  // by the read callbacks only (one at a time)

  absl::Mutex mu_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  // The pending results' `results` entries, back to back, from pending_head_.
  std::string pending_wire_ ABSL_GUARDED_BY(mu_);
  size_t pending_head_ ABSL_GUARDED_BY(mu_) = 0;
  static constexpr size_t kKeepWireBytes = 64 << 10;
  // Filled under mu_ by TakeWriteLocked, then owned by the write in flight
  // (StartWrite takes its address outside the lock) until OnWriteDone.
  grpc::ByteBuffer out_;
  // Budget held by out_.
  std::vector<std::pair<int, uint64_t>> out_charges_ ABSL_GUARDED_BY(mu_);
  int64_t out_ops_ ABSL_GUARDED_BY(mu_) = 0;  // results in out_
  // Per table: ops waiting for budget.
  std::vector<WaitingGroup> waiting_ ABSL_GUARDED_BY(mu_);
  int waiting_groups_ ABSL_GUARDED_BY(mu_) = 0;
  // Messages processed; tells waiting_'s owner.
  uint64_t message_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // The stream ended; waiting ops were dropped.
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // ops read, result not yet queued
  // Ops read, result not yet written to the client.
  int64_t unsent_ ABSL_GUARDED_BY(mu_) = 0;
  std::string invalid_ ABSL_GUARDED_BY(mu_);  // why a message did not parse
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;  // a StartRead awaits OnReadDone
  bool half_closed_ ABSL_GUARDED_BY(mu_) = false;   // the client finished writing
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;   // at max_inflight_ops_per_stream
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class RefusingReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusingReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// Finishes a unary call and counts it out of WriteBatcherService::idle().
void FinishUnary(grpc::ServerUnaryReactor* reactor, std::atomic<int>* calls, grpc::Status status) {
  reactor->Finish(std::move(status));
  calls->fetch_sub(1);
}

// Answers one unary Put/Delete once its result arrives.
class UnarySink final : public ResultSink {
 public:
  UnarySink(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* response, std::atomic<int>* calls)
      : reactor_(reactor), response_(response), calls_(calls) {}
  void Deliver(OpResult result) override {
    v1::WriteResult out;
    ToProto(result, &out);
    SerializeTo(out, response_);
    FinishUnary(reactor_, calls_, grpc::Status::OK);
  }

 private:
  grpc::ServerUnaryReactor* reactor_;
  grpc::ByteBuffer* response_;
  std::atomic<int>* calls_;
};

}  // namespace

WriteBatcherService::WriteBatcherService(Engine* engine, Metrics* metrics, ServiceLimits limits)
    : engine_(engine), metrics_(metrics), limits_(limits) {
  invalid_messages_ = &prometheus::BuildCounter()
                           .Name("dynamo_batcher_invalid_messages_total")
                           .Help(
                               "gRPC request messages that did not parse (invalid UTF-8, "
                               "nesting too deep, malformed); the stream or call ends "
                               "with INVALID_ARGUMENT")
                           .Register(*metrics_->registry());
  for (const char* rpc : {"Write", "Put", "Delete", "Flush"}) {
    invalid_messages_->Add({{"rpc", rpc}});
  }
}

void WriteBatcherService::CountInvalidMessage(const std::string& rpc) {
  invalid_messages_->Add({{"rpc", rpc}}).Increment();
}

void WriteBatcherService::BeginDrain() {
  std::vector<std::shared_ptr<DrainListener>> open;
  {
    absl::MutexLock lock(&streams_mu_);
    draining_.store(true);
    for (auto& [key, weak] : streams_) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) s->OnDrain();
}

bool WriteBatcherService::AddStream(const std::shared_ptr<DrainListener>& stream) {
  absl::MutexLock lock(&streams_mu_);
  if (draining_.load()) return false;
  streams_[stream.get()] = stream;
  return true;
}

void WriteBatcherService::RemoveStream(const DrainListener* stream) {
  absl::MutexLock lock(&streams_mu_);
  streams_.erase(stream);
}

template <typename WireOp>
bool WriteBatcherService::PrepareOp(const WireOp& wire, absl::Time now, int* table, Op* op,
                                    v1::WriteResult* rejected) {
  const int t = engine_->TableIndex(wire.table());
  if (t < 0) {
    Reject(rejected, wire, "UnknownTable",
           absl::StrCat("op ", wire.id(), ": table: \"", EscapeForMessage(wire.table()),
                        "\" is not a configured table of this sidecar"));
    metrics_->Rejected("", "UnknownTable").Increment();
    return false;
  }
  Metrics::Table& m = metrics_->table(t);
  (wire.has_delete_key() ? m.received_delete : m.received_put)->Increment();
  EncodeResult encoded = EncodeWriteOp(wire, engine_->schema(t));
  if (!encoded.ok()) {
    Reject(rejected, wire, encoded.rejection->code, encoded.rejection->message);
    metrics_->Rejected(wire.table(), encoded.rejection->code).Increment();
    return false;
  }
  op->write = std::move(encoded.write);
  op->id = wire.id();
  op->table = engine_->table_name(t);
  op->arrival = now;
  *table = t;
  return true;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* WriteBatcherService::Write(
    grpc::CallbackServerContext* context) {
  if (draining_.load()) {
    return new RefusingReactor(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "dynamo-batcher is draining (shutting down)"));
  }
  if (active_streams_.fetch_add(1) >= limits_.max_streams) {
    active_streams_.fetch_sub(1);
    return new RefusingReactor(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("too many open Write streams (server.max_streams = ", limits_.max_streams,
                     "); reuse one stream per client")));
  }
  auto reactor = std::make_shared<WriteReactor>(this, context);
  if (!AddStream(reactor)) {  // the drain began since the check above
    active_streams_.fetch_sub(1);
    return new RefusingReactor(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "dynamo-batcher is draining (shutting down)"));
  }
  reactor->Begin();
  // A BeginDrain between AddStream and Begin found no read to abandon.
  if (draining_.load()) reactor->OnDrain();
  return reactor.get();
}

bool WriteBatcherService::AdmitUnary(grpc::ServerUnaryReactor* reactor) {
  if (draining_.load()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "dynamo-batcher is draining (shutting down)"));
    return false;
  }
  if (unary_calls_.fetch_add(1) >= limits_.max_unary_calls) {
    unary_calls_.fetch_sub(1);
    reactor->Finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("too many concurrent unary calls (server.max_unary_calls = ",
                                  limits_.max_unary_calls, "); use a Write stream for many ops")));
    return false;
  }
  return true;
}

grpc::ServerUnaryReactor* WriteBatcherService::Single(grpc::CallbackServerContext* context,
                                                      grpc::ServerUnaryReactor* reactor,
                                                      v1::WriteOp wire,
                                                      grpc::ByteBuffer* response) {
  int table = -1;
  Op op;
  v1::WriteResult rejected;
  if (!PrepareOp(wire, clock_.Now(), &table, &op, &rejected)) {
    SerializeTo(rejected, response);
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
                                                   const grpc::ByteBuffer* request,
                                                   grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!AdmitUnary(reactor)) return reactor;
  v1::PutRequest put;
  std::string why;
  if (!ParseRequest(*request, &put, &why)) {
    CountInvalidMessage("Put");
    FinishUnary(reactor, &unary_calls_, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
    return reactor;
  }
  v1::WriteOp op;
  op.set_id(put.id());
  op.set_table(put.table());
  *op.mutable_put() = std::move(*put.mutable_item());
  return Single(context, reactor, std::move(op), response);
}

grpc::ServerUnaryReactor* WriteBatcherService::Delete(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!AdmitUnary(reactor)) return reactor;
  v1::DeleteRequest del;
  std::string why;
  if (!ParseRequest(*request, &del, &why)) {
    CountInvalidMessage("Delete");
    FinishUnary(reactor, &unary_calls_, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
    return reactor;
  }
  v1::WriteOp op;
  op.set_id(del.id());
  op.set_table(del.table());
  *op.mutable_delete_key() = std::move(*del.mutable_key());
  return Single(context, reactor, std::move(op), response);
}

grpc::ServerUnaryReactor* WriteBatcherService::Flush(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (unary_calls_.fetch_add(1) >= limits_.max_unary_calls) {
    unary_calls_.fetch_sub(1);
    reactor->Finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("too many concurrent unary calls (server.max_unary_calls = ",
                                  limits_.max_unary_calls, ")")));
    return reactor;
  }
  v1::FlushRequest flush;
  std::string why;
  if (!ParseRequest(*request, &flush, &why)) {
    CountInvalidMessage("Flush");
    FinishUnary(reactor, &unary_calls_, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
    return reactor;
  }
  int table = -1;
  if (!flush.table().empty()) {
    table = engine_->TableIndex(flush.table());
    if (table < 0) {
      FinishUnary(
          reactor, &unary_calls_,
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("FlushRequest.table: \"", EscapeForMessage(flush.table()),
                                    "\" is not a configured table of this sidecar")));
      return reactor;
    }
  }
  engine_->Flush(table, [this, reactor, response](uint64_t ops) {
    v1::FlushResponse out;
    out.set_ops(ops);
    SerializeTo(out, response);
    FinishUnary(reactor, &unary_calls_, grpc::Status::OK);
  });
  return reactor;
}

template bool WriteBatcherService::PrepareOp(const v1::WriteOp&, absl::Time, int*, Op*,
                                             v1::WriteResult*);
template bool WriteBatcherService::PrepareOp(const wire::WriteOp&, absl::Time, int*, Op*,
                                             v1::WriteResult*);

}  // namespace dynamo_batcher
