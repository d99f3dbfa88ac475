#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamobatcher/v1/batcher.grpc.pb.h"
#include "service/engine/engine.h"
#include "service/metrics/metrics.h"
#include "service/server/service_limits.h"

namespace dynamo_batcher {

// The WriteBatcher gRPC service on the callback (reactor) API: no thread is
// held by a slow stream. Requests arrive as raw bytes and are parsed here, so
// a message that does not parse ends its stream (or call) with
// INVALID_ARGUMENT naming the field, instead of looking like a half-close. Each op is validated and
// encoded on arrival (bad ops get REJECTED at once, the others go on), then handed to the Engine;
// results flow back on the same stream in any order.
//
// Backpressure: when the buffer budget is full, a stream stops reading (gRPC
// flow control pushes back on the client) and a unary call waits up to its
// deadline, then fails with RESOURCE_EXHAUSTED. Results waiting to be sent
// count against the stream's in-flight cap and the budget, so a client that
// does not read its results stops being read. Ops of a stream that ends
// before they were handed to the engine (waiting for budget) are dropped:
// never written, their reservation returned.
//
// Thread-safety: gRPC calls it from its own threads; BeginDrain from any.
using RawWriteBatcherService = dynamobatcher::v1::WriteBatcher::WithRawCallbackMethod_Write<
    dynamobatcher::v1::WriteBatcher::WithRawCallbackMethod_Put<
        dynamobatcher::v1::WriteBatcher::WithRawCallbackMethod_Delete<
            dynamobatcher::v1::WriteBatcher::WithRawCallbackMethod_Flush<
                dynamobatcher::v1::WriteBatcher::Service>>>>;

// Trailing metadata key on a Write stream ended for a message that does not
// parse: the 1-based index of that message on the stream (so a client can
// fail exactly its ops and re-send the rest).
inline constexpr char kBadMessageTrailer[] = "dynamo-batcher-bad-message";

class WriteBatcherService final : public RawWriteBatcherService {
 public:
  WriteBatcherService(Engine* engine, Metrics* metrics, ServiceLimits limits);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Write(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* request,
                                grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;

  // Drain semantics (docs/guarantees.md, G7), per open Write stream:
  //  - no message is read after BeginDrain except one whose read had already
  //    completed; a read still waiting for the client is abandoned: the
  //    message, if it arrives, is discarded unread (no op of it is buffered);
  //  - every op the server did read gets exactly one result (WRITTEN,
  //    COALESCED, REJECTED, or FAILED "ShuttingDown" after drain_timeout);
  //    the answered ops of a stream are always whole messages, a prefix of
  //    what the client sent;
  //  - then the stream finishes with UNAVAILABLE ("draining"): any op the
  //    client sent without a result was never read and may be resent to
  //    another instance. A stream the client had already half-closed
  //    finishes OK (all its ops were read and answered).
  // New streams and unary Put/Delete are refused with UNAVAILABLE.
  void BeginDrain();
  bool draining() const { return draining_.load(); }
  int active_streams() const { return active_streams_.load(); }
  // No Write stream open and no unary call (Put, Delete, Flush) unanswered:
  // once draining, the gRPC server can stop without its shutdown grace.
  bool idle() const { return active_streams_.load() == 0 && unary_calls_.load() == 0; }

  // Validates and encodes one op: a dynamobatcher::v1::WriteOp (unary
  // calls) or a dynamobatcher::internal::WriteOp (the Write stream's parse).
  // Returns true with `*table` and `*op` set, or false with `*rejected`
  // filled (and the rejection counted).
  template <typename WireOp>
  bool PrepareOp(const WireOp& wire, absl::Time now, int* table, Op* op,
                 dynamobatcher::v1::WriteResult* rejected);

  // Counts a message that did not parse (`rpc`: Write, Put, Delete, Flush).
  void CountInvalidMessage(const std::string& rpc);

  Engine* engine() { return engine_; }
  Metrics* metrics() { return metrics_; }
  const ServiceLimits& limits() const { return limits_; }
  std::atomic<int>& active_streams_counter() { return active_streams_; }

  // An open Write stream, told when the drain begins (so a stream waiting
  // for the client's next message can finish). Internal to the service.
  class DrainListener {
   public:
    virtual ~DrainListener() = default;
    virtual void OnDrain() = 0;
  };
  // Registers an open stream; false (not registered) when draining already.
  bool AddStream(const std::shared_ptr<DrainListener>& stream);
  void RemoveStream(const DrainListener* stream);

 private:
  // `reactor` is the call's DefaultReactor (which may be taken only once).
  grpc::ServerUnaryReactor* Single(grpc::CallbackServerContext* context,
                                   grpc::ServerUnaryReactor* reactor, dynamobatcher::v1::WriteOp op,
                                   grpc::ByteBuffer* response);
  // Admits a unary call under max_unary_calls; false: `reactor` was finished.
  bool AdmitUnary(grpc::ServerUnaryReactor* reactor);

  Engine* engine_;
  Metrics* metrics_;
  ServiceLimits limits_;
  SteadyClock clock_;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_streams_{0};
  std::atomic<int> unary_calls_{0};  // Put/Delete/Flush not yet finished
  prometheus::Family<prometheus::Counter>* invalid_messages_ = nullptr;
  absl::Mutex streams_mu_;  // orders AddStream against BeginDrain
  std::map<const DrainListener*, std::weak_ptr<DrainListener>> streams_
      ABSL_GUARDED_BY(streams_mu_);
};

// Fills a proto result from an engine result.
void ToProto(const OpResult& r, dynamobatcher::v1::WriteResult* out);

// Appends to `out` exactly the bytes protobuf writes for ToProto(r) as one
// `results` entry of a WriteResponse (tag, length, message), without
// building the message; returns how many. A stream's results are kept and
// written this way.
size_t AppendResultEntry(const OpResult& r, std::string* out);

}  // namespace dynamo_batcher
