#pragma once

// A small command-line parser for batchctl's subcommands: `--name value`,
// `--name=value`, boolean `--name`, `-h`/`--help`, `--` ends the flags.
// Not absl::flags, whose process-global registry does not fit per-subcommand
// flag sets. Pure; thread-safe.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dynamo_batcher::batchctl {

struct FlagSpec {
  std::set<std::string> value_flags;  // names without "--"
  std::set<std::string> bool_flags;
};

class ParsedArgs {
 public:
  bool help = false;
  std::vector<std::string> positional;
  // With ParseArgs(stop_at_positional=true): the first positional and all
  // that follows, unparsed.
  std::vector<std::string> rest;

  bool Has(const std::string& name) const;
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  // Durations as "5s", "250ms", "1m".
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name,
                                             absl::Duration fallback) const;

  std::map<std::string, std::string> values;
  std::set<std::string> bools;
};

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const FlagSpec& spec,
                                     bool stop_at_positional = false);

}  // namespace dynamo_batcher::batchctl
