#pragma once

#include <functional>
#include <string>

#include "service/common/types.h"
#include "service/dynamodb/response_parser.h"

namespace dynamo_batcher {

// What the engine needs from DynamoDB: send one BatchWriteItem call for one
// table and report its classified outcome. DynamoDbClient is the real one;
// tests use a fake (tests/support/fake_writer.h) that answers when told to.
//
// Thread-safety: implementations accept calls from any thread. `done` runs
// exactly once, on any thread -- possibly inline, on the calling thread, when
// nothing could be sent -- so the caller must not hold a lock `done` takes.
//
// Usage:
//   writer->BatchWriteItem(schema, body, [](BatchWriteResponse r) { ... });
class BatchWriter {
 public:
  virtual ~BatchWriter() = default;
  // `body` is the whole request: {"RequestItems":{"<table>":[...]}}.
  virtual void BatchWriteItem(const TableSchema& schema, std::string body,
                              std::function<void(BatchWriteResponse)> done) = 0;
};

}  // namespace dynamo_batcher
