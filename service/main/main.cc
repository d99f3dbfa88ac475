// dynamo-batcher: a gRPC sidecar that turns single DynamoDB puts and deletes
// into deduplicated BatchWriteItem calls. See README.md and config.yaml.

#include <signal.h>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "service/auth/credentials.h"
#include "service/auth/credentials_chain.h"
#include "service/common/log.h"
#include "service/config/config.h"
#include "service/dynamodb/dynamodb_client.h"
#include "service/http/http_transport.h"
#include "service/engine/engine.h"
#include "service/main/reload.h"
#include "service/metrics/metrics.h"
#include "service/server/wire_check.h"
#include "service/server/write_service.h"

#ifndef DYNAMO_BATCHER_VERSION
#define DYNAMO_BATCHER_VERSION "dev"
#endif

namespace dynamo_batcher {
namespace {

constexpr char kServiceName[] = "dynamobatcher.v1.WriteBatcher";

void Usage() {
  std::cout << "usage: dynamo-batcher [--config FILE] [--check-config] [--version]\n"
               "\n"
               "  --config FILE    configuration file (default: config.yaml)\n"
               "  --check-config   validate the configuration and exit\n"
               "  --version        print the version and exit\n"
               "\n"
               "Environment overrides: DYNAMO_BATCHER_LISTEN, DYNAMO_BATCHER_METRICS_LISTEN,\n"
               "DYNAMO_BATCHER_ENDPOINT, DYNAMO_BATCHER_REGION.\n"
               "Exit codes: 0 clean shutdown (nothing lost), 1 writes failed during drain,\n"
               "2 bad usage or configuration, 3 start-up failure.\n";
}

// dynamo_batcher_credentials_refresh_failures_total, once metrics exist.
std::atomic<prometheus::Counter*> g_refresh_failures{nullptr};

absl::StatusOr<std::unique_ptr<CredentialsProvider>> MakeCredentials(const Config& config) {
  // The AWS SDKs' chain, config keys first. Credentials traffic (STS, the
  // container endpoint, IMDS) gets a small transport of its own, owned by
  // the chain: GetCredentials may block on it, so it must not be the
  // DynamoDB transport's I/O thread.
  CredentialsChainOptions options;
  options.static_credentials.access_key_id = config.dynamodb.access_key_id;
  options.static_credentials.secret_access_key = config.dynamodb.secret_access_key;
  options.static_credentials.session_token = config.dynamodb.session_token;
  options.region = config.dynamodb.region;
  // The engine thread signs requests: it must never wait on credentials I/O.
  options.never_block = true;
  options.on_refresh_failure = [](const std::string&, const absl::Status&) {
    if (prometheus::Counter* c = g_refresh_failures.load()) c->Increment();
  };
  if (config.dynamodb.access_key_id.empty()) {
    CurlTransportOptions topts;
    topts.max_connections = 4;
    topts.max_connections_per_host = 2;
    topts.connect_timeout = absl::Seconds(2);
    options.owned_transport = MakeCurlTransport(topts);
  }
  return MakeDefaultCredentialsChain(options);
}

absl::StatusOr<std::string> ReadFile(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Insecure (loopback / unix socket), TLS, or mTLS with server.tls.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const Config& config) {
  if (config.server.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadFile("server.tls.cert_file", config.server.tls_cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadFile("server.tls.key_file", config.server.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!config.server.tls_client_ca_file.empty()) {
    auto ca = ReadFile("server.tls.client_ca_file", config.server.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

int Run(int argc, char** argv) {
  std::string config_path = "config.yaml";
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--version") {
      std::cout << "dynamo-batcher " << DYNAMO_BATCHER_VERSION << "\n";
      return 0;
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::cerr << "dynamo-batcher: unknown argument \"" << a << "\"\n";
      Usage();
      return 2;
    }
  }
  auto loaded = LoadConfig(config_path);
  if (!loaded.ok()) {
    std::cerr << "dynamo-batcher: invalid configuration: " << loaded.status().message() << "\n";
    return 2;
  }
  Config config = *std::move(loaded);
  if (check_only) {
    std::cout << config_path << ": OK (" << config.tables.size() << " tables)\n";
    return 0;
  }
  // Config validation has already refused any other level.
  SetLogLevel(ParseLogLevel(config.log.level).value_or(LogLevel::kInfo));
  if (ListenIsRemote(config) && config.server.tls_cert_file.empty()) {
    // Only possible with server.allow_insecure_remote (config validation).
    Log(LogLevel::kWarn,
        "gRPC listens beyond loopback without TLS (server.allow_insecure_remote): anyone who "
        "can reach this port can write to the tables with the sidecar's AWS identity",
        {{"listen", config.listen}});
  }

  // Signals go to one thread, which turns them into a drain (SIGTERM,
  // SIGINT) or a config reload (SIGHUP; blocked from here on, so one sent
  // during start-up is handled once running and never kills the process).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigset_t sigs_and_hup = sigs;
  sigaddset(&sigs_and_hup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs_and_hup, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto credentials = MakeCredentials(config);
  if (!credentials.ok()) {
    Log(LogLevel::kError, "cannot start", {{"error", std::string(credentials.status().message())}});
    return 3;
  }
  CurlTransportOptions topts;
  topts.tls.verify = config.dynamodb.tls_verify;
  topts.tls.ca_file = config.dynamodb.ca_file;
  topts.max_connections = config.dynamodb.max_connections;
  topts.max_connections_per_host = config.dynamodb.max_connections;
  topts.connect_timeout = config.dynamodb.connect_timeout;
  std::unique_ptr<HttpTransport> transport = MakeCurlTransport(topts);
  DynamoDbOptions dopts;
  dopts.region = config.dynamodb.region;
  dopts.endpoint = config.dynamodb.endpoint;
  dopts.call_timeout = config.dynamodb.call_timeout;
  DynamoDbClient ddb(dopts, transport.get(), credentials->get());

  std::vector<std::string> names;
  for (const auto& t : config.tables) names.push_back(t.schema.name);
  Metrics metrics(names);
  metrics.BuildInfo(DYNAMO_BATCHER_VERSION).Set(1);
  metrics.CredentialsProvider((*credentials)->Name()).Set(1);
  g_refresh_failures.store(&metrics.CredentialsRefreshFailures());

  Log(LogLevel::kInfo, "starting dynamo-batcher",
      {{"version", DYNAMO_BATCHER_VERSION},
       {"config", config_path},
       {"tables", absl::StrJoin(names, ",")},
       {"endpoint", ddb.endpoint()},
       {"region", config.dynamodb.region},
       {"credentials", (*credentials)->Name()},
       {"linger", absl::FormatDuration(config.batching.linger)},
       {"max_items", absl::StrCat(config.batching.max_items)},
       {"max_inflight_calls", absl::StrCat(config.batching.max_inflight_calls)},
       {"buffer_max_bytes", absl::StrCat(config.buffer.max_bytes)},
       {"dead_letter", config.dead_letter.path.empty() ? "(none)" : config.dead_letter.path}});

  // Key schemas: from config, or DescribeTable (retried until it works or
  // we are told to stop: the sidecar is useless without them).
  std::atomic<bool> reached_dynamodb{false};
  for (auto& t : config.tables) {
    if (config.dynamodb.create_tables && t.schema_from_config) {
      absl::Status s = ddb.CreateTableIfMissing(t.schema);
      if (!s.ok()) {
        Log(LogLevel::kError, "cannot create table", {{"table", t.schema.name}, {"error", s.ToString()}});
        return 3;
      }
      reached_dynamodb = true;
    }
    if (t.schema_from_config) continue;
    absl::Duration backoff = absl::Milliseconds(200);
    for (int attempt = 1;; ++attempt) {
      auto schema = ddb.DescribeTable(t.schema.name);
      if (schema.ok()) {
        t.schema = *schema;
        reached_dynamodb = true;
        Log(LogLevel::kInfo, "key schema from DescribeTable",
            {{"table", t.schema.name},
             {"partition_key", absl::StrCat(t.schema.partition_key.name, ":",
                                            KeyTypeName(t.schema.partition_key.type))},
             {"sort_key", t.schema.sort_key ? absl::StrCat(t.schema.sort_key->name, ":",
                                                           KeyTypeName(t.schema.sort_key->type))
                                            : "-"}});
        break;
      }
      if (schema.status().code() == absl::StatusCode::kNotFound ||
          schema.status().code() == absl::StatusCode::kPermissionDenied ||
          attempt >= 30) {
        Log(LogLevel::kError, "cannot read the table's key schema (give it in the config, or "
            "fix access)", {{"table", t.schema.name}, {"error", schema.status().ToString()}});
        return 3;
      }
      Log(LogLevel::kWarn, "DescribeTable failed; retrying",
          {{"table", t.schema.name}, {"error", schema.status().ToString()}});
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) return 1;
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  }

  std::vector<EngineTable> etables = EngineTablesFromConfig(config);
  EngineOptions eopts = EngineOptionsFromConfig(config);
  SteadyClock clock;
  Engine engine(etables, eopts, &ddb, &metrics, &clock);
  if (absl::Status s = engine.Start(); !s.ok()) {
    Log(LogLevel::kError, "cannot start", {{"error", s.ToString()}});
    return 3;
  }

  ServiceLimits limits;
  limits.max_ops_per_message = config.server.max_ops_per_message;
  limits.max_streams = config.server.max_streams;
  limits.max_unary_calls = config.server.max_unary_calls;
  limits.max_inflight_ops_per_stream = config.server.max_inflight_ops_per_stream;
  WriteBatcherService service(&engine, &metrics, limits);
  RouteProtobufLogs();
  auto listen_credentials = ServerCredentials(config);
  if (!listen_credentials.ok()) {
    Log(LogLevel::kError, "cannot set up the gRPC listener",
        {{"error", std::string(listen_credentials.status().message())}});
    engine.Stop();
    return 2;
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.listen, *listen_credentials, &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.server.max_message_bytes));
  // gRPC's own memory (socket read buffers, HTTP/2 windows, messages being
  // received) is bounded by a quota: under pressure the transport shrinks its
  // flow-control windows and stops reading. BDP probing would otherwise grow
  // each connection's window towards its bandwidth-delay product, whatever
  // the number of connections.
  grpc::ResourceQuota grpc_quota("dynamo-batcher");
  grpc_quota.Resize(static_cast<size_t>(config.server.grpc_memory_bytes));
  builder.SetResourceQuota(grpc_quota);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (bound_port == 0 && config.listen.rfind("unix:", 0) != 0)) {
    Log(LogLevel::kError, "cannot listen for gRPC", {{"listen", config.listen}});
    engine.Stop();
    return 3;
  }
  if (config.listen.rfind("unix:", 0) == 0) {
    // unix:///abs/path or unix:rel/path
    std::string path = config.listen.substr(5);
    if (path.rfind("//", 0) == 0) path = path.substr(2);
    if (chmod(path.c_str(), static_cast<mode_t>(config.server.unix_socket_mode)) != 0) {
      Log(LogLevel::kError, "cannot set the socket's file mode",
          {{"path", path}, {"error", strerror(errno)}});
      server->Shutdown();
      engine.Stop();
      return 3;
    }
  }
  // Health ("" and the WriteBatcher service, gRPC and /readyz alike):
  // NOT_SERVING until DynamoDB answered once, SERVING then, NOT_SERVING for
  // good once the drain begins (the probe can no longer turn it back on).
  std::atomic<bool> serving{false};
  std::mutex health_mu;
  bool health_final = false;  // guarded by health_mu
  auto* health = server->GetHealthCheckService();
  auto set_serving = [&](bool on, bool final_state = false) {
    std::lock_guard<std::mutex> lock(health_mu);
    if (health_final) return;
    health_final = final_state;
    // gRPC health first: whoever sees /readyz change can rely on gRPC
    // health having changed already.
    health->SetServingStatus(on);
    health->SetServingStatus(kServiceName, on);
    serving = on;
    metrics.ready().Set(on ? 1 : 0);
  };
  set_serving(false);

  MetricsHttpServer http(
      metrics.registry(), [&] { return serving.load(); }, [] { return true; });
  if (absl::Status s = http.Start(config.metrics_listen); !s.ok()) {
    Log(LogLevel::kError, "cannot start the metrics server", {{"error", s.ToString()}});
    server->Shutdown();
    engine.Stop();
    return 3;
  }
  std::string grpc_addr = config.listen;
  if (bound_port > 0 && config.listen.rfind("unix:", 0) != 0) {
    grpc_addr = absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", bound_port);
  }
  std::string metrics_addr = absl::StrCat(
      config.metrics_listen.substr(0, config.metrics_listen.rfind(':')), ":", http.port());
  Log(LogLevel::kInfo, "dynamo-batcher listening",
      {{"grpc", grpc_addr}, {"metrics", absl::StrCat("http://", metrics_addr, "/metrics")},
       {"dynamodb", ddb.endpoint()}});

  // Readiness: SERVING once DynamoDB answered (DescribeTable or a write).
  std::atomic<bool> stop_probe{false};
  std::thread probe([&] {
    absl::Duration backoff = absl::Milliseconds(250);
    while (!stop_probe.load()) {
      if (!reached_dynamodb.load() && !engine.had_success()) {
        auto s = ddb.DescribeTable(config.tables.front().schema.name);
        if (s.ok()) {
          reached_dynamodb = true;
        } else {
          LogRateLimited(LogLevel::kWarn, "readiness", absl::Seconds(30),
                         "DynamoDB not reachable yet; health NOT_SERVING",
                         {{"error", s.status().ToString()}});
        }
      }
      if (reached_dynamodb.load() || engine.had_success()) {
        set_serving(true);
        return;
      }
      for (absl::Time until = absl::Now() + backoff; absl::Now() < until && !stop_probe.load();) {
        absl::SleepFor(absl::Milliseconds(50));
      }
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  });

  ConfigReloader reloader(config_path, config, &engine, &metrics);
  int sig = 0;
  for (;;) {
    sigwait(&sigs_and_hup, &sig);
    if (sig != SIGHUP) break;
    (void)reloader.Reload();  // logged and counted there; the old config stays on error
  }
  const uint64_t failed_before = engine.failed_ops();
  // A second signal forces exit at once, whatever the drain is waiting for.
  std::thread force([sigs] {
    int s2 = 0;
    sigwait(&sigs, &s2);
    Log(LogLevel::kError, "second signal: exiting without finishing the drain");
    _exit(1);
  });
  force.detach();
  // The process never hangs: the drain is bounded by drain_timeout, then
  // calls already sent to DynamoDB get up to call_timeout to answer (their
  // items may land, so they are waited for, not failed), plus the gRPC
  // shutdown grace. Past that, exit non-zero.
  const absl::Duration hard_limit =
      config.drain_timeout + config.dynamodb.call_timeout + absl::Seconds(10);
  std::thread watchdog([hard_limit] {
    absl::SleepFor(hard_limit);
    Log(LogLevel::kError, "shutdown took too long; exiting without finishing the drain",
        {{"limit", absl::FormatDuration(hard_limit)}});
    _exit(1);
  });
  watchdog.detach();
  set_serving(false, /*final_state=*/true);
  service.BeginDrain();
  Log(LogLevel::kInfo, "signal received; draining",
      {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
       {"drain_timeout", absl::FormatDuration(config.drain_timeout)},
       {"pending_ops", absl::StrCat(engine.pending_ops())},
       {"open_streams", absl::StrCat(service.active_streams())}});
  stop_probe = true;
  const absl::Time drain_start = absl::Now();
  bool clean = engine.Drain(config.drain_timeout);
  Log(LogLevel::kInfo, "buffered writes drained",
      {{"elapsed", absl::FormatDuration(absl::Now() - drain_start)},
       {"pending_ops", absl::StrCat(engine.pending_ops())},
       {"failed_during_drain", absl::StrCat(engine.failed_ops() - failed_before)}});
  // Streams finish once every op they read has its result; a message whose
  // read completed just as the drain began may still be submitted here, so
  // the engine keeps running while gRPC shuts down, and drains once more.
  // Shutdown waits for open client connections until its deadline; clients
  // that keep their channel open would cost the whole grace, so it is cut
  // short once no stream or call is left to answer (plus a moment for the
  // last unary answers to leave: a unary call counts as done at Finish).
  const absl::Time grace_end = absl::Now() + absl::Seconds(2);
  while (!service.idle() && absl::Now() < grace_end) absl::SleepFor(absl::Milliseconds(5));
  server->Shutdown(absl::ToChronoTime(
      service.idle() ? std::min(grace_end, absl::Now() + absl::Milliseconds(250)) : grace_end));
  Log(LogLevel::kInfo, "gRPC server stopped",
      {{"elapsed", absl::FormatDuration(absl::Now() - drain_start)}});
  if (engine.pending_ops() > 0) clean = engine.Drain(absl::Seconds(1)) && clean;
  clean = clean && engine.pending_ops() == 0 && engine.failed_ops() == failed_before;
  probe.join();  // at most one DescribeTable call (call_timeout) away
  http.Stop();
  engine.Stop();
  // The transport answers calls still in flight when destroyed, through the
  // engine's callbacks: destroy it while the engine is alive.
  transport.reset();
  Log(LogLevel::kInfo, "stopped",
      {{"clean", clean ? "true" : "false"},
       {"failed_during_drain", absl::StrCat(engine.failed_ops() - failed_before)},
       {"failed_ops_total", absl::StrCat(engine.failed_ops())}});
  return clean ? 0 : 1;
}

}  // namespace
}  // namespace dynamo_batcher

int main(int argc, char** argv) { return dynamo_batcher::Run(argc, argv); }
