// libFuzzer target: arbitrary bytes as the body of a BatchWriteItem answer
// (status 200 and 400) and of a DescribeTable answer. The parser must never
// crash, and its result must be self-consistent.
//
// Build note: compile service/dynamodb/response_parser.cc and the codec
// sources with -fsanitize=fuzzer-no-link (plus address,undefined) too;
// linking the ordinary libraries leaves the parser uninstrumented and the
// fuzzer blind (coverage ~30 edges instead of ~1200).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "service/common/types.h"
#include "service/dynamodb/response_parser.h"

namespace {

using dynamo_batcher::BatchResult;
using dynamo_batcher::HttpResponse;
using dynamo_batcher::KeyAttribute;
using dynamo_batcher::KeyType;
using dynamo_batcher::TableSchema;

TableSchema MakeSchema(const char* name, KeyType pk, bool with_sort) {
  TableSchema s;
  s.name = name;
  s.partition_key = {"pk", pk};
  if (with_sort) s.sort_key = KeyAttribute{"sk", KeyType::kN};
  return s;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TableSchema kEvents = MakeSchema("events", KeyType::kS, true);
  static const TableSchema kBlobs = MakeSchema("blobs", KeyType::kB, false);

  HttpResponse response;
  response.body.assign(reinterpret_cast<const char*>(data), size);
  for (long status : {200L, 400L}) {
    response.status = status;
    for (const TableSchema* schema : {&kEvents, &kBlobs}) {
      const dynamo_batcher::BatchWriteResponse r =
          dynamo_batcher::ParseBatchWriteResponse(response, *schema);
      Check(r.http_status == status);
      if (r.result.kind != BatchResult::Kind::kSuccess) {
        Check(r.result.unprocessed_keys.empty());
        Check(!r.result.error_code.empty());
      }
      if (status == 200) Check(r.error_class.empty());
      if (status == 400) Check(r.result.kind != BatchResult::Kind::kSuccess);
    }
    (void)dynamo_batcher::ParseDescribeTableResponse("events", response);
  }
  return 0;
}
