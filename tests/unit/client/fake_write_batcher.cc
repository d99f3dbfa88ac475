#include "fake_write_batcher.h"

#include <thread>
#include <utility>

#include "absl/time/clock.h"

namespace dynamo_batcher::testing {

namespace v1 = ::dynamobatcher::v1;

v1::WriteResult FakeWriteBatcher::Answer(const v1::WriteOp& op) {
  v1::WriteResult r;
  r.set_id(op.id());
  r.set_table(op.table());
  r.set_attempts(1);
  const v1::Item& item = op.has_put() ? op.put() : op.delete_key();
  if (op.table() == "reject") {
    r.set_outcome(v1::REJECTED);
    r.set_error_code("UnknownTable");
    r.set_message("no table named reject");
    r.set_attempts(0);
  } else if (op.table() == "fail") {
    r.set_outcome(v1::FAILED);
    r.set_error_code("ValidationException");
    r.set_message("refused");
  } else if (item.attributes().count("coalesce") > 0) {
    r.set_outcome(v1::COALESCED);
  } else {
    r.set_outcome(v1::WRITTEN);
  }
  return r;
}

grpc::Status FakeWriteBatcher::Write(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::WriteResponse, v1::WriteRequest>* stream) {
  // Results go out from a second thread so that withheld answers can be
  // released while this thread is blocked in Read.
  absl::Mutex mu;
  std::vector<v1::WriteResult> pending;  // guarded by mu
  bool done = false;                     // guarded by mu
  std::thread responder([&] {
    while (true) {
      std::vector<v1::WriteResult> batch;
      {
        absl::MutexLock lock(&mu);
        auto ready = [&] { return done || (!pending.empty() && !withhold_.load()); };
        // Polls too: Release() does not touch `mu`.
        while (!ready()) mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(5));
        if (withhold_.load() || pending.empty()) return;  // the stream is over
        batch.swap(pending);
      }
      v1::WriteResponse response;
      for (auto& r : batch) *response.add_results() = std::move(r);
      if (!stream->Write(response)) return;
    }
  });
  v1::WriteRequest request;
  while (stream->Read(&request)) {
    {
      absl::MutexLock lock(&mu_);
      ++messages_;
      max_ops_ = std::max<uint64_t>(max_ops_, request.ops_size());
      for (const auto& op : request.ops()) ops_.push_back(op);
    }
    absl::MutexLock lock(&mu);
    for (const auto& op : request.ops()) pending.push_back(Answer(op));
  }
  {
    absl::MutexLock lock(&mu);
    done = true;
  }
  responder.join();
  return context->IsCancelled() ? grpc::Status::CANCELLED : grpc::Status::OK;
}

grpc::Status FakeWriteBatcher::Flush(grpc::ServerContext*, const v1::FlushRequest*,
                                     v1::FlushResponse* response) {
  absl::MutexLock lock(&mu_);
  ++flushes_;
  response->set_ops(ops_.size());
  return grpc::Status::OK;
}

void FakeWriteBatcher::Release() { withhold_ = false; }

bool FakeWriteBatcher::WaitForOps(uint64_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [&] { return ops_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

uint64_t FakeWriteBatcher::messages() const {
  absl::MutexLock lock(&mu_);
  return messages_;
}

uint64_t FakeWriteBatcher::ops() const {
  absl::MutexLock lock(&mu_);
  return ops_.size();
}

uint64_t FakeWriteBatcher::max_ops_in_a_message() const {
  absl::MutexLock lock(&mu_);
  return max_ops_;
}

uint64_t FakeWriteBatcher::flushes() const {
  absl::MutexLock lock(&mu_);
  return flushes_;
}

std::vector<uint64_t> FakeWriteBatcher::ids() const {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> ids;
  for (const auto& op : ops_) ids.push_back(op.id());
  return ids;
}

std::vector<v1::WriteOp> FakeWriteBatcher::received_ops() const {
  absl::MutexLock lock(&mu_);
  return ops_;
}

FakeServer::FakeServer(bool withhold, int port)
    : service_(std::make_unique<FakeWriteBatcher>(withhold)) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (port_ == 0) server_.reset();
}

FakeServer::~FakeServer() { Shutdown(); }

void FakeServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
}

}  // namespace dynamo_batcher::testing
