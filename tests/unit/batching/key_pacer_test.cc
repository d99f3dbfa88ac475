#include "service/batching/key_pacer.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dynamo_batcher {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);

// A canonical key component: tag, 4-byte big-endian length, bytes.
std::string Part(char tag, const std::string& v) {
  std::string out(1, tag);
  const uint32_t n = static_cast<uint32_t>(v.size());
  out += static_cast<char>(n >> 24);
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
  return out + v;
}

TEST(KeyPacer, PartitionKeyPartIsTheFirstComponent) {
  const std::string pk = Part('S', "hot");
  EXPECT_EQ(PartitionKeyPart(pk + Part('N', "17")), pk);
  EXPECT_EQ(PartitionKeyPart(pk), pk);
  // Malformed (length beyond the end): the whole key.
  const std::string bad = std::string("S\0\0\0\x09", 5) + "ab";
  EXPECT_EQ(PartitionKeyPart(bad), bad);
  EXPECT_EQ(PartitionKeyPart("ab"), "ab");
}

std::vector<KeyPacer::Item> Call(const std::vector<std::pair<std::string, bool>>& v,
                                 std::vector<std::string>* storage) {
  storage->clear();
  for (const auto& [k, lost] : v) storage->push_back(k);
  std::vector<KeyPacer::Item> items;
  for (size_t i = 0; i < v.size(); ++i) items.push_back({(*storage)[i], v[i].second});
  return items;
}

// One partition key loses most of its items while the others go through:
// that key is paced, its items are reported as hot.
TEST(KeyPacer, ConcentratedLossPacesThatKeyOnly) {
  KeyPacer p;
  std::vector<std::pair<std::string, bool>> v;
  for (int i = 0; i < 10; ++i) v.push_back({"hot", i >= 3});  // 7 of 10 lost
  for (int i = 0; i < 15; ++i) v.push_back({"k" + std::to_string(i), false});
  std::vector<std::string> storage;
  size_t hot_sent = 0, hot_lost = 0;
  p.OnCall(Call(v, &storage), 2500, kT0 - absl::Milliseconds(20), &hot_sent, &hot_lost);
  EXPECT_EQ(p.paced_keys(kT0), 0u) << "one concentrated call makes a suspect only";
  EXPECT_EQ(hot_sent, 10u);  // but its items stay out of the table's feedback
  p.OnCall(Call(v, &storage), 2500, kT0, &hot_sent, &hot_lost);
  EXPECT_EQ(hot_sent, 10u);
  EXPECT_EQ(hot_lost, 7u);
  EXPECT_EQ(p.paced_keys(kT0), 1u);
  EXPECT_TRUE(p.IsPaced("hot", kT0));
  EXPECT_FALSE(p.IsPaced("k1", kT0));
  // Estimated at 10/25 of 2500 items/s, paced at 0.7 of that.
  EXPECT_NEAR(p.RateOf("hot"), 700, 1);
  // Its bucket starts empty and refills at its rate.
  absl::Time ready_at;
  EXPECT_FALSE(p.TryAcquire("hot", kT0, &ready_at));
  EXPECT_GT(ready_at, kT0);
  EXPECT_TRUE(p.TryAcquire("hot", ready_at, nullptr));
  EXPECT_TRUE(p.TryAcquire("k1", kT0, nullptr));  // unpaced keys always pass
  // Quiet for longer than the expiry: unpaced.
  EXPECT_EQ(p.paced_keys(kT0 + absl::Seconds(11)), 0u);
}

// Loss spread over the whole call (a table-wide limit or random loss) paces
// no key, even for keys with several items.
TEST(KeyPacer, SpreadLossPacesNoKey) {
  KeyPacer p;
  std::mt19937 rng(3);
  std::vector<std::string> storage;
  for (int call = 0; call < 200; ++call) {
    std::vector<std::pair<std::string, bool>> v;
    for (int i = 0; i < 25; ++i) {
      v.push_back({"k" + std::to_string(i % 5), std::uniform_real_distribution<>(0, 1)(rng) < 0.3});
    }
    size_t hot_sent = 0, hot_lost = 0;
    p.OnCall(Call(v, &storage), 2500, kT0 + absl::Milliseconds(call), &hot_sent, &hot_lost);
  }
  // 30% random loss over 5 items of a key reaches the 50% bar now and then,
  // but the rest of the call loses as much: never concentrated.
  EXPECT_EQ(p.paced_keys(kT0 + absl::Milliseconds(200)), 0u);
}

// A paced key's rate: one decrease per window, multiplicative increase while
// quiet, never below min_rate.
TEST(KeyPacer, RateDecreasesOncePerWindowAndRecovers) {
  KeyPacerOptions o;
  o.min_rate = 5;
  KeyPacer p(o);
  std::vector<std::string> storage;
  auto hot_call = [&](absl::Time t) {
    std::vector<std::pair<std::string, bool>> v;
    for (int i = 0; i < 4; ++i) v.push_back({"hot", true});
    for (int i = 0; i < 4; ++i) v.push_back({"c" + std::to_string(i), false});
    size_t s = 0, l = 0;
    p.OnCall(Call(v, &storage), 800, t, &s, &l);
  };
  hot_call(kT0 - absl::Milliseconds(200));  // suspect
  hot_call(kT0);
  const double r0 = p.RateOf("hot");
  EXPECT_NEAR(r0, 800 * 0.5 * 0.7, 1e-6);
  hot_call(kT0 + absl::Milliseconds(50));  // same window: no second cut
  EXPECT_GE(p.RateOf("hot"), r0);          // only the quiet-time increase
  hot_call(kT0 + absl::Milliseconds(150));
  EXPECT_LT(p.RateOf("hot"), r0);
  for (int i = 0; i < 100; ++i) hot_call(kT0 + absl::Milliseconds(300 + 200 * i));
  EXPECT_GE(p.RateOf("hot"), 5);
  const double low = p.RateOf("hot");
  p.TryAcquire("hot", kT0 + absl::Milliseconds(300 + 200 * 99 + 5000), nullptr);
  EXPECT_GT(p.RateOf("hot"), low * 2);  // 1.2^5 = 2.5x after 5 quiet seconds
}

// A key-range throttle of a whole call paces its most frequent partition key.
TEST(KeyPacer, KeyRangeThrottlePacesTheDominantKey) {
  KeyPacer p;
  std::vector<std::pair<std::string, bool>> v;
  for (int i = 0; i < 20; ++i) v.push_back({"hot", true});
  for (int i = 0; i < 5; ++i) v.push_back({"c" + std::to_string(i), true});
  std::vector<std::string> storage;
  p.OnKeyRangeThrottle(Call(v, &storage), 1000, kT0);
  EXPECT_TRUE(p.IsPaced("hot", kT0));
  EXPECT_FALSE(p.IsPaced("c0", kT0));
}

// The number of paced keys is bounded.
TEST(KeyPacer, PacedKeysAreBounded) {
  KeyPacerOptions o;
  o.max_keys = 3;
  KeyPacer p(o);
  std::vector<std::string> storage;
  for (int k = 0; k < 10; ++k) {
    std::vector<std::pair<std::string, bool>> v;
    for (int i = 0; i < 3; ++i) v.push_back({"h" + std::to_string(k), true});
    for (int i = 0; i < 10; ++i) v.push_back({"c" + std::to_string(i), false});
    size_t s = 0, l = 0;
    p.OnCall(Call(v, &storage), 1000, kT0 + absl::Microseconds(k), &s, &l);
    p.OnCall(Call(v, &storage), 1000, kT0 + absl::Milliseconds(k), &s, &l);
  }
  EXPECT_EQ(p.paced_keys(kT0 + absl::Milliseconds(10)), 3u);
  EXPECT_TRUE(p.IsPaced("h9", kT0 + absl::Milliseconds(10)));
}

}  // namespace
}  // namespace dynamo_batcher
