#pragma once

// An in-process stand-in for the sidecar's WriteBatcher service, for client
// and batchctl tests. It answers every op at once (WRITTEN by default;
// table "reject" -> REJECTED "UnknownTable", table "fail" -> FAILED, an item
// with attribute "coalesce" -> COALESCED), or withholds answers until
// Release() when built with `withhold = true`. It counts messages, ops and
// Flush calls, and records the op ids in arrival order.
//
// Thread-safety: all methods are thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dynamobatcher/v1/batcher.grpc.pb.h"

namespace dynamo_batcher::testing {

class FakeWriteBatcher final : public dynamobatcher::v1::WriteBatcher::Service {
 public:
  explicit FakeWriteBatcher(bool withhold = false) : withhold_(withhold) {}

  grpc::Status Write(grpc::ServerContext* context,
                     grpc::ServerReaderWriter<dynamobatcher::v1::WriteResponse,
                                              dynamobatcher::v1::WriteRequest>* stream) override;
  grpc::Status Flush(grpc::ServerContext* context, const dynamobatcher::v1::FlushRequest* request,
                     dynamobatcher::v1::FlushResponse* response) override;

  // Lets withheld results (and all later ones) flow.
  void Release();
  // Waits until `n` ops have arrived; false on timeout.
  bool WaitForOps(uint64_t n, absl::Duration timeout);

  uint64_t messages() const;
  uint64_t ops() const;
  uint64_t max_ops_in_a_message() const;
  uint64_t flushes() const;
  std::vector<uint64_t> ids() const;
  std::vector<dynamobatcher::v1::WriteOp> received_ops() const;

  static dynamobatcher::v1::WriteResult Answer(const dynamobatcher::v1::WriteOp& op);

 private:
  mutable absl::Mutex mu_;
  std::atomic<bool> withhold_;
  uint64_t messages_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t max_ops_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flushes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<dynamobatcher::v1::WriteOp> ops_ ABSL_GUARDED_BY(mu_);
};

// A gRPC server on 127.0.0.1 hosting a FakeWriteBatcher (and the default
// health service).
class FakeServer {
 public:
  // port 0: pick a free port.
  explicit FakeServer(bool withhold = false, int port = 0);
  ~FakeServer();

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  bool ok() const { return server_ != nullptr; }
  FakeWriteBatcher& service() { return *service_; }
  // Cancels open streams after `grace`, then stops.
  void Shutdown(absl::Duration grace = absl::Milliseconds(50));

 private:
  std::unique_ptr<FakeWriteBatcher> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace dynamo_batcher::testing
