#include "service/main/sidecar.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "prometheus/counter.h"
#include "service/auth/credentials.h"
#include "service/auth/credentials_chain.h"
#include "service/common/clock.h"
#include "service/common/log.h"
#include "service/dynamodb/dynamodb_client.h"
#include "service/engine/engine.h"
#include "service/http/http_transport.h"
#include "service/lifecycle/health.h"
#include "service/lifecycle/readiness.h"
#include "service/lifecycle/shutdown.h"
#include "service/lifecycle/signals.h"
#include "service/lifecycle/startup.h"
#include "service/lifecycle/table_checker.h"
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

std::unique_ptr<HttpTransport> MakeDynamoDbTransport(const Config& config) {
  CurlTransportOptions topts;
  topts.tls.verify = config.dynamodb.tls_verify;
  topts.tls.ca_file = config.dynamodb.ca_file;
  topts.max_connections = config.dynamodb.max_connections;
  topts.max_connections_per_host = config.dynamodb.max_connections;
  topts.connect_timeout = config.dynamodb.connect_timeout;
  return MakeFramedTransport(topts);
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

// The service's part of server.* (Config::Server extends ServiceLimits).
ServiceLimits LimitsFromConfig(const Config& config) { return config.server; }

bool IsUnixSocket(const std::string& listen) { return listen.rfind("unix:", 0) == 0; }

// The gRPC server on `config.listen`, serving `service`, health and
// reflection, within gRPC's own memory quota. nullptr when it cannot listen.
std::unique_ptr<grpc::Server> StartGrpcServer(const Config& config,
                                              std::shared_ptr<grpc::ServerCredentials> creds,
                                              grpc::Service* service, grpc::ResourceQuota* quota,
                                              int* bound_port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, std::move(creds), bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.server.max_message_bytes));
  // gRPC's own memory (socket read buffers, HTTP/2 windows, messages being
  // received) is bounded by a quota: under pressure the transport shrinks its
  // flow-control windows and stops reading. BDP probing would otherwise grow
  // each connection's window towards its bandwidth-delay product, whatever
  // the number of connections.
  quota->Resize(static_cast<size_t>(config.server.grpc_memory_bytes));
  builder.SetResourceQuota(*quota);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (*bound_port == 0 && !IsUnixSocket(config.listen))) return nullptr;
  return server;
}

// Applies server.unix_socket_mode to the socket file of unix:///abs/path or
// unix:rel/path.
absl::Status ChmodUnixSocket(const Config& config) {
  std::string path = config.listen.substr(5);
  if (path.rfind("//", 0) == 0) path = path.substr(2);
  if (chmod(path.c_str(), static_cast<mode_t>(config.server.unix_socket_mode)) != 0) {
    return absl::InternalError(absl::StrCat(path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

void LogStarting(const Config& config, const std::string& config_path,
                 const std::vector<std::string>& names, const std::string& endpoint,
                 const std::string& credentials) {
  Log(LogLevel::kInfo, "starting dynamo-batcher",
      {{"version", DYNAMO_BATCHER_VERSION},
       {"config", config_path},
       {"tables", absl::StrJoin(names, ",")},
       {"endpoint", endpoint},
       {"region", config.dynamodb.region},
       {"credentials", credentials},
       {"linger", absl::FormatDuration(config.batching.linger)},
       {"max_items", absl::StrCat(config.batching.max_items)},
       {"max_inflight_calls", absl::StrCat(config.batching.max_inflight_calls)},
       {"buffer_max_bytes", absl::StrCat(config.buffer.max_bytes)},
       {"dead_letter", config.dead_letter.path.empty() ? "(none)" : config.dead_letter.path}});
}

// The gRPC listener with its credentials and socket mode, logged on error:
// INVALID_ARGUMENT for unusable TLS files, UNAVAILABLE when it cannot listen.
absl::StatusOr<std::unique_ptr<grpc::Server>> ServeGrpc(const Config& config,
                                                        grpc::Service* service,
                                                        grpc::ResourceQuota* quota,
                                                        int* bound_port) {
  auto listen_credentials = ServerCredentials(config);
  if (!listen_credentials.ok()) {
    Log(LogLevel::kError, "cannot set up the gRPC listener",
        {{"error", std::string(listen_credentials.status().message())}});
    return absl::InvalidArgumentError(listen_credentials.status().message());
  }
  std::unique_ptr<grpc::Server> server =
      StartGrpcServer(config, *listen_credentials, service, quota, bound_port);
  if (!server) {
    Log(LogLevel::kError, "cannot listen for gRPC", {{"listen", config.listen}});
    return absl::UnavailableError("cannot listen for gRPC");
  }
  if (IsUnixSocket(config.listen)) {
    if (absl::Status s = ChmodUnixSocket(config); !s.ok()) {
      Log(LogLevel::kError, "cannot set the socket's file mode",
          {{"error", std::string(s.message())}});
      server->Shutdown();
      return absl::UnavailableError(s.message());
    }
  }
  return server;
}

void LogListening(const Config& config, int bound_port, int http_port,
                  const std::string& endpoint) {
  std::string grpc_addr = config.listen;
  if (bound_port > 0 && !IsUnixSocket(config.listen)) {
    grpc_addr = absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", bound_port);
  }
  std::string metrics_addr = absl::StrCat(
      config.metrics_listen.substr(0, config.metrics_listen.rfind(':')), ":", http_port);
  Log(LogLevel::kInfo, "dynamo-batcher listening",
      {{"grpc", grpc_addr},
       {"metrics", absl::StrCat("http://", metrics_addr, "/metrics")},
       {"dynamodb", endpoint}});
}

class DynamoDbTableChecker : public TableChecker {
 public:
  explicit DynamoDbTableChecker(DynamoDbClient* ddb) : ddb_(ddb) {}
  absl::StatusOr<TableSchema> DescribeTable(const std::string& table) override {
    return ddb_->DescribeTable(table);
  }
  absl::Status CreateTableIfMissing(const TableSchema& schema) override {
    return ddb_->CreateTableIfMissing(schema);
  }

 private:
  DynamoDbClient* ddb_;
};

class SidecarDrainTarget : public DrainTarget {
 public:
  SidecarDrainTarget(Engine* engine, WriteBatcherService* service, grpc::Server* server)
      : engine_(engine), service_(service), server_(server) {}
  void StopAccepting() override { service_->BeginDrain(); }
  bool DrainBuffered(absl::Duration timeout) override { return engine_->Drain(timeout); }
  uint64_t pending_ops() const override { return engine_->pending_ops(); }
  uint64_t failed_ops() const override { return engine_->failed_ops(); }
  int active_streams() const override { return service_->active_streams(); }
  bool idle() const override { return service_->idle(); }
  void ShutdownServer(absl::Duration grace) override {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }

 private:
  Engine* engine_;
  WriteBatcherService* service_;
  grpc::Server* server_;
};

}  // namespace

int RunSidecar(Config config, const std::string& config_path) {
  // Config validation has already refused any other level.
  SetLogLevel(ParseLogLevel(config.log.level).value_or(LogLevel::kInfo));
  if (ListenIsRemote(config) && config.server.tls_cert_file.empty()) {
    // Only possible with server.allow_insecure_remote (config validation).
    Log(LogLevel::kWarn,
        "gRPC listens beyond loopback without TLS (server.allow_insecure_remote): anyone who "
        "can reach this port can write to the tables with the sidecar's AWS identity",
        {{"listen", config.listen}});
  }
  // Before any thread exists.
  ProcessSignals signals;

  auto credentials = MakeCredentials(config);
  if (!credentials.ok()) {
    Log(LogLevel::kError, "cannot start", {{"error", std::string(credentials.status().message())}});
    return kExitStartFailed;
  }
  std::unique_ptr<HttpTransport> transport = MakeDynamoDbTransport(config);
  DynamoDbOptions dopts;
  dopts.region = config.dynamodb.region;
  dopts.endpoint = config.dynamodb.endpoint;
  dopts.call_timeout = config.dynamodb.call_timeout;
  DynamoDbClient ddb(dopts, transport.get(), credentials->get());
  DynamoDbTableChecker checker(&ddb);

  std::vector<std::string> names;
  for (const auto& t : config.tables) names.push_back(t.schema.name);
  Metrics metrics(names);
  metrics.BuildInfo(DYNAMO_BATCHER_VERSION).Set(1);
  metrics.CredentialsProvider((*credentials)->Name()).Set(1);
  g_refresh_failures.store(&metrics.CredentialsRefreshFailures());

  LogStarting(config, config_path, names, ddb.endpoint(), (*credentials)->Name());

  // Key schemas: from config, or DescribeTable (retried until it works or
  // we are told to stop: the sidecar is useless without them).
  StartupOptions startup;
  startup.create_tables = config.dynamodb.create_tables;
  absl::StatusOr<bool> reached = ResolveKeySchemas(
      &config.tables, startup, &checker, [](absl::Duration d) { absl::SleepFor(d); },
      [&signals] { return signals.StopPending(); });
  if (!reached.ok()) {
    return reached.status().code() == absl::StatusCode::kCancelled ? kExitLost : kExitStartFailed;
  }
  const bool reached_dynamodb = *reached;

  SteadyClock clock;
  Engine engine(EngineTablesFromConfig(config), EngineOptionsFromConfig(config), &ddb, &metrics,
                &clock);
  if (absl::Status s = engine.Start(); !s.ok()) {
    Log(LogLevel::kError, "cannot start", {{"error", s.ToString()}});
    return kExitStartFailed;
  }

  WriteBatcherService service(&engine, &metrics, LimitsFromConfig(config));
  RouteProtobufLogs();
  grpc::ResourceQuota grpc_quota("dynamo-batcher");
  int bound_port = 0;
  absl::StatusOr<std::unique_ptr<grpc::Server>> started =
      ServeGrpc(config, &service, &grpc_quota, &bound_port);
  if (!started.ok()) {
    engine.Stop();
    return started.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadConfig
                                                                         : kExitStartFailed;
  }
  std::unique_ptr<grpc::Server> server = *std::move(started);

  // gRPC health ("" and the WriteBatcher service), /readyz and the ready
  // gauge. gRPC health first: whoever sees /readyz change can rely on gRPC
  // health having changed already.
  grpc::HealthCheckServiceInterface* grpc_health = server->GetHealthCheckService();
  HealthState health([grpc_health, &metrics](bool on) {
    grpc_health->SetServingStatus(on);
    grpc_health->SetServingStatus(kServiceName, on);
    metrics.ready().Set(on ? 1 : 0);
  });

  MetricsHttpServer http(
      metrics.registry(), [&health] { return health.serving(); }, [] { return true; });
  if (absl::Status s = http.Start(config.metrics_listen); !s.ok()) {
    Log(LogLevel::kError, "cannot start the metrics server", {{"error", s.ToString()}});
    server->Shutdown();
    engine.Stop();
    return kExitStartFailed;
  }
  LogListening(config, bound_port, http.port(), ddb.endpoint());

  // Readiness: SERVING once DynamoDB answered (DescribeTable or a write).
  ReadinessProbe::Options probe_options;
  probe_options.table = config.tables.front().schema.name;
  ReadinessProbe probe(
      probe_options, &checker,
      [&engine, reached_dynamodb] { return reached_dynamodb || engine.had_success(); }, &health);
  probe.Start();

  ConfigReloader reloader(config_path, config, &engine, &metrics);
  int sig = 0;
  while ((sig = signals.Wait()) == SIGHUP) {
    (void)reloader.Reload();  // logged and counted there; the old config stays on error
  }
  const uint64_t failed_before = engine.failed_ops();
  signals.ExitOnNextStopSignal();
  // The process never hangs: past the hard limit, exit non-zero.
  const absl::Duration hard_limit =
      ShutdownHardLimit(config.drain_timeout, config.dynamodb.call_timeout);
  Watchdog watchdog(hard_limit, [hard_limit] {
    Log(LogLevel::kError, "shutdown took too long; exiting without finishing the drain",
        {{"limit", absl::FormatDuration(hard_limit)}});
    _exit(kExitLost);
  });
  DrainOptions drain;
  drain.signal = ProcessSignals::Name(sig);
  drain.drain_timeout = config.drain_timeout;
  SidecarDrainTarget target(&engine, &service, server.get());
  // The probe stops at its next step; the drain does not wait for it.
  probe.RequestStop();
  const bool clean = RunDrain(&target, &health, drain, failed_before, clock,
                              [](absl::Duration d) { absl::SleepFor(d); });
  probe.Stop();  // at most one DescribeTable call (call_timeout) away
  http.Stop();
  engine.Stop();
  // The transport answers calls still in flight when destroyed, through the
  // engine's callbacks: destroy it while the engine is alive.
  transport.reset();
  Log(LogLevel::kInfo, "stopped",
      {{"clean", clean ? "true" : "false"},
       {"failed_during_drain", absl::StrCat(engine.failed_ops() - failed_before)},
       {"failed_ops_total", absl::StrCat(engine.failed_ops())}});
  return clean ? kExitClean : kExitLost;
}

}  // namespace dynamo_batcher
