// parc-server: the central gRPC server (agent API + admin API), parc database,
// internal CA.
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "config.h"
#include "netboot_core.h"
#include "netboot_http.h"
#include "parc/common/files.h"
#include "parc/common/log.h"
#include "image_service.h"
#include "parc/server/image_store.h"
#include "policy_scheduler.h"
#include "server_pki.h"
#include "services.h"

using namespace parc;
using namespace parc::server;

namespace {

int Run(ServerConfig config) {
  auto tls = BootstrapPki(config);
  if (!tls) {
    spdlog::critical("cannot set up the PKI in {}: {}", config.state_dir.string(), tls.error().message());
    return 1;
  }
  auto storage = OpenSqliteStorage(config.database_path().string());
  if (!storage) {
    spdlog::critical("cannot open the parc database {}: {}", config.database_path().string(), storage.error().message());
    return 1;
  }

  ServerState state;
  state.config = &config;
  state.storage = storage->get();
  state.ca = &tls->ca;
  auto revoked = state.storage->RevokedCertificateFingerprints();
  if (!revoked) {
    spdlog::critical("cannot read revoked certificates: {}", revoked.error().message());
    return 1;
  }
  for (const auto& fp : *revoked) state.revoked.Add(fp);

  auto deploy = OpenSqliteDeployStore(config.database_path().string());
  if (!deploy) {
    spdlog::critical("cannot open the deployment tables: {}", deploy.error().message());
    return 1;
  }
  ContentStore content(config.state_dir / "content");
  if (auto r = content.Init(); !r) {
    spdlog::critical("cannot create the content store in {}: {}", (config.state_dir / "content").string(),
                     r.error().message());
    return 1;
  }
  Scheduler scheduler(**deploy, state.registry);
  state.deploy = deploy->get();
  state.content = &content;
  state.scheduler = &scheduler;
  auto policies = OpenSqlitePolicyStore(config.database_path().string());
  if (!policies) {
    spdlog::critical("cannot open the policy tables: {}", policies.error().message());
    return 1;
  }
  PolicyScheduler policy_scheduler(**policies, scheduler);
  scheduler.SetTerminalHook(
      [&policy_scheduler](const JobRecord& job, const v1::JobUpdate& u) { return policy_scheduler.OnTerminal(job, u); });
  state.policies = policies->get();
  state.policy_scheduler = &policy_scheduler;
  auto images = OpenSqliteImageStore(config.database_path().string());
  if (!images) {
    spdlog::critical("cannot open the image table: {}", images.error().message());
    return 1;
  }
  state.images = images->get();

  // Network installation (docs/netboot.md); its boot server starts below, once the address is known.
  auto netboot_store = OpenSqliteNetbootStore(config.database_path().string());
  if (!netboot_store) {
    spdlog::critical("cannot open the netboot tables: {}", netboot_store.error().message());
    return 1;
  }
  NetbootCore netboot_core(state, **netboot_store);
  NetbootServiceImpl netboot_service(state, netboot_core);

  AgentServiceImpl agent_service(state);
  AdminServiceImpl admin_service(state);
  DeployServiceImpl deploy_service(state);
  PolicyServiceImpl policy_service(state);
  ImageServiceImpl image_service(state);

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = tls->ca.certificate_pem();
  ssl.pem_key_cert_pairs.push_back({tls->server_key_pem, tls->server_chain_pem});

  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.listen, grpc::SslServerCredentials(ssl), &bound_port);
  builder.RegisterService(&agent_service);
  builder.RegisterService(&admin_service);
  builder.RegisterService(&deploy_service);
  builder.RegisterService(&policy_service);
  builder.RegisterService(&netboot_service);
  builder.RegisterService(&image_service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  // A stale server on the same port must not silently take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument("grpc.tsi.max_frame_size", config.tls_frame_bytes);
  // Lets a content download queue up to 1 MiB per stream ahead of the socket
  // (only bytes actually queued cost memory, so idle sessions are unaffected):
  // 10 parallel 50 MiB GetContent streams took 0.75-0.92x the time without it.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, 1 << 20);
  // Detect dead agents (power cut, cable pulled) without waiting for TCP timeouts.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, config.sync_threads);
  auto server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    spdlog::critical("cannot listen on {} (address in use, or not allowed?)", config.listen);
    return 1;
  }
  std::string advertise =
      config.advertise.empty() ? "127.0.0.1:" + std::to_string(bound_port) : config.advertise;
  if (auto r = EnsureAdminCredentials(config, tls->ca, advertise); !r) {
    spdlog::critical("cannot write admin credentials: {}", r.error().message());
    return 1;
  }
  auto boot = StartBootServers(config, netboot_core, tls->server_key_pem, tls->server_chain_pem, advertise);
  if (!boot) {
    spdlog::critical("cannot start the boot server: {}", boot.error().message());
    return 1;
  }
  // Tests and scripts that listen on port 0 learn the chosen port here.
  (void)WriteFileAtomic(config.state_dir / "server.addr", advertise + "\n", 0644);
  scheduler.Start();
  policy_scheduler.Start();
  spdlog::info("parc-server {} listening on {} (port {}), state in {}", PARC_VERSION, config.listen, bound_port,
               config.state_dir.string());
  spdlog::info("CA fingerprint (SHA-256): {}", tls->ca.fingerprint());
  spdlog::info("admin credentials: {}", config.admin_credentials_path().string());

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("received {}, shutting down ({} agents connected)", sig == SIGINT ? "SIGINT" : "SIGTERM",
               state.registry.Count());
  if (boot->https) boot->https->Stop();
  if (boot->http) boot->http->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(3));
  policy_scheduler.Stop();
  scheduler.Stop();
  state.storage->Flush();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with the deadlock detector on; it costs memory per
  // stream and CPU on every lock without finding anything in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Signals are received by sigwait in main only; block them before gRPC starts threads.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"parc-server: the Parc central server.\n"
               "Holds the parc database (SQLite), the internal CA, and the live sessions of every agent.\n"
               "On first start it creates the CA, a server certificate and root-only admin credentials\n"
               "for parcctl in its state directory."};
  app.footer("Examples:\n"
             "  parc-server --state-dir /var/lib/parc/server\n"
             "  parc-server --config /etc/parc/server.toml --listen 0.0.0.0:7443 --server-name parc.example.lan\n"
             "Then: parcctl token create --group lab   (prints the enrollment command for agents)");
  app.set_version_flag("--version", std::string("parc-server ") + PARC_VERSION);
  ServerConfig config;
  std::string config_file;
  app.add_option("-c,--config", config_file, "TOML configuration file (command-line options override it)");
  std::string listen, state_dir, log_level, advertise;
  std::vector<std::string> names;
  app.add_option("--listen", listen, "address:port to listen on (default 0.0.0.0:7443)");
  app.add_option("--advertise", advertise, "address:port agents and parcctl use to reach this server");
  app.add_option("--state-dir", state_dir, "state directory: database, CA, credentials (default /var/lib/parc/server)");
  app.add_option("--server-name", names, "extra DNS name or IP for the server certificate (repeatable)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (default info)");
  std::string boot_listen, boot_http_listen, boot_url;
  app.add_option("--boot-listen", boot_listen,
                 "HTTPS boot server for network installs, address:port (e.g. 0.0.0.0:8443; default off)");
  app.add_option("--boot-http-listen", boot_http_listen,
                 "plain HTTP for iPXE scripts and boot files only, never answer files (default off)");
  app.add_option("--boot-url", boot_url, "https://NAME:PORT machines reach the boot server at (default: advertise host)");
  uint32_t heartbeat = 0;
  app.add_option("--heartbeat", heartbeat, "seconds between agent heartbeats (default 60)");
  CLI11_PARSE(app, argc, argv);

  if (!config_file.empty()) {
    if (auto r = LoadServerConfigFile(config_file, config); !r) {
      std::cerr << "parc-server: " << r.error().message() << "\n";
      return 2;
    }
  }
  if (!listen.empty()) config.listen = listen;
  if (!advertise.empty()) config.advertise = advertise;
  if (!state_dir.empty()) config.state_dir = state_dir;
  if (!log_level.empty()) config.log_level = log_level;
  if (heartbeat) config.heartbeat_seconds = heartbeat;
  if (!boot_listen.empty()) config.boot_listen = boot_listen;
  if (!boot_http_listen.empty()) config.boot_http_listen = boot_http_listen;
  if (!boot_url.empty()) config.boot_url = boot_url;
  for (auto& n : names) config.server_names.push_back(n);
  if (config.listen.rfind(':') == std::string::npos) {
    std::cerr << "parc-server: --listen needs address:port, got '" << config.listen << "'\n";
    return 2;
  }
  parc::InitLogging("server", config.log_level);
  return Run(std::move(config));
}
