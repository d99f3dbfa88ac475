#include "client/batchctl/item_args.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dynamo_batcher::batchctl {

namespace {

std::vector<std::string> SplitList(absl::string_view value) {
  if (value.empty()) return {};
  return absl::StrSplit(value, ',');
}

absl::Status BadPair(absl::string_view arg, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("\"", arg, "\": ", why));
}

}  // namespace

absl::Status ParseKeyValue(absl::string_view arg, Item& item) {
  const size_t eq = arg.find('=');
  if (eq == absl::string_view::npos) {
    return BadPair(arg, "expected name[:TYPE]=value");
  }
  absl::string_view name = arg.substr(0, eq);
  const absl::string_view value = arg.substr(eq + 1);
  std::string type = "S";
  if (const size_t colon = name.rfind(':'); colon != absl::string_view::npos) {
    type = absl::AsciiStrToUpper(name.substr(colon + 1));
    name = name.substr(0, colon);
  }
  if (name.empty()) return BadPair(arg, "empty attribute name");
  if (type == "S") {
    item.S(name, value);
  } else if (type == "N") {
    if (value.empty()) return BadPair(arg, "N needs a number");
    item.N(name, value);
  } else if (type == "B") {
    std::string bytes;
    if (!absl::Base64Unescape(value, &bytes)) return BadPair(arg, "B must be base64");
    item.B(name, bytes);
  } else if (type == "BOOL") {
    const std::string v = absl::AsciiStrToLower(value);
    if (v == "true" || v == "1") {
      item.Bool(name, true);
    } else if (v == "false" || v == "0") {
      item.Bool(name, false);
    } else {
      return BadPair(arg, "BOOL must be true or false");
    }
  } else if (type == "NULL") {
    if (!value.empty() && absl::AsciiStrToLower(value) != "true") {
      return BadPair(arg, "NULL takes no value (or true)");
    }
    item.Null(name);
  } else if (type == "SS") {
    item.SS(name, SplitList(value));
  } else if (type == "NS") {
    item.NS(name, SplitList(value));
  } else if (type == "BS") {
    std::vector<std::string> bytes;
    for (const std::string& e : SplitList(value)) {
      std::string b;
      if (!absl::Base64Unescape(e, &b)) return BadPair(arg, "BS elements must be base64");
      bytes.push_back(std::move(b));
    }
    item.BS(name, std::move(bytes));
  } else {
    return BadPair(
        arg, absl::StrCat("unknown type \"", type, "\" (want S, N, B, BOOL, NULL, SS, NS, BS)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Item> ParseItemArgs(const std::vector<std::string>& args) {
  if (args.empty()) {
    return absl::InvalidArgumentError(
        "missing item: give DynamoDB JSON or name[:TYPE]=value pairs");
  }
  const absl::string_view first = absl::StripLeadingAsciiWhitespace(args[0]);
  if (!first.empty() && first.front() == '{') {
    if (args.size() != 1) {
      return absl::InvalidArgumentError(
          "DynamoDB JSON must be one argument (quote it); do not mix it with "
          "name=value pairs");
    }
    return ItemFromDynamoJson(args[0]);
  }
  Item item;
  for (const std::string& arg : args) {
    if (absl::Status s = ParseKeyValue(arg, item); !s.ok()) return s;
  }
  return item;
}

}  // namespace dynamo_batcher::batchctl
