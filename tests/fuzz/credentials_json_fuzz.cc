// libFuzzer target: arbitrary bytes as the body of an STS answer
// (ParseStsCredentialsJson), of a container/IMDS credentials answer
// (ParseCredentialsJson) and as an expiration time (ParseIso8601). None may
// crash, and what they accept must be usable credentials.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "service/auth/credentials_json.h"
#include "service/auth/iso8601.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view raw(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<dynamo_batcher::AwsCredentials> sts = dynamo_batcher::ParseStsCredentialsJson(raw);
  if (sts.ok()) {
    Check(!sts->access_key_id.empty());
    Check(!sts->secret_access_key.empty());
    Check(!sts->session_token.empty());
    Check(sts->expiration.has_value());
  } else {
    Check(!sts.status().message().empty());
  }

  absl::StatusOr<dynamo_batcher::AwsCredentials> json = dynamo_batcher::ParseCredentialsJson(raw);
  if (json.ok()) {
    Check(!json->access_key_id.empty());
    Check(!json->secret_access_key.empty());
  }

  (void)dynamo_batcher::ParseIso8601(raw);
  return 0;
}
