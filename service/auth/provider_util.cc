#include "service/auth/provider_util.h"

#include "service/auth/sigv4.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace dynamo_batcher::auth_internal {

std::string Env(const GetenvFunction& getenv_fn, const char* name) {
  if (!getenv_fn) return "";
  const char* v = getenv_fn(name);
  return v == nullptr ? "" : std::string(v);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  // Read at most one byte past the cap: a path pointing at a huge or
  // endless file (/dev/zero) fails instead of exhausting memory.
  std::string out(kMaxCredentialsFileBytes + 1, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  if (in.bad()) return absl::UnavailableError(absl::StrCat("error reading ", path));
  out.resize(static_cast<size_t>(in.gcount()));
  if (out.size() > kMaxCredentialsFileBytes) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is larger than ",
                                                      kMaxCredentialsFileBytes,
                                                      " bytes (tokens and profiles are small)"));
  }
  return out;
}

std::string FormEncode(absl::string_view value) { return UriEncode(value, /*keep_slash=*/false); }

bool IsTrue(absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  return v == "true" || v == "1" || v == "yes";
}

std::string DescribeHttpFailure(const HttpResponse& response) {
  if (!response.transport_error.empty()) {
    return absl::StrCat("transport: ", response.transport_error);
  }
  std::string body = response.body.substr(0, 200);
  for (char& c : body) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return absl::StrCat("HTTP ", response.status, body.empty() ? "" : ": ", body);
}

}  // namespace dynamo_batcher::auth_internal
