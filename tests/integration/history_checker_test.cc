// Randomized history checker (Jepsen style) for the sidecar's write
// guarantees, against the real sidecar binary, a real dynalite and the fault
// proxy between them.
//
// Several writers (raw gRPC Write streams through the generated stub, and the
// C++ client library) send puts and deletes to a small, hot key space over
// three tables; every put carries `v` = its op id, so the table state names
// the op that produced it. Streams are cancelled at random, some clients read
// slowly or never, budgets are tight, the proxy injects random fault mixes
// (latency spikes, resets before and after forwarding, partial
// UnprocessedItems, throttling, 500/503, calls that land after their caller
// gave up) and the sidecar is SIGKILLed and restarted. Every op sent and
// every result is recorded; a poller scans the tables directly in dynalite
// during the run, and the proxy logs every write dynalite applied with
// monotonic timestamps (`--write-log`), so writes overwritten before any poll
// are seen too. Afterwards the history is checked per key:
//
//  exactly-once   no op gets two results; every op of a stream that ends OK
//                 got one result; no result names an op its stream never sent;
//                 a stream the client did not cancel ends OK (not broken by
//                 the sidecar, e.g. by a response over gRPC's 4 MiB default);
//                 every library op resolves exactly once.
//  no-stale       once a write b was answered WRITTEN (or COALESCED: the key
//                 already holds something newer), no write a that precedes b
//                 ever appears in a later poll.
//  late-apply     no write a is applied by dynalite after a write b with
//                 a preceding b was applied, or answered WRITTEN.
//  one-in-flight  no two calls carrying different writes to one key are
//                 inside dynalite at once.
//  phantom        every value in the table (or applied) is a put of that
//                 key that was not REJECTED.
//  final-state    after the run each key gets one final write, sent after
//                 everything else on the key resolved or its stream ended;
//                 when it is WRITTEN the table holds exactly its value (or
//                 nothing, for a delete).
//  rss            the sidecar's VmRSS grows over its VmRSS once ready by no
//                 more than the documented bound, computed from the config it
//                 is given: buffer.max_bytes + server.grpc_memory_bytes
//                 + 3 x the peak sum of the open Write streams' largest
//                 messages + a fixed 32 MiB.
//
// "a precedes b" (same key) is claimed only where the order in which the
// sidecar saw them is known:
//   - same raw stream, a sent before b (one stream is read in order);
//   - same library client, a called before b (the library keeps call order
//     per table, across reconnects);
//   - a got a result before b was sent (the sidecar had a by then);
//   - a's stream had ended (cancelled, broken, finished) more than
//     kCancelGrace (250 ms; 20 ms when b's stream uses the same connection)
//     before b was sent: a stream's messages reach the sidecar before its
//     end does, and nothing of a stream may be submitted after its end.
// The last three are not claimed across a sidecar SIGKILL unless b was sent
// more than a crash grace after the kill (a call of the killed process may
// still be in the proxy's latency delay; it lands when the proxy forwards it).
//
// A failure prints the seed and, per violation, the history of that key only:
// the ops from the older to the newer op, in send order, with their streams
// and results.
//
// Flags (or environment): --seed=N (HISTORY_CHECKER_SEED), --seconds=S or
// --minutes=M (HISTORY_CHECKER_SECONDS / _MINUTES) for the chaos phase
// (default 45 s: about 60 s in all), --disable=a,b (HISTORY_CHECKER_DISABLE)
// to turn scenarios off one by one:
//   cancel       random stream cancellation; half of them fill `events`' budget
//                first, then cancel, then re-send the keys on a new stream
//   slow_reader  streams that stop reading results for 2-5 s
//   non_reader   streams that never read (cancelled after 2-6 s)
//   hot_keys     30% of ops on two hot keys per table, and one burst per 40 s
//                of ~250k deletes on them behind a reader asleep for 2-5 s
//   big_items    3% of puts carry 50-350 KB (a few fill a table's budget)
//   library      two dynamo_batcher::client writers
//   faults       proxy mixes: latency spikes, resets before/after forwarding,
//                partial UnprocessedItems, throttling, 500/503
//   timeouts     latency around call_timeout, with timed-out calls still
//                forwarded later (unknown fate)
//   kill         SIGKILL and restart of the sidecar (2 per run, or one per 30 s)
// --rss-overhead-mib=N (HISTORY_CHECKER_RSS_OVERHEAD_MIB, default 32, the fixed
// overhead the memory bound states).
// The full history of a failed run is written to test-tmp/history_checker_dump-PID/.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dynamo_batcher/client.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "tests/integration/harness.h"

namespace dynamo_batcher::testing {
namespace {

namespace v1 = ::dynamobatcher::v1;

// ---------------------------------------------------------------------------
// Options.

const std::vector<std::string>& Scenarios() {
  static const std::vector<std::string> kAll = {"cancel",   "slow_reader", "non_reader",
                                                "hot_keys", "big_items",   "library",
                                                "faults",   "timeouts",    "kill"};
  return kAll;
}

struct Options {
  uint64_t seed = 20261201;
  double seconds = 45;
  std::set<std::string> disabled;
  int64_t rss_overhead_mib = 32;
};

Options& Opts() {
  static Options options;
  return options;
}

bool Enabled(const std::string& scenario) { return Opts().disabled.count(scenario) == 0; }

// ---------------------------------------------------------------------------
// Clock: one monotonic clock for every timestamp in the history.

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
constexpr int64_t kMs = 1000000;
constexpr int64_t kSec = 1000 * kMs;
constexpr int64_t kNever = INT64_MAX;
// A stream's messages reach the sidecar before its cancellation does; ops on
// other connections may race it by a few milliseconds.
constexpr int64_t kCancelGrace = 250 * kMs;
// On one connection the cancel (RST_STREAM) precedes the next stream's frames.
constexpr int64_t kSameChannelCancelGrace = 20 * kMs;

void SleepMs(int64_t ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// ---------------------------------------------------------------------------
// Tables and keys.

struct TableSpec {
  const char* name;
  const char* pk;
  const char* sk;  // nullptr: no sort key
  const char* prefix;
};
const TableSpec kTables[] = {
    {"events", "pk", nullptr, "e"},
    {"users", "id", nullptr, "u"},
    {"orders", "pk", "sk", "o"},  // sort key N: "1", "1.0", "10E-1" are one key
};
constexpr int kNumTables = 3;
constexpr int kKeysPerTable = 8;  // 0 and 1 are the hot keys

std::string KeyName(int table, int k) {
  if (kTables[table].sk == nullptr) return absl::StrCat(kTables[table].prefix, k);
  return absl::StrCat(kTables[table].prefix, k / 2, "|", k % 2 + 1);
}

// Equivalent spellings of the numbers 1 and 2 (one DynamoDB key each).
std::string NumberSpelling(int n, std::mt19937_64& rng) {
  static const char* kOne[] = {"1", "1.0", "10E-1", "1e0", "0.1E1"};
  static const char* kTwo[] = {"2", "2.00", "0.2e1", "20E-1"};
  return n == 1 ? kOne[rng() % 5] : kTwo[rng() % 4];
}

// ---------------------------------------------------------------------------
// The history.

struct Result {
  v1::Outcome outcome;
  int64_t t;
  std::string error_code;
};

struct Op {
  uint64_t id = 0;
  int table = 0;
  int key_index = 0;
  std::string key;
  bool del = false;
  size_t bytes = 0;
  std::string writer;
  int64_t stream = -1;  // raw stream index, or -1
  int seq = 0;          // position in its raw stream
  int lib = -1;         // library client, or -1
  uint64_t lib_seq = 0;
  int64_t t_send = 0;
  std::vector<Result> results;
  int callbacks = 0;  // library callbacks
  absl::Status client_status;
  int64_t t_client_done = kNever;
  bool final_round = false;
  int64_t FirstResult() const { return results.empty() ? kNever : results.front().t; }
};

struct StreamRec {
  int64_t index = 0;
  int channel = -1;  // raw worker whose channel (one HTTP/2 connection) carried it
  std::string worker;
  std::string mode;
  int incarnation = 0;
  bool opened_while_down = false;
  std::vector<uint64_t> ops;
  int64_t t_open = 0;
  int64_t t_end = kNever;
  bool cancelled = false;
  bool done = false;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  std::vector<uint64_t> stray;
  int64_t messages = 0;
  int64_t max_message_bytes = 0;  // largest WriteRequest sent on it
};

struct Observation {
  int64_t t_start;
  int64_t t_end;
  int table;
  std::string key;
  uint64_t v;  // 0: the item has no valid `v`
  bool final_scan;
};

// A write dynalite applied, from the proxy's write log.
struct Applied {
  int64_t t0;  // the call was forwarded
  int64_t t1;  // and answered
  std::string key;
  uint64_t v;  // 0 for a delete (its op is not identifiable)
};

struct Violation {
  std::string check;
  std::string key;  // "table/key" or empty
  uint64_t older = 0;
  uint64_t newer = 0;
  int64_t t = 0;
  std::string detail;
};

class History {
 public:
  absl::Mutex mu;
  std::deque<Op> ops ABSL_GUARDED_BY(mu);  // id = index + 1
  std::deque<StreamRec> streams ABSL_GUARDED_BY(mu);
  std::vector<Observation> observations ABSL_GUARDED_BY(mu);
  std::vector<int64_t> kills ABSL_GUARDED_BY(mu);
  std::map<int, int64_t> lib_closed ABSL_GUARDED_BY(mu);
  int64_t crash_grace = 500 * kMs;  // raised with the proxy latency
  int64_t t0 = NowNs();

  Op& NewOp(int table, int k, bool del) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ops.emplace_back();
    Op& op = ops.back();
    op.id = ops.size();
    op.table = table;
    op.key_index = k;
    op.key = absl::StrCat(kTables[table].name, "/", KeyName(table, k));
    op.del = del;
    return op;
  }
  Op& Get(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ops[id - 1]; }
  bool Valid(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return id >= 1 && id <= ops.size(); }

  bool CrashBetween(int64_t t1, int64_t t2) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (int64_t k : kills) {
      if (t1 < k && t2 < k + crash_grace) return true;
    }
    return false;
  }

  // Whether the sidecar is known to have seen `a` before `b` (same key).
  bool Precedes(const Op& a, const Op& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (a.id == b.id) return false;
    if (a.stream >= 0 && a.stream == b.stream) return a.seq < b.seq;
    bool order = false;
    if (a.lib >= 0 && a.lib == b.lib && a.lib_seq < b.lib_seq) order = true;
    if (a.FirstResult() < b.t_send) order = true;
    if (a.stream >= 0) {
      const StreamRec& s = streams[a.stream];
      const bool same_channel =
          b.stream >= 0 && s.channel >= 0 && streams[b.stream].channel == s.channel;
      const int64_t grace = same_channel ? kSameChannelCancelGrace : kCancelGrace;
      if (s.t_end != kNever && s.t_end + grace < b.t_send) order = true;
    }
    if (a.lib >= 0) {
      auto it = lib_closed.find(a.lib);
      if (it != lib_closed.end() && it->second + kCancelGrace < b.t_send) order = true;
    }
    return order && !CrashBetween(a.t_send, b.t_send);
  }

  double Rel(int64_t t) const { return (t - t0) / 1e9; }

  std::string Describe(const Op& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::string s = absl::StrFormat("  #%d +%.3fs %s %s by %s", op.id, Rel(op.t_send),
                                    op.del ? "delete" : "put   ", op.key, op.writer);
    if (op.stream >= 0) {
      const StreamRec& st = streams[op.stream];
      absl::StrAppend(&s, absl::StrFormat(" [stream %d %s seq %d, ", st.index, st.mode, op.seq));
      if (st.cancelled) {
        absl::StrAppend(&s, absl::StrFormat("cancelled by client at +%.3fs]", Rel(st.t_end)));
      } else if (st.done) {
        absl::StrAppend(
            &s, absl::StrFormat("ended %d at +%.3fs]", static_cast<int>(st.code), Rel(st.t_end)));
      } else {
        absl::StrAppend(&s, "open]");
      }
    }
    if (op.lib >= 0)
      absl::StrAppend(&s, absl::StrFormat(" [library %d seq %d]", op.lib, op.lib_seq));
    if (op.final_round) absl::StrAppend(&s, " [final round]");
    if (op.results.empty() && op.client_status.ok()) absl::StrAppend(&s, " -> no result");
    for (const Result& r : op.results) {
      absl::StrAppend(
          &s, absl::StrFormat(" -> %s%s at +%.3fs", v1::Outcome_Name(r.outcome),
                              r.error_code.empty() ? "" : "(" + r.error_code + ")", Rel(r.t)));
    }
    if (!op.client_status.ok()) {
      absl::StrAppend(&s, absl::StrFormat(" -> client gave up: %s at +%.3fs",
                                          absl::StatusCodeToString(op.client_status.code()),
                                          Rel(op.t_client_done)));
    }
    return s;
  }
};

// ---------------------------------------------------------------------------
// Direct DynamoDB calls to dynalite (not through the proxy): polls.

size_t CurlCollect(char* ptr, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(ptr, size * n);
  return size * n;
}

absl::StatusOr<std::string> DdbCall(const std::string& endpoint, const std::string& action,
                                    const std::string& body) {
  CURL* c = curl_easy_init();
  std::string out;
  curl_easy_setopt(c, CURLOPT_URL, (endpoint + "/").c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &CurlCollect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  struct curl_slist* h = nullptr;
  h = curl_slist_append(h, "Content-Type: application/x-amz-json-1.0");
  h = curl_slist_append(h, ("X-Amz-Target: DynamoDB_20120810." + action).c_str());
  h = curl_slist_append(h, "X-Amz-Date: 20200101T000000Z");
  h = curl_slist_append(h,
                        "Authorization: AWS4-HMAC-SHA256 Credential=fake/20200101/us-east-1/"
                        "dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, "
                        "Signature=0");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) return absl::UnavailableError(curl_easy_strerror(rc));
  if (code != 200) return absl::InternalError(absl::StrCat(action, ": HTTP ", code, " ", out));
  return out;
}

// Scans one table; returns key -> v (0 when `v` is missing or not a number).
absl::StatusOr<std::map<std::string, uint64_t>> ScanKeys(const std::string& endpoint, int table) {
  std::map<std::string, uint64_t> out;
  std::string start_key;
  for (int page = 0; page < 100; ++page) {
    std::string body =
        absl::StrCat(R"({"TableName":")", kTables[table].name, R"(","ConsistentRead":true)");
    if (!start_key.empty()) absl::StrAppend(&body, R"(,"ExclusiveStartKey":)", start_key);
    body += "}";
    auto r = DdbCall(endpoint, "Scan", body);
    if (!r.ok()) return r.status();
    rapidjson::Document d;
    d.Parse(r->c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("Items")) {
      return absl::InternalError("bad Scan answer: " + r->substr(0, 200));
    }
    for (const auto& item : d["Items"].GetArray()) {
      const TableSpec& t = kTables[table];
      std::string key;
      if (item.HasMember(t.pk) && item[t.pk].HasMember("S")) key = item[t.pk]["S"].GetString();
      if (t.sk != nullptr && item.HasMember(t.sk) && item[t.sk].HasMember("N")) {
        double sk = 0;
        (void)absl::SimpleAtod(item[t.sk]["N"].GetString(), &sk);
        absl::StrAppend(&key, "|", static_cast<int>(sk));
      }
      uint64_t v = 0;
      if (item.HasMember("v") && item["v"].HasMember("N")) {
        (void)absl::SimpleAtoi(item["v"]["N"].GetString(), &v);
      }
      out[absl::StrCat(t.name, "/", key)] = v;
    }
    if (!d.HasMember("LastEvaluatedKey")) break;
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    d["LastEvaluatedKey"].Accept(w);
    start_key = sb.GetString();
  }
  return out;
}

// ---------------------------------------------------------------------------
// The run.

int64_t ReadRssKiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = 0;
      std::string digits;
      for (char ch : line) {
        if (isdigit(static_cast<unsigned char>(ch))) digits += ch;
      }
      (void)absl::SimpleAtoi(digits, &kib);
      return kib;
    }
  }
  return 0;
}

constexpr int64_t kMaxBytes = 8 << 20;
constexpr int64_t kMaxTableBytes = 2 << 20;
constexpr int64_t kMaxMessageBytes = 8 << 20;
constexpr int64_t kGrpcMemoryBytes = 16 << 20;
constexpr int kCallTimeoutMs = 1000;

class HistoryRun {
 public:
  explicit HistoryRun(std::string dir) : dir_(std::move(dir)) {}

  std::string SidecarYaml(int grpc_port, int metrics_port) const {
    std::string listen;
    if (grpc_port != 0) {
      listen = absl::StrCat("listen: 127.0.0.1:", grpc_port,
                            "\nmetrics_listen: 127.0.0.1:", metrics_port, "\n");
    }
    return absl::StrCat(listen, R"(log:
  level: info
dynamodb:
  endpoint: )",
                        proxy_.endpoint(), R"(
  credentials: {access_key_id: local, secret_access_key: local}
  create_tables: false
  call_timeout: )",
                        kCallTimeoutMs, R"(ms
  connect_timeout: 1s
tables:
  - name: events
    partition_key: {name: pk, type: S}
  - name: users
    partition_key: {name: id, type: S}
  - name: orders
    partition_key: {name: pk, type: S}
    sort_key: {name: sk, type: N}
batching:
  linger: 5ms
  max_inflight_calls: 4
retry:
  base: 10ms
  cap: 400ms
  max_attempts: 12
  op_deadline: 15s
buffer:
  max_bytes: )",
                        kMaxBytes, R"(
  max_table_bytes: )",
                        kMaxTableBytes, R"(
server:
  max_inflight_ops_per_stream: 20000
  max_message_bytes: )",
                        kMaxMessageBytes, R"(
  grpc_memory_bytes: )",
                        kGrpcMemoryBytes, R"(
drain_timeout: 2s
dead_letter:
  path: )",
                        dir_, "/dead-letter.jsonl\n");
  }

  void Start() {
    auto d = StartDynalite(dir_);
    ASSERT_TRUE(d.ok()) << d.status();
    dynalite_ = std::move(*d);
    // Created directly: a restart under a proxy fault mix must not depend on
    // CreateTable getting through.
    for (const TableSpec& t : kTables) {
      absl::Status st = CreateTable(dynalite_.endpoint(), t.name, std::string(t.pk) + ":S",
                                    t.sk == nullptr ? "" : std::string(t.sk) + ":N");
      ASSERT_TRUE(st.ok()) << st;
    }
    // The proxy also logs every write dynalite applied, with monotonic times:
    // the order writes really landed in, including ones overwritten before
    // any poll could see them.
    write_log_ = dir_ + "/writes.jsonl";
    proxy_.process = std::make_unique<ChildProcess>(
        std::vector<std::string>{"node", SourceDir() + "/tests/tools/fault_proxy.js", "--port", "0",
                                 "--target", dynalite_.endpoint(), "--seed", "1", "--write-log",
                                 write_log_},
        dir_ + "/proxy.log");
    auto ready = proxy_.process->WaitForLog("READY port=", absl::Seconds(20));
    ASSERT_TRUE(ready.ok()) << ready.status();
    ASSERT_TRUE(absl::SimpleAtoi(ready->substr(ready->find("READY port=") + 11,
                                               ready->find('\n', ready->find("READY port=")) -
                                                   ready->find("READY port=") - 11),
                                 &proxy_.port));
    auto s = StartSidecar(dir_, SidecarYaml(0, 0));
    ASSERT_TRUE(s.ok()) << s.status();
    grpc_port_ = s->grpc_port;
    metrics_port_ = s->metrics_port;
    sidecar_pid_ = s->process->pid();
    NoteStartRss(sidecar_pid_.load());
    sidecars_.push_back(std::make_unique<Sidecar>(std::move(*s)));
    target_ = absl::StrCat("127.0.0.1:", grpc_port_);
  }

  void Execute() {
    const Options& o = Opts();
    t_end_chaos_ = NowNs() + static_cast<int64_t>(o.seconds * kSec);
    std::vector<std::thread> threads;
    std::thread rss([this] { RssLoop(); });
    std::thread poller([this] { PollLoop(); });
    std::thread chaos([this] { ChaosLoop(); });
    const int raw_workers = 4;
    for (int w = 0; w < raw_workers; ++w) threads.emplace_back([this, w] { RawWorker(w); });
    std::vector<std::thread> libs;
    if (Enabled("library")) {
      for (int l = 0; l < 2; ++l) libs.emplace_back([this, l] { LibraryWorker(l); });
    }
    chaos.join();
    for (auto& t : threads) t.join();
    for (auto& t : libs) t.join();
    // Held or late writes get their chance to surface while the poller runs.
    SleepMs(3000);
    FinalRound();
    SleepMs(2000);
    stop_.store(true);
    poller.join();
    rss.join();
    FinalScan();
  }

  // Checks the history; returns the violations.
  std::vector<Violation> Check();
  std::string Summary();
  std::string Explain(const Violation& v);
  void DumpHistory(const std::string& path);

  History h;

 private:
  void Note(const std::string& s) {
    absl::MutexLock l(&notes_mu_);
    notes_.push_back(absl::StrFormat("+%.3fs %s", h.Rel(NowNs()), s));
  }

  // Builds one op; returns the WriteOp.
  v1::WriteOp MakeOp(std::mt19937_64& rng, const std::string& writer, int64_t stream, int seq,
                     bool hot_only, bool allow_big, Op** out, int force_table = -1,
                     int64_t force_pad = -1, int force_del = -1, int force_key = -1)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(h.mu) {
    int table = force_table >= 0 ? force_table : static_cast<int>(rng() % kNumTables);
    int k;
    if (force_key >= 0) {
      k = force_key;
    } else if (hot_only || (Enabled("hot_keys") && rng() % 10 < 3)) {
      k = static_cast<int>(rng() % 2);
    } else {
      k = static_cast<int>(rng() % kKeysPerTable);
    }
    bool del = force_del >= 0 ? force_del == 1 : rng() % 5 == 0;
    Op& op = h.NewOp(table, k, del);
    op.writer = writer;
    op.stream = stream;
    op.seq = seq;
    op.t_send = NowNs();
    v1::WriteOp w;
    w.set_id(op.id);
    w.set_table(kTables[table].name);
    v1::Item* item = del ? w.mutable_delete_key() : w.mutable_put();
    auto& attrs = *item->mutable_attributes();
    const TableSpec& t = kTables[table];
    std::string pk = KeyName(table, k);
    if (t.sk != nullptr) {
      attrs[t.pk].set_s(absl::StrCat(t.prefix, k / 2));
      attrs[t.sk].set_n(NumberSpelling(k % 2 + 1, rng));
    } else {
      attrs[t.pk].set_s(pk);
    }
    if (!del) {
      attrs["v"].set_n(absl::StrCat(op.id));
      attrs["w"].set_s(writer);
      size_t pad = 0;
      uint64_t r = rng() % 100;
      if (force_pad >= 0) {
        pad = static_cast<size_t>(force_pad);
      } else if (allow_big && Enabled("big_items") && r < 3) {
        pad = 50000 + rng() % 300000;  // up to ~350 KB: a few fill a table's budget
      } else if (r < 40) {
        pad = rng() % 2000;
      }
      if (pad > 0) attrs["pad"].set_s(std::string(pad, 'a' + static_cast<char>(op.id % 26)));
    }
    op.bytes = w.ByteSizeLong();
    *out = &op;
    return w;
  }

  int OpsPerMessage(std::mt19937_64& rng) {
    uint64_t r = rng() % 100;
    if (r < 20) return 1;
    if (r < 60) return 2 + static_cast<int>(rng() % 19);
    if (r < 90) return 20 + static_cast<int>(rng() % 180);
    return 200 + static_cast<int>(rng() % 400);
  }

  // gRPC's default message limits (4 MiB receive), as any client has them;
  // only the reconnect backoff is shortened so a restarted sidecar is found
  // quickly.
  std::shared_ptr<grpc::Channel> RawChannel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    return grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
  }

  void RawWorker(int w) {
    std::mt19937_64 rng(Opts().seed * 7919 + static_cast<uint64_t>(w));
    auto channel = RawChannel();
    auto stub = v1::WriteBatcher::NewStub(channel);
    int n = 0;
    while (NowNs() < t_end_chaos_) {
      uint64_t r = rng() % 100;
      std::string mode = "normal";
      if (r < 20 && Enabled("cancel")) {
        mode = "cancel";
      } else if (r < 30 && Enabled("slow_reader")) {
        mode = "slow_reader";
      } else if (r < 34 && Enabled("non_reader")) {
        mode = "non_reader";
      } else if (r < 36 && Enabled("hot_keys") &&
                 hot_bursts_.fetch_add(1) < 1 + static_cast<int>(Opts().seconds / 40)) {
        mode = "hot_burst";
      }
      RawStream(*stub, rng, absl::StrCat("raw", w, "/", n++), mode, w);
      SleepMs(static_cast<int64_t>(rng() % 50));
    }
  }

  void RawStream(v1::WriteBatcher::Stub& stub, std::mt19937_64& rng, const std::string& writer,
                 const std::string& mode, int channel) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(40));
    ctx.set_wait_for_ready(true);  // a stream opened while the sidecar restarts waits for it
    int64_t sid;
    {
      absl::MutexLock l(&h.mu);
      h.streams.emplace_back();
      StreamRec& s = h.streams.back();
      s.index = static_cast<int64_t>(h.streams.size()) - 1;
      s.worker = writer;
      s.mode = mode;
      s.channel = channel;
      s.incarnation = incarnation_.load();
      s.opened_while_down = down_.load();
      s.t_open = NowNs();
      sid = s.index;
    }
    auto stream = stub.Write(&ctx);
    std::thread reader;
    if (mode != "non_reader") {
      reader = std::thread([&, sid, slow = mode == "slow_reader" || mode == "hot_burst",
                            hot_reader = mode == "hot_burst", seed = rng()]() {
        std::mt19937_64 rrng(seed);
        // Slow for the first seconds (results pile up in the sidecar), then
        // reading normally so the stream can end.
        int64_t slow_budget_ms = slow ? 2000 + static_cast<int64_t>(rrng() % 3000) : 0;
        if (hot_reader) {
          SleepMs(slow_budget_ms);
          slow_budget_ms = 0;
        }
        v1::WriteResponse resp;
        while (stream->Read(&resp)) {
          int64_t t = NowNs();
          {
            absl::MutexLock l(&h.mu);
            for (const auto& res : resp.results()) {
              uint64_t id = res.id();
              if (!h.Valid(id) || h.Get(id).stream != sid) {
                h.streams[sid].stray.push_back(id);
                continue;
              }
              h.Get(id).results.push_back(Result{res.outcome(), t, res.error_code()});
            }
          }
          if (slow_budget_ms > 0) {
            int64_t ms = std::min<int64_t>(slow_budget_ms, 200 + rrng() % 1300);
            slow_budget_ms -= ms;
            SleepMs(ms);
          }
        }
      });
    }
    const bool hot = mode == "hot_burst";
    // A cancelled stream whose first messages fill `events`' budget with big
    // items, followed by ops on the other tables' hot keys: those must not
    // wait behind `events`, and must never be written after the cancel.
    const bool held = mode == "cancel" && rng() % 2 == 0;
    // Hot bursts: ~250k deletes on six keys while the reader sleeps: every
    // one is answered (mostly COALESCED) before the client reads again.
    int msgs = hot ? 250 : 1 + static_cast<int>(rng() % 12);
    int cancel_after = mode == "cancel" ? static_cast<int>(rng() % (msgs + 1)) : -1;
    if (held) msgs = cancel_after = 2;
    int64_t stop_at =
        mode == "non_reader" ? NowNs() + (2 + static_cast<int64_t>(rng() % 5)) * kSec : kNever;
    std::atomic<bool> cancelled{false};
    auto cancel = [&] {
      if (cancelled.exchange(true)) return;
      ctx.TryCancel();
      absl::MutexLock l(&h.mu);
      h.streams[sid].cancelled = true;
      h.streams[sid].t_end = NowNs();
    };
    std::thread canceller;
    if (mode == "non_reader") {
      canceller = std::thread([&] {
        while (NowNs() < stop_at) SleepMs(20);
        cancel();
      });
      msgs = 100;  // or until cancelled
    }
    int seq = 0;
    std::vector<std::pair<int, int>> resend;  // (table, key) of the held ops
    for (int m = 0; m < msgs && !cancelled.load(); ++m) {
      if (m == cancel_after) {
        SleepMs(static_cast<int64_t>(rng() % (held ? 50 : 300)));
        cancel();
        break;
      }
      if (mode == "normal" && NowNs() > t_end_chaos_ + 5 * kSec) break;
      v1::WriteRequest req;
      int n = hot ? 1000 : OpsPerMessage(rng);
      if (mode == "non_reader") n = 500;
      {
        absl::MutexLock l(&h.mu);
        if (held && m < 2) {
          // 1.8 MB for `events` per message (its budget is 2 MiB): the second
          // message waits until the first one's items are written.
          for (int i = 0; i < 6; ++i) {
            Op* op;
            *req.add_ops() = MakeOp(rng, h.streams[sid].worker, sid, seq++, true, false, &op,
                                    /*force_table=*/0, /*force_pad=*/300000, /*force_del=*/0);
            h.streams[sid].ops.push_back(op->id);
            if (m == 1) resend.emplace_back(op->table, op->key_index);
          }
          for (int i = 0; i < (m == 1 ? 6 : 0); ++i) {
            Op* op;
            *req.add_ops() = MakeOp(rng, h.streams[sid].worker, sid, seq++, true, false, &op,
                                    /*force_table=*/1 + i % 2);
            h.streams[sid].ops.push_back(op->id);
            resend.emplace_back(op->table, op->key_index);
          }
          n = 0;
        }
        for (int i = 0; i < n; ++i) {
          Op* op;
          // Hot bursts: deletes only (small), a flood of COALESCED results.
          *req.add_ops() =
              MakeOp(rng, h.streams[sid].worker, sid, seq++, hot,
                     /*allow_big=*/!hot && mode != "non_reader", &op, -1, -1, hot ? 1 : -1);
          h.streams[sid].ops.push_back(op->id);
        }
        h.streams[sid].messages++;
        h.streams[sid].max_message_bytes =
            std::max(h.streams[sid].max_message_bytes, static_cast<int64_t>(req.ByteSizeLong()));
      }
      if (!stream->Write(req)) break;
      if (mode != "non_reader") SleepMs(static_cast<int64_t>(rng() % 40));
    }
    if (cancel_after >= 0 && !cancelled.load()) {  // cancel after the last message
      SleepMs(static_cast<int64_t>(rng() % (held ? 50 : 300)));
      cancel();
    }
    if (!cancelled.load()) {
      if (mode == "non_reader") {
        // Write failed before the timer: wait for it anyway.
        canceller.join();
      } else {
        stream->WritesDone();
      }
    }
    if (canceller.joinable()) canceller.join();
    if (reader.joinable()) reader.join();
    grpc::Status st = stream->Finish();
    {
      absl::MutexLock l(&h.mu);
      StreamRec& s = h.streams[sid];
      s.done = true;
      s.code = st.error_code();
      s.message = st.error_message();
      if (!s.cancelled) s.t_end = NowNs();
    }
    if (held && !resend.empty()) {
      // As a client does after a broken stream: write those keys again, on a
      // new stream, once the cancel has certainly reached the sidecar.
      SleepMs(kSameChannelCancelGrace / kMs + 10);
      ResendStream(stub, rng, writer + "+resend", resend, channel);
    }
  }

  void ResendStream(v1::WriteBatcher::Stub& stub, std::mt19937_64& rng, const std::string& writer,
                    const std::vector<std::pair<int, int>>& keys, int channel) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(40));
    ctx.set_wait_for_ready(true);
    int64_t sid;
    v1::WriteRequest req;
    {
      absl::MutexLock l(&h.mu);
      h.streams.emplace_back();
      StreamRec& s = h.streams.back();
      s.index = static_cast<int64_t>(h.streams.size()) - 1;
      s.worker = writer;
      s.mode = "resend";
      s.channel = channel;
      s.incarnation = incarnation_.load();
      s.opened_while_down = down_.load();
      s.t_open = NowNs();
      sid = s.index;
      int seq = 0;
      for (const auto& [table, k] : keys) {
        for (int twice = 0; twice < 2; ++twice) {
          Op* op = nullptr;
          v1::WriteOp w = MakeOp(rng, writer, sid, seq++, false, false, &op, table, 0, 0, k);
          s.ops.push_back(op->id);
          *req.add_ops() = std::move(w);
        }
      }
    }
    SendOneMessageAndRecord(stub, ctx, req, sid);
  }

  // Sends `req` as the only message of stream `sid`, half-closes, and records
  // every result (or a stray id) and how the stream ended.
  void SendOneMessageAndRecord(v1::WriteBatcher::Stub& stub, grpc::ClientContext& ctx,
                               const v1::WriteRequest& req, int64_t sid) {
    auto stream = stub.Write(&ctx);
    stream->Write(req);
    stream->WritesDone();
    v1::WriteResponse resp;
    while (stream->Read(&resp)) {
      int64_t t = NowNs();
      absl::MutexLock l(&h.mu);
      for (const auto& res : resp.results()) {
        if (h.Valid(res.id()) && h.Get(res.id()).stream == sid) {
          h.Get(res.id()).results.push_back(Result{res.outcome(), t, res.error_code()});
        } else {
          h.streams[sid].stray.push_back(res.id());
        }
      }
    }
    grpc::Status st = stream->Finish();
    absl::MutexLock l(&h.mu);
    h.streams[sid].done = true;
    h.streams[sid].code = st.error_code();
    h.streams[sid].message = st.error_message();
    h.streams[sid].t_end = NowNs();
  }

  void LibraryWorker(int l) {
    std::mt19937_64 rng(Opts().seed * 104729 + static_cast<uint64_t>(l));
    ClientOptions options;
    options.target = target_;
    options.streams = 2;
    options.op_deadline = absl::Seconds(20);
    options.max_inflight_ops = 20000;
    options.reconnect_backoff = absl::Milliseconds(50);
    options.max_reconnect_backoff = absl::Milliseconds(500);
    auto client = Client::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    const std::string writer = absl::StrCat("lib", l);
    uint64_t seq = 0;
    while (NowNs() < t_end_chaos_) {
      int n = OpsPerMessage(rng);
      for (int i = 0; i < n; ++i) {
        v1::WriteOp w;
        uint64_t id;
        {
          absl::MutexLock lock(&h.mu);
          Op* op;
          w = MakeOp(rng, writer, -1, 0, false, true, &op);
          op->lib = l;
          op->lib_seq = ++seq;
          id = op->id;
        }
        auto cb = [this, id](WriteOutcome o) {
          int64_t t = NowNs();
          absl::MutexLock lock(&h.mu);
          Op& op = h.Get(id);
          op.callbacks++;
          if (o.status.ok()) {
            op.results.push_back(Result{o.outcome, t, o.error_code});
          } else {
            op.client_status = o.status;
            op.t_client_done = t;
          }
        };
        if (w.has_put()) {
          (*client)->Put(w.table(), Item(std::move(*w.mutable_put())), cb);
        } else {
          (*client)->Delete(w.table(), Item(std::move(*w.mutable_delete_key())), cb);
        }
      }
      SleepMs(static_cast<int64_t>(rng() % 200));
    }
    absl::Status closed = (*client)->Close(absl::Seconds(30));
    {
      absl::MutexLock lock(&h.mu);
      h.lib_closed[l] = NowNs();
    }
    Note(absl::StrCat(writer, " closed: ", closed.ToString()));
    auto stats = (*client)->stats();
    Note(absl::StrCat(writer, " stats: submitted ", stats.ops_submitted, " resolved ",
                      stats.ops_resolved, " sent ", stats.ops_sent, " resent ", stats.ops_resent,
                      " reconnects ", stats.reconnects, " client_errors ", stats.client_errors));
    client->reset();
  }

  std::string ProxyMix(std::mt19937_64& rng, std::string* label) {
    auto u = [&](double hi) { return hi * static_cast<double>(rng() % 10000) / 10000.0; };
    std::vector<std::string> kinds = {"clean"};
    if (Enabled("faults")) {
      kinds.insert(kinds.end(), {"mixed", "mixed", "spike", "resets", "throttle"});
    }
    if (Enabled("timeouts")) kinds.insert(kinds.end(), {"timeouts", "timeouts"});
    std::string kind = kinds[rng() % kinds.size()];
    *label = kind;
    double latency = 0, jitter = 0, unprocessed = 0, pte = 0, thr = 0, e500 = 0, e503 = 0,
           reset = 0;
    bool late = false;
    if (kind == "mixed") {
      latency = u(20), jitter = u(60), unprocessed = u(0.4), pte = u(0.1), thr = u(0.1),
      e500 = u(0.08), e503 = u(0.08), reset = u(0.06);
    } else if (kind == "spike") {
      latency = 200 + u(600), jitter = u(700);
    } else if (kind == "resets") {
      reset = 0.1 + u(0.2);
    } else if (kind == "throttle") {
      unprocessed = 0.3 + u(0.5), pte = u(0.3), thr = u(0.2);
    } else if (kind == "timeouts") {
      // Some calls outlive the sidecar's call_timeout and still land later.
      latency = kCallTimeoutMs * 0.6, jitter = kCallTimeoutMs * 1.2, late = true;
    }
    int64_t max_latency = static_cast<int64_t>((latency + jitter) * kMs);
    {
      absl::MutexLock l(&h.mu);
      h.crash_grace = std::max(h.crash_grace, max_latency + 500 * kMs);
    }
    return absl::StrFormat(
        R"({"seed":%d,"latency_ms":%.0f,"latency_jitter_ms":%.0f,"unprocessed_fraction":%.3f,)"
        R"("throttle_fraction":{"ProvisionedThroughputExceededException":%.3f,)"
        R"("ThrottlingException":%.3f},"error_500_fraction":%.3f,"error_503_fraction":%.3f,)"
        R"("reset_fraction":%.3f,"reset_after_forward_share":0.5,)"
        R"("forward_after_client_abort":%s})",
        static_cast<int>(rng() % 1000000), latency, jitter, unprocessed, pte, thr, e500, e503,
        reset, late ? "true" : "false");
  }

  void Kill(std::mt19937_64& rng) {
    pid_t old = sidecar_pid_.load();
    down_.store(true);
    {
      absl::MutexLock l(&h.mu);
      h.kills.push_back(NowNs());  // before the signal: the earliest the crash can be seen
    }
    sidecars_.back()->process->Signal(SIGKILL);
    sidecars_.back()->process->Wait(absl::Seconds(10));
    ++kills_;
    SleepMs(static_cast<int64_t>(rng() % 500));
    for (int attempt = 0; attempt < 20; ++attempt) {
      std::string dir = absl::StrCat(dir_, "/restart", kills_, "-", attempt);
      (void)system(absl::StrCat("mkdir -p '", dir, "'").c_str());
      auto s = StartSidecar(dir, SidecarYaml(grpc_port_, metrics_port_));
      if (s.ok()) {
        sidecar_pid_.store(s->process->pid());
        NoteStartRss(sidecar_pid_.load());
        sidecars_.push_back(std::make_unique<Sidecar>(std::move(*s)));
        incarnation_.fetch_add(1);
        down_.store(false);
        Note(absl::StrCat("SIGKILL sidecar pid ", old, ", restarted as pid ", sidecar_pid_.load()));
        return;
      }
      Note(absl::StrCat("restart failed: ", s.status().ToString().substr(0, 300)));
      SleepMs(250);
    }
    ADD_FAILURE() << "sidecar did not restart";
  }

  void ChaosLoop() {
    std::mt19937_64 rng(Opts().seed * 31337);
    const int64_t start = NowNs();
    const int64_t span = t_end_chaos_ - start;
    std::vector<int64_t> kill_at;
    if (Enabled("kill")) {
      int n = std::max<int>(2, static_cast<int>(span / (30 * kSec)));
      for (int i = 1; i <= n; ++i) {
        kill_at.push_back(start + span * i / (n + 1) + static_cast<int64_t>(rng() % (2 * kSec)));
      }
    }
    size_t next_kill = 0;
    while (NowNs() < t_end_chaos_) {
      std::string label;
      std::string mix = ProxyMix(rng, &label);
      absl::Status st = ConfigureProxy(proxy_, mix);
      if (st.ok()) {
        mixes_[label]++;
        absl::MutexLock l(&notes_mu_);
        mix_log_.emplace_back(NowNs(), label + " " + mix);
      } else {
        Note("proxy config failed: " + st.ToString());
      }
      int64_t until =
          std::min(t_end_chaos_, NowNs() + (1 + static_cast<int64_t>(rng() % 4)) * kSec);
      while (NowNs() < until) {
        if (next_kill < kill_at.size() && NowNs() >= kill_at[next_kill]) {
          ++next_kill;
          Kill(rng);
        }
        SleepMs(50);
      }
    }
    absl::Status st = ConfigureProxy(
        proxy_, R"({"latency_ms":0,"latency_jitter_ms":0,"unprocessed_fraction":0,)"
                R"("throttle_fraction":{},"error_500_fraction":0,"error_503_fraction":0,)"
                R"("reset_fraction":0,"forward_after_client_abort":false})");
    if (!st.ok()) ADD_FAILURE() << "cannot calm the proxy: " << st;
  }

  // The documented memory bound, from the configuration given to the sidecar:
  //   VmRSS - VmRSS once ready <= buffer.max_bytes + server.grpc_memory_bytes
  //       + 3 x (sum over open Write streams of their largest message,
  //              each at most server.max_message_bytes)
  //       + fixed overhead.
  // The stream term is taken at its peak over the run: raw streams from
  // their open/end times and the largest message each sent, the library's
  // streams (one per client, all run long) at the library's message cap.
  int64_t PeakStreamMessageBytes(const History& h) {
    std::vector<std::pair<int64_t, int64_t>> events;  // (time, +-bytes)
    for (const StreamRec& st : h.streams) {
      int64_t b = std::min(st.max_message_bytes, kMaxMessageBytes);
      if (b == 0) continue;
      events.emplace_back(st.t_open, b);
      if (st.t_end != kNever) events.emplace_back(st.t_end, -b);
    }
    std::sort(events.begin(), events.end(),
              [](const auto& a, const auto& b) {  // ends first at equal times
                return a.first != b.first ? a.first < b.first : a.second < b.second;
              });
    int64_t open = 0, peak = 0;
    for (const auto& e : events) {
      open += e.second;
      peak = std::max(peak, open);
    }
    if (Enabled("library")) peak += 2 * static_cast<int64_t>(ClientOptions().max_message_bytes);
    return peak;
  }
  int64_t RssGrowthBoundKiB() const {
    return (kMaxBytes >> 10) + (kGrpcMemoryBytes >> 10) + 3 * (peak_stream_bytes_ >> 10) +
           Opts().rss_overhead_mib * 1024;
  }
  std::string RssBoundText() const {
    return absl::StrFormat(
        "buffer.max_bytes %d MiB + server.grpc_memory_bytes %d MiB + 3 x %.1f MiB (peak sum of "
        "open streams' largest messages) + fixed %d MiB = %d MiB growth",
        kMaxBytes >> 20, kGrpcMemoryBytes >> 20, peak_stream_bytes_ / 1048576.0,
        Opts().rss_overhead_mib, RssGrowthBoundKiB() >> 10);
  }

  // The bound is on growth over the RSS the sidecar had once ready (its code,
  // libraries, thread stacks), read here for each process the run starts.
  void NoteStartRss(pid_t pid) {
    int64_t kib = ReadRssKiB(pid);
    absl::MutexLock l(&notes_mu_);
    start_rss_kib_[pid] = kib;
  }

  void RssLoop() {
    while (!stop_.load()) {
      pid_t pid = sidecar_pid_.load();
      int64_t kib = ReadRssKiB(pid);
      if (kib > 0) {
        absl::MutexLock l(&notes_mu_);
        auto start = start_rss_kib_.find(pid);
        if (start != start_rss_kib_.end() && kib - start->second > max_growth_kib_) {
          max_growth_kib_ = kib - start->second;
          max_rss_kib_ = kib;
          max_rss_start_kib_ = start->second;
          max_rss_at_ = NowNs();
        }
      }
      SleepMs(100);
    }
  }

  void PollOnce(bool final_scan) {
    for (int t = 0; t < kNumTables; ++t) {
      int64_t t_start = NowNs();
      auto keys = ScanKeys(dynalite_.endpoint(), t);
      int64_t t_end = NowNs();
      if (!keys.ok()) {
        Note("scan failed: " + keys.status().ToString());
        continue;
      }
      absl::MutexLock l(&h.mu);
      ++polls_;
      for (const auto& [key, v] : *keys) {
        h.observations.push_back(Observation{t_start, t_end, t, key, v, final_scan});
      }
      if (final_scan) final_keys_[t] = *keys;
    }
  }

  void PollLoop() {
    while (!stop_.load()) {
      PollOnce(false);
      SleepMs(200);
    }
  }

  void FinalRound() {
    std::mt19937_64 rng(Opts().seed * 65537);
    auto channel = RawChannel();
    auto stub = v1::WriteBatcher::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    int64_t sid;
    v1::WriteRequest req;
    {
      absl::MutexLock l(&h.mu);
      h.streams.emplace_back();
      StreamRec& s = h.streams.back();
      s.index = static_cast<int64_t>(h.streams.size()) - 1;
      s.worker = "final";
      s.mode = "final";
      s.incarnation = incarnation_.load();
      s.t_open = NowNs();
      sid = s.index;
      int seq = 0;
      for (int t = 0; t < kNumTables; ++t) {
        for (int k = 0; k < kKeysPerTable; ++k) {
          Op& op = h.NewOp(t, k, rng() % 4 == 0);
          op.writer = "final";
          op.stream = sid;
          op.seq = seq++;
          op.final_round = true;
          op.t_send = NowNs();
          v1::WriteOp* w = req.add_ops();
          w->set_id(op.id);
          w->set_table(kTables[t].name);
          v1::Item* item = op.del ? w->mutable_delete_key() : w->mutable_put();
          auto& attrs = *item->mutable_attributes();
          if (kTables[t].sk != nullptr) {
            attrs[kTables[t].pk].set_s(absl::StrCat(kTables[t].prefix, k / 2));
            attrs[kTables[t].sk].set_n(NumberSpelling(k % 2 + 1, rng));
          } else {
            attrs[kTables[t].pk].set_s(KeyName(t, k));
          }
          if (!op.del) attrs["v"].set_n(absl::StrCat(op.id));
          s.ops.push_back(op.id);
        }
      }
    }
    SendOneMessageAndRecord(*stub, ctx, req, sid);
  }

  void FinalScan() { PollOnce(true); }

  std::string dir_;
  std::string write_log_;
  Dynalite dynalite_;
  FaultProxy proxy_;
  std::vector<std::unique_ptr<Sidecar>> sidecars_;
  std::string target_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::atomic<pid_t> sidecar_pid_{0};
  std::atomic<int> incarnation_{0};
  std::atomic<bool> down_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> hot_bursts_{0};
  int64_t t_end_chaos_ = 0;
  int kills_ = 0;
  std::map<std::string, int> mixes_;
  int64_t polls_ = 0;
  int final_checked_ = 0;
  size_t applied_ = 0;
  int late_after_cancel_ = 0;
  std::vector<std::string> late_examples_;
  int final_skipped_ = 0;
  std::map<int, std::map<std::string, uint64_t>> final_keys_;

  absl::Mutex notes_mu_;
  std::vector<std::string> notes_;
  std::vector<std::pair<int64_t, std::string>> mix_log_;  // proxy config changes
  int64_t peak_stream_bytes_ = 0;                         // see PeakStreamMessageBytes
  int64_t max_rss_kib_ = 0;                               // VmRSS at the largest growth
  int64_t max_rss_start_kib_ = 0;                         // that process's VmRSS once ready
  int64_t max_growth_kib_ = 0;
  std::map<pid_t, int64_t> start_rss_kib_;
  int64_t max_rss_at_ = 0;

 public:
  std::string ProxyStatsText() {
    auto s = ProxyStats(proxy_);
    return s.ok() ? *s : s.status().ToString();
  }
};

std::vector<Applied> ReadWriteLog(const std::string& path) {
  std::vector<Applied> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("items")) continue;
    int64_t t0 = 0, t1 = 0;
    (void)absl::SimpleAtoi(d["t0"].GetString(), &t0);
    (void)absl::SimpleAtoi(d["t1"].GetString(), &t1);
    for (const auto& it : d["items"].GetArray()) {
      std::string table = it[0].GetString();
      const auto& attrs = it[2];
      for (int t = 0; t < kNumTables; ++t) {
        const TableSpec& spec = kTables[t];
        if (table != spec.name) continue;
        std::string key;
        if (attrs.HasMember(spec.pk) && attrs[spec.pk].HasMember("S")) {
          key = attrs[spec.pk]["S"].GetString();
        }
        if (spec.sk != nullptr && attrs.HasMember(spec.sk) && attrs[spec.sk].HasMember("N")) {
          double sk = 0;
          (void)absl::SimpleAtod(attrs[spec.sk]["N"].GetString(), &sk);
          absl::StrAppend(&key, "|", static_cast<int>(sk));
        }
        uint64_t v = 0;
        if (attrs.HasMember("v") && attrs["v"].HasMember("N")) {
          (void)absl::SimpleAtoi(attrs["v"]["N"].GetString(), &v);
        }
        out.push_back(Applied{t0, t1, absl::StrCat(table, "/", key), v});
      }
    }
  }
  return out;
}

std::vector<Violation> HistoryRun::Check() {
  std::vector<Violation> out;
  std::vector<Applied> applied = ReadWriteLog(write_log_);
  absl::MutexLock l(&h.mu);
  applied_ = applied.size();
  late_after_cancel_ = 0;
  for (const Applied& ap : applied) {
    if (ap.v == 0 || !h.Valid(ap.v)) continue;
    const Op& a = h.Get(ap.v);
    if (a.stream >= 0 && h.streams[a.stream].cancelled && a.results.empty() &&
        ap.t0 > h.streams[a.stream].t_end + kCancelGrace) {
      if (++late_after_cancel_ <= 5) {
        late_examples_.push_back(absl::StrFormat("%s #%d applied +%.3fs (cancel +%.3fs)", ap.key,
                                                 ap.v, h.Rel(ap.t0),
                                                 h.Rel(h.streams[a.stream].t_end)));
      }
    }
  }
  // Applied order (proxy write log): a write applied after a newer write to
  // its key was answered WRITTEN broke last-write-wins, even if it was
  // overwritten again before a poll could see it.
  {
    std::map<std::string, std::vector<const Op*>> written;
    for (const Op& op : h.ops) {
      if (!op.results.empty() && op.results.front().outcome == v1::WRITTEN) {
        written[op.key].push_back(&op);
      }
    }
    for (auto& [key, list] : written) {
      std::sort(list.begin(), list.end(),
                [](const Op* x, const Op* y) { return x->FirstResult() < y->FirstResult(); });
    }
    std::set<std::pair<uint64_t, uint64_t>> seen;
    std::set<uint64_t> phantom;
    std::map<std::string, std::vector<const Applied*>> applied_puts;  // by answer time
    for (const Applied& ap : applied) {
      if (ap.v != 0) applied_puts[ap.key].push_back(&ap);
    }
    for (auto& [key, list] : applied_puts) {
      std::sort(list.begin(), list.end(),
                [](const Applied* x, const Applied* y) { return x->t1 < y->t1; });
    }
    // At most one write per key in flight: two calls carrying different
    // writes to one key, both inside dynalite at once (the proxy forwarded the
    // second before the first was answered). Not claimed around a SIGKILL
    // (the killed process's calls may still be in the proxy).
    {
      std::map<std::string, std::vector<const Applied*>> by_key;
      for (const Applied& ap : applied) by_key[ap.key].push_back(&ap);
      int reported_overlaps = 0;
      for (auto& [key, list] : by_key) {
        std::sort(list.begin(), list.end(),
                  [](const Applied* x, const Applied* y) { return x->t0 < y->t0; });
        const Applied* open = nullptr;  // the earlier call answered last so far
        for (const Applied* ap : list) {
          if (open != nullptr && open->t1 > ap->t0 && open->v != ap->v &&
              !h.CrashBetween(open->t0 - h.crash_grace, ap->t1)) {
            if (reported_overlaps++ < 20) {
              out.push_back({"one-in-flight", key, open->v, ap->v, ap->t0,
                             absl::StrFormat("calls overlapped in dynalite: v=%d (+%.3fs..+%.3fs) "
                                             "and v=%d (+%.3fs..+%.3fs) (v=0: a delete)",
                                             open->v, h.Rel(open->t0), h.Rel(open->t1), ap->v,
                                             h.Rel(ap->t0), h.Rel(ap->t1))});
            }
          }
          if (open == nullptr || ap->t1 > open->t1) open = ap;
        }
      }
    }
    for (const Applied& ap : applied) {
      if (ap.v == 0) continue;
      if (!h.Valid(ap.v) || h.Get(ap.v).key != ap.key) {
        if (phantom.insert(ap.v).second) {
          out.push_back(
              {"phantom", ap.key, ap.v, 0, ap.t0,
               absl::StrCat("dynalite applied v=", ap.v, ", which no op on this key wrote")});
        }
        continue;
      }
      const Op& a = h.Get(ap.v);
      if (!a.results.empty() && a.results.front().outcome == v1::REJECTED &&
          phantom.insert(ap.v).second) {
        out.push_back({"phantom", ap.key, ap.v, 0, ap.t0,
                       absl::StrCat("op ", ap.v, " was REJECTED but dynalite applied it")});
      }
      // Applied after a newer write was applied (its call answered by dynalite
      // before this one was forwarded), answered or not yet.
      bool found = false;
      // Only writes sent after a can follow it, so only those answered since.
      const auto& puts = applied_puts[ap.key];
      auto from = std::lower_bound(puts.begin(), puts.end(), a.t_send,
                                   [](const Applied* x, int64_t t) { return x->t1 <= t; });
      for (auto it = from; it != puts.end(); ++it) {
        const Applied* bp = *it;
        if (bp->t1 >= ap.t0) break;
        if (bp->v == ap.v || !h.Valid(bp->v)) continue;
        const Op& b = h.Get(bp->v);
        if (b.key != ap.key || seen.count({a.id, b.id}) || !h.Precedes(a, b)) continue;
        seen.insert({a.id, b.id});
        out.push_back({"late-apply", ap.key, a.id, b.id, ap.t0,
                       absl::StrFormat("op %d was applied by dynalite (call forwarded at +%.3fs) "
                                       "after the newer op %d was applied (call answered at "
                                       "+%.3fs)",
                                       a.id, h.Rel(ap.t0), b.id, h.Rel(bp->t1))});
        found = true;
        break;
      }
      if (found) continue;
      const auto& wl = written[ap.key];
      auto wfrom = std::lower_bound(wl.begin(), wl.end(), a.t_send,
                                    [](const Op* x, int64_t t) { return x->FirstResult() <= t; });
      for (auto it = wfrom; it != wl.end(); ++it) {
        const Op* b = *it;
        if (b->FirstResult() >= ap.t0) break;
        if (seen.count({a.id, b->id}) || !h.Precedes(a, *b)) continue;
        seen.insert({a.id, b->id});
        out.push_back(
            {"late-apply", ap.key, a.id, b->id, ap.t0,
             absl::StrFormat("op %d was applied by dynalite (call forwarded at +%.3fs, "
                             "answered +%.3fs) after the newer op %d was answered "
                             "WRITTEN at +%.3fs",
                             a.id, h.Rel(ap.t0), h.Rel(ap.t1), b->id, h.Rel(b->FirstResult()))});
        break;
      }
    }
  }
  // Exactly-once, per op and per stream.
  for (const StreamRec& s : h.streams) {
    for (uint64_t id : s.stray) {
      out.push_back({"exactly-once", "", id, 0, s.t_end,
                     absl::StrCat("stream ", s.index, " (", s.mode, ") got a result for op ", id,
                                  " it never sent")});
    }
    bool killed_during = s.opened_while_down;
    for (int64_t k : h.kills) {
      if (k >= s.t_open - kSec && k <= s.t_end + kSec) killed_during = true;
    }
    if (s.done && !s.cancelled && s.code == grpc::StatusCode::OK) {
      for (uint64_t id : s.ops) {
        const Op& op = h.Get(id);
        if (op.results.empty()) {
          out.push_back({"exactly-once", op.key, id, 0, s.t_end,
                         absl::StrCat("stream ", s.index, " (", s.mode, ") ended OK but op ", id,
                                      " got no result")});
        }
      }
    }
    if (s.done && !s.cancelled && s.code != grpc::StatusCode::OK && !killed_during) {
      out.push_back({"stream-broken", "", 0, 0, s.t_end,
                     absl::StrCat("stream ", s.index, " (", s.mode, ", ", s.messages, " messages, ",
                                  s.ops.size(), " ops) ended with status ",
                                  static_cast<int>(s.code), ": ", s.message)});
    }
  }
  std::map<std::string, std::vector<uint64_t>> by_key;
  for (const Op& op : h.ops) {
    by_key[op.key].push_back(op.id);
    if (op.results.size() > 1) {
      out.push_back({"exactly-once", op.key, op.id, 0, op.results[1].t,
                     absl::StrCat("op ", op.id, " got ", op.results.size(), " results")});
    }
    if (op.lib >= 0 && op.callbacks != 1) {
      out.push_back({"exactly-once", op.key, op.id, 0, 0,
                     absl::StrCat("library op ", op.id, " resolved ", op.callbacks, " times")});
    }
  }
  // No stale value after a newer answered write.
  std::map<std::string, std::vector<const Op*>> answered;  // WRITTEN or COALESCED, by time
  for (const Op& op : h.ops) {
    if (op.results.empty()) continue;
    v1::Outcome o = op.results.front().outcome;
    if (o == v1::WRITTEN || o == v1::COALESCED) answered[op.key].push_back(&op);
  }
  for (auto& [key, v] : answered) {
    std::sort(v.begin(), v.end(),
              [](const Op* a, const Op* b) { return a->FirstResult() < b->FirstResult(); });
  }
  std::set<std::pair<uint64_t, uint64_t>> reported;
  std::set<std::pair<std::string, uint64_t>> phantoms;
  for (const Observation& obs : h.observations) {
    if (!h.Valid(obs.v) || h.Get(obs.v).key != obs.key) {
      if (phantoms.insert({obs.key, obs.v}).second) {
        out.push_back(
            {"phantom", obs.key, obs.v, 0, obs.t_start,
             absl::StrCat("the table holds v=", obs.v, ", which no op on this key wrote")});
      }
      continue;
    }
    const Op& a = h.Get(obs.v);
    if (!a.results.empty() && a.results.front().outcome == v1::REJECTED &&
        phantoms.insert({obs.key, obs.v}).second) {
      out.push_back({"phantom", obs.key, obs.v, 0, obs.t_start,
                     absl::StrCat("op ", obs.v, " was REJECTED but is in the table")});
    }
    const auto& al = answered[obs.key];
    auto afrom = std::lower_bound(al.begin(), al.end(), a.t_send,
                                  [](const Op* x, int64_t t) { return x->FirstResult() <= t; });
    for (auto it = afrom; it != al.end(); ++it) {
      const Op* b = *it;
      if (b->FirstResult() >= obs.t_start) break;
      if (reported.count({a.id, b->id})) continue;
      if (h.Precedes(a, *b)) {
        reported.insert({a.id, b->id});
        out.push_back({"no-stale", obs.key, a.id, b->id, obs.t_start,
                       absl::StrFormat("op %d is in the table at +%.3fs (poll started), after the "
                                       "newer op %d was answered %s at +%.3fs",
                                       a.id, h.Rel(obs.t_start), b->id,
                                       v1::Outcome_Name(b->results.front().outcome),
                                       h.Rel(b->FirstResult()))});
      }
    }
  }
  // Final state.
  final_checked_ = final_skipped_ = 0;
  for (const auto& [key, ids] : by_key) {
    const Op* f = nullptr;
    for (uint64_t id : ids) {
      if (h.Get(id).final_round) f = &h.Get(id);
    }
    if (f == nullptr) continue;
    if (f->results.size() != 1 || f->results.front().outcome != v1::WRITTEN) {
      ++final_skipped_;
      continue;
    }
    bool ordered = true;
    for (uint64_t id : ids) {
      if (id != f->id && !h.Precedes(h.Get(id), *f)) ordered = false;
    }
    if (!ordered) {
      ++final_skipped_;
      continue;
    }
    ++final_checked_;
    const auto& table_keys = final_keys_[f->table];
    auto it = table_keys.find(key);
    if (f->del && it != table_keys.end()) {
      out.push_back({"final-state", key, it->second, f->id, 0,
                     absl::StrCat("the last write was delete ", f->id,
                                  " (WRITTEN) but the table holds v=", it->second)});
    } else if (!f->del && (it == table_keys.end() || it->second != f->id)) {
      out.push_back({"final-state", key, it == table_keys.end() ? 0 : it->second, f->id, 0,
                     absl::StrCat("the last write was put ", f->id, " (WRITTEN) but the table ",
                                  it == table_keys.end() ? std::string("has no item")
                                                         : absl::StrCat("holds v=", it->second))});
    }
  }
  // Memory.
  {
    peak_stream_bytes_ = PeakStreamMessageBytes(h);
    absl::MutexLock nl(&notes_mu_);
    const int64_t bound_kib = RssGrowthBoundKiB();
    if (max_growth_kib_ > bound_kib) {
      out.push_back(
          {"rss", "", 0, 0, max_rss_at_,
           absl::StrFormat("sidecar VmRSS reached %.1f MiB at +%.3fs, %.1f MiB over its "
                           "%.1f MiB once ready; bound: %s",
                           max_rss_kib_ / 1024.0, h.Rel(max_rss_at_), max_growth_kib_ / 1024.0,
                           max_rss_start_kib_ / 1024.0, RssBoundText())});
    }
  }
  return out;
}

std::string HistoryRun::Explain(const Violation& v) {
  absl::MutexLock l(&h.mu);
  std::string s =
      absl::StrCat("[", v.check, "] ", v.key.empty() ? "" : v.key + ": ", v.detail, "\n");
  if (v.key.empty() || !h.Valid(v.older)) return s;
  // The key's history, shrunk to the ops from the older to the newer one.
  const Op& a = h.Get(v.older);
  int64_t from = a.t_send;
  int64_t to = h.Valid(v.newer) ? h.Get(v.newer).t_send : a.t_send;
  if (from > to) std::swap(from, to);
  std::vector<const Op*> window;
  size_t total = 0;
  for (const Op& op : h.ops) {
    if (op.key != v.key) continue;
    ++total;
    bool written_between = !op.results.empty() && op.results.front().outcome == v1::WRITTEN &&
                           op.FirstResult() >= from && op.FirstResult() <= std::max(to, v.t);
    if ((op.t_send >= from && op.t_send <= to) || op.id == v.older || op.id == v.newer ||
        written_between) {
      window.push_back(&op);
    }
  }
  absl::StrAppend(&s, "  history of ", v.key, " (", window.size(), " of ", total,
                  " ops, send order):\n");
  for (size_t i = 0; i < window.size(); ++i) {
    if (window.size() > 40 && i == 15) {
      absl::StrAppend(&s, "  ... ", window.size() - 30, " more ...\n");
      i = window.size() - 15;
    }
    absl::StrAppend(&s, h.Describe(*window[i]), "\n");
  }
  for (const Observation& obs : h.observations) {
    if (obs.key == v.key && obs.v == v.older && obs.t_start >= v.t && !obs.final_scan) {
      absl::StrAppend(&s, absl::StrFormat("  poll at +%.3fs..+%.3fs sees v=%d\n",
                                          h.Rel(obs.t_start), h.Rel(obs.t_end), obs.v));
      break;
    }
  }
  absl::MutexLock nl(&notes_mu_);
  for (const auto& [t, mix] : mix_log_) {
    if (t >= from - 5 * kSec && t <= std::max(to, v.t)) {
      absl::StrAppend(&s, absl::StrFormat("  proxy from +%.3fs: %s\n", h.Rel(t), mix));
    }
  }
  for (int64_t k : h.kills) {
    if (k >= from - 5 * kSec && k <= std::max(to, v.t)) {
      absl::StrAppend(&s, absl::StrFormat("  sidecar SIGKILL at +%.3fs\n", h.Rel(k)));
    }
  }
  return s;
}

std::string HistoryRun::Summary() {
  absl::MutexLock l(&h.mu);
  std::map<std::string, int> modes;
  std::map<std::string, int> outcomes;
  int64_t ops_sent_raw = 0, unresolved = 0, cancelled = 0, bytes = 0;
  std::set<std::string> keys;
  for (const StreamRec& s : h.streams) {
    modes[s.mode]++;
    if (s.cancelled) ++cancelled;
    ops_sent_raw += static_cast<int64_t>(s.ops.size());
  }
  for (const Op& op : h.ops) {
    keys.insert(op.key);
    bytes += static_cast<int64_t>(op.bytes);
    if (!op.results.empty()) {
      outcomes[v1::Outcome_Name(op.results.front().outcome)]++;
    } else if (!op.client_status.ok()) {
      outcomes[absl::StrCat("client:", absl::StatusCodeToString(op.client_status.code()))]++;
    } else {
      ++unresolved;
    }
  }
  std::string s = absl::StrFormat(
      "history checker: seed=%d seconds=%.0f disabled={%s}\n"
      "  ops %d (%.1f MB) over %d keys; raw streams %d (%s), cancelled %d; library ops %d\n"
      "  outcomes: %s, without result %d\n"
      "  sidecar SIGKILL+restart %d; proxy mixes %s; polls %d, observations %d\n"
      "  writes applied by dynalite (proxy log): %d, of which %d from cancelled streams "
      "applied over 250 ms after the cancel (e.g. %s)\n"
      "  final state: %d keys checked, %d skipped (final write not WRITTEN or order unknown)\n"
      "  sidecar max VmRSS %.1f MiB, %.1f MiB over its %.1f MiB once ready (bound: %s)\n",
      Opts().seed, Opts().seconds, absl::StrJoin(Opts().disabled, ","), h.ops.size(), bytes / 1e6,
      keys.size(), h.streams.size(), absl::StrJoin(modes, " ", absl::PairFormatter("=")), cancelled,
      static_cast<int64_t>(h.ops.size()) - ops_sent_raw,
      absl::StrJoin(outcomes, " ", absl::PairFormatter("=")), unresolved, kills_,
      absl::StrJoin(mixes_, " ", absl::PairFormatter("=")), polls_, h.observations.size(), applied_,
      late_after_cancel_, absl::StrJoin(late_examples_, "; "), final_checked_, final_skipped_,
      max_rss_kib_ / 1024.0, max_growth_kib_ / 1024.0, max_rss_start_kib_ / 1024.0, RssBoundText());
  absl::MutexLock nl(&notes_mu_);
  for (const auto& n : notes_) absl::StrAppend(&s, "  note ", n, "\n");
  return s;
}

void HistoryRun::DumpHistory(const std::string& path) {
  absl::MutexLock l(&h.mu);
  std::ofstream f(path);
  for (const Op& op : h.ops) f << h.Describe(op) << "\n";
  for (const StreamRec& s : h.streams) {
    f << absl::StrFormat("stream %d %s %s ops=%d open=+%.3f end=+%.3f cancelled=%d code=%d %s\n",
                         s.index, s.worker, s.mode, s.ops.size(), h.Rel(s.t_open),
                         s.t_end == kNever ? -1.0 : h.Rel(s.t_end), s.cancelled,
                         static_cast<int>(s.code), s.message);
  }
}

TEST(HistoryChecker, RandomHostileHistoriesKeepEveryWriteGuarantee) {
  HistoryRun run(TestDir("history_checker"));
  run.Start();
  if (::testing::Test::HasFatalFailure()) return;
  run.Execute();
  std::vector<Violation> violations = run.Check();
  std::string summary = run.Summary();
  std::cout << summary << std::flush;
  std::map<std::string, int> by_check;
  for (const auto& v : violations) by_check[v.check]++;
  std::string report;
  std::map<std::string, int> shown;
  for (const auto& v : violations) {
    if (shown[v.check]++ < 3) report += run.Explain(v);
  }
  const std::string dump = TestDir("history_checker_dump") + "/history.txt";
  run.DumpHistory(dump);
  EXPECT_TRUE(violations.empty()) << violations.size() << " violations ("
                                  << absl::StrJoin(by_check, " ", absl::PairFormatter("="))
                                  << "), seed " << Opts().seed << " (rerun: --seed=" << Opts().seed
                                  << " --seconds=" << Opts().seconds << "); full history in "
                                  << dump << "\n"
                                  << report;
}

}  // namespace
}  // namespace dynamo_batcher::testing

int main(int argc, char** argv) {
  using dynamo_batcher::testing::Opts;
  ::testing::InitGoogleTest(&argc, argv);
  auto& o = Opts();
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v == nullptr ? "" : v;
  };
  auto set_disabled = [&](const std::string& list) {
    for (absl::string_view s : absl::StrSplit(list, ',', absl::SkipEmpty())) {
      o.disabled.insert(std::string(s));
    }
  };
  if (!env("HISTORY_CHECKER_SEED").empty())
    (void)absl::SimpleAtoi(env("HISTORY_CHECKER_SEED"), &o.seed);
  if (!env("HISTORY_CHECKER_SECONDS").empty())
    (void)absl::SimpleAtod(env("HISTORY_CHECKER_SECONDS"), &o.seconds);
  if (!env("HISTORY_CHECKER_MINUTES").empty()) {
    double m = 0;
    if (absl::SimpleAtod(env("HISTORY_CHECKER_MINUTES"), &m)) o.seconds = m * 60;
  }
  set_disabled(env("HISTORY_CHECKER_DISABLE"));
  if (!env("HISTORY_CHECKER_RSS_OVERHEAD_MIB").empty()) {
    (void)absl::SimpleAtoi(env("HISTORY_CHECKER_RSS_OVERHEAD_MIB"), &o.rss_overhead_mib);
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& flag) -> std::string {
      return a.rfind(flag + "=", 0) == 0 ? a.substr(flag.size() + 1) : "";
    };
    bool ok = true;
    if (!value("--seed").empty()) {
      ok = absl::SimpleAtoi(value("--seed"), &o.seed);
    } else if (!value("--seconds").empty()) {
      ok = absl::SimpleAtod(value("--seconds"), &o.seconds);
    } else if (!value("--minutes").empty()) {
      double m = 0;
      ok = absl::SimpleAtod(value("--minutes"), &m);
      o.seconds = m * 60;
    } else if (!value("--disable").empty()) {
      set_disabled(value("--disable"));
    } else if (!value("--rss-overhead-mib").empty()) {
      ok = absl::SimpleAtoi(value("--rss-overhead-mib"), &o.rss_overhead_mib);
    } else {
      ok = false;
    }
    if (!ok || o.seconds <= 0) {
      std::cerr << "history_checker_test: bad argument \"" << a
                << "\"; known: --seed=N --seconds=S --minutes=M --disable=LIST "
                   "--rss-overhead-mib=N\n";
      return 2;
    }
  }
  const auto& all = dynamo_batcher::testing::Scenarios();
  for (const auto& d : o.disabled) {
    if (std::find(all.begin(), all.end(), d) == all.end()) {
      std::cerr << "history_checker_test: --disable: unknown scenario \"" << d
                << "\"; known: " << absl::StrJoin(all, ",") << "\n";
      return 2;
    }
  }
  curl_global_init(CURL_GLOBAL_ALL);
  return RUN_ALL_TESTS();
}
