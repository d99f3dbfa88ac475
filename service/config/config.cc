#include "service/config/config.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace dynamo_batcher {
namespace {

// Collects the first error with its key path; every accessor is a no-op once
// an error is recorded, so parsing code stays linear.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  bool ok() const { return error_.empty(); }
  absl::Status status() const {
    return ok() ? absl::OkStatus() : absl::InvalidArgumentError(error_);
  }
  void Fail(const std::string& path, const std::string& why) {
    if (ok()) error_ = absl::StrCat(source_, ": ", path, ": ", why);
  }

  // Rejects keys not in `known`, so typos do not pass silently.
  void CheckKeys(const YAML::Node& node, const std::string& path,
                 std::initializer_list<const char*> known) {
    if (!ok() || !node) return;
    if (!node.IsMap()) {
      Fail(path.empty() ? "(root)" : path, "must be a mapping");
      return;
    }
    std::set<std::string> allowed(known.begin(), known.end());
    std::set<std::string> seen;
    for (const auto& kv : node) {
      std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) {
        Fail(Join(path, key), "is given twice (YAML keeps only one; remove the duplicate)");
        return;
      }
      if (!allowed.count(key)) {
        Fail(Join(path, key),
             absl::StrCat("unknown key (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
        return;
      }
    }
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : absl::StrCat(path, ".", key);
  }

  bool Scalar(const YAML::Node& node, const std::string& path, std::string* out) {
    if (!ok() || !node || node.IsNull()) return false;
    if (!node.IsScalar()) {
      Fail(path, "must be a scalar value");
      return false;
    }
    *out = node.Scalar();
    return true;
  }

  void String(const YAML::Node& parent, const std::string& path, const char* key,
              std::string* out) {
    std::string v;
    if (Scalar(parent[key], Join(path, key), &v)) *out = v;
  }

  void Bool(const YAML::Node& parent, const std::string& path, const char* key, bool* out) {
    std::string v;
    if (!Scalar(parent[key], Join(path, key), &v)) return;
    std::string l = absl::AsciiStrToLower(v);
    if (l == "true" || l == "yes" || l == "on") {
      *out = true;
    } else if (l == "false" || l == "no" || l == "off") {
      *out = false;
    } else {
      Fail(Join(path, key), absl::StrCat("must be true or false (got \"", v, "\")"));
    }
  }

  // Any integer field (int, uint32_t, size_t, int64_t): the rule is the
  // range [lo, hi], which fits `T`.
  template <typename T>
  void Int(const YAML::Node& parent, const std::string& path, const char* key, int64_t lo,
           int64_t hi, T* out) {
    std::string v;
    if (!Scalar(parent[key], Join(path, key), &v)) return;
    int64_t n = 0;
    if (!absl::SimpleAtoi(v, &n) || n < lo || n > hi) {
      Fail(Join(path, key),
           absl::StrCat("must be an integer between ", lo, " and ", hi, " (got \"", v, "\")"));
      return;
    }
    *out = static_cast<T>(n);
  }

  void Double(const YAML::Node& parent, const std::string& path, const char* key, double lo,
              double hi, double* out) {
    std::string v;
    if (!Scalar(parent[key], Join(path, key), &v)) return;
    double d = 0;
    if (!absl::SimpleAtod(v, &d) || !(d >= lo && d <= hi)) {
      Fail(Join(path, key),
           absl::StrCat("must be a number between ", lo, " and ", hi, " (got \"", v, "\")"));
      return;
    }
    *out = d;
  }

  void Duration(const YAML::Node& parent, const std::string& path, const char* key,
                absl::Duration lo, absl::Duration hi, absl::Duration* out) {
    std::string v;
    if (!Scalar(parent[key], Join(path, key), &v)) return;
    absl::Duration d;
    if (!absl::ParseDuration(v, &d)) {
      Fail(Join(path, key),
           absl::StrCat("must be a duration like 5ms, 2s or 1m30s (got \"", v, "\")"));
      return;
    }
    if (d < lo || d > hi) {
      Fail(Join(path, key), absl::StrCat("must be between ", absl::FormatDuration(lo), " and ",
                                         absl::FormatDuration(hi), " (got ", v, ")"));
      return;
    }
    *out = d;
  }

  void Bytes(const YAML::Node& parent, const std::string& path, const char* key, uint64_t lo,
             uint64_t hi, uint64_t* out) {
    std::string v;
    if (!Scalar(parent[key], Join(path, key), &v)) return;
    auto b = ParseByteSize(v);
    if (!b.ok()) {
      Fail(Join(path, key), std::string(b.status().message()));
      return;
    }
    if (*b < lo || *b > hi) {
      Fail(Join(path, key),
           absl::StrCat("must be between ", lo, " and ", hi, " bytes (got ", v, ")"));
      return;
    }
    *out = *b;
  }

 private:
  std::string source_;
  std::string error_;
};

bool ParseKeyAttribute(Reader& r, const YAML::Node& node, const std::string& path,
                       KeyAttribute* out) {
  r.CheckKeys(node, path, {"name", "type"});
  if (!r.ok()) return false;
  std::string name, type;
  if (!r.Scalar(node["name"], path + ".name", &name) || name.empty()) {
    r.Fail(path + ".name", "is required (the attribute name)");
    return false;
  }
  if (name.size() > 255) {
    r.Fail(path + ".name", "must be at most 255 bytes (DynamoDB key attribute name limit)");
    return false;
  }
  if (!r.Scalar(node["type"], path + ".type", &type)) {
    r.Fail(path + ".type", "is required: S, N or B");
    return false;
  }
  if (type == "S") {
    out->type = KeyType::kS;
  } else if (type == "N") {
    out->type = KeyType::kN;
  } else if (type == "B") {
    out->type = KeyType::kB;
  } else {
    r.Fail(path + ".type", absl::StrCat("must be S, N or B (got \"", type, "\")"));
    return false;
  }
  out->name = name;
  return true;
}

bool ValidTableName(const std::string& name) {
  // DynamoDB: 3-255 characters of [a-zA-Z0-9_.-].
  if (name.size() < 3 || name.size() > 255) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

bool ValidListen(const std::string& addr) {
  if (addr.rfind("unix:", 0) == 0) return addr.size() > 5;
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = 0;
  return absl::SimpleAtoi(addr.substr(colon + 1), &port) && port >= 0 && port <= 65535;
}

// The region becomes part of host names and the SigV4 scope: letters,
// digits and hyphens only ("us-east-1"), or an attacker-chosen value could
// point the sidecar (and its STS token exchange) at another host.
constexpr size_t kMaxRegionLength = 32;
std::string RegionProblem(const std::string& region) {
  const std::string rule = absl::StrCat(
      "must be 1-", kMaxRegionLength,
      " letters, digits and hyphens, not starting or ending with a hyphen, like us-east-1 (got \"",
      region, "\")");
  if (region.empty() || region.size() > kMaxRegionLength || region.front() == '-' ||
      region.back() == '-') {
    return rule;
  }
  for (char ch : region) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '-') return rule;
  }
  return "";
}

// An endpoint is scheme://host[:port][/]: http or https, a DNS name or an IP
// address (IPv6 in brackets), no user info, no path, query or fragment.
std::string EndpointProblem(const std::string& endpoint) {
  const std::string got = absl::StrCat(" (got \"", endpoint, "\")");
  const std::string lower = absl::AsciiStrToLower(endpoint);
  size_t start = 0;
  if (lower.rfind("http://", 0) == 0) {
    start = 7;
  } else if (lower.rfind("https://", 0) == 0) {
    start = 8;
  } else {
    return absl::StrCat("must start with http:// or https://", got);
  }
  std::string authority = endpoint.substr(start);
  if (!authority.empty() && authority.back() == '/') authority.pop_back();
  if (authority.find_first_of("/?#") != std::string::npos) {
    return absl::StrCat("must be scheme://host[:port] with no path, query or fragment", got);
  }
  if (authority.find('@') != std::string::npos) {
    return absl::StrCat("must not contain user info (user@)", got);
  }
  std::string host = authority;
  std::string port;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return absl::StrCat("has an unclosed [ in the host", got);
    const std::string rest = host.substr(close + 1);
    host = host.substr(1, close - 1);
    in6_addr a6;
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      return absl::StrCat("has an invalid IPv6 address", got);
    }
    if (!rest.empty()) {
      if (rest.front() != ':') return absl::StrCat("has text after the IPv6 address", got);
      port = rest.substr(1);
      if (port.empty()) return absl::StrCat("has an empty port", got);
    }
  } else {
    const size_t colon = host.find(':');
    if (colon != std::string::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) return absl::StrCat("has an empty port", got);
    }
    if (host.empty() || host.size() > 253) return absl::StrCat("must name a host", got);
    for (char ch : host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.' &&
          ch != '_') {
        return absl::StrCat("host may hold only letters, digits, '-', '_' and '.'", got);
      }
    }
  }
  if (!port.empty()) {
    int n = 0;
    if (port.find_first_not_of("0123456789") != std::string::npos || !absl::SimpleAtoi(port, &n) ||
        n < 1 || n > 65535) {
      return absl::StrCat("port must be a number between 1 and 65535", got);
    }
  }
  return "";
}

// Loopback or a unix socket: reachable from this host (pod) only.
bool IsLocalListen(const std::string& addr) {
  if (addr.rfind("unix:", 0) == 0) return true;
  std::string host = addr.substr(0, addr.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    return (ntohl(a4.s_addr) >> 24) == 127;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

}  // namespace

bool ListenIsRemote(const Config& config) { return !IsLocalListen(config.listen); }

absl::StatusOr<uint64_t> ParseByteSize(const std::string& text) {
  std::string t(absl::StripAsciiWhitespace(text));
  size_t i = 0;
  while (i < t.size() && absl::ascii_isdigit(static_cast<unsigned char>(t[i]))) ++i;
  uint64_t n = 0;
  if (i == 0 || !absl::SimpleAtoi(t.substr(0, i), &n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be a size like 64MiB, 512KiB or 1048576 (got \"", text, "\")"));
  }
  std::string unit = std::string(absl::StripAsciiWhitespace(t.substr(i)));
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "KiB" || unit == "Ki") {
    mult = 1ull << 10;
  } else if (unit == "MiB" || unit == "Mi") {
    mult = 1ull << 20;
  } else if (unit == "GiB" || unit == "Gi") {
    mult = 1ull << 30;
  } else if (unit == "KB" || unit == "kB" || unit == "K") {
    mult = 1000;
  } else if (unit == "MB" || unit == "M") {
    mult = 1000 * 1000;
  } else if (unit == "GB" || unit == "G") {
    mult = 1000ull * 1000 * 1000;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown size unit \"", unit, "\" (use B, KiB, MiB, GiB, KB, MB, GB)"));
  }
  if (n > UINT64_MAX / mult) {
    return absl::InvalidArgumentError(absl::StrCat("size too large (got \"", text, "\")"));
  }
  return n * mult;
}

namespace {

// One function per top-level section. Each writes only the keys the file
// states into the component's options struct, whose defaults stay otherwise.

void ParseListeners(Reader& r, const YAML::Node& root, Config* c) {
  r.String(root, "", "listen", &c->listen);
  if (r.ok() && !ValidListen(c->listen)) {
    r.Fail("listen", absl::StrCat("must be host:port or unix:///path (got \"", c->listen, "\")"));
  }
  r.String(root, "", "metrics_listen", &c->metrics_listen);
  if (r.ok() && (!ValidListen(c->metrics_listen) || c->metrics_listen.rfind("unix:", 0) == 0)) {
    r.Fail("metrics_listen", absl::StrCat("must be host:port (got \"", c->metrics_listen, "\")"));
  }
}

void ParseLog(Reader& r, const YAML::Node& log, Config::Log* out) {
  if (!log) return;
  r.CheckKeys(log, "log", {"level"});
  r.String(log, "log", "level", &out->level);
  if (r.ok() && out->level != "debug" && out->level != "info" && out->level != "warn" &&
      out->level != "error") {
    r.Fail("log.level",
           absl::StrCat("must be debug, info, warn or error (got \"", out->level, "\")"));
  }
}

void ParseDynamoDb(Reader& r, const YAML::Node& d, Config::DynamoDb* out) {
  if (d) {
    const std::string p = "dynamodb";
    r.CheckKeys(d, p,
                {"region", "endpoint", "call_timeout", "connect_timeout", "max_connections",
                 "tls_verify", "ca_file", "credentials", "create_tables"});
    r.String(d, p, "region", &out->region);
    r.String(d, p, "endpoint", &out->endpoint);
    r.Duration(d, p, "call_timeout", absl::Milliseconds(100), absl::Minutes(5), &out->call_timeout);
    r.Duration(d, p, "connect_timeout", absl::Milliseconds(50), absl::Minutes(1),
               &out->connect_timeout);
    r.Int(d, p, "max_connections", 1, 4096, &out->max_connections);
    r.Bool(d, p, "tls_verify", &out->tls_verify);
    r.String(d, p, "ca_file", &out->ca_file);
    r.Bool(d, p, "create_tables", &out->create_tables);
    if (YAML::Node cr = d["credentials"]) {
      const std::string cp = "dynamodb.credentials";
      r.CheckKeys(cr, cp, {"access_key_id", "secret_access_key", "session_token"});
      r.String(cr, cp, "access_key_id", &out->access_key_id);
      r.String(cr, cp, "secret_access_key", &out->secret_access_key);
      r.String(cr, cp, "session_token", &out->session_token);
      if (r.ok() && out->access_key_id.empty() != out->secret_access_key.empty()) {
        r.Fail(cp, "access_key_id and secret_access_key must be given together");
      }
    }
  }
  // Checked also when defaulted or absent.
  if (r.ok()) {
    if (std::string why = RegionProblem(out->region); !why.empty()) {
      r.Fail("dynamodb.region", why);
    }
  }
  if (r.ok() && !out->endpoint.empty()) {
    if (std::string why = EndpointProblem(out->endpoint); !why.empty()) {
      r.Fail("dynamodb.endpoint", why);
    }
  }
}

// One entry of `tables`; false (with the error recorded) stops the list.
bool ParseTable(Reader& r, const YAML::Node& t, const std::string& p, std::set<std::string>* names,
                TableConfig* tc) {
  r.CheckKeys(t, p, {"name", "partition_key", "sort_key", "max_rate"});
  if (!r.ok()) return false;
  if (!r.Scalar(t["name"], p + ".name", &tc->schema.name)) {
    r.Fail(p + ".name", "is required");
    return false;
  }
  if (!ValidTableName(tc->schema.name)) {
    r.Fail(p + ".name", absl::StrCat("must be 3-255 characters of a-z, A-Z, 0-9, _ - . (got \"",
                                     tc->schema.name, "\")"));
    return false;
  }
  if (!names->insert(tc->schema.name).second) {
    r.Fail(p + ".name", absl::StrCat("table \"", tc->schema.name, "\" is listed twice"));
    return false;
  }
  if (t["partition_key"]) {
    if (!ParseKeyAttribute(r, t["partition_key"], p + ".partition_key",
                           &tc->schema.partition_key)) {
      return false;
    }
    tc->schema_from_config = true;
    if (t["sort_key"]) {
      KeyAttribute sk;
      if (!ParseKeyAttribute(r, t["sort_key"], p + ".sort_key", &sk)) return false;
      if (sk.name == tc->schema.partition_key.name) {
        r.Fail(p + ".sort_key.name", "must differ from partition_key.name");
        return false;
      }
      tc->schema.sort_key = sk;
    }
  } else if (t["sort_key"]) {
    r.Fail(p + ".sort_key", "needs partition_key too (or give neither to use DescribeTable)");
    return false;
  }
  r.Double(t, p, "max_rate", 0, 1e9, &tc->max_rate);
  return true;
}

void ParseTables(Reader& r, const YAML::Node& tables, std::vector<TableConfig>* out) {
  if (r.ok() && (!tables || !tables.IsSequence() || tables.size() == 0)) {
    r.Fail("tables", "is required: a list with at least one table");
  }
  std::set<std::string> names;
  for (size_t i = 0; r.ok() && i < tables.size(); ++i) {
    TableConfig tc;
    if (!ParseTable(r, tables[i], absl::StrCat("tables[", i, "]"), &names, &tc)) break;
    out->push_back(std::move(tc));
  }
}

void ParseBatching(Reader& r, const YAML::Node& b, BatchingOptions* out) {
  if (!b) return;
  r.CheckKeys(b, "batching", {"linger", "max_items", "max_inflight_calls", "unknown_fate_hold"});
  r.Duration(b, "batching", "linger", absl::ZeroDuration(), absl::Seconds(10), &out->linger);
  r.Int(b, "batching", "max_items", 1, 25, &out->max_items);
  r.Int(b, "batching", "max_inflight_calls", 1, 256, &out->max_inflight_calls);
  r.Duration(b, "batching", "unknown_fate_hold", absl::ZeroDuration(), absl::Minutes(10),
             &out->unknown_fate_hold);
}

void ParseRetry(Reader& r, const YAML::Node& rt, RetryOptions* out) {
  if (!rt) return;
  r.CheckKeys(rt, "retry", {"base", "cap", "max_attempts", "op_deadline"});
  r.Duration(rt, "retry", "base", absl::Milliseconds(1), absl::Minutes(1), &out->base);
  r.Duration(rt, "retry", "cap", absl::Milliseconds(1), absl::Minutes(10), &out->cap);
  r.Int(rt, "retry", "max_attempts", 1, 1000, &out->max_attempts);
  r.Duration(rt, "retry", "op_deadline", absl::Milliseconds(10), absl::Hours(24),
             &out->op_deadline);
  if (r.ok() && out->cap < out->base) r.Fail("retry.cap", "must be >= retry.base");
}

void ParseRateLimit(Reader& r, const YAML::Node& rl, RateLimiterOptions* out) {
  if (!rl) return;
  r.CheckKeys(rl, "rate_limit",
              {"decrease_factor", "increase_per_second", "min_rate", "recovery", "cubic_recovery",
               "fleet"});
  using Recovery = RateLimiterOptions::Recovery;
  std::string recovery = out->recovery == Recovery::kAdditive ? "additive" : "cubic";
  r.String(rl, "rate_limit", "recovery", &recovery);
  if (r.ok() && recovery != "cubic" && recovery != "additive") {
    r.Fail("rate_limit.recovery",
           absl::StrCat("must be cubic or additive (got \"", recovery, "\")"));
  }
  out->recovery = recovery == "additive" ? Recovery::kAdditive : Recovery::kCubic;
  absl::Duration cubic = absl::Seconds(out->cubic_recovery_seconds);
  r.Duration(rl, "rate_limit", "cubic_recovery", absl::Milliseconds(100), absl::Minutes(10),
             &cubic);
  out->cubic_recovery_seconds = absl::ToDoubleSeconds(cubic);
  r.Double(rl, "rate_limit", "decrease_factor", 0.05, 0.99, &out->decrease_factor);
  r.Double(rl, "rate_limit", "increase_per_second", 0.1, 1e7, &out->increase_per_second);
  r.Double(rl, "rate_limit", "min_rate", 1, 1e7, &out->min_rate);
  r.Bool(rl, "rate_limit", "fleet", &out->fleet);
}

void ParseBuffer(Reader& r, const YAML::Node& bu, BufferOptions* out) {
  if (!bu) return;
  r.CheckKeys(bu, "buffer", {"max_bytes", "max_table_bytes"});
  r.Bytes(bu, "buffer", "max_bytes", 1 << 20, 1ull << 40, &out->max_bytes);
  r.Bytes(bu, "buffer", "max_table_bytes", 1 << 20, 1ull << 40, &out->max_table_bytes);
}

void ParseServerTls(Reader& r, const YAML::Node& tls, Config::Server* out) {
  if (!tls) return;
  r.CheckKeys(tls, "server.tls", {"cert_file", "key_file", "client_ca_file"});
  r.String(tls, "server.tls", "cert_file", &out->tls_cert_file);
  r.String(tls, "server.tls", "key_file", &out->tls_key_file);
  r.String(tls, "server.tls", "client_ca_file", &out->tls_client_ca_file);
  if (r.ok() && out->tls_cert_file.empty() != out->tls_key_file.empty()) {
    r.Fail("server.tls", "cert_file and key_file must be given together");
  }
  if (r.ok() && !out->tls_client_ca_file.empty() && out->tls_cert_file.empty()) {
    r.Fail("server.tls.client_ca_file", "needs cert_file and key_file (mTLS is on top of TLS)");
  }
}

void ParseServer(Reader& r, const YAML::Node& s, Config::Server* out) {
  if (!s) return;
  r.CheckKeys(s, "server",
              {"max_message_bytes", "grpc_memory_bytes", "max_ops_per_message", "max_streams",
               "max_unary_calls", "max_inflight_ops_per_stream", "unix_socket_mode", "tls",
               "allow_insecure_remote"});
  r.Bool(s, "server", "allow_insecure_remote", &out->allow_insecure_remote);
  r.Int(s, "server", "max_inflight_ops_per_stream", 1, 100000000,
        &out->max_inflight_ops_per_stream);
  std::string mode;
  if (r.Scalar(s["unix_socket_mode"], "server.unix_socket_mode", &mode)) {
    char* end = nullptr;
    long m = strtol(mode.c_str(), &end, 8);
    if (mode.empty() || *end != '\0' || m < 0 || m > 0777) {
      r.Fail("server.unix_socket_mode",
             absl::StrCat("must be an octal file mode like 0660 (got \"", mode, "\")"));
    } else {
      out->unix_socket_mode = static_cast<int>(m);
    }
  }
  ParseServerTls(r, s["tls"], out);
  r.Bytes(s, "server", "max_message_bytes", 4096, 1ull << 30, &out->max_message_bytes);
  r.Bytes(s, "server", "grpc_memory_bytes", 1 << 20, 1ull << 40, &out->grpc_memory_bytes);
  r.Int(s, "server", "max_ops_per_message", 1, 1000000, &out->max_ops_per_message);
  r.Int(s, "server", "max_streams", 1, 1000000, &out->max_streams);
  r.Int(s, "server", "max_unary_calls", 1, 1000000, &out->max_unary_calls);
}

void ParseDeadLetter(Reader& r, const YAML::Node& dl, DeadLetterOptions* out) {
  if (!dl) return;
  r.CheckKeys(dl, "dead_letter", {"path", "max_bytes", "max_files"});
  r.String(dl, "dead_letter", "path", &out->path);
  r.Bytes(dl, "dead_letter", "max_bytes", 4096, 1ull << 40, &out->max_bytes);
  r.Int(dl, "dead_letter", "max_files", 1, 100, &out->max_files);
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, ": not valid YAML: ", e.msg));
  }
  if (!root || root.IsNull()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": (root): the file is empty; at least `tables` is required"));
  }
  Config c;
  c.source = source;
  Reader r(source);
  try {
    r.CheckKeys(root, "",
                {"listen", "metrics_listen", "log", "dynamodb", "tables", "batching", "retry",
                 "rate_limit", "buffer", "server", "drain_timeout", "dead_letter"});
    ParseListeners(r, root, &c);
    ParseLog(r, root["log"], &c.log);
    ParseDynamoDb(r, root["dynamodb"], &c.dynamodb);
    ParseTables(r, root["tables"], &c.tables);
    ParseBatching(r, root["batching"], &c.batching);
    ParseRetry(r, root["retry"], &c.retry);
    ParseRateLimit(r, root["rate_limit"], &c.rate_limit);
    ParseBuffer(r, root["buffer"], &c.buffer);
    ParseServer(r, root["server"], &c.server);
    r.Duration(root, "", "drain_timeout", absl::ZeroDuration(), absl::Hours(1), &c.drain_timeout);
    ParseDeadLetter(r, root["dead_letter"], &c.dead_letter);
  } catch (const YAML::Exception& e) {
    r.Fail(absl::StrCat("line ", e.mark.line + 1), e.msg);
  }
  if (!r.ok()) return r.status();
  return c;
}

absl::Status ApplyEnvironment(Config* config, const char* (*getenv_fn)(const char*)) {
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv_fn(name);
    return (v != nullptr && *v != '\0') ? v : nullptr;
  };
  if (const char* v = get("DYNAMO_BATCHER_LISTEN")) {
    if (!ValidListen(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "environment: DYNAMO_BATCHER_LISTEN: must be host:port or unix:///path (got \"", v,
          "\")"));
    }
    config->listen = v;
  }
  if (const char* v = get("DYNAMO_BATCHER_METRICS_LISTEN")) {
    if (!ValidListen(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "environment: DYNAMO_BATCHER_METRICS_LISTEN: must be host:port (got \"", v, "\")"));
    }
    config->metrics_listen = v;
  }
  if (const char* v = get("DYNAMO_BATCHER_ENDPOINT")) {
    std::string e(v);
    if (std::string why = EndpointProblem(e); !why.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment: DYNAMO_BATCHER_ENDPOINT: ", why));
    }
    config->dynamodb.endpoint = e;
  }
  if (const char* v = get("DYNAMO_BATCHER_REGION")) {
    if (std::string why = RegionProblem(v); !why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("environment: DYNAMO_BATCHER_REGION: ", why));
    }
    config->dynamodb.region = v;
  }
  // Checked once the address is final: anything that reaches a non-loopback
  // listener without TLS can write with the sidecar's IAM identity.
  if (ListenIsRemote(*config) && config->server.tls_cert_file.empty() &&
      !config->server.allow_insecure_remote) {
    const bool from_env = get("DYNAMO_BATCHER_LISTEN") != nullptr;
    return absl::InvalidArgumentError(absl::StrCat(
        from_env ? "environment: DYNAMO_BATCHER_LISTEN" : absl::StrCat(config->source, ": listen"),
        ": \"", config->listen,
        "\" is reachable from other hosts but has no TLS, so anyone who can connect could write "
        "with the sidecar's AWS identity; listen on 127.0.0.1 or a unix socket, configure "
        "server.tls, or set server.allow_insecure_remote: true to accept the risk"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open the config file"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = ParseConfig(ss.str(), path);
  if (!config.ok()) return config.status();
  absl::Status env =
      ApplyEnvironment(&*config, [](const char* n) -> const char* { return std::getenv(n); });
  if (!env.ok()) return env;
  return config;
}

}  // namespace dynamo_batcher
