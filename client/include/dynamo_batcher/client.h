#pragma once

// C++ client for the dynamo-batcher sidecar.
//
// Purpose: stream single DynamoDB puts and deletes to the sidecar as cheaply
// as possible. The client packs many ops into each `WriteRequest` (up to
// `max_ops_per_message` ops or `max_message_bytes`, waiting at most `linger`
// for a message to fill), sends them on long-lived bidirectional `Write`
// streams, and matches each `WriteResult` back to its op by a client-assigned
// id. Every op resolves exactly once:
//   - with the sidecar's outcome (WRITTEN, COALESCED, FAILED, REJECTED), or
//   - with a non-OK `WriteOutcome::status` when the client gave up:
//     RESOURCE_EXHAUSTED (in-flight budget full in kFail mode),
//     DEADLINE_EXCEEDED (no result within `op_deadline`),
//     UNAVAILABLE (the sidecar could not be reached until `op_deadline`),
//     CANCELLED (the client was destroyed or closed first).
// When a stream breaks, ops without a result are re-sent on a new stream in
// their original order (writes are idempotent) after `reconnect_backoff`.
//
// Ordering: ops of one table always go through the same stream, in call
// order, so "last write wins per key" follows the order of Put/Delete calls
// (for calls made from one thread, or otherwise ordered by the caller).
// Several `streams` only help when writing to several tables.
//
// Thread-safety: all methods are thread-safe. Callbacks run on the client's
// internal threads; they must be quick and must not call a blocking `Put` /
// `*Sync` / `Flush` / `Close` of the same client.
//
// Usage:
//   dynamo_batcher::ClientOptions options;
//   options.target = "127.0.0.1:50051";
//   auto client = dynamo_batcher::Client::Create(options);
//   if (!client.ok()) return client.status();
//   std::future<WriteOutcome> f =
//       (*client)->Put("events", Item().S("pk", "user#1").N("n", 3));
//   (*client)->Delete("events", Item().S("pk", "user#0"),
//                     [](WriteOutcome o) { if (!o.ok()) LOG(o.DebugString()); });
//   absl::Status s = (*client)->Close(absl::Seconds(10));  // flushes first
//   WriteOutcome o = f.get();  // o.ok(): WRITTEN or COALESCED

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dynamo_batcher/item.h"
#include "dynamobatcher/v1/batcher.pb.h"

namespace grpc {
class ChannelCredentials;
class Channel;
}  // namespace grpc

namespace dynamo_batcher {

struct ClientOptions {
  // gRPC target: "host:port", "dns:///name:port", "unix:///path/to.sock".
  std::string target = "127.0.0.1:50051";
  // Parallel Write streams. Ops are spread over them by table name.
  int streams = 1;
  // Packing limits for one WriteRequest. Measured with `batchctl bench
  // --client` against an ack-only fake sidecar on loopback (2 shared cores,
  // 130-byte items): 1 op/message 85k ops/s, 16: 180k, 64: 320k, 256: 365k,
  // 1024: 420k. 256 gets most of the gain with messages of ~35 KB.
  size_t max_ops_per_message = 256;
  size_t max_message_bytes = 1 << 20;
  // How long the first op of a message may wait for others to join it.
  absl::Duration linger = absl::Milliseconds(1);
  // Ops accepted but not yet resolved, over all streams.
  size_t max_inflight_ops = 100000;
  enum class WhenFull {
    kBlock,  // Put blocks until there is room (at most op_deadline)
    kFail,   // Put resolves at once with RESOURCE_EXHAUSTED
  };
  WhenFull when_full = WhenFull::kBlock;
  // An op without a result this long after Put resolves with
  // DEADLINE_EXCEEDED (or UNAVAILABLE when the sidecar was unreachable).
  absl::Duration op_deadline = absl::Seconds(60);
  // Wait before reconnecting a broken stream: capped exponential backoff
  // with full jitter, U(0, min(max_reconnect_backoff, reconnect_backoff *
  // 2^(n-1))) after n consecutive streams without a result; n is reset once
  // a stream delivers results.
  absl::Duration reconnect_backoff = absl::Milliseconds(100);
  absl::Duration max_reconnect_backoff = absl::Seconds(2);
  // nullptr: insecure (plaintext), the usual choice for a sidecar on loopback.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

struct WriteOutcome {
  // The sidecar's verdict; OUTCOME_UNSPECIFIED when `status` is not OK.
  dynamobatcher::v1::Outcome outcome = dynamobatcher::v1::OUTCOME_UNSPECIFIED;
  std::string error_code;
  std::string message;
  uint32_t attempts = 0;
  // Non-OK only when the client itself gave up on the op (see file comment).
  absl::Status status;

  // WRITTEN or COALESCED: the key holds this write or a newer one.
  bool ok() const {
    return status.ok() &&
           (outcome == dynamobatcher::v1::WRITTEN || outcome == dynamobatcher::v1::COALESCED);
  }
  std::string DebugString() const;
};

class Client {
 public:
  using Callback = std::function<void(WriteOutcome)>;

  struct Stats {
    uint64_t ops_submitted = 0;  // Put/Delete calls
    uint64_t ops_resolved = 0;   // outcomes delivered (all kinds)
    uint64_t written = 0;
    uint64_t coalesced = 0;
    uint64_t failed = 0;
    uint64_t rejected = 0;
    uint64_t client_errors = 0;  // resolved with a non-OK status
    uint64_t messages_sent = 0;  // WriteRequests
    uint64_t ops_sent = 0;       // ops in WriteRequests, re-sends included
    uint64_t ops_resent = 0;     // ops sent again after a stream broke
    uint64_t reconnects = 0;     // streams opened after the first per slot
    uint64_t inflight = 0;       // accepted, not yet resolved
  };

  // Validates options and starts the stream threads. Does not wait for the
  // sidecar to be reachable (ops wait for it up to op_deadline).
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);

  // Resolves every unresolved op with CANCELLED, without flushing. Call
  // Close() first for a graceful shutdown.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::future<WriteOutcome> Put(std::string table, Item item);
  std::future<WriteOutcome> Delete(std::string table, Item key);
  void Put(std::string table, Item item, Callback callback);
  void Delete(std::string table, Item key, Callback callback);

  // Wait for the outcome. Non-OK only when the client gave up (the
  // WriteOutcome's status); FAILED/REJECTED are returned as values.
  absl::StatusOr<WriteOutcome> PutSync(std::string table, Item item);
  absl::StatusOr<WriteOutcome> DeleteSync(std::string table, Item key);

  // Sends what the client holds now without lingering, asks the sidecar to
  // flush (`table` or, when empty, all tables) and waits until every op
  // submitted before the call (for that table) is resolved.
  // DEADLINE_EXCEEDED after `timeout`; the sidecar's status if its Flush fails.
  absl::Status Flush(std::string table = "", absl::Duration timeout = absl::Seconds(30));

  // Refuses new ops (they resolve with FAILED_PRECONDITION), flushes for up to
  // `timeout`, then shuts the streams down; ops still unresolved then get
  // CANCELLED. Returns the flush status. Idempotent.
  absl::Status Close(absl::Duration timeout = absl::Seconds(30));

  Stats stats() const;

  // The channel used by the streams (e.g. for health checks).
  std::shared_ptr<grpc::Channel> channel() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamo_batcher
