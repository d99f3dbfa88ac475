#pragma once

#include <string>

#include "absl/time/time.h"

namespace dynamo_batcher {

// What DynamoDbClient needs to know of the service it calls. Apart from
// dynamodb_client.h so the config (dynamodb.*) takes its defaults from here
// without depending on the client.
struct DynamoDbOptions {
  std::string region = "us-east-1";
  // Empty: https://dynamodb.<region>.amazonaws.com
  std::string endpoint;
  absl::Duration call_timeout = absl::Seconds(10);
};

}  // namespace dynamo_batcher
