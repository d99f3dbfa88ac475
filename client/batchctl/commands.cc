#include "client/batchctl/commands.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/batchctl/item_args.h"
#include "client/batchctl/metrics_summary.h"
#include "client/batchctl/op_lines.h"
#include "dynamo_batcher/client.h"
#include "dynamobatcher/v1/batcher.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dynamo_batcher::batchctl {

namespace {

constexpr const char kPutUsage[] =
    "usage: batchctl put [flags] TABLE ITEM...\n"
    "       batchctl delete [flags] TABLE KEY...\n"
    "\n"
    "Writes one item (put) or deletes one key (delete) and prints the outcome.\n"
    "ITEM/KEY is DynamoDB JSON in one argument, '{\"pk\":{\"S\":\"a\"}}', or\n"
    "name[:TYPE]=value pairs, e.g.  pk=a n:N=3 ok:BOOL=true tags:SS=x,y gone:NULL=\n"
    "(TYPE: S (default), N, B (base64), BOOL, NULL, SS, NS, BS; sets comma-separated).\n"
    "\n"
    "flags:\n"
    "  --timeout D   give up after D (default 30s)\n"
    "exit: 0 WRITTEN/COALESCED, 1 FAILED/REJECTED, 2 usage, 3 sidecar unreachable\n";

constexpr const char kLoadUsage[] =
    "usage: batchctl load [flags] FILE|-\n"
    "\n"
    "Streams JSON lines to the sidecar, one op per line:\n"
    "  {\"table\":\"t\",\"put\":{\"pk\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}}\n"
    "  {\"table\":\"t\",\"delete\":{\"pk\":{\"S\":\"b\"}}}\n"
    "Blank lines and lines starting with '#' are skipped. Bad lines are reported\n"
    "with their line number, skipped and counted as rejected. Shows progress on a\n"
    "terminal and a summary (counts by outcome) at the end.\n"
    "\n"
    "flags:\n"
    "  --timeout D          per-op deadline (default 60s)\n"
    "  --max-inflight N     ops awaiting results at once (default 100000)\n"
    "  --ops-per-message N  ops packed per WriteRequest (default 256)\n"
    "  --quiet              no progress line\n"
    "exit: 0 all ok, 1 some op FAILED/REJECTED or bad lines, 2 usage, 3 unreachable\n";

constexpr const char kReplayUsage[] =
    "usage: batchctl replay [flags] DEADLETTER_FILE|-\n"
    "\n"
    "Re-sends the writes of a dead-letter file written by the sidecar (JSON lines\n"
    "with \"table\", \"op\" (put|delete), \"item\" (put) or \"key\" (delete), plus\n"
    "error_code, message, attempts, first_seen, failed_at, which are ignored).\n"
    "Prints a summary; failures are printed with their line number, so the\n"
    "output of a replay can itself be fixed up and replayed.\n"
    "\n"
    "flags: as for load (--timeout, --max-inflight, --ops-per-message, --quiet)\n"
    "exit: 0 all ok, 1 some op FAILED/REJECTED or bad lines, 2 usage, 3 unreachable\n";

constexpr const char kFlushUsage[] =
    "usage: batchctl flush [--table T] [--timeout D]\n"
    "\n"
    "Asks the sidecar to send everything it buffers now (all tables, or T) and\n"
    "waits until those ops have their outcome. Prints how many ops that was.\n"
    "exit: 0 ok, 1 the sidecar reported an error, 2 usage, 3 unreachable\n";

constexpr const char kHealthUsage[] =
    "usage: batchctl health [--service NAME] [--timeout D]\n"
    "\n"
    "grpc.health.v1.Health/Check against the sidecar; prints the status.\n"
    "exit: 0 SERVING, 1 any other status, 2 usage, 3 unreachable\n";

constexpr const char kWaitHealthyUsage[] =
    "usage: batchctl wait-healthy [--timeout D]\n"
    "\n"
    "Polls the sidecar's /healthz (on the --metrics URL's host and port) until it\n"
    "answers 200, for at most D (default 60s). A postStart hook for images without\n"
    "a shell: holds the next container until the sidecar listens.\n"
    "exit: 0 healthy, 2 usage, 3 not healthy within D\n";

constexpr const char kSleepUsage[] =
    "usage: batchctl sleep D\n"
    "\n"
    "Waits D (e.g. 15s) and exits 0. A preStop hook for images without a shell.\n";

constexpr const char kStatsUsage[] =
    "usage: batchctl stats [--metrics URL] [--raw]\n"
    "\n"
    "Fetches the sidecar's Prometheus metrics (default http://127.0.0.1:9464/metrics,\n"
    "env DYNAMO_BATCHER_METRICS_URL) and prints per table: received, written,\n"
    "coalesced, rejected, failed, batches, mean batch size, throttle events and\n"
    "queued items. --raw prints the metrics text as fetched.\n"
    "exit: 0 ok, 2 usage, 3 metrics endpoint unreachable or not the sidecar's\n";

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

bool IsUnreachable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

std::string NormalizeMetricsUrl(std::string url) {
  if (!absl::StrContains(url, "://")) url = absl::StrCat("http://", url);
  const size_t host_start = url.find("://") + 3;
  if (url.find('/', host_start) == std::string::npos) url += "/metrics";
  return url;
}

size_t CurlAppend(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

absl::StatusOr<std::string> HttpGet(const std::string& url, absl::Duration timeout) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string body;
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &CurlAppend);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  long http_status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": ", error[0] != '\0' ? error : curl_easy_strerror(rc)));
  }
  if (http_status != 200) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": HTTP ", http_status));
  }
  return body;
}

// Shared by load and replay.
struct StreamCounters {
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> coalesced{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> client_errors{0};
  std::atomic<uint64_t> bad_lines{0};
  std::atomic<uint64_t> reported{0};

  uint64_t resolved() const { return written + coalesced + failed + rejected + client_errors; }
};

// At most this many individual failures are printed; the summary counts all.
constexpr uint64_t kMaxReportedFailures = 50;

}  // namespace

FlagSpec GlobalFlagSpec() { return FlagSpec{{"target", "metrics", "connect-timeout"}, {}}; }

GlobalOptions DefaultGlobalOptions() {
  GlobalOptions g;
  const char* target = std::getenv("DYNAMO_BATCHER_TARGET");
  g.target = target != nullptr && *target != '\0' ? target : "127.0.0.1:50051";
  const char* metrics = std::getenv("DYNAMO_BATCHER_METRICS_URL");
  g.metrics_url =
      metrics != nullptr && *metrics != '\0' ? metrics : "http://127.0.0.1:9464/metrics";
  return g;
}

bool ApplyGlobalFlags(const ParsedArgs& args, GlobalOptions& global) {
  if (args.Has("target")) global.target = args.Get("target");
  if (args.Has("metrics")) global.metrics_url = args.Get("metrics");
  absl::StatusOr<absl::Duration> timeout =
      args.GetDuration("connect-timeout", global.connect_timeout);
  if (!timeout.ok()) {
    std::cerr << "batchctl: " << timeout.status().message() << "\n";
    return false;
  }
  global.connect_timeout = *timeout;
  if (global.target.empty()) {
    std::cerr << "batchctl: --target is empty\n";
    return false;
  }
  return true;
}

int ParseSubcommand(const std::vector<std::string>& args, FlagSpec spec, const char* usage,
                    GlobalOptions& global, ParsedArgs& parsed) {
  const FlagSpec global_spec = GlobalFlagSpec();
  spec.value_flags.insert(global_spec.value_flags.begin(), global_spec.value_flags.end());
  spec.bool_flags.insert(global_spec.bool_flags.begin(), global_spec.bool_flags.end());
  absl::StatusOr<ParsedArgs> p = ParseArgs(args, spec);
  if (!p.ok()) {
    std::cerr << "batchctl: " << p.status().message() << "\n\n" << usage;
    return kExitUsage;
  }
  if (p->help) {
    std::cout << usage;
    return kExitOk;
  }
  if (!ApplyGlobalFlags(*p, global)) return kExitUsage;
  parsed = *std::move(p);
  return -1;
}

std::shared_ptr<grpc::Channel> ConnectOrReport(const GlobalOptions& global, int channel_index) {
  grpc::ChannelArguments args;
  args.SetInt("dynamo_batcher.batchctl_channel", channel_index);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(global.target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + global.connect_timeout))) {
    std::cerr << "batchctl: could not reach the sidecar at " << global.target << " within "
              << absl::FormatDuration(global.connect_timeout) << "\n";
    return nullptr;
  }
  return channel;
}

int RunPut(const GlobalOptions& global_in, const std::vector<std::string>& args, bool is_delete) {
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(args, {{"timeout"}, {}}, kPutUsage, global, parsed); rc >= 0) {
    return rc;
  }
  if (parsed.positional.size() < 2) {
    std::cerr << "batchctl: " << (is_delete ? "delete" : "put") << " needs TABLE and "
              << (is_delete ? "KEY" : "ITEM") << "\n\n"
              << kPutUsage;
    return kExitUsage;
  }
  absl::StatusOr<absl::Duration> timeout = parsed.GetDuration("timeout", absl::Seconds(30));
  if (!timeout.ok() || *timeout <= absl::ZeroDuration()) {
    std::cerr << "batchctl: --timeout must be a positive duration\n";
    return kExitUsage;
  }
  const std::string table = parsed.positional[0];
  absl::StatusOr<Item> item = ParseItemArgs(
      std::vector<std::string>(parsed.positional.begin() + 1, parsed.positional.end()));
  if (!item.ok()) {
    std::cerr << "batchctl: bad " << (is_delete ? "KEY" : "ITEM") << ": " << item.status().message()
              << "\n";
    return kExitUsage;
  }
  if (ConnectOrReport(global) == nullptr) return kExitUnreachable;

  ClientOptions options;
  options.target = global.target;
  options.linger = absl::ZeroDuration();
  options.op_deadline = *timeout;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) {
    std::cerr << "batchctl: " << client.status() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<WriteOutcome> outcome = is_delete ? (*client)->DeleteSync(table, *std::move(item))
                                                   : (*client)->PutSync(table, *std::move(item));
  (void)(*client)->Close(absl::Seconds(1));
  if (!outcome.ok()) {
    std::cerr << "batchctl: " << outcome.status() << "\n";
    return IsUnreachable(outcome.status()) ? kExitUnreachable : kExitOpsFailed;
  }
  std::cout << outcome->DebugString() << "\n";
  return outcome->ok() ? kExitOk : kExitOpsFailed;
}

int RunLoad(const GlobalOptions& global_in, const std::vector<std::string>& args, bool replay) {
  const char* usage = replay ? kReplayUsage : kLoadUsage;
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(args, {{"timeout", "max-inflight", "ops-per-message"}, {"quiet"}},
                               usage, global, parsed);
      rc >= 0) {
    return rc;
  }
  if (parsed.positional.size() != 1) {
    std::cerr << "batchctl: " << (replay ? "replay" : "load")
              << " needs exactly one FILE (or - for stdin)\n\n"
              << usage;
    return kExitUsage;
  }
  absl::StatusOr<absl::Duration> timeout = parsed.GetDuration("timeout", absl::Seconds(60));
  absl::StatusOr<int64_t> max_inflight = parsed.GetInt("max-inflight", 100000);
  absl::StatusOr<int64_t> per_message = parsed.GetInt("ops-per-message", 256);
  for (const absl::Status& s : {timeout.status(), max_inflight.status(), per_message.status()}) {
    if (!s.ok()) {
      std::cerr << "batchctl: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (*timeout <= absl::ZeroDuration() || *max_inflight < 1 || *per_message < 1) {
    std::cerr << "batchctl: --timeout, --max-inflight and --ops-per-message must be "
                 "positive\n";
    return kExitUsage;
  }
  const std::string path = parsed.positional[0];
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::cerr << "batchctl: cannot open " << path << "\n";
      return kExitUsage;
    }
    in = &file;
  }
  if (ConnectOrReport(global) == nullptr) return kExitUnreachable;

  ClientOptions options;
  options.target = global.target;
  options.op_deadline = *timeout;
  options.max_inflight_ops = static_cast<size_t>(*max_inflight);
  options.max_ops_per_message = static_cast<size_t>(*per_message);
  options.when_full = ClientOptions::WhenFull::kBlock;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) {
    std::cerr << "batchctl: " << client.status() << "\n";
    return kExitUsage;
  }

  StreamCounters counters;
  absl::Mutex report_mu;
  auto report = [&](uint64_t line, const std::string& what) {
    if (counters.reported.fetch_add(1) >= kMaxReportedFailures) return;
    absl::MutexLock lock(&report_mu);
    std::cerr << "line " << line << ": " << what << "\n";
  };

  const absl::Time start = absl::Now();
  const bool progress = !parsed.Has("quiet") && isatty(STDERR_FILENO) == 1;
  std::atomic<bool> done{false};
  std::thread progress_thread;
  if (progress) {
    progress_thread = std::thread([&] {
      uint64_t last_resolved = 0;
      absl::Time last = absl::Now();
      while (!done.load()) {
        absl::SleepFor(absl::Milliseconds(500));
        const absl::Time now = absl::Now();
        const uint64_t resolved = counters.resolved();
        const double rate =
            (resolved - last_resolved) / std::max(1e-9, absl::ToDoubleSeconds(now - last));
        last_resolved = resolved;
        last = now;
        absl::MutexLock lock(&report_mu);
        std::cerr << absl::StrFormat(
            "\r%9.0f ops/s  sent %llu  written %llu  coalesced %llu  failed %llu  "
            "rejected %llu   ",
            rate, static_cast<unsigned long long>(counters.submitted.load()),
            static_cast<unsigned long long>(counters.written.load()),
            static_cast<unsigned long long>(counters.coalesced.load()),
            static_cast<unsigned long long>(counters.failed.load()),
            static_cast<unsigned long long>(counters.rejected.load() + counters.bad_lines.load()));
      }
      std::cerr << "\n";
    });
  }

  std::string line;
  uint64_t line_no = 0;
  while (std::getline(*in, line)) {
    ++line_no;
    if (IsBlankLine(line)) continue;
    absl::StatusOr<FileOp> op = replay ? ParseDeadLetterLine(line) : ParseLoadLine(line);
    if (!op.ok()) {
      ++counters.bad_lines;
      report(line_no, absl::StrCat("skipped: ", op.status().message()));
      continue;
    }
    ++counters.submitted;
    auto on_outcome = [&counters, &report, line_no](WriteOutcome o) {
      if (!o.status.ok()) {
        ++counters.client_errors;
        report(line_no, o.DebugString());
        return;
      }
      switch (o.outcome) {
        case v1::WRITTEN:
          ++counters.written;
          return;
        case v1::COALESCED:
          ++counters.coalesced;
          return;
        case v1::REJECTED:
          ++counters.rejected;
          break;
        default:
          ++counters.failed;
          break;
      }
      report(line_no, o.DebugString());
    };
    if (op->is_delete) {
      (*client)->Delete(std::move(op->table), std::move(op->item), on_outcome);
    } else {
      (*client)->Put(std::move(op->table), std::move(op->item), on_outcome);
    }
  }
  const absl::Status closed = (*client)->Close(*timeout + absl::Seconds(5));
  client->reset();  // every callback has run once the client is gone
  done = true;
  if (progress_thread.joinable()) progress_thread.join();
  const double seconds = std::max(1e-9, absl::ToDoubleSeconds(absl::Now() - start));
  if (!closed.ok()) std::cerr << "batchctl: close: " << closed << "\n";
  if (counters.reported.load() > kMaxReportedFailures) {
    std::cerr << "(" << counters.reported.load() - kMaxReportedFailures
              << " more problems not shown)\n";
  }
  const uint64_t rejected = counters.rejected + counters.bad_lines;
  std::cout << absl::StrFormat(
      "ops %llu  written %llu  coalesced %llu  failed %llu  rejected %llu (bad lines "
      "%llu)  client errors %llu  in %.2fs (%.0f ops/s)\n",
      static_cast<unsigned long long>(counters.submitted.load()),
      static_cast<unsigned long long>(counters.written.load()),
      static_cast<unsigned long long>(counters.coalesced.load()),
      static_cast<unsigned long long>(counters.failed.load()),
      static_cast<unsigned long long>(rejected),
      static_cast<unsigned long long>(counters.bad_lines.load()),
      static_cast<unsigned long long>(counters.client_errors.load()), seconds,
      counters.submitted.load() / seconds);
  const uint64_t answered =
      counters.written + counters.coalesced + counters.failed + counters.rejected;
  if (counters.client_errors > 0 && answered == 0) return kExitUnreachable;
  if (counters.failed > 0 || rejected > 0 || counters.client_errors > 0) {
    return kExitOpsFailed;
  }
  return kExitOk;
}

int RunFlush(const GlobalOptions& global_in, const std::vector<std::string>& args) {
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(args, {{"table", "timeout"}, {}}, kFlushUsage, global, parsed);
      rc >= 0) {
    return rc;
  }
  absl::StatusOr<absl::Duration> timeout = parsed.GetDuration("timeout", absl::Seconds(30));
  if (!parsed.positional.empty() || !timeout.ok()) {
    std::cerr << "batchctl: bad arguments for flush\n\n" << kFlushUsage;
    return kExitUsage;
  }
  std::shared_ptr<grpc::Channel> channel = ConnectOrReport(global);
  if (channel == nullptr) return kExitUnreachable;
  auto stub = v1::WriteBatcher::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + *timeout));
  v1::FlushRequest request;
  request.set_table(parsed.Get("table"));
  v1::FlushResponse response;
  const grpc::Status status = stub->Flush(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "batchctl: flush: " << ToAbsl(status) << "\n";
    return status.error_code() == grpc::StatusCode::UNAVAILABLE ? kExitUnreachable : kExitOpsFailed;
  }
  std::cout << "flushed " << response.ops() << " ops\n";
  return kExitOk;
}

int RunHealth(const GlobalOptions& global_in, const std::vector<std::string>& args) {
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(args, {{"service", "timeout"}, {}}, kHealthUsage, global, parsed);
      rc >= 0) {
    return rc;
  }
  absl::StatusOr<absl::Duration> timeout = parsed.GetDuration("timeout", absl::Seconds(5));
  if (!parsed.positional.empty() || !timeout.ok()) {
    std::cerr << "batchctl: bad arguments for health\n\n" << kHealthUsage;
    return kExitUsage;
  }
  std::shared_ptr<grpc::Channel> channel = ConnectOrReport(global);
  if (channel == nullptr) return kExitUnreachable;
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + *timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(parsed.Get("service"));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "batchctl: health: " << ToAbsl(status) << "\n";
    return IsUnreachable(ToAbsl(status)) ? kExitUnreachable : kExitOpsFailed;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitOpsFailed;
}

int RunWaitHealthy(const GlobalOptions& global_in, const std::vector<std::string>& args) {
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(args, {{"timeout"}, {}}, kWaitHealthyUsage, global, parsed);
      rc >= 0) {
    return rc;
  }
  absl::StatusOr<absl::Duration> timeout = parsed.GetDuration("timeout", absl::Seconds(60));
  if (!parsed.positional.empty() || !timeout.ok()) {
    std::cerr << "batchctl: bad arguments for wait-healthy\n\n" << kWaitHealthyUsage;
    return kExitUsage;
  }
  std::string url = NormalizeMetricsUrl(global.metrics_url);
  url = absl::StrCat(url.substr(0, url.find('/', url.find("://") + 3)), "/healthz");
  const absl::Time deadline = absl::Now() + *timeout;
  absl::Status last;
  for (;;) {
    absl::StatusOr<std::string> body = HttpGet(url, absl::Seconds(1));
    if (body.ok()) return kExitOk;
    last = body.status();
    if (absl::Now() + absl::Milliseconds(250) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  std::cerr << "batchctl: not healthy after " << absl::FormatDuration(*timeout) << ": "
            << last.message() << "\n";
  return kExitUnreachable;
}

int RunSleep(const std::vector<std::string>& args) {
  absl::Duration d;
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << kSleepUsage;
    return kExitOk;
  }
  if (args.size() != 1 || !absl::ParseDuration(args[0], &d) || d < absl::ZeroDuration()) {
    std::cerr << "batchctl: sleep needs one duration, e.g. 15s\n\n" << kSleepUsage;
    return kExitUsage;
  }
  absl::SleepFor(d);
  return kExitOk;
}

int RunStats(const GlobalOptions& global_in, const std::vector<std::string>& args) {
  GlobalOptions global = global_in;
  ParsedArgs parsed;
  if (int rc = ParseSubcommand(args, {{"timeout"}, {"raw"}}, kStatsUsage, global, parsed);
      rc >= 0) {
    return rc;
  }
  absl::StatusOr<absl::Duration> timeout = parsed.GetDuration("timeout", absl::Seconds(5));
  if (!parsed.positional.empty() || !timeout.ok()) {
    std::cerr << "batchctl: bad arguments for stats\n\n" << kStatsUsage;
    return kExitUsage;
  }
  const std::string url = NormalizeMetricsUrl(global.metrics_url);
  absl::StatusOr<std::string> body = HttpGet(url, *timeout);
  if (!body.ok()) {
    std::cerr << "batchctl: " << body.status().message() << "\n";
    return kExitUnreachable;
  }
  if (parsed.Has("raw")) {
    std::cout << *body;
    return kExitOk;
  }
  absl::StatusOr<MetricsSummary> summary = SummarizeMetrics(*body);
  if (!summary.ok()) {
    std::cerr << "batchctl: " << url << ": " << summary.status().message() << "\n";
    return kExitUnreachable;
  }
  std::cout << FormatSummary(*summary);
  return kExitOk;
}

}  // namespace dynamo_batcher::batchctl
