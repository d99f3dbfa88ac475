// libFuzzer target for the codec: arbitrary bytes as a serialized WriteOp
// through EncodeWriteOp, and as raw text through CanonicalNumber and
// Base64Decode. Checks invariants, not just absence of crashes. The same
// bytes also as the Write stream's private view of a WriteOp
// (internal/write_request.proto): it must parse and encode alike.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "dynamobatcher/internal/write_request.pb.h"
#include "dynamobatcher/v1/batcher.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "service/codec/codec.h"
#include "service/codec/text.h"

namespace {

using dynamo_batcher::TableSchema;

const TableSchema& Schema() {
  static const TableSchema* schema = [] {
    auto* s = new TableSchema;
    s->name = "events";
    s->partition_key = {"pk", dynamo_batcher::KeyType::kS};
    s->sort_key = dynamo_batcher::KeyAttribute{"sk", dynamo_batcher::KeyType::kN};
    return s;
  }();
  return *schema;
}

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Invalid UTF-8 in string fields is expected input; keep the log quiet.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view raw(reinterpret_cast<const char*>(data), size);

  dynamobatcher::v1::WriteOp op;
  dynamobatcher::internal::WriteOp view;
  const bool parsed = op.ParseFromArray(data, static_cast<int>(size));
  Check(parsed == view.ParseFromArray(data, static_cast<int>(size)));
  if (parsed) {
    dynamo_batcher::EncodeResult encoded = dynamo_batcher::EncodeWriteOp(op, Schema());
    dynamo_batcher::EncodeResult viewed = dynamo_batcher::EncodeWriteOp(view, Schema());
    dynamobatcher::internal::WriteRequest request;
    *request.add_ops() = view;
    // Both put and delete_key: the view defers to v1, which kept one.
    const bool deferred = dynamo_batcher::ViewNeedsApiParse(request);
    Check(deferred == (view.has_put() && view.has_delete_key()));
    Check(!deferred || op.has_put() != op.has_delete_key());
    Check(deferred || encoded.ok() == viewed.ok());
    if (encoded.ok() && !deferred) {
      // Attribute order in the JSON may differ (a map's order is its own).
      Check(encoded.write.key == viewed.write.key);
      Check(encoded.write.item_size == viewed.write.item_size);
      Check(encoded.write.is_delete == viewed.write.is_delete);
      Check(encoded.write.request_json.size() == viewed.write.request_json.size());
    }
    const dynamo_batcher::EncodedWrite& out = encoded.write;
    if (encoded.ok()) {
      Check(!out.key.empty());
      Check(!out.request_json.empty());
      Check(out.item_size <= dynamo_batcher::kMaxItemBytes);
      Check(out.item_size == dynamo_batcher::ItemSize(out.is_delete ? op.delete_key() : op.put()));
      std::string body;
      dynamo_batcher::BuildBatchWriteBody("events", {&out.request_json}, &body);
      Check(body.size() > out.request_json.size());
    } else {
      Check(!encoded.rejection->code.empty());
      Check(dynamo_batcher::codec_internal::IsValidUtf8(encoded.rejection->message));
      Check(out.key.empty() && out.request_json.empty());
    }
  }

  absl::StatusOr<std::string> canonical = dynamo_batcher::CanonicalNumber(raw);
  if (canonical.ok()) {
    // Canonical form is a fixed point.
    absl::StatusOr<std::string> again = dynamo_batcher::CanonicalNumber(*canonical);
    Check(again.ok() && *again == *canonical);
  }

  absl::StatusOr<std::string> decoded = dynamo_batcher::Base64Decode(raw);
  if (decoded.ok()) {
    // Strict decoding means exactly one encoding per byte string.
    std::string encoded;
    dynamo_batcher::AppendBase64(*decoded, &encoded);
    Check(encoded == raw);
  }
  std::string encoded;
  dynamo_batcher::AppendBase64(raw, &encoded);
  absl::StatusOr<std::string> round_trip = dynamo_batcher::Base64Decode(encoded);
  Check(round_trip.ok() && *round_trip == raw);
  return 0;
}
