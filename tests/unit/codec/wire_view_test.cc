// The Write stream parses messages as the sidecar's private view
// (proto/dynamobatcher/internal/write_request.proto: repeated attribute
// entries instead of the API's map). Differential test: the same bytes,
// parsed as the API's dynamobatcher.v1.WriteOp (protobuf's own map
// semantics: of repeated names the last wins) and as the private view,
// must parse alike and encode alike. Random ops from a fixed seed, with
// repeated names, invalid values, both oneof members, and byte mutations.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dynamobatcher/internal/write_request.pb.h"
#include "dynamobatcher/v1/batcher.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "service/codec/codec.h"
#include "tests/support/schemas.h"

namespace dynamo_batcher {
namespace {

namespace v1 = ::dynamobatcher::v1;
namespace wire = ::dynamobatcher::internal;

using test_support::EventsSchema;

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  std::string Text(bool maybe_bad) {
    static const char* kPool[] = {"", "a", "k1", "héllo", "x\"y\\z", "\n\t", "日本"};
    std::string s = kPool[Int(0, 6)];
    if (Chance(0.2)) s += std::string(Int(1, 40), 'v');
    // Invalid UTF-8 makes the whole message fail to parse (proto3 strings).
    if (maybe_bad && Chance(0.05)) s += "\xff";
    return s;
  }
  std::string Number(bool maybe_bad) {
    static const char* kGood[] = {"0", "1", "-1.5", "1e3", "10E-1", "12345678901234567890"};
    static const char* kBad[] = {"", "abc", "1e999", "--1", "1.2.3"};
    return maybe_bad && Chance(0.4) ? kBad[Int(0, 4)] : kGood[Int(0, 5)];
  }

  // A value; `maybe_bad` allows values DynamoDB refuses (empty sets,
  // duplicate members, bad numbers, no type at all).
  void Value(v1::AttributeValue* v, bool maybe_bad, int depth) {
    const int kind = Int(0, depth > 2 ? 6 : 8);
    switch (kind) {
      case 0:
        v->set_s(Text(maybe_bad));
        break;
      case 1:
        v->set_n(Number(maybe_bad));
        break;
      case 2:
        v->set_b(Text(false));
        break;
      case 3: {
        auto* ss = v->mutable_ss();
        const int n = maybe_bad ? Int(0, 3) : Int(1, 3);
        for (int i = 0; i < n; ++i)
          ss->add_values(maybe_bad ? Text(false) : "m" + std::to_string(i));
        break;
      }
      case 4: {
        auto* ns = v->mutable_ns();
        const int n = maybe_bad ? Int(0, 3) : Int(1, 3);
        for (int i = 0; i < n; ++i) ns->add_values(maybe_bad ? Number(true) : std::to_string(i));
        break;
      }
      case 5:
        v->set_null_value(!maybe_bad || Chance(0.7));
        break;
      case 6:
        if (maybe_bad && Chance(0.5)) break;  // no type set
        v->set_bool_value(Chance(0.5));
        break;
      case 7: {
        auto* m = v->mutable_m()->mutable_fields();
        const int n = Int(0, 3);
        for (int i = 0; i < n; ++i) Value(&(*m)[Text(false)], maybe_bad, depth + 1);
        break;
      }
      case 8: {
        auto* l = v->mutable_l();
        const int n = Int(0, 3);
        for (int i = 0; i < n; ++i) Value(l->add_values(), maybe_bad, depth + 1);
        break;
      }
    }
  }

  // Entries of an item, names from a small pool so they repeat.
  void Item(wire::Item* item, bool is_delete) {
    static const char* kNames[] = {"pk", "sk", "a", "b", "c", ""};
    // Sometimes more entries than the reader checks pairwise (16).
    const int n = Chance(0.05) ? Int(17, 30) : Int(0, 7);
    for (int i = 0; i < n; ++i) {
      wire::Attribute* a = item->add_attributes();
      a->set_key(kNames[Int(0, is_delete ? 1 : 5)]);
      if (a->key() == "pk" && Chance(0.85)) {
        a->mutable_value()->set_s(Chance(0.9) ? "k" + std::to_string(Int(0, 99)) : "");
      } else if (a->key() == "sk" && Chance(0.85)) {
        a->mutable_value()->set_n(Number(Chance(0.2)));
      } else if (!is_delete || Chance(0.1)) {
        Value(a->mutable_value(), Chance(0.25), 0);
      }
    }
  }

  // Serialized bytes of a random op, sometimes two ops' bytes concatenated
  // (a merge: the later oneof member wins, fields of both combine).
  std::string OpBytes() {
    std::string bytes;
    const int parts = Chance(0.1) ? 2 : 1;
    for (int p = 0; p < parts; ++p) {
      wire::WriteOp op;
      op.set_id(Int(0, 1000));
      if (Chance(0.9)) op.set_table("events");
      const int which = Int(0, 9);
      if (which < 6) {
        Item(op.mutable_put(), false);
      } else if (which < 9) {
        Item(op.mutable_delete_key(), true);
      }
      bytes += op.SerializeAsString();
    }
    return bytes;
  }

  void Mutate(std::string* bytes) {
    if (bytes->empty()) return;
    const int edits = Int(1, 3);
    for (int e = 0; e < edits && !bytes->empty(); ++e) {
      const size_t at = static_cast<size_t>(Int(0, static_cast<int>(bytes->size()) - 1));
      switch (Int(0, 3)) {
        case 0:
          (*bytes)[at] = static_cast<char>(Int(0, 255));
          break;
        case 1:
          bytes->erase(at, 1);
          break;
        case 2:
          bytes->insert(at, 1, static_cast<char>(Int(0, 255)));
          break;
        case 3:
          bytes->resize(at);
          break;
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

bool SameJson(const std::string& a, const std::string& b) {
  rapidjson::Document da, db;
  da.Parse(a.c_str(), a.size());
  db.Parse(b.c_str(), b.size());
  // Object members compare by name, whatever their order.
  return !da.HasParseError() && !db.HasParseError() && da == db;
}

// The last entry of each name, as a map parse keeps them (the model).
std::vector<const wire::Attribute*> LastOfEachName(const wire::Item& item) {
  std::vector<const wire::Attribute*> out;
  for (int i = 0; i < item.attributes_size(); ++i) {
    bool later = false;
    for (int j = i + 1; j < item.attributes_size(); ++j) {
      later = later || item.attributes(j).key() == item.attributes(i).key();
    }
    if (!later) out.push_back(&item.attributes(i));
  }
  return out;
}

// Whether `v` holds a map at any depth: the order protobuf iterates a map
// in is its own (it differs between two parses of the same bytes), so
// which of two refusable members of one map is reported first is too.
bool HasMap(const v1::AttributeValue& v) {
  if (v.has_m()) return true;
  if (v.has_l()) {
    for (const auto& child : v.l().values()) {
      if (HasMap(child)) return true;
    }
  }
  return false;
}

struct Tally {
  int parsed = 0, encoded = 0, rejected = 0, repeated_names = 0, unparsed = 0, deferred = 0;
};

// Parses `bytes` both ways and checks they agree; returns false (with a
// gtest failure) at the first disagreement.
bool Agree(const std::string& bytes, const TableSchema& schema, Tally* tally) {
  v1::WriteOp api;
  wire::WriteOp view;
  const bool api_ok = api.ParseFromString(bytes);
  const bool view_ok = view.ParseFromString(bytes);
  EXPECT_EQ(api_ok, view_ok) << "parse disagrees";
  if (api_ok != view_ok) return false;
  if (!api_ok) {
    ++tally->unparsed;
    return true;
  }
  ++tally->parsed;
  wire::WriteRequest request;
  *request.add_ops() = view;
  // Both oneof members on the wire: v1 kept the later one, the view both.
  EXPECT_EQ(ViewNeedsApiParse(request), view.has_put() && view.has_delete_key());
  if (view.has_put() && view.has_delete_key()) {
    // The view defers to v1 here (the Write stream parses such a message as
    // v1); v1 kept exactly one of them.
    EXPECT_NE(api.has_put(), api.has_delete_key());
    ++tally->deferred;
    return !::testing::Test::HasFailure();
  }
  const EncodeResult a = EncodeWriteOp(api, schema);
  const EncodeResult b = EncodeWriteOp(view, schema);
  EXPECT_EQ(a.ok(), b.ok()) << (a.ok() ? b.rejection->message : a.rejection->message);
  if (a.ok() != b.ok()) return false;
  const wire::Item& item = view.has_delete_key() ? view.delete_key() : view.put();
  const std::vector<const wire::Attribute*> last = LastOfEachName(item);
  if (static_cast<int>(last.size()) < item.attributes_size()) ++tally->repeated_names;
  if (a.ok()) {
    ++tally->encoded;
    EXPECT_EQ(a.write.key, b.write.key);
    EXPECT_EQ(a.write.is_delete, b.write.is_delete);
    EXPECT_EQ(a.write.item_size, b.write.item_size);
    EXPECT_TRUE(SameJson(a.write.request_json, b.write.request_json))
        << a.write.request_json << "\n"
        << b.write.request_json;
    return a.write.key == b.write.key && a.write.item_size == b.write.item_size &&
           SameJson(a.write.request_json, b.write.request_json);
  }
  ++tally->rejected;
  // Which refusal is reported first depends on the attributes' order only
  // when two or more attributes are refusable; with one, code and message
  // must be the same.
  int refusable = 0;
  bool refusable_map = false;
  for (const wire::Attribute* attr : last) {
    wire::WriteOp one;
    one.set_id(view.id());
    wire::Item* copy = view.has_delete_key() ? one.mutable_delete_key() : one.mutable_put();
    if (attr->key() != "pk") {
      const wire::Attribute* pk = nullptr;
      for (const wire::Attribute* other : last) {
        if (other->key() == "pk") pk = other;
      }
      if (pk != nullptr) *copy->add_attributes() = *pk;
    }
    if (attr->key() != "sk") {
      for (const wire::Attribute* other : last) {
        if (other->key() == "sk") *copy->add_attributes() = *other;
      }
    }
    *copy->add_attributes() = *attr;
    if (!EncodeWriteOp(one, schema).ok()) {
      ++refusable;
      refusable_map = refusable_map || HasMap(attr->value());
    }
  }
  if (refusable <= 1 && !refusable_map) {
    EXPECT_EQ(a.rejection->code, b.rejection->code);
    EXPECT_EQ(a.rejection->message, b.rejection->message);
    return a.rejection->code == b.rejection->code && a.rejection->message == b.rejection->message;
  }
  return true;
}

TEST(WireView, ParsesAndEncodesLikeTheApiMessage) {
  google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 is expected input
  const TableSchema schema = EventsSchema();
  Gen gen(20261202);
  Tally tally;
  for (int i = 0; i < 20000; ++i) {
    const std::string bytes = gen.OpBytes();
    ASSERT_TRUE(Agree(bytes, schema, &tally)) << "case " << i << " (seed 20261202)";
  }
  // The generator reaches every branch often enough to mean something.
  EXPECT_GT(tally.encoded, 2000);
  EXPECT_GT(tally.rejected, 2000);
  EXPECT_GT(tally.repeated_names, 2000);
  EXPECT_GT(tally.unparsed, 50);
  EXPECT_GT(tally.deferred, 200);  // ops with both put and delete_key
}

TEST(WireView, MutatedBytesParseAndEncodeAlike) {
  google::protobuf::SetLogHandler(nullptr);
  const TableSchema schema = EventsSchema();
  Gen gen(7);
  Tally tally;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = gen.OpBytes();
    gen.Mutate(&bytes);
    ASSERT_TRUE(Agree(bytes, schema, &tally)) << "case " << i << " (seed 7)";
  }
  EXPECT_GT(tally.parsed, 1000);
  EXPECT_GT(tally.unparsed, 2000);
}

// A request of many ops: the view's WriteRequest parses what v1's does.
TEST(WireView, WholeRequestParsesAlike) {
  Gen gen(99);
  std::string bytes;
  for (int i = 0; i < 64; ++i) {
    const std::string op = gen.OpBytes();
    bytes.push_back(static_cast<char>((1 << 3) | 2));  // WriteRequest.ops
    size_t n = op.size();
    while (n >= 0x80) {
      bytes.push_back(static_cast<char>(n | 0x80));
      n >>= 7;
    }
    bytes.push_back(static_cast<char>(n));
    bytes += op;
  }
  v1::WriteRequest api;
  wire::WriteRequest view;
  const bool api_ok = api.ParseFromString(bytes);
  ASSERT_EQ(api_ok, view.ParseFromString(bytes));
  if (api_ok) {
    ASSERT_EQ(api.ops_size(), view.ops_size());
  }
}

// The last of repeated names wins, as in a map, also for key attributes.
TEST(WireView, LastEntryOfANameWins) {
  wire::WriteOp op;
  op.set_id(1);
  auto* item = op.mutable_put();
  auto add = [&](const std::string& k, const std::string& s) {
    wire::Attribute* a = item->add_attributes();
    a->set_key(k);
    a->mutable_value()->set_s(s);
  };
  add("pk", "first");
  add("a", "x");
  item->add_attributes()->set_key("sk");
  item->mutable_attributes(2)->mutable_value()->set_n("1");
  add("pk", "second");
  add("a", "y");
  const EncodeResult r = EncodeWriteOp(op, EventsSchema());
  ASSERT_TRUE(r.ok()) << r.rejection->message;
  EXPECT_NE(r.write.request_json.find("\"second\""), std::string::npos) << r.write.request_json;
  EXPECT_EQ(r.write.request_json.find("\"first\""), std::string::npos) << r.write.request_json;
  EXPECT_EQ(r.write.request_json.find("\"x\""), std::string::npos) << r.write.request_json;
  v1::WriteOp api;
  ASSERT_TRUE(api.ParseFromString(op.SerializeAsString()));
  EXPECT_EQ(EncodeWriteOp(api, EventsSchema()).write.key, r.write.key);
}

}  // namespace
}  // namespace dynamo_batcher
