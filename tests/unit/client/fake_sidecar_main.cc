// client_fake_sidecar: the tests' FakeWriteBatcher as a process, for running
// batchctl bench or the Python/Node examples by hand without DynamoDB:
//   client_fake_sidecar [PORT]   (prints "listening on 127.0.0.1:PORT", runs
//                                 until SIGINT/SIGTERM)

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "absl/time/clock.h"
#include "fake_write_batcher.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 0;
  dynamo_batcher::testing::FakeServer server(/*withhold=*/false, port);
  if (!server.ok()) {
    std::cerr << "cannot listen on port " << port << "\n";
    return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::cout << "listening on " << server.target() << std::endl;
  while (!g_stop) absl::SleepFor(absl::Milliseconds(100));
  std::cout << "ops " << server.service().ops() << " messages " << server.service().messages()
            << std::endl;
  return 0;
}
