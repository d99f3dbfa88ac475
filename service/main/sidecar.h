#pragma once

#include <string>

#include "service/config/config.h"

namespace dynamo_batcher {

// Exit codes of the dynamo-batcher process.
enum ExitCode : int {
  kExitClean = 0,        // clean shutdown, nothing lost
  kExitLost = 1,         // writes failed during the drain (or a forced exit)
  kExitBadConfig = 2,    // bad usage or configuration
  kExitStartFailed = 3,  // start-up failed
};

// The sidecar's composition root: builds credentials, the DynamoDB client,
// metrics, the engine, the gRPC and HTTP servers from `config`, then runs the
// lifecycle (service/lifecycle/): key schemas at start-up, readiness, SIGHUP
// reloads of `config_path`, and on SIGTERM/SIGINT the drain. Returns the
// process's exit code.
//
// Thread-safety: call once, from the main thread, before any other thread
// exists (signals are blocked in the calling thread and inherited).
int RunSidecar(Config config, const std::string& config_path);

}  // namespace dynamo_batcher
