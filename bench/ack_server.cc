// bench_ack_server: the benchmark's floor. A WriteBatcher gRPC server that
// does no work at all: every op of every WriteRequest is answered WRITTEN at
// once, one WriteResponse per WriteRequest. The same `batchctl bench` load
// against it shows the most gRPC allows on this machine for that message
// packing, so the sidecar's numbers can be read as a share of it.
//
// Like the real sidecar it uses the callback (reactor) API and keeps reading
// while answers are being written (a few answers may queue; beyond that the
// stream stops reading, as gRPC flow control would push back anyway).
//
// Usage: bench_ack_server [--listen 127.0.0.1:0]
// Prints `READY port=N` on stdout once listening; exits 0 on SIGTERM/SIGINT.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "dynamobatcher/v1/batcher.grpc.pb.h"

namespace {

namespace v1 = dynamobatcher::v1;

// Answers queued beyond this pause reading until the writer catches up.
constexpr size_t kMaxQueuedResponses = 16;

void FillAck(const v1::WriteRequest& request, v1::WriteResponse* response) {
  auto* results = response->mutable_results();
  results->Reserve(request.ops_size());
  for (const v1::WriteOp& op : request.ops()) {
    v1::WriteResult* r = results->Add();
    r->set_id(op.id());
    r->set_outcome(v1::WRITTEN);
    r->set_attempts(1);
    r->set_table(op.table());
  }
}

// One Write stream. Deletes itself in OnDone.
class AckReactor final : public grpc::ServerBidiReactor<v1::WriteRequest, v1::WriteResponse> {
 public:
  AckReactor() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ok || finished_) {
      read_closed_ = true;
      MaybeFinishLocked();
      return;
    }
    queue_.emplace_back();
    FillAck(request_, &queue_.back());
    request_.Clear();
    bool start_write = !writing_;
    if (start_write) writing_ = true;
    v1::WriteResponse* next = start_write ? &queue_.front() : nullptr;
    bool read_more = queue_.size() < kMaxQueuedResponses;
    read_paused_ = !read_more;
    lock.unlock();
    if (next != nullptr) StartWrite(next);
    if (read_more) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok) {
      // The client went away; nothing more can be sent.
      writing_ = false;
      write_failed_ = true;
      MaybeFinishLocked();
      return;
    }
    bool resume_read = read_paused_ && !read_closed_;
    read_paused_ = false;
    if (queue_.empty()) {
      writing_ = false;
      if (read_closed_) {
        MaybeFinishLocked();
        return;
      }
    }
    // The pointer stays valid after unlocking: only OnWriteDone pops, and a
    // deque keeps references to its elements valid across emplace_back.
    v1::WriteResponse* next = writing_ ? &queue_.front() : nullptr;
    lock.unlock();
    if (next != nullptr) StartWrite(next);
    if (resume_read) StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void MaybeFinishLocked() {
    if (finished_) return;
    if (write_failed_ || (read_closed_ && !writing_ && queue_.empty())) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  std::mutex mu_;
  v1::WriteRequest request_;
  std::deque<v1::WriteResponse> queue_;
  bool writing_ = false;
  bool read_paused_ = false;
  bool read_closed_ = false;
  bool write_failed_ = false;
  bool finished_ = false;
};

class AckService final : public v1::WriteBatcher::CallbackService {
 public:
  grpc::ServerBidiReactor<v1::WriteRequest, v1::WriteResponse>* Write(
      grpc::CallbackServerContext* /*context*/) override {
    return new AckReactor();
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context, const v1::PutRequest* request,
                                v1::WriteResult* response) override {
    response->set_id(request->id());
    response->set_outcome(v1::WRITTEN);
    response->set_attempts(1);
    response->set_table(request->table());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::WriteResult* response) override {
    response->set_id(request->id());
    response->set_outcome(v1::WRITTEN);
    response->set_attempts(1);
    response->set_table(request->table());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context,
                                  const v1::FlushRequest* /*request*/,
                                  v1::FlushResponse* response) override {
    response->set_ops(0);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

volatile std::sig_atomic_t g_stop = 0;

void OnSignal(int /*sig*/) { g_stop = 1; }

int Usage(const char* why) {
  std::fprintf(stderr, "bench_ack_server: %s\nusage: bench_ack_server [--listen HOST:PORT]\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (arg.rfind("--listen=", 0) == 0) {
      listen = arg.substr(std::strlen("--listen="));
    } else if (arg == "--help" || arg == "-h") {
      Usage("the benchmark's ack-only WriteBatcher server");
      return 0;
    } else {
      return Usage(("unknown argument: " + arg).c_str());
    }
  }

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);

  grpc::EnableDefaultHealthCheckService(true);
  AckService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "bench_ack_server: cannot listen on %s\n", listen.c_str());
    return 3;
  }
  std::cout << "READY port=" << port << std::endl;

  // Signal handlers may not call Shutdown; poll the flag instead.
  while (!g_stop) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
