#pragma once

#include <deque>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "service/lifecycle/table_checker.h"

namespace dynamo_batcher {

// Answers DescribeTable from a script (then `fallback`), records calls.
class FakeTableChecker : public TableChecker {
 public:
  void Script(std::vector<absl::StatusOr<TableSchema>> answers) {
    absl::MutexLock lock(&mu_);
    for (auto& a : answers) answers_.push_back(std::move(a));
  }
  void SetFallback(absl::StatusOr<TableSchema> fallback) {
    absl::MutexLock lock(&mu_);
    fallback_ = std::move(fallback);
  }
  void SetCreateStatus(absl::Status s) {
    absl::MutexLock lock(&mu_);
    create_status_ = std::move(s);
  }

  absl::StatusOr<TableSchema> DescribeTable(const std::string& table) override {
    absl::MutexLock lock(&mu_);
    described_.push_back(table);
    if (answers_.empty()) return fallback_;
    absl::StatusOr<TableSchema> a = std::move(answers_.front());
    answers_.pop_front();
    return a;
  }
  absl::Status CreateTableIfMissing(const TableSchema& schema) override {
    absl::MutexLock lock(&mu_);
    created_.push_back(schema.name);
    return create_status_;
  }

  std::vector<std::string> described() const {
    absl::MutexLock lock(&mu_);
    return described_;
  }
  std::vector<std::string> created() const {
    absl::MutexLock lock(&mu_);
    return created_;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<absl::StatusOr<TableSchema>> answers_ ABSL_GUARDED_BY(mu_);
  absl::StatusOr<TableSchema> fallback_ ABSL_GUARDED_BY(mu_) =
      absl::UnavailableError("connection refused");
  absl::Status create_status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> described_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> created_ ABSL_GUARDED_BY(mu_);
};

inline TableSchema Schema(const std::string& name, const std::string& pk) {
  TableSchema s;
  s.name = name;
  s.partition_key.name = pk;
  s.partition_key.type = KeyType::kS;
  return s;
}

}  // namespace dynamo_batcher
