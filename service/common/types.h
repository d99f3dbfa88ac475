#pragma once

// Vocabulary types shared by the codec, the batching core, the DynamoDB client
// and the engine. Plain data; no behaviour beyond trivial helpers.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace dynamo_batcher {

enum class KeyType { kS, kN, kB };

inline const char* KeyTypeName(KeyType t) {
  switch (t) {
    case KeyType::kS:
      return "S";
    case KeyType::kN:
      return "N";
    case KeyType::kB:
      return "B";
  }
  return "?";
}

struct KeyAttribute {
  std::string name;
  KeyType type = KeyType::kS;
};

// The primary key of one table.
struct TableSchema {
  std::string name;
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
};

// One validated write, already encoded as the DynamoDB JSON element that goes
// into a BatchWriteItem request list. Encoded once at arrival; retries and
// re-batching reuse the bytes.
struct EncodedWrite {
  bool is_delete = false;
  // Canonical primary key: equal exactly when DynamoDB considers the keys
  // equal (numbers by value, strings and binaries by bytes).
  std::string key;
  // {"PutRequest":{"Item":{...}}} or {"DeleteRequest":{"Key":{...}}}
  std::string request_json;
  // Item size by DynamoDB's rules (attribute names + values), in bytes.
  size_t item_size = 0;
};

// Why an op was refused before batching. `code` doubles as the `reason` label
// of dynamo_batcher_ops_rejected_total.
struct Rejection {
  std::string code;     // e.g. "UnknownTable", "KeyMissing", "InvalidNumber"
  std::string message;  // names the op id, the field and the rule
};

// The `reason` values of throttled calls (a fixed set, for metric labels):
// DynamoDB's write-side ThrottlingReasons, "Other" for a reason not listed
// here, "Unspecified" for a throttle that named none.
inline const std::vector<std::string>& ThrottleReasonLabels() {
  static const auto* const kLabels =
      new std::vector<std::string>{"TableWriteKeyRangeThroughputExceeded",
                                   "IndexWriteKeyRangeThroughputExceeded",
                                   "TableWriteProvisionedThroughputExceeded",
                                   "IndexWriteProvisionedThroughputExceeded",
                                   "TableWriteMaxOnDemandThroughputExceeded",
                                   "IndexWriteMaxOnDemandThroughputExceeded",
                                   "TableWriteAccountLimitExceeded",
                                   "IndexWriteAccountLimitExceeded",
                                   "Other",
                                   "Unspecified"};
  return *kLabels;
}

// Final state of one op, as in the proto.
enum class Outcome { kWritten, kCoalesced, kFailed, kRejected };

struct OpResult;

// Receives op results. Implemented by gRPC stream/unary handlers.
// Thread-safety: Deliver and DeliverAll may be called from any thread.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void Deliver(OpResult result) = 0;
  // Several results at once, all for this sink. A stream takes them under one
  // lock and sends them in one write; the default delivers them one by one.
  // Leaves `results` empty.
  virtual void DeliverAll(std::vector<OpResult>* results);
};

// One client op owned by the batching core while it waits, flies or backs off.
struct Op {
  uint64_t id = 0;  // client-chosen id, echoed back
  // Table name, owned by the engine's table registry (lives as long as the
  // process; tables are fixed at start-up).
  const std::string* table = nullptr;
  std::shared_ptr<ResultSink> sink;  // opaque to the core; only moved around
  EncodedWrite write;
  absl::Time arrival;     // when the sidecar received it
  uint64_t epoch = 0;     // flush epoch, managed by the engine
  uint32_t attempts = 0;  // BatchWriteItem calls that carried it

  // What one buffered op costs beyond its own strings: the batching core's
  // entry and key-map slot, allocator rounding, its share of gRPC's receive
  // buffers and of the result on its way back. Measured with bench/run's
  // overload scenario: ~950 bytes of RSS per buffered op of ~330 bytes of
  // strings, so the budget counts this much per op on top of them.
  static constexpr size_t kOverheadBytes = 640;

  // Bytes this op holds in memory, for the buffer budgets.
  size_t MemoryBytes() const {
    return kOverheadBytes + write.key.size() + write.request_json.size();
  }
};

// The outcome of one op, produced by the core (or by validation).
struct OpResult {
  Op op;
  Outcome outcome = Outcome::kWritten;
  std::string error_code;
  std::string message;
};

inline void ResultSink::DeliverAll(std::vector<OpResult>* results) {
  for (OpResult& r : *results) Deliver(std::move(r));
  results->clear();
}

}  // namespace dynamo_batcher
