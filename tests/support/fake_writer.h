#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/dynamodb/batch_writer.h"

namespace dynamo_batcher::testing_util {

// One BatchWriteItem call made through FakeWriter.
struct FakeCall {
  std::string table;
  std::string body;  // {"RequestItems":{"<table>":[...]}}
  std::function<void(BatchWriteResponse)> done;

  // Request elements in the call (each a PutRequest or DeleteRequest).
  size_t items() const { return Count("\"PutRequest\"") + Count("\"DeleteRequest\""); }
  // True when some request element of the call contains `text`.
  bool Contains(const std::string& text) const { return body.find(text) != std::string::npos; }
  // Gives the call its outcome; runs the caller's callback on this thread.
  void Answer(BatchWriteResponse r) {
    auto done_now = std::move(done);
    done_now(std::move(r));
  }

 private:
  size_t Count(const std::string& needle) const {
    size_t n = 0;
    for (size_t at = body.find(needle); at != std::string::npos; at = body.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }
};

// Canned outcomes, as DynamoDbClient classifies them.
inline BatchWriteResponse WrittenResponse() {
  BatchWriteResponse r;
  r.http_status = 200;
  return r;
}
// HTTP 200 with these canonical keys left in UnprocessedItems.
inline BatchWriteResponse UnprocessedResponse(std::vector<std::string> keys) {
  BatchWriteResponse r = WrittenResponse();
  r.result.unprocessed_keys = std::move(keys);
  return r;
}
// The whole call throttled (retried with backoff).
inline BatchWriteResponse ThrottledResponse() {
  BatchWriteResponse r;
  r.http_status = 400;
  r.error_class = "4xx";
  r.result.kind = BatchResult::Kind::kRetryable;
  r.result.throttled = true;
  r.result.error_code = "ProvisionedThroughputExceededException";
  r.result.message = "The level of configured provisioned throughput for the table was exceeded";
  return r;
}
// A non-retryable error (e.g. ResourceNotFoundException): the ops fail.
inline BatchWriteResponse FatalResponse(std::string code, std::string message) {
  BatchWriteResponse r;
  r.http_status = 400;
  r.error_class = "4xx";
  r.result.kind = BatchResult::Kind::kFatal;
  r.result.error_code = std::move(code);
  r.result.message = std::move(message);
  return r;
}

// A BatchWriter for tests of what sits above DynamoDB (engine, server). By
// default it records each call and leaves it unanswered until the test takes
// it (TakeNext) and answers it, so the test decides the order and the
// outcome. With an auto-answer set, each call is answered at once, inline.
//
// Thread-safety: all methods may be called from any thread.
//
// Usage:
//   FakeWriter writer;
//   Engine engine(tables, options, &writer, &metrics, &clock);
//   ASSERT_TRUE(writer.WaitForPending(1));
//   writer.TakeNext().Answer(WrittenResponse());
class FakeWriter : public BatchWriter {
 public:
  using AutoAnswer = std::function<BatchWriteResponse(const FakeCall&)>;

  void set_auto_answer(AutoAnswer answer) {
    absl::MutexLock lock(&mu_);
    auto_answer_ = std::move(answer);
  }

  void BatchWriteItem(const TableSchema& schema, std::string body,
                      std::function<void(BatchWriteResponse)> done) override {
    FakeCall call{schema.name, std::move(body), std::move(done)};
    std::optional<BatchWriteResponse> answer;
    {
      absl::MutexLock lock(&mu_);
      sizes_.push_back(call.items());
      if (auto_answer_) {
        answer = auto_answer_(call);
      } else {
        pending_.push_back(std::move(call));
        return;
      }
    }
    call.Answer(std::move(*answer));
  }

  // Waits (in real time, up to `timeout`) until at least `n` calls are
  // unanswered.
  bool WaitForPending(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  // The oldest unanswered call. Call WaitForPending first.
  FakeCall TakeNext() {
    absl::MutexLock lock(&mu_);
    FakeCall call = std::move(pending_.front());
    pending_.pop_front();
    return call;
  }

  size_t pending() {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  // Items per call, every call so far, in call order.
  std::vector<size_t> call_sizes() {
    absl::MutexLock lock(&mu_);
    return sizes_;
  }

 private:
  absl::Mutex mu_;
  AutoAnswer auto_answer_ ABSL_GUARDED_BY(mu_);
  std::deque<FakeCall> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> sizes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo_batcher::testing_util
