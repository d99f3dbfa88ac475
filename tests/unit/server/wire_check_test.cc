// Parsing requests from raw bytes: what a message that does not parse is
// reported as, and how echoed client strings are cut and escaped.

#include "service/server/wire_check.h"

#include "absl/strings/str_replace.h"
#include "dynamobatcher/v1/batcher.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

namespace v1 = ::dynamobatcher::v1;
using ::testing::HasSubstr;

v1::WriteRequest OneOp() {
  v1::WriteRequest m;
  v1::WriteOp* op = m.add_ops();
  op->set_id(1);
  op->set_table("events");
  (*op->mutable_put()->mutable_attributes())["pk"].set_s("k");
  return m;
}

TEST(WireCheck, NamesTheFieldWithInvalidUtf8) {
  v1::WriteRequest m = OneOp();
  *m.add_ops() = m.ops(0);
  (*m.mutable_ops(1)->mutable_put()->mutable_attributes())["pk"].set_s("ZZ");
  std::string bytes = absl::StrReplaceAll(m.SerializeAsString(), {{"ZZ", "\xc3\x28"}});
  v1::WriteRequest out;
  ASSERT_FALSE(out.ParseFromString(bytes));
  EXPECT_THAT(DiagnoseParseFailure(v1::WriteRequest::descriptor(), bytes),
              HasSubstr("ops[1].put.attributes[0].value.s: invalid UTF-8"));
}

TEST(WireCheck, NamesNestingBeyondTheRecursionLimit) {
  v1::WriteRequest m = OneOp();
  v1::AttributeValue* v = &(*m.mutable_ops(0)->mutable_put()->mutable_attributes())["d"];
  for (int i = 0; i < 40; ++i) v = &(*v->mutable_m()->mutable_fields())["a"];
  v->set_s("x");
  const std::string bytes = m.SerializeAsString();
  v1::WriteRequest out;
  ASSERT_FALSE(out.ParseFromString(bytes));
  EXPECT_THAT(DiagnoseParseFailure(v1::WriteRequest::descriptor(), bytes),
              HasSubstr("nested more than 96 deep"));
}

TEST(WireCheck, ReportsTruncatedData) {
  std::string bytes = OneOp().SerializeAsString();
  bytes.resize(bytes.size() - 3);
  EXPECT_THAT(DiagnoseParseFailure(v1::WriteRequest::descriptor(), bytes), HasSubstr("ops[0]"));
}

TEST(WireCheck, EscapeCutsOnAUtf8BoundaryAndEscapesControls) {
  EXPECT_EQ(EscapeForMessage("plain"), "plain");
  EXPECT_EQ(EscapeForMessage("a\x01\"\\b"), "a\\x01\\\"\\\\b");
  // 63 ASCII bytes then a 2-byte character crossing the 64-byte cut.
  const std::string s = std::string(63, 'a') + "\xc3\xa9" + "zz";
  EXPECT_EQ(EscapeForMessage(s), std::string(63, 'a') + "...(67 bytes)");
}

}  // namespace
}  // namespace dynamo_batcher
