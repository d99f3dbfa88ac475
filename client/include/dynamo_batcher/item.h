#pragma once

// Building DynamoDB items for the dynamo-batcher client, and converting them
// to and from DynamoDB JSON (`{"pk":{"S":"a"},"n":{"N":"3"}}`).
//
// `Item` is a thin, chainable builder over the wire type
// `dynamobatcher::v1::Item`; it owns the proto and converts to it for free.
//
// Thread-safety: an Item is a value; distinct objects may be used from
// distinct threads, one object must not be mutated concurrently.
//
// Usage:
//   using dynamo_batcher::Item;
//   Item item = Item().S("pk", "user#1").N("age", 42).Bool("active", true)
//                     .SS("tags", {"a", "b"}).M("address", Item().S("city", "Oslo"));
//   std::string json = dynamo_batcher::ItemToDynamoJson(item.proto());
//   absl::StatusOr<Item> back = dynamo_batcher::ItemFromDynamoJson(json);

#include <charconv>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dynamobatcher/v1/batcher.pb.h"

namespace dynamo_batcher {

namespace v1 = ::dynamobatcher::v1;

class Item;

// Factories for single attribute values, for lists (`Item::L`) and for
// `Item::Set`.
struct Value {
  static v1::AttributeValue S(absl::string_view s);
  // A DynamoDB number given as its decimal text ("1.5", "-3e10"). The client
  // does not validate it; the sidecar rejects malformed numbers.
  static v1::AttributeValue N(absl::string_view decimal);
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  static v1::AttributeValue N(T v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    return N(absl::string_view(buf, r.ptr - buf));
  }
  // Shortest text that round-trips to the same double.
  static v1::AttributeValue N(double v);
  static v1::AttributeValue B(absl::string_view bytes);
  static v1::AttributeValue Bool(bool v);
  static v1::AttributeValue Null();
  static v1::AttributeValue SS(std::vector<std::string> values);
  static v1::AttributeValue NS(std::vector<std::string> values);
  static v1::AttributeValue BS(std::vector<std::string> values);
  static v1::AttributeValue M(Item fields);
  static v1::AttributeValue L(std::vector<v1::AttributeValue> values);
};

// A DynamoDB item (or a key: an item holding only the key attributes).
// Setting an attribute twice keeps the last value.
class Item {
 public:
  Item() = default;
  // Implicit on purpose: APIs taking an Item also accept the wire type.
  Item(v1::Item proto) : proto_(std::move(proto)) {}  // NOLINT

  // Each setter has an lvalue form (returns Item&) and an rvalue form
  // (returns Item&&) so `Item().S(..).N(..)` builds without copies.
#define DYNAMO_BATCHER_ITEM_SETTER(Name, Params, Args)       \
  Item& Name Params& { return Set(name, Value::Name Args); } \
  Item&& Name Params&& { return std::move(Set(name, Value::Name Args)); }

  DYNAMO_BATCHER_ITEM_SETTER(S, (absl::string_view name, absl::string_view s), (s))
  DYNAMO_BATCHER_ITEM_SETTER(N, (absl::string_view name, absl::string_view decimal), (decimal))
  DYNAMO_BATCHER_ITEM_SETTER(N, (absl::string_view name, const char* decimal),
                             (absl::string_view(decimal)))
  DYNAMO_BATCHER_ITEM_SETTER(N, (absl::string_view name, double v), (v))
  DYNAMO_BATCHER_ITEM_SETTER(B, (absl::string_view name, absl::string_view bytes), (bytes))
  DYNAMO_BATCHER_ITEM_SETTER(Bool, (absl::string_view name, bool v), (v))
  DYNAMO_BATCHER_ITEM_SETTER(Null, (absl::string_view name), ())
  DYNAMO_BATCHER_ITEM_SETTER(SS, (absl::string_view name, std::vector<std::string> v),
                             (std::move(v)))
  DYNAMO_BATCHER_ITEM_SETTER(NS, (absl::string_view name, std::vector<std::string> v),
                             (std::move(v)))
  DYNAMO_BATCHER_ITEM_SETTER(BS, (absl::string_view name, std::vector<std::string> v),
                             (std::move(v)))
  DYNAMO_BATCHER_ITEM_SETTER(M, (absl::string_view name, Item fields), (std::move(fields)))
  DYNAMO_BATCHER_ITEM_SETTER(L, (absl::string_view name, std::vector<v1::AttributeValue> values),
                             (std::move(values)))
#undef DYNAMO_BATCHER_ITEM_SETTER

  // Integral numbers: N("n", 3), N("n", int64_t{-7}).
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Item& N(absl::string_view name, T v) & {
    return Set(name, Value::N(v));
  }
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Item&& N(absl::string_view name, T v) && {
    return std::move(Set(name, Value::N(v)));
  }

  Item& Set(absl::string_view name, v1::AttributeValue value) &;
  Item&& Set(absl::string_view name, v1::AttributeValue value) && {
    return std::move(Set(name, std::move(value)));
  }

  const v1::Item& proto() const& { return proto_; }
  v1::Item proto() && { return std::move(proto_); }
  v1::Item* mutable_proto() { return &proto_; }
  operator const v1::Item&() const& { return proto_; }  // NOLINT
  operator v1::Item() && { return std::move(proto_); }  // NOLINT

  size_t size() const { return proto_.attributes_size(); }
  bool empty() const { return proto_.attributes().empty(); }
  // nullptr when absent.
  const v1::AttributeValue* Find(absl::string_view name) const;

 private:
  v1::Item proto_;
};

// Parses a DynamoDB JSON item: an object of attribute name to typed value
// ({"S":..}, {"N":"1"}, {"B":"<base64>"}, {"SS":[..]}, {"NS":[..]},
// {"BS":[..]}, {"M":{..}}, {"L":[..]}, {"NULL":true}, {"BOOL":b}).
// INVALID_ARGUMENT naming the attribute path on malformed input.
absl::StatusOr<Item> ItemFromDynamoJson(absl::string_view json);

// DynamoDB JSON for an item, attribute names sorted (deterministic output).
std::string ItemToDynamoJson(const v1::Item& item);
// DynamoDB JSON for one value ({"S":"a"}).
std::string AttributeValueToDynamoJson(const v1::AttributeValue& value);

}  // namespace dynamo_batcher
