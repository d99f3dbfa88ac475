#include "client/batchctl/flags.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dynamo_batcher::batchctl {

bool ParsedArgs::Has(const std::string& name) const {
  return values.count(name) > 0 || bools.count(name) > 0;
}

std::string ParsedArgs::Get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

absl::StatusOr<int64_t> ParsedArgs::GetInt(const std::string& name, int64_t fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", it->second, "\" is not an integer"));
  }
  return v;
}

absl::StatusOr<double> ParsedArgs::GetDouble(const std::string& name, double fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  double v;
  if (!absl::SimpleAtod(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", it->second, "\" is not a number"));
  }
  return v;
}

absl::StatusOr<absl::Duration> ParsedArgs::GetDuration(const std::string& name,
                                                       absl::Duration fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  absl::Duration d;
  if (!absl::ParseDuration(it->second, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", it->second, "\" is not a duration like 5s or 250ms"));
  }
  return d;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const FlagSpec& spec,
                                     bool stop_at_positional) {
  ParsedArgs out;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || !absl::StartsWith(arg, "-")) {
      if (stop_at_positional) {
        out.rest.assign(args.begin() + i, args.end());
        return out;
      }
      out.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option \"", arg, "\" (options are --name)"));
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (spec.bool_flags.count(name) > 0) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value (or =true/=false)"));
      }
      if (!has_value || value == "true") {
        out.bools.insert(name);
      } else {
        out.bools.erase(name);
      }
      continue;
    }
    if (spec.value_flags.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    out.values[name] = value;
  }
  return out;
}

}  // namespace dynamo_batcher::batchctl
