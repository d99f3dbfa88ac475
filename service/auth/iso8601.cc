#include "service/auth/iso8601.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"

namespace dynamo_batcher {

absl::StatusOr<absl::Time> ParseIso8601(absl::string_view text) {
  const std::string s(absl::StripAsciiWhitespace(text));
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", s, &t, &err)) return t;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*SZ", s, absl::UTCTimeZone(), &t, &err)) return t;
  return absl::InvalidArgumentError("not an ISO 8601 time");
}

}  // namespace dynamo_batcher
