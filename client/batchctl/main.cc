// batchctl: command-line client for the dynamo-batcher sidecar.

#include <iostream>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "client/batchctl/commands.h"
#include "client/batchctl/flags.h"

namespace {

constexpr const char kUsage[] =
    "usage: batchctl [--target HOST:PORT] [--metrics URL] [--connect-timeout D]\n"
    "                COMMAND [args] \n"
    "\n"
    "Command-line client for the dynamo-batcher sidecar.\n"
    "\n"
    "commands:\n"
    "  put TABLE ITEM...     write one item, print its outcome\n"
    "  delete TABLE KEY...   delete one key, print its outcome\n"
    "  load FILE|-           stream JSON lines of puts/deletes\n"
    "  replay FILE|-         re-send a dead-letter file written by the sidecar\n"
    "  flush [--table T]     send what the sidecar buffers now and wait for it\n"
    "  health                gRPC health check (grpc.health.v1)\n"
    "  stats                 per-table summary of the sidecar's /metrics\n"
    "  bench                 load generator (ops/s, latency percentiles)\n"
    "  wait-healthy          wait until the sidecar's /healthz answers (postStart hook)\n"
    "  sleep D               wait D, e.g. 15s (preStop hook; the image has no shell)\n"
    "Run `batchctl COMMAND --help` for a command's flags.\n"
    "\n"
    "global flags (also accepted after COMMAND):\n"
    "  --target HOST:PORT    sidecar gRPC address (env DYNAMO_BATCHER_TARGET,\n"
    "                        default 127.0.0.1:50051; unix:///path works too)\n"
    "  --metrics URL         sidecar metrics URL for stats (env\n"
    "                        DYNAMO_BATCHER_METRICS_URL, default\n"
    "                        http://127.0.0.1:9464/metrics)\n"
    "  --connect-timeout D   how long to wait for the sidecar (default 5s)\n"
    "\n"
    "exit codes:\n"
    "  0  ok\n"
    "  1  some ops FAILED or were REJECTED (health: not SERVING)\n"
    "  2  usage error\n"
    "  3  could not reach the sidecar\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace dynamo_batcher::batchctl;  // NOLINT(build/namespaces)
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<ParsedArgs> global_args =
      ParseArgs(args, GlobalFlagSpec(), /*stop_at_positional=*/true);
  if (!global_args.ok()) {
    std::cerr << "batchctl: " << global_args.status().message() << "\n\n" << kUsage;
    return kExitUsage;
  }
  if (global_args->help) {
    std::cout << kUsage;
    return kExitOk;
  }
  GlobalOptions global = DefaultGlobalOptions();
  if (!ApplyGlobalFlags(*global_args, global)) return kExitUsage;
  if (global_args->rest.empty()) {
    std::cerr << "batchctl: missing COMMAND\n\n" << kUsage;
    return kExitUsage;
  }
  const std::string command = global_args->rest[0];
  const std::vector<std::string> rest(global_args->rest.begin() + 1, global_args->rest.end());
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc;
  if (command == "put") {
    rc = RunPut(global, rest, /*is_delete=*/false);
  } else if (command == "delete") {
    rc = RunPut(global, rest, /*is_delete=*/true);
  } else if (command == "load") {
    rc = RunLoad(global, rest, /*replay=*/false);
  } else if (command == "replay") {
    rc = RunLoad(global, rest, /*replay=*/true);
  } else if (command == "flush") {
    rc = RunFlush(global, rest);
  } else if (command == "health") {
    rc = RunHealth(global, rest);
  } else if (command == "stats") {
    rc = RunStats(global, rest);
  } else if (command == "bench") {
    rc = RunBench(global, rest);
  } else if (command == "wait-healthy") {
    rc = RunWaitHealthy(global, rest);
  } else if (command == "sleep") {
    rc = RunSleep(rest);
  } else if (command == "help") {
    std::cout << kUsage;
    rc = kExitOk;
  } else {
    std::cerr << "batchctl: unknown command \"" << command << "\"\n\n" << kUsage;
    rc = kExitUsage;
  }
  curl_global_cleanup();
  return rc;
}
