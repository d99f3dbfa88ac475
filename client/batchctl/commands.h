#pragma once

// batchctl subcommands. Each takes its arguments (after the subcommand
// name) and returns the process exit code.

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/batchctl/flags.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace dynamo_batcher::batchctl {

// Documented in `batchctl --help`.
enum ExitCode : int {
  kExitOk = 0,
  kExitOpsFailed = 1,  // some op FAILED/REJECTED (or health not SERVING)
  kExitUsage = 2,
  kExitUnreachable = 3,
};

struct GlobalOptions {
  std::string target;       // --target, env DYNAMO_BATCHER_TARGET
  std::string metrics_url;  // --metrics, env DYNAMO_BATCHER_METRICS_URL
  absl::Duration connect_timeout = absl::Seconds(5);
};

// The global flags, accepted before and after the subcommand.
FlagSpec GlobalFlagSpec();
GlobalOptions DefaultGlobalOptions();
// Applies --target/--metrics/--connect-timeout found in `args`. Returns false
// (after printing why) on a bad value.
bool ApplyGlobalFlags(const ParsedArgs& args, GlobalOptions& global);

// Parses a subcommand's arguments (its own flags plus the global ones).
// Returns -1 to go on, otherwise the exit code to return right away
// (0 after printing help, kExitUsage after printing the error).
int ParseSubcommand(const std::vector<std::string>& args, FlagSpec spec, const char* usage,
                    GlobalOptions& global, ParsedArgs& parsed);

// A channel to the sidecar, or nullptr (after printing why) when it could not
// be reached within connect_timeout.
std::shared_ptr<grpc::Channel> ConnectOrReport(const GlobalOptions& global, int channel_index = 0);

int RunPut(const GlobalOptions& global, const std::vector<std::string>& args, bool is_delete);
int RunLoad(const GlobalOptions& global, const std::vector<std::string>& args, bool replay);
int RunFlush(const GlobalOptions& global, const std::vector<std::string>& args);
int RunHealth(const GlobalOptions& global, const std::vector<std::string>& args);
int RunStats(const GlobalOptions& global, const std::vector<std::string>& args);
// Lifecycle hooks for images without a shell (postStart / preStop).
int RunWaitHealthy(const GlobalOptions& global, const std::vector<std::string>& args);
int RunSleep(const std::vector<std::string>& args);
int RunBench(const GlobalOptions& global, const std::vector<std::string>& args);

}  // namespace dynamo_batcher::batchctl
