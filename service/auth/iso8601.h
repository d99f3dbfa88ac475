#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dynamo_batcher {

// ISO 8601 / RFC 3339 time as STS, IMDS and the container endpoints write
// credential expirations: "2024-05-01T12:00:00Z", with an optional fraction
// and a "Z" or numeric offset. Surrounding whitespace is ignored. Pure.
absl::StatusOr<absl::Time> ParseIso8601(absl::string_view text);

}  // namespace dynamo_batcher
