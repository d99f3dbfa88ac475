// libFuzzer target: arbitrary bytes as a config file (ParseConfig). Bad
// input must come back as an error naming the source, never as a crash or
// an escaped yaml-cpp exception; what is accepted must be valid.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "service/config/config.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<dynamo_batcher::Config> config = dynamo_batcher::ParseConfig(text, "fuzz.yaml");
  if (config.ok()) {
    Check(config->batching.max_items >= 1 && config->batching.max_items <= 25);
    Check(!config->listen.empty());
  } else {
    Check(absl::StrContains(config.status().message(), "fuzz.yaml"));
  }
  return 0;
}
