#include "client/batchctl/op_lines.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher::batchctl {
namespace {

using ::testing::HasSubstr;

TEST(OpLines, ParsesLoadPutAndDeleteLines) {
  absl::StatusOr<FileOp> put =
      ParseLoadLine(R"({"table":"t","put":{"pk":{"S":"a"},"n":{"N":"1"}}})");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->table, "t");
  EXPECT_FALSE(put->is_delete);
  EXPECT_EQ(put->item.Find("n")->n(), "1");

  absl::StatusOr<FileOp> del = ParseLoadLine(R"({"table":"t","delete":{"pk":{"S":"b"}}})");
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_TRUE(del->is_delete);
  EXPECT_EQ(del->item.Find("pk")->s(), "b");
}

TEST(OpLines, RejectsBadLoadLines) {
  struct Case {
    const char* line;
    const char* want;
  } cases[] = {
      {"{", "invalid JSON"},
      {R"({"put":{"pk":{"S":"a"}}})", "missing \"table\""},
      {R"({"table":1,"put":{"pk":{"S":"a"}}})", "\"table\" must be a string"},
      {R"({"table":"t"})", "exactly one of"},
      {R"({"table":"t","put":{"pk":{"S":"a"}},"delete":{"pk":{"S":"a"}}})", "exactly one of"},
      {R"({"table":"t","put":{}})", "is empty"},
      {R"({"table":"t","put":{"pk":{"N":5}}})", "N must be a string"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<FileOp> op = ParseLoadLine(c.line);
    ASSERT_FALSE(op.ok()) << c.line;
    EXPECT_THAT(std::string(op.status().message()), HasSubstr(c.want)) << c.line;
  }
}

TEST(OpLines, ParsesDeadLetterRecords) {
  absl::StatusOr<FileOp> put =
      ParseDeadLetterLine(R"({"table":"t","op":"put","item":{"pk":{"S":"a"}},"error_code":"X",)"
                          R"("message":"m","attempts":3,"first_seen":"2024-01-01T00:00:00Z",)"
                          R"("failed_at":"2024-01-01T00:00:01Z"})");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_FALSE(put->is_delete);
  EXPECT_EQ(put->item.Find("pk")->s(), "a");

  absl::StatusOr<FileOp> del =
      ParseDeadLetterLine(R"({"table":"t","op":"delete","key":{"pk":{"S":"a"}}})");
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_TRUE(del->is_delete);

  EXPECT_FALSE(ParseDeadLetterLine(R"({"table":"t","op":"update","item":{}})").ok());
  EXPECT_FALSE(ParseDeadLetterLine(R"({"table":"t","op":"delete","item":{"pk":{"S":"a"}}})").ok());
}

TEST(OpLines, BlankAndCommentLinesAreSkipped) {
  EXPECT_TRUE(IsBlankLine(""));
  EXPECT_TRUE(IsBlankLine("   \t"));
  EXPECT_TRUE(IsBlankLine("# comment"));
  EXPECT_FALSE(IsBlankLine("{}"));
}

}  // namespace
}  // namespace dynamo_batcher::batchctl
