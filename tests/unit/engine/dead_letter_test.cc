#include "service/engine/dead_letter.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

using ::testing::HasSubstr;

// A fresh directory under TMPDIR, removed with its files at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/dead_letter_test.XXXXXX");
    path_ = mkdtemp(tmpl.data());
    chmod(path_.c_str(), 0700);
  }
  ~TempDir() { system(absl::StrCat("rm -rf '", path_, "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

OpResult FailedPut(uint64_t id) {
  OpResult r;
  r.op.id = id;
  r.op.write.request_json = R"({"PutRequest":{"Item":{"pk":{"S":"secret-value"}}}})";
  r.error_code = "ValidationException";
  r.message = "bad";
  return r;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return static_cast<mode_t>(-1);
  return st.st_mode & 07777;
}

// Restores the umask when a test ends.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

TEST(DeadLetter, FileIsCreatedReadableByOwnerOnlyWhateverTheUmask) {
  ScopedUmask permissive(0);  // fopen("a") would have made it 0666
  TempDir dir;
  const std::string path = dir.path() + "/dl.jsonl";
  DeadLetterOptions o;
  o.path = path;
  DeadLetterWriter w(o);
  ASSERT_TRUE(w.Open().ok());
  ASSERT_TRUE(w.Append("events", FailedPut(1), absl::Now(), absl::Now()).ok());
  w.Sync();
  EXPECT_EQ(ModeOf(path), 0600);
}

TEST(DeadLetter, RotatedFilesStayReadableByOwnerOnly) {
  ScopedUmask permissive(0);
  TempDir dir;
  const std::string path = dir.path() + "/dl.jsonl";
  DeadLetterOptions o;
  o.path = path;
  o.max_bytes = 200;  // every line or two rotates
  o.max_files = 3;
  DeadLetterWriter w(o);
  ASSERT_TRUE(w.Open().ok());
  for (uint64_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(w.Append("events", FailedPut(i), absl::Now(), absl::Now()).ok());
  }
  w.Sync();
  for (const std::string& p : {path, path + ".1", path + ".2"}) {
    EXPECT_EQ(ModeOf(p), 0600) << p;
  }
}

TEST(DeadLetter, ExistingFileReadableByOthersIsTightened) {
  TempDir dir;
  const std::string path = dir.path() + "/dl.jsonl";
  { std::ofstream(path) << "{}\n"; }
  chmod(path.c_str(), 0644);
  DeadLetterOptions o;
  o.path = path;
  DeadLetterWriter w(o);
  ASSERT_TRUE(w.Open().ok());
  EXPECT_EQ(ModeOf(path), 0600);
}

TEST(DeadLetter, SymlinkAtThePathIsRefusedNotFollowed) {
  TempDir dir;
  const std::string target = dir.path() + "/elsewhere";
  { std::ofstream(target) << ""; }
  const std::string path = dir.path() + "/dl.jsonl";
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
  DeadLetterOptions o;
  o.path = path;
  DeadLetterWriter w(o);
  absl::Status s = w.Open();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("dead_letter.path"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("symbolic link"));
  // Nothing was written through the link.
  std::ifstream in(target);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), "");
}

TEST(DeadLetter, DirectoryWritableByOthersIsWarnedAbout) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);
  DeadLetterOptions o;
  o.path = dir.path() + "/dl.jsonl";
  DeadLetterWriter w(o);
  testing::internal::CaptureStderr();
  ASSERT_TRUE(w.Open().ok());
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("dead-letter directory is writable by other users"));
  EXPECT_THAT(log, HasSubstr(dir.path()));
}

TEST(DeadLetter, PrivateDirectoryIsNotWarnedAbout) {
  TempDir dir;
  DeadLetterOptions o;
  o.path = dir.path() + "/dl.jsonl";
  DeadLetterWriter w(o);
  testing::internal::CaptureStderr();
  ASSERT_TRUE(w.Open().ok());
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace dynamo_batcher
