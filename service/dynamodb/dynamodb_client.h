#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/credentials.h"
#include "service/common/types.h"
#include "service/dynamodb/batch_writer.h"
#include "service/dynamodb/dynamodb_options.h"
#include "service/dynamodb/response_parser.h"
#include "service/http/http_transport.h"

namespace dynamo_batcher {

// DynamoDB over its JSON protocol: SigV4-signed POSTs with
// X-Amz-Target: DynamoDB_20120810.<Action>.
//
// Thread-safety: all methods may be called from any thread. Callbacks run on
// the transport's I/O thread, except when no request could be sent at all
// (credentials unavailable, transport shutting down): then `done` runs inline
// on the calling thread, so do not hold a lock that `done` takes.
//
// Usage:
//   DynamoDbClient ddb(options, transport.get(), creds.get());
//   ddb.BatchWriteItem(schema, body, [](BatchWriteResponse r) { ... });
class DynamoDbClient : public BatchWriter {
 public:
  DynamoDbClient(DynamoDbOptions options, HttpTransport* transport,
                 CredentialsProvider* credentials);

  const std::string& endpoint() const { return endpoint_; }

  void BatchWriteItem(const TableSchema& schema, std::string body,
                      std::function<void(BatchWriteResponse)> done) override;

  // Blocking; for start-up.
  absl::StatusOr<TableSchema> DescribeTable(const std::string& table);
  // Creates a PAY_PER_REQUEST table with `schema`'s key; OK if it exists.
  // For local development (dynalite) only.
  absl::Status CreateTableIfMissing(const TableSchema& schema);

  // Builds the signed request for `action` (exposed for tests).
  absl::StatusOr<HttpRequest> SignedRequest(absl::string_view action, std::string body,
                                            absl::Time now);

 private:
  DynamoDbOptions options_;
  HttpTransport* transport_;
  CredentialsProvider* credentials_;
  std::string endpoint_;  // scheme://host[:port]
  std::string host_;      // Host header value
  std::string url_;       // endpoint_ + "/"
};

}  // namespace dynamo_batcher
