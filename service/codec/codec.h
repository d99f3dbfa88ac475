#pragma once

// Proto -> DynamoDB JSON, with DynamoDB's validation rules applied first.
// Pure functions: no I/O, no clock, no globals.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dynamobatcher/internal/write_request.pb.h"
#include "dynamobatcher/v1/batcher.pb.h"
#include "service/common/types.h"

namespace dynamo_batcher {

inline constexpr size_t kMaxItemBytes = 400 * 1024;
inline constexpr int kMaxNestingDepth = 32;

// What EncodeWriteOp made of one op: the encoded write, or why it was
// refused (then `write` is empty).
struct EncodeResult {
  EncodedWrite write;
  std::optional<Rejection> rejection;

  bool ok() const { return !rejection.has_value(); }
};

// Validates `op` against `schema` and encodes it. A refused op gets a
// Rejection: a code (the `reason` label of ops_rejected_total) and a message
// naming the op id, the field and the rule. The caller has already checked
// that `op.table()` names `schema`.
//
// Rules: exactly one of put/delete_key; key attributes present with the
// schema's type; delete_key holds only key attributes; every AttributeValue
// has exactly one type; sets non-empty without duplicates (numbers compared by
// value); numbers by DynamoDB's rules; key strings/binaries non-empty; item
// size <= 400 KB by DynamoDB's size rules; nesting <= 32 levels.
EncodeResult EncodeWriteOp(const dynamobatcher::v1::WriteOp& op, const TableSchema& schema);

// The same for an op of the Write stream's own parse (wire-identical to v1;
// internal/write_request.proto): the same result for the same bytes, except
// the order of attributes in request_json (a map's order is its own), and
// except an op with both put and delete_key on the wire, which v1's oneof
// resolves by order and the view cannot (it is encoded as the delete here):
// a request with such an op is parsed as v1 instead (ViewNeedsApiParse).
EncodeResult EncodeWriteOp(const dynamobatcher::internal::WriteOp& op, const TableSchema& schema);

// True when an op of `request` has both put and delete_key. v1's `oneof op`
// keeps the one that came last on the wire; the view keeps both and not
// their order, so such a request must be parsed and encoded as v1.
bool ViewNeedsApiParse(const dynamobatcher::internal::WriteRequest& request);

// Validates a DynamoDB number (up to 38 significant digits, magnitude in
// 1E-130 .. 9.9999999999999999999999999999999999999E+125, or zero) and
// returns its canonical form, equal for numerically equal inputs
// ("1", "1.0", "1e0", "10E-1" -> same string).
absl::StatusOr<std::string> CanonicalNumber(absl::string_view text);

// Appends one key component to a canonical key. `value` is the string's or
// the binary's raw bytes, or the number's text. Used for ops and for keys
// read back from DynamoDB's UnprocessedItems.
absl::Status AppendCanonicalKeyPart(KeyType type, absl::string_view value, std::string* key);

// Appends the DynamoDB JSON of one attribute value ({"S":"..."} etc.).
void AppendAttributeValueJson(const dynamobatcher::v1::AttributeValue& v, std::string* out);

// Appends a JSON string literal (quotes and escapes included).
void AppendJsonString(absl::string_view s, std::string* out);

// Appends standard base64 of `bytes`.
void AppendBase64(absl::string_view bytes, std::string* out);
absl::StatusOr<std::string> Base64Decode(absl::string_view b64);

// Writes the whole BatchWriteItem body for one table into `*out` (cleared
// first; its capacity is reused):
// {"RequestItems":{"<table>":[e1,e2,...]},"ReturnConsumedCapacity":"TOTAL"}
void BuildBatchWriteBody(absl::string_view table,
                         const std::vector<const std::string*>& request_jsons, std::string* out);

// DynamoDB item size of a proto item (names + values, DynamoDB's rules).
size_t ItemSize(const dynamobatcher::v1::Item& item);

}  // namespace dynamo_batcher
