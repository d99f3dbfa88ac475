// bench/parse_bench: the gRPC-thread work of one Write message, in one
// process without gRPC: parse a WriteRequest of 64 bench ops (puts of
// {pk: "k<n>", v: 100 bytes}, as bench/run sends) and encode every op,
// (a) as the API's dynamobatcher.v1.WriteRequest reused across messages
// (the sidecar before 2026-12-02), (b) as the private view
// (internal/write_request.proto) reused across messages (the sidecar now),
// and (c) the private view on a per-message arena (faster, not used: its
// blocks raised the RSS a client that never reads can cause, under load).
// Prints ns per op of each, best of 5 rounds, and the ratios to (a).
//
//   bench/parse_bench [MESSAGES]   (default 20000)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dynamobatcher/internal/write_request.pb.h"
#include "dynamobatcher/v1/batcher.pb.h"
#include "google/protobuf/arena.h"
#include "service/codec/codec.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kOpsPerMessage = 64;

std::string BenchMessage() {
  dynamobatcher::v1::WriteRequest req;
  for (int i = 0; i < kOpsPerMessage; ++i) {
    auto* op = req.add_ops();
    op->set_id(i + 1);
    op->set_table("bench_a");
    auto& attrs = *op->mutable_put()->mutable_attributes();
    attrs["pk"].set_s("k" + std::to_string(123456789 + i));
    attrs["v"].set_s(std::string(100, 'x'));
  }
  return req.SerializeAsString();
}

template <typename F>
double BestNsPerOp(int messages, F run_one) {
  double best = 1e18;
  for (int round = 0; round < 5; ++round) {
    const auto t0 = Clock::now();
    for (int m = 0; m < messages; ++m) run_one();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    best = std::min(best, ns / messages / kOpsPerMessage);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int messages = argc > 1 ? std::atoi(argv[1]) : 20000;
  if (messages <= 0) {
    std::fprintf(stderr, "usage: parse_bench [MESSAGES > 0]\n");
    return 2;
  }
  const std::string bytes = BenchMessage();
  dynamo_batcher::TableSchema schema;
  schema.name = "bench_a";
  schema.partition_key = {"pk", dynamo_batcher::KeyType::kS};
  size_t sink = 0;

  // Parses the message into `req` and encodes every op (the gRPC thread's
  // work per message, minus gRPC).
  auto parse_and_encode = [&](auto* req) {
    if (!req->ParseFromString(bytes)) std::abort();
    for (const auto& op : req->ops()) {
      sink += dynamo_batcher::EncodeWriteOp(op, schema).write.request_json.size();
    }
  };

  dynamobatcher::v1::WriteRequest reused;
  const double api = BestNsPerOp(messages, [&] {
    parse_and_encode(&reused);
    reused.Clear();
  });

  dynamobatcher::internal::WriteRequest reused_view;
  const double view = BestNsPerOp(messages, [&] {
    parse_and_encode(&reused_view);
    reused_view.Clear();
  });

  const double arena_view = BestNsPerOp(messages, [&] {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 16 * 1024;
    options.max_block_size = 32 * 1024;
    google::protobuf::Arena arena(options);
    parse_and_encode(
        google::protobuf::Arena::CreateMessage<dynamobatcher::internal::WriteRequest>(&arena));
  });

  std::printf("message: %zu bytes, %d ops; %d messages per round, best of 5\n", bytes.size(),
              kOpsPerMessage, messages);
  std::printf("(a) v1 map, reused message:          %6.1f ns/op (parse + encode)\n", api);
  std::printf("(b) private view, reused (sidecar):   %6.1f ns/op (parse + encode)\n", view);
  std::printf("(c) private view, arena per message:  %6.1f ns/op (parse + encode)\n", arena_view);
  std::printf("ratios to (a): (b) %.2f  (c) %.2f  (checksum %zu)\n", view / api, arena_view / api,
              sink);
  return 0;
}
