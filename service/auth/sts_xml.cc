#include "service/auth/sts_xml.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace dynamo_batcher {
namespace {

constexpr size_t kMaxDepth = 64;

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes entities in character data.
absl::Status DecodeText(absl::string_view raw, std::string* out) {
  size_t i = 0;
  while (i < raw.size()) {
    const char c = raw[i];
    if (c != '&') {
      out->push_back(c);
      ++i;
      continue;
    }
    const size_t semi = raw.find(';', i);
    if (semi == absl::string_view::npos || semi - i > 12) {
      return absl::InvalidArgumentError("STS answer: bad entity reference");
    }
    const absl::string_view name = raw.substr(i + 1, semi - i - 1);
    if (name == "amp") out->push_back('&');
    else if (name == "lt") out->push_back('<');
    else if (name == "gt") out->push_back('>');
    else if (name == "quot") out->push_back('"');
    else if (name == "apos") out->push_back('\'');
    else if (name.size() >= 2 && name[0] == '#') {
      uint32_t cp = 0;
      bool ok;
      if (name[1] == 'x' || name[1] == 'X') {
        ok = name.size() > 2 && absl::SimpleHexAtoi(name.substr(2), &cp);
      } else {
        ok = absl::SimpleAtoi(name.substr(1), &cp);
      }
      if (!ok || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return absl::InvalidArgumentError("STS answer: bad character reference");
      }
      AppendUtf8(cp, out);
    } else {
      return absl::InvalidArgumentError("STS answer: unknown entity");
    }
    i = semi + 1;
  }
  return absl::OkStatus();
}

absl::string_view LocalName(absl::string_view qname) {
  const size_t colon = qname.rfind(':');
  return colon == absl::string_view::npos ? qname : qname.substr(colon + 1);
}

// The fields we want, by their element path (local names joined by '/').
struct Extracted {
  std::string access_key_id, secret_access_key, session_token, expiration;
  std::string error_code, error_message;
  bool saw_credentials = false;
  bool saw_error = false;
};

void Assign(const std::vector<std::string>& stack, const std::string& text, Extracted* e) {
  if (stack.size() < 2) return;
  const std::string& leaf = stack.back();
  const std::string& parent = stack[stack.size() - 2];
  if (parent == "Credentials") {
    e->saw_credentials = true;
    if (leaf == "AccessKeyId") e->access_key_id += text;
    else if (leaf == "SecretAccessKey") e->secret_access_key += text;
    else if (leaf == "SessionToken") e->session_token += text;
    else if (leaf == "Expiration") e->expiration += text;
  } else if (parent == "Error") {
    e->saw_error = true;
    if (leaf == "Code") e->error_code += text;
    else if (leaf == "Message") e->error_message += text;
  }
}

absl::Status Walk(absl::string_view xml, Extracted* e) {
  std::vector<std::string> stack;
  bool saw_root = false;
  size_t i = 0;
  while (i < xml.size()) {
    if (xml[i] != '<') {
      const size_t next = xml.find('<', i);
      const absl::string_view raw = xml.substr(i, next == absl::string_view::npos ? xml.size() - i : next - i);
      if (stack.empty()) {
        if (!absl::StripAsciiWhitespace(raw).empty()) {
          return absl::InvalidArgumentError("STS answer: text outside the root element");
        }
      } else {
        std::string text;
        absl::Status s = DecodeText(raw, &text);
        if (!s.ok()) return s;
        Assign(stack, text, e);
      }
      if (next == absl::string_view::npos) break;
      i = next;
      continue;
    }
    const absl::string_view rest = xml.substr(i);
    if (absl::StartsWith(rest, "<?")) {
      const size_t end = xml.find("?>", i + 2);
      if (end == absl::string_view::npos) return absl::InvalidArgumentError("STS answer: unterminated <?");
      i = end + 2;
      continue;
    }
    if (absl::StartsWith(rest, "<!--")) {
      const size_t end = xml.find("-->", i + 4);
      if (end == absl::string_view::npos) return absl::InvalidArgumentError("STS answer: unterminated comment");
      i = end + 3;
      continue;
    }
    if (absl::StartsWith(rest, "<![CDATA[")) {
      const size_t end = xml.find("]]>", i + 9);
      if (end == absl::string_view::npos || stack.empty()) {
        return absl::InvalidArgumentError("STS answer: bad CDATA section");
      }
      Assign(stack, std::string(xml.substr(i + 9, end - i - 9)), e);
      i = end + 3;
      continue;
    }
    if (absl::StartsWith(rest, "<!")) {  // DOCTYPE: no internal subsets here
      const size_t end = xml.find('>', i + 2);
      if (end == absl::string_view::npos || !stack.empty()) {
        return absl::InvalidArgumentError("STS answer: bad declaration");
      }
      i = end + 1;
      continue;
    }
    // A tag. Attribute values may hold '>' inside quotes.
    size_t j = i + 1;
    char quote = 0;
    while (j < xml.size()) {
      const char c = xml[j];
      if (quote != 0) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        break;
      }
      ++j;
    }
    if (j >= xml.size()) return absl::InvalidArgumentError("STS answer: unterminated tag");
    absl::string_view tag = xml.substr(i + 1, j - i - 1);
    i = j + 1;
    if (absl::StartsWith(tag, "/")) {
      absl::string_view name = absl::StripAsciiWhitespace(tag.substr(1));
      if (stack.empty() || stack.back() != LocalName(name)) {
        return absl::InvalidArgumentError("STS answer: mismatched end tag");
      }
      stack.pop_back();
      continue;
    }
    const bool self_closing = absl::EndsWith(tag, "/");
    if (self_closing) tag.remove_suffix(1);
    size_t name_end = 0;
    while (name_end < tag.size() && !absl::ascii_isspace(static_cast<unsigned char>(tag[name_end]))) {
      ++name_end;
    }
    const absl::string_view name = tag.substr(0, name_end);
    if (name.empty()) return absl::InvalidArgumentError("STS answer: empty tag name");
    if (stack.empty()) {
      if (saw_root) return absl::InvalidArgumentError("STS answer: more than one root element");
      saw_root = true;
    }
    if (self_closing) {
      stack.emplace_back(LocalName(name));
      Assign(stack, "", e);
      stack.pop_back();
      continue;
    }
    if (stack.size() >= kMaxDepth) return absl::InvalidArgumentError("STS answer: nested too deeply");
    stack.emplace_back(LocalName(name));
  }
  if (!saw_root) return absl::InvalidArgumentError("STS answer: no XML element");
  if (!stack.empty()) return absl::InvalidArgumentError("STS answer: truncated XML");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<absl::Time> ParseIso8601(absl::string_view text) {
  const std::string s(absl::StripAsciiWhitespace(text));
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", s, &t, &err)) return t;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*SZ", s, absl::UTCTimeZone(), &t, &err)) return t;
  return absl::InvalidArgumentError("not an ISO 8601 time");
}

absl::StatusOr<AwsCredentials> ParseStsCredentialsXml(absl::string_view xml) {
  Extracted e;
  absl::Status s = Walk(xml, &e);
  if (!s.ok()) return s;
  if (e.saw_error) {
    const std::string code = e.error_code.empty() ? "UnknownError" : e.error_code;
    // STS's message, cut to a sane length; it never carries the token.
    return absl::PermissionDeniedError(
        absl::StrCat("STS ", code, ": ", e.error_message.substr(0, 300)));
  }
  if (!e.saw_credentials) return absl::InvalidArgumentError("STS answer: no Credentials element");
  std::vector<std::string> missing;
  if (e.access_key_id.empty()) missing.push_back("AccessKeyId");
  if (e.secret_access_key.empty()) missing.push_back("SecretAccessKey");
  if (e.session_token.empty()) missing.push_back("SessionToken");
  if (e.expiration.empty()) missing.push_back("Expiration");
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("STS answer: Credentials lacks ", absl::StrJoin(missing, ", ")));
  }
  absl::StatusOr<absl::Time> exp = ParseIso8601(e.expiration);
  if (!exp.ok()) return absl::InvalidArgumentError("STS answer: Expiration is not an ISO 8601 time");
  AwsCredentials c;
  c.access_key_id = std::string(absl::StripAsciiWhitespace(e.access_key_id));
  c.secret_access_key = std::string(absl::StripAsciiWhitespace(e.secret_access_key));
  c.session_token = std::string(absl::StripAsciiWhitespace(e.session_token));
  c.expiration = *exp;
  if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty()) {
    return absl::InvalidArgumentError("STS answer: blank credential field");
  }
  return c;
}

}  // namespace dynamo_batcher
