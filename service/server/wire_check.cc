#include "service/server/wire_check.h"

#include <vector>

#include <grpcpp/support/slice.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/wire_format_lite.h"
#include "service/common/log.h"

namespace dynamo_batcher {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// protobuf's default recursion limit is 100 nested messages; reporting a bit
// below it keeps the diagnosis on the safe side of the parser's own count.
constexpr int kDepthLimit = 96;

std::string Flatten(const grpc::ByteBuffer& raw) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!raw.Dump(&slices).ok()) return out;
  out.reserve(raw.Length());
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// Walks one message's fields; false with `*why` set at the first violation.
bool Walk(const Descriptor* type, CodedInputStream* in, int depth, const std::string& path,
          std::string* why) {
  std::vector<std::pair<int, int>> counts;  // field number -> occurrences so far
  auto next_index = [&counts](int number) {
    for (auto& [n, c] : counts) {
      if (n == number) return c++;
    }
    counts.emplace_back(number, 1);
    return 0;
  };
  while (true) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) {
      if (in->ConsumedEntireMessage() || in->BytesUntilLimit() == 0) return true;
      *why = absl::StrCat(path.empty() ? "message" : path, ": malformed protobuf wire data");
      return false;
    }
    const int number = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    const FieldDescriptor* field = type->FindFieldByNumber(number);
    std::string at = field != nullptr ? field->name() : absl::StrCat("field ", number);
    if (field != nullptr && field->is_repeated()) {
      absl::StrAppend(&at, "[", next_index(number), "]");
    }
    at = path.empty() ? at : absl::StrCat(path, ".", at);
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT: {
        uint64_t v;
        if (!in->ReadVarint64(&v)) {
          *why = absl::StrCat(at, ": truncated varint");
          return false;
        }
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED64: {
        uint64_t v;
        if (!in->ReadLittleEndian64(&v)) {
          *why = absl::StrCat(at, ": truncated fixed64");
          return false;
        }
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED32: {
        uint32_t v;
        if (!in->ReadLittleEndian32(&v)) {
          *why = absl::StrCat(at, ": truncated fixed32");
          return false;
        }
        break;
      }
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t len;
        if (!in->ReadVarint32(&len) ||
            (in->BytesUntilLimit() >= 0 && static_cast<int64_t>(len) > in->BytesUntilLimit())) {
          *why = absl::StrCat(at, ": length runs past the end of the message");
          return false;
        }
        if (field != nullptr && field->type() == FieldDescriptor::TYPE_STRING) {
          std::string s;
          if (!in->ReadString(&s, static_cast<int>(len))) {
            *why = absl::StrCat(at, ": length runs past the end of the message");
            return false;
          }
          if (!google::protobuf::internal::IsStructurallyValidUTF8(s.data(),
                                                                   static_cast<int>(s.size()))) {
            *why = absl::StrCat(at,
                                ": invalid UTF-8 in a string field (use valid UTF-8; "
                                "binary data belongs in a bytes field)");
            return false;
          }
        } else if (field != nullptr && field->type() == FieldDescriptor::TYPE_MESSAGE) {
          if (depth + 1 > kDepthLimit) {
            *why = absl::StrCat(at, ": messages nested more than ", kDepthLimit,
                                " deep (protobuf's recursion limit is 100; a DynamoDB map or "
                                "list nests at most 32 levels)");
            return false;
          }
          const auto limit = in->PushLimit(static_cast<int>(len));
          if (!Walk(field->message_type(), in, depth + 1, at, why)) return false;
          in->PopLimit(limit);
        } else if (!in->Skip(static_cast<int>(len))) {
          *why = absl::StrCat(at, ": length runs past the end of the message");
          return false;
        }
        break;
      }
      default:
        *why = absl::StrCat(at, ": wire type ", WireFormatLite::GetTagWireType(tag),
                            " is not used by this API");
        return false;
    }
  }
}

// Keeps the end of a long path (the failing field) and the start.
std::string Shorten(std::string s) {
  constexpr size_t kMax = 400;
  if (s.size() <= kMax) return s;
  return absl::StrCat(s.substr(0, 120), "...", s.substr(s.size() - (kMax - 123)));
}

}  // namespace

std::string DiagnoseParseFailure(const Descriptor* type, absl::string_view bytes) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  std::string why;
  if (!Walk(type, &in, 0, "", &why)) return Shorten(why);
  return "malformed protobuf wire data";
}

bool ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* out, std::string* why) {
  return ParseRequest(raw, out, out->GetDescriptor(), why);
}

bool ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* out,
                  const google::protobuf::Descriptor* explain_as, std::string* why) {
  const std::string bytes = Flatten(raw);
  if (out->ParseFromString(bytes)) return true;
  *why = absl::StrCat(explain_as->name(),
                      " does not parse: ", DiagnoseParseFailure(explain_as, bytes));
  return false;
}

std::string EscapeForMessage(absl::string_view s, size_t max_bytes) {
  size_t cut = std::min(s.size(), max_bytes);
  // Back up to a UTF-8 boundary (never split a multi-byte character).
  while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  std::string out;
  out.reserve(cut + 16);
  for (size_t i = 0; i < cut; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (cut < s.size()) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out;
}

void RouteProtobufLogs() {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char* filename,
                                     int line, const std::string& message) {
    LogRateLimited(level >= google::protobuf::LOGLEVEL_ERROR ? LogLevel::kWarn : LogLevel::kInfo,
                   absl::StrCat("protobuf/", filename, ":", line), absl::Seconds(10), "protobuf",
                   {{"message", message}});
  });
}

void SerializeTo(const google::protobuf::Message& message, grpc::ByteBuffer* out) {
  grpc::Slice slice(message.SerializeAsString());
  *out = grpc::ByteBuffer(&slice, 1);
}

}  // namespace dynamo_batcher
