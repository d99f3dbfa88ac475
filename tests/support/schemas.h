#pragma once

#include "service/common/types.h"

namespace dynamo_batcher::test_support {

// The tests' usual table: "events", partition key pk (S), sort key sk (N).
inline TableSchema EventsSchema() {
  TableSchema s;
  s.name = "events";
  s.partition_key = {"pk", KeyType::kS};
  s.sort_key = KeyAttribute{"sk", KeyType::kN};
  return s;
}

}  // namespace dynamo_batcher::test_support
