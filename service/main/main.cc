// dynamo-batcher: a gRPC sidecar that turns single DynamoDB puts and deletes
// into deduplicated BatchWriteItem calls. See README.md and config.yaml.
//
// This file parses the command line and the configuration; RunSidecar
// (sidecar.h) builds the parts and runs the lifecycle (service/lifecycle/).

#include <iostream>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "service/config/config.h"
#include "service/main/sidecar.h"

#ifndef DYNAMO_BATCHER_VERSION
#define DYNAMO_BATCHER_VERSION "dev"
#endif

namespace dynamo_batcher {
namespace {

void Usage() {
  std::cout << "usage: dynamo-batcher [--config FILE] [--check-config] [--version]\n"
               "\n"
               "  --config FILE    configuration file (default: config.yaml)\n"
               "  --check-config   validate the configuration and exit\n"
               "  --version        print the version and exit\n"
               "\n"
               "Environment overrides: DYNAMO_BATCHER_LISTEN, DYNAMO_BATCHER_METRICS_LISTEN,\n"
               "DYNAMO_BATCHER_ENDPOINT, DYNAMO_BATCHER_REGION.\n"
               "Exit codes: 0 clean shutdown (nothing lost), 1 writes failed during drain,\n"
               "2 bad usage or configuration, 3 start-up failure.\n";
}

struct Flags {
  std::string config_path = "config.yaml";
  bool check_only = false;
};

// Parses argv into `flags`; returns an exit code when the process should end
// here (--version, --help, a bad argument), -1 to go on.
int ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      flags->config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      flags->config_path = a.substr(9);
    } else if (a == "--check-config") {
      flags->check_only = true;
    } else if (a == "--version") {
      std::cout << "dynamo-batcher " << DYNAMO_BATCHER_VERSION << "\n";
      return kExitClean;
    } else if (a == "--help" || a == "-h") {
      Usage();
      return kExitClean;
    } else {
      std::cerr << "dynamo-batcher: unknown argument \"" << a << "\"\n";
      Usage();
      return kExitBadConfig;
    }
  }
  return -1;
}

int Main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, so each absl::Mutex lock also
  // feeds its deadlock detector (a process-wide lock-order graph kept under
  // a global lock): a debugging aid that costs on every hot lock. Off in the
  // sidecar; unit tests, which do not run Main, keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  if (int code = ParseFlags(argc, argv, &flags); code >= 0) return code;
  auto loaded = LoadConfig(flags.config_path);
  if (!loaded.ok()) {
    std::cerr << "dynamo-batcher: invalid configuration: " << loaded.status().message() << "\n";
    return kExitBadConfig;
  }
  if (flags.check_only) {
    std::cout << flags.config_path << ": OK (" << loaded->tables.size() << " tables)\n";
    return kExitClean;
  }
  return RunSidecar(*std::move(loaded), flags.config_path);
}

}  // namespace
}  // namespace dynamo_batcher

int main(int argc, char** argv) { return dynamo_batcher::Main(argc, argv); }
