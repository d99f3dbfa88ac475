#pragma once

#include <string>

#include <grpcpp/support/byte_buffer.h>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace dynamo_batcher {

// Parses a request received as raw bytes. gRPC's typed callback API reports a
// message that does not parse the same way as the client's half-close
// (OnReadDone(false)), so the service receives raw bytes and parses them
// itself; a failure becomes an error naming what failed.
//
// Returns true with `*out` filled, or false with `*why` set, e.g.
// `ops[3].put.attributes[0].value.s: invalid UTF-8 in a string field`.
bool ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* out, std::string* why);

// The same, parsing into `out` but explaining a failure as `explain_as` (a
// wire-identical type, e.g. the API's dynamobatcher.v1.WriteRequest for the
// sidecar's private view of it), so clients read their own field names.
bool ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* out,
                  const google::protobuf::Descriptor* explain_as, std::string* why);

// Explains why `bytes` does not parse as `type`: the path of the first field
// that breaks a rule protobuf's parser enforces (invalid UTF-8 in a string
// field, nesting deeper than the parser's recursion limit, malformed wire
// data). Returns a generic description when no rule is found. Pure function.
std::string DiagnoseParseFailure(const google::protobuf::Descriptor* type, absl::string_view bytes);

// `s` made safe to echo in an error message: at most `max_bytes` bytes of it
// (cut on a UTF-8 boundary, with the full length noted), control characters,
// quotes and backslashes escaped.
std::string EscapeForMessage(absl::string_view s, size_t max_bytes = 64);

// Routes protobuf's own log lines (e.g. "String field ... contains invalid
// UTF-8", printed once per bad message a client sends) to the JSON log,
// rate-limited, so a hostile client cannot flood stderr. Call once at start.
void RouteProtobufLogs();

// Serializes `message` into `out` (for raw-method responses).
void SerializeTo(const google::protobuf::Message& message, grpc::ByteBuffer* out);

}  // namespace dynamo_batcher
