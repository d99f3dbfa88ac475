#pragma once

#include <cstddef>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace dynamo_batcher {

struct KeyPacerOptions {
  double min_rate = 1.0;                      // items/s per paced key, never below
  double decrease_factor = 0.7;               // on each hot signal (at most one per window)
  double increase_fraction = 0.2;             // per second of no hot signal: rate *= 1 + this
  absl::Duration expiry = absl::Seconds(10);  // unpaced after this long without a signal
  size_t max_keys = 10000;                    // paced keys kept at most (oldest signal dropped)
};

// The partition-key part of a canonical key (its first self-delimiting
// component: tag byte, 4-byte big-endian length, bytes). The whole key if it
// is malformed.
absl::string_view PartitionKeyPart(absl::string_view canonical_key);

// Paces single partition-key values that DynamoDB throttles on their own (a
// hot partition: every partition-key value is capped whatever the table's
// capacity), so the table's other keys keep their rate.
//
// A call's answer is "concentrated" on a partition key when that key had at
// least two items in the call, at least half of them came back unprocessed,
// and the rest of the call lost at most a tenth of that share. Twice within
// kConfirmWindow (once may be chance under random loss), and the key is paced by its own token
// bucket (AIMD: a decrease per hot signal from its estimated send rate, a multiplicative increase
// while quiet) and its items are left out of the table rate's feedback. A whole-call throttle whose
// ThrottlingReasons name only key ranges makes the call's most frequent partition key(s) hot the
// same way.
//
// Pure: takes `now`, never sleeps. Thread-safety: none; owned by one
// TableBatcher.
//
// Usage:
//   KeyPacer p;
//   if (!p.TryAcquire(pk, now, &ready_at)) park until ready_at;
//   size_t hot_sent, hot_lost; p.OnCall(items, table_rate, now, &hot_sent, &hot_lost);
class KeyPacer {
 public:
  // One item of an answered call: its partition key and whether it came back
  // unprocessed (or was refused).
  struct Item {
    absl::string_view partition_key;
    bool lost = false;
  };

  explicit KeyPacer(KeyPacerOptions options = {});

  // Feedback from a call that was answered 200 (`items`), with the table's
  // measured send rate (items/s). Sets the items that belonged to hot keys
  // (they say nothing about the table's capacity).
  void OnCall(const std::vector<Item>& items, double table_rate, absl::Time now, size_t* hot_sent,
              size_t* hot_lost);
  // A whole call refused for hot key ranges: its most frequent partition
  // key(s) become hot.
  void OnKeyRangeThrottle(const std::vector<Item>& items, double table_rate, absl::Time now);

  // One token of `partition_key`'s bucket if it is paced (always true if
  // not). On false, `*ready_at` is when a token will be there.
  bool TryAcquire(absl::string_view partition_key, absl::Time now, absl::Time* ready_at);
  bool IsPaced(absl::string_view partition_key, absl::Time now) const;

  // Keys paced at `now` (drops expired ones).
  size_t paced_keys(absl::Time now);
  // Current rate of a paced key, or 0.
  double RateOf(absl::string_view partition_key) const;

  // At most one decrease per key in this window: the calls already in
  // flight at the old rate come back hot together.
  static constexpr absl::Duration kDecreaseWindow = absl::Milliseconds(100);
  // A key concentrated twice within this window is hot.
  static constexpr absl::Duration kConfirmWindow = absl::Seconds(1);

 private:
  struct Bucket {
    double rate = 0;
    double tokens = 0;
    absl::Time last_refill;
    absl::Time last_signal;
    absl::Time last_increase;
  };
  void MarkHot(absl::string_view pk, double estimated_rate, absl::Time now);
  void Refill(Bucket* b, absl::Time now) const;
  void Expire(absl::Time now);

  KeyPacerOptions options_;
  absl::flat_hash_map<std::string, Bucket> keys_;
  // Keys seen concentrated once, and when (confirmed by a second time).
  absl::flat_hash_map<std::string, absl::Time> suspects_;
};

}  // namespace dynamo_batcher
