// batchctl bench: a load generator for the sidecar.
//
// By default it drives raw Write streams (not the client library) so that it
// measures the sidecar: all messages are built before the clock starts, each
// stream has a sender and a receiver thread, and every op's latency is
// measured from the moment its message was handed to gRPC to the moment its
// result arrived (steady clock). `--client` runs the same load through
// dynamo_batcher::Client instead, to measure the library.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/batchctl/commands.h"
#include "dynamo_batcher/client.h"
#include "dynamobatcher/v1/batcher.grpc.pb.h"

namespace dynamo_batcher::batchctl {

namespace {

constexpr const char kBenchUsage[] =
    "usage: batchctl bench [flags]\n"
    "\n"
    "Load generator. Pre-builds every op, then streams them and reports ops/s,\n"
    "result latency p50/p99/p999 (send to result) and outcomes by kind.\n"
    "\n"
    "flags:\n"
    "  --streams N          parallel Write streams, each on its own connection (4)\n"
    "  --ops N              total ops (100000)\n"
    "  --rate R             target ops/s over all streams, 0 = as fast as possible (0)\n"
    "  --duration D         stop sending after D even if --ops are not all sent\n"
    "  --tables a,b         tables to write, chosen at random per op (bench)\n"
    "  --key-attr NAME      partition key attribute, type S (pk)\n"
    "  --keys N             key space (100000)\n"
    "  --dup-ratio F        fraction of ops reusing a recently used key (0.1)\n"
    "  --value-bytes N      size of the value attribute \"v\" (100)\n"
    "  --ops-per-message N  ops per WriteRequest (64)\n"
    "  --delete-ratio F     fraction of ops that are deletes (0.0)\n"
    "  --window N           max unanswered ops per stream, 0 = gRPC flow control only (0)\n"
    "  --timeout D          wait this long for outstanding results at the end (60s)\n"
    "  --seed N             random seed (1)\n"
    "  --client             go through the C++ client library instead of raw streams\n"
    "  --json               also print one machine-readable JSON line\n"
    "exit: 0 ok, 1 some op FAILED/REJECTED or results missing, 2 usage, 3 unreachable\n";

using SteadyClock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

struct BenchConfig {
  int streams = 4;
  int64_t ops = 100000;
  double rate = 0;
  absl::Duration duration = absl::ZeroDuration();
  std::vector<std::string> tables;
  std::string key_attr = "pk";
  int64_t keys = 100000;
  double dup_ratio = 0.1;
  int64_t value_bytes = 100;
  int64_t ops_per_message = 64;
  double delete_ratio = 0;
  int64_t window = 0;
  absl::Duration timeout = absl::Seconds(60);
  uint64_t seed = 1;
  bool use_client = false;
  bool json = false;
};

// Results of one stream (or of the client run), merged at the end.
struct Tally {
  uint64_t sent = 0;
  uint64_t results = 0;
  uint64_t by_outcome[5] = {0, 0, 0, 0, 0};  // indexed by v1::Outcome
  uint64_t client_errors = 0;
  std::vector<int64_t> latencies_ns;
  int64_t first_send_ns = 0;
  int64_t last_result_ns = 0;
  std::string error;
};

// Generates the op sequence: keys drawn from a key space, with a fraction
// reusing one of the last keys used (what makes coalescing happen).
class OpGenerator {
 public:
  explicit OpGenerator(const BenchConfig& config)
      : config_(config), rng_(config.seed), value_(config.value_bytes, 'x') {}

  void Fill(v1::WriteOp* op) {
    std::uniform_real_distribution<double> unit(0, 1);
    int64_t key;
    if (!recent_.empty() && unit(rng_) < config_.dup_ratio) {
      key = recent_[rng_() % recent_.size()];
    } else {
      key = static_cast<int64_t>(rng_() % static_cast<uint64_t>(config_.keys));
      if (recent_.size() < kRecent) {
        recent_.push_back(key);
      } else {
        recent_[next_recent_++ % kRecent] = key;
      }
    }
    op->set_table(config_.tables[rng_() % config_.tables.size()]);
    v1::AttributeValue pk;
    pk.set_s(absl::StrCat("k", key));
    if (unit(rng_) < config_.delete_ratio) {
      (*op->mutable_delete_key()->mutable_attributes())[config_.key_attr] = std::move(pk);
    } else {
      auto* attrs = op->mutable_put()->mutable_attributes();
      (*attrs)[config_.key_attr] = std::move(pk);
      (*attrs)["v"].set_s(value_);
    }
  }

 private:
  static constexpr size_t kRecent = 64;
  const BenchConfig& config_;
  std::mt19937_64 rng_;
  std::string value_;
  std::vector<int64_t> recent_;
  size_t next_recent_ = 0;
};

// Sleeps until `target_ns` (steady clock); pacing for --rate.
void SleepUntilNs(int64_t target_ns) {
  const int64_t now = NowNs();
  if (target_ns > now) std::this_thread::sleep_for(std::chrono::nanoseconds(target_ns - now));
}

// One raw Write stream: sender on the calling thread, receiver on its own.
void RunRawStream(const BenchConfig& config, std::shared_ptr<grpc::Channel> channel,
                  std::vector<v1::WriteRequest>& messages, uint64_t id_base, int64_t start_ns,
                  int64_t stop_ns, double stream_rate, Tally& tally) {
  auto stub = v1::WriteBatcher::NewStub(channel);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>> stream =
      stub->Write(&context);
  const size_t opm = static_cast<size_t>(config.ops_per_message);
  // Send time per message; relaxed atomics suffice, they are only read back.
  std::vector<std::atomic<int64_t>> sent_at(messages.size());
  absl::Mutex mu;
  uint64_t outstanding = 0;  // guarded by mu
  bool reader_done = false;  // guarded by mu
  uint64_t total_ops = 0;
  for (const auto& m : messages) total_ops += m.ops_size();
  tally.latencies_ns.reserve(total_ops);

  std::thread reader([&] {
    v1::WriteResponse response;
    while (stream->Read(&response)) {
      const int64_t now = NowNs();
      for (const v1::WriteResult& r : response.results()) {
        const uint64_t local = r.id() - id_base;
        const size_t msg = local / opm;
        if (msg < sent_at.size()) {
          tally.latencies_ns.push_back(now - sent_at[msg].load(std::memory_order_relaxed));
        }
        const int o = static_cast<int>(r.outcome());
        ++tally.by_outcome[o >= 0 && o < 5 ? o : 0];
      }
      tally.last_result_ns = now;
      absl::MutexLock lock(&mu);
      tally.results += response.results_size();
      outstanding -= std::min<uint64_t>(outstanding, response.results_size());
      if (tally.results >= total_ops) break;
    }
    absl::MutexLock lock(&mu);
    reader_done = true;
  });

  tally.first_send_ns = NowNs();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (stop_ns > 0 && NowNs() >= stop_ns) break;
    if (stream_rate > 0) {
      SleepUntilNs(start_ns + static_cast<int64_t>(1e9 * tally.sent / stream_rate));
    }
    if (config.window > 0) {
      absl::MutexLock lock(&mu);
      const uint64_t window = static_cast<uint64_t>(config.window);
      auto room = [&] {
        return reader_done || outstanding + messages[i].ops_size() <= window || outstanding == 0;
      };
      mu.Await(absl::Condition(&room));
      if (reader_done) break;
    }
    {
      absl::MutexLock lock(&mu);
      outstanding += messages[i].ops_size();
    }
    sent_at[i].store(NowNs(), std::memory_order_relaxed);
    if (!stream->Write(messages[i])) {
      tally.error = "stream closed by the sidecar while sending";
      break;
    }
    tally.sent += messages[i].ops_size();
  }
  stream->WritesDone();
  {
    // Wait for the results still due, then give up on them.
    absl::MutexLock lock(&mu);
    const uint64_t sent = tally.sent;
    auto all_in = [&] { return reader_done || tally.results >= sent; };
    mu.AwaitWithTimeout(absl::Condition(&all_in), config.timeout);
  }
  context.TryCancel();
  reader.join();
  const grpc::Status status = stream->Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED && tally.error.empty()) {
    tally.error = absl::StrCat("stream ended: ", status.error_message());
  }
}

// User + system CPU of this process (all threads) so far, in seconds.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

// The p-quantile of `v` in milliseconds (reorders v).
double PercentileMs(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k] / 1e6;
}

}  // namespace

int RunBench(const GlobalOptions& global_in, const std::vector<std::string>& args) {
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(
          args,
          {{"streams", "ops", "rate", "duration", "tables", "key-attr", "keys", "dup-ratio",
            "value-bytes", "ops-per-message", "delete-ratio", "window", "timeout", "seed"},
           {"json", "client"}},
          kBenchUsage, global, parsed);
      rc >= 0) {
    return rc;
  }
  BenchConfig c;
  auto fail = [](const absl::Status& s) {
    std::cerr << "batchctl: " << s.message() << "\n";
    return kExitUsage;
  };
  absl::StatusOr<int64_t> i;
  absl::StatusOr<double> d;
  absl::StatusOr<absl::Duration> t;
  if (!(i = parsed.GetInt("streams", 4)).ok()) return fail(i.status());
  c.streams = static_cast<int>(*i);
  if (!(i = parsed.GetInt("ops", 100000)).ok()) return fail(i.status());
  c.ops = *i;
  if (!(d = parsed.GetDouble("rate", 0)).ok()) return fail(d.status());
  c.rate = *d;
  if (!(t = parsed.GetDuration("duration", absl::ZeroDuration())).ok()) return fail(t.status());
  c.duration = *t;
  c.tables = absl::StrSplit(parsed.Get("tables", "bench"), ',', absl::SkipEmpty());
  c.key_attr = parsed.Get("key-attr", "pk");
  if (!(i = parsed.GetInt("keys", 100000)).ok()) return fail(i.status());
  c.keys = *i;
  if (!(d = parsed.GetDouble("dup-ratio", 0.1)).ok()) return fail(d.status());
  c.dup_ratio = *d;
  if (!(i = parsed.GetInt("value-bytes", 100)).ok()) return fail(i.status());
  c.value_bytes = *i;
  if (!(i = parsed.GetInt("ops-per-message", 64)).ok()) return fail(i.status());
  c.ops_per_message = *i;
  if (!(d = parsed.GetDouble("delete-ratio", 0)).ok()) return fail(d.status());
  c.delete_ratio = *d;
  if (!(i = parsed.GetInt("window", 0)).ok()) return fail(i.status());
  c.window = *i;
  if (!(t = parsed.GetDuration("timeout", absl::Seconds(60))).ok()) return fail(t.status());
  c.timeout = *t;
  if (!(i = parsed.GetInt("seed", 1)).ok()) return fail(i.status());
  c.seed = static_cast<uint64_t>(*i);
  c.use_client = parsed.Has("client");
  c.json = parsed.Has("json");
  if (c.streams < 1 || c.streams > 256 || c.ops < 1 || c.rate < 0 || c.tables.empty() ||
      c.keys < 1 || c.dup_ratio < 0 || c.dup_ratio > 1 || c.value_bytes < 0 ||
      c.ops_per_message < 1 || c.delete_ratio < 0 || c.delete_ratio > 1 || c.window < 0 ||
      c.key_attr.empty() || !parsed.positional.empty()) {
    std::cerr << "batchctl: bench: a value is out of range\n\n" << kBenchUsage;
    return kExitUsage;
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int s = 0; s < (c.use_client ? 1 : c.streams); ++s) {
    std::shared_ptr<grpc::Channel> ch = ConnectOrReport(global, s);
    if (ch == nullptr) return kExitUnreachable;
    channels.push_back(std::move(ch));
  }

  // Build everything before the clock starts.
  OpGenerator gen(c);
  std::vector<std::vector<v1::WriteRequest>> per_stream(c.use_client ? 1 : c.streams);
  std::vector<uint64_t> id_base(per_stream.size());
  const int64_t ops_per_stream = (c.ops + per_stream.size() - 1) / per_stream.size();
  int64_t remaining = c.ops;
  for (size_t s = 0; s < per_stream.size(); ++s) {
    id_base[s] = (static_cast<uint64_t>(s) << 40) + 1;
    const int64_t n = std::min(ops_per_stream, remaining);
    remaining -= n;
    for (int64_t k = 0; k < n; ++k) {
      if (k % c.ops_per_message == 0) per_stream[s].emplace_back();
      v1::WriteOp* op = per_stream[s].back().add_ops();
      op->set_id(id_base[s] + k);
      gen.Fill(op);
    }
  }

  std::vector<Tally> tallies(per_stream.size());
  // The process's CPU (every thread) from here to the last result: the
  // sending and receiving only, like boto3_bench.py's cpu_s, so the two
  // clients are compared on the same work (messages are built above).
  const double cpu_before = ProcessCpuSeconds();
  const int64_t start_ns = NowNs();
  const int64_t stop_ns =
      c.duration > absl::ZeroDuration() ? start_ns + absl::ToInt64Nanoseconds(c.duration) : 0;
  if (!c.use_client) {
    std::vector<std::thread> threads;
    for (size_t s = 0; s < per_stream.size(); ++s) {
      threads.emplace_back([&, s] {
        RunRawStream(c, channels[s], per_stream[s], id_base[s], start_ns, stop_ns,
                     c.rate / per_stream.size(), tallies[s]);
      });
    }
    for (auto& th : threads) th.join();
  } else {
    ClientOptions options;
    options.target = global.target;
    options.max_ops_per_message = static_cast<size_t>(c.ops_per_message);
    options.op_deadline = c.timeout;
    if (c.window > 0) options.max_inflight_ops = static_cast<size_t>(c.window);
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
    if (!client.ok()) return fail(client.status());
    Tally& tally = tallies[0];
    absl::Mutex mu;
    tally.latencies_ns.reserve(c.ops);
    tally.first_send_ns = NowNs();
    for (auto& message : per_stream[0]) {
      if (stop_ns > 0 && NowNs() >= stop_ns) break;
      for (v1::WriteOp& op : *message.mutable_ops()) {
        if (c.rate > 0) SleepUntilNs(start_ns + static_cast<int64_t>(1e9 * tally.sent / c.rate));
        const int64_t sent_ns = NowNs();
        auto done = [&tally, &mu, sent_ns](WriteOutcome o) {
          const int64_t now = NowNs();
          absl::MutexLock lock(&mu);
          ++tally.results;
          tally.last_result_ns = now;
          tally.latencies_ns.push_back(now - sent_ns);
          if (!o.status.ok()) {
            ++tally.client_errors;
          } else {
            const int k = static_cast<int>(o.outcome);
            ++tally.by_outcome[k >= 0 && k < 5 ? k : 0];
          }
        };
        ++tally.sent;
        if (op.has_delete_key()) {
          (*client)->Delete(op.table(), std::move(*op.mutable_delete_key()), done);
        } else {
          (*client)->Put(op.table(), std::move(*op.mutable_put()), done);
        }
      }
    }
    (void)(*client)->Flush("", c.timeout);
    Client::Stats st = (*client)->stats();
    client->reset();
    std::cerr << absl::StrFormat("client: %llu messages, %.1f ops/message\n",
                                 static_cast<unsigned long long>(st.messages_sent),
                                 st.messages_sent ? 1.0 * st.ops_sent / st.messages_sent : 0);
  }

  const double cpu_s = ProcessCpuSeconds() - cpu_before;

  // Merge.
  Tally all;
  all.first_send_ns = INT64_MAX;
  for (Tally& t : tallies) {
    all.sent += t.sent;
    all.results += t.results;
    all.client_errors += t.client_errors;
    for (int k = 0; k < 5; ++k) all.by_outcome[k] += t.by_outcome[k];
    all.latencies_ns.insert(all.latencies_ns.end(), t.latencies_ns.begin(), t.latencies_ns.end());
    all.first_send_ns = std::min(all.first_send_ns, t.first_send_ns);
    all.last_result_ns = std::max(all.last_result_ns, t.last_result_ns);
    if (!t.error.empty()) std::cerr << "batchctl: bench: " << t.error << "\n";
  }
  const double seconds = std::max(1e-9, (all.last_result_ns - all.first_send_ns) / 1e9);
  const double ops_per_s = all.results / seconds;
  const double p50 = PercentileMs(all.latencies_ns, 0.50);
  const double p99 = PercentileMs(all.latencies_ns, 0.99);
  const double p999 = PercentileMs(all.latencies_ns, 0.999);
  const uint64_t written = all.by_outcome[v1::WRITTEN];
  const uint64_t coalesced = all.by_outcome[v1::COALESCED];
  const uint64_t failed = all.by_outcome[v1::FAILED];
  const uint64_t rejected = all.by_outcome[v1::REJECTED];
  const uint64_t missing = all.sent > all.results ? all.sent - all.results : 0;
  std::cout << absl::StrFormat(
      "%s: %llu ops sent, %llu results in %.3fs = %.0f ops/s  latency p50 %.2fms "
      "p99 %.2fms p999 %.2fms\n"
      "outcomes: written %llu  coalesced %llu  failed %llu  rejected %llu  missing %llu"
      "  client errors %llu\n",
      c.use_client ? "client" : "raw", static_cast<unsigned long long>(all.sent),
      static_cast<unsigned long long>(all.results), seconds, ops_per_s, p50, p99, p999,
      static_cast<unsigned long long>(written), static_cast<unsigned long long>(coalesced),
      static_cast<unsigned long long>(failed), static_cast<unsigned long long>(rejected),
      static_cast<unsigned long long>(missing), static_cast<unsigned long long>(all.client_errors));
  if (c.json) {
    std::cout << absl::StrFormat(
        "{\"mode\":\"%s\",\"streams\":%d,\"ops_per_message\":%d,\"ops\":%llu,"
        "\"results\":%llu,\"seconds\":%.6f,\"ops_per_s\":%.1f,\"p50_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"written\":%llu,\"coalesced\":%llu,"
        "\"failed\":%llu,\"rejected\":%llu,\"missing\":%llu,\"client_errors\":%llu,"
        "\"cpu_s\":%.4f}\n",
        c.use_client ? "client" : "raw", c.use_client ? 1 : c.streams,
        static_cast<int>(c.ops_per_message), static_cast<unsigned long long>(all.sent),
        static_cast<unsigned long long>(all.results), seconds, ops_per_s, p50, p99, p999,
        static_cast<unsigned long long>(written), static_cast<unsigned long long>(coalesced),
        static_cast<unsigned long long>(failed), static_cast<unsigned long long>(rejected),
        static_cast<unsigned long long>(missing),
        static_cast<unsigned long long>(all.client_errors), cpu_s);
  }
  if (all.results == 0 && all.sent > 0) return kExitUnreachable;
  return (failed > 0 || rejected > 0 || missing > 0 || all.client_errors > 0) ? kExitOpsFailed
                                                                              : kExitOk;
}

}  // namespace dynamo_batcher::batchctl
