#pragma once

// Byte-level helpers of the codec: UTF-8 validation and quoting of
// user-supplied names in rejection messages. The public JSON-string and
// base64 helpers (AppendJsonString, AppendBase64, Base64Decode) are declared
// in codec.h and implemented in text.cc.

#include <string>

#include "absl/strings/string_view.h"

namespace dynamo_batcher {
namespace codec_internal {

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// AppendJsonString(s, out) when `s` is valid UTF-8 (then true); false, with
// `out` unchanged, when it is not. One pass over the usual string (ASCII,
// nothing to escape) instead of a check and then an escape.
bool AppendJsonStringIfValidUtf8(absl::string_view s, std::string* out);

// Appends `s` as a double-quoted, JSON-escaped string for a human-readable
// message. Invalid UTF-8 bytes become \xNN and long names are cut, so the
// message is always valid UTF-8 (it travels in a proto `string`).
void AppendQuotedForMessage(absl::string_view s, std::string* out);

}  // namespace codec_internal
}  // namespace dynamo_batcher
