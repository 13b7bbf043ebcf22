// parc-server configuration: TOML file, then command-line overrides.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "parc/common/error.h"

namespace parc::server {

struct ServerConfig {
  std::string listen = "0.0.0.0:7443";
  // Address agents and parcctl use to reach this server; written into the admin
  // credentials file and shown in enrollment instructions.
  std::string advertise;  // default: 127.0.0.1:<listen port>
  std::filesystem::path state_dir = "/var/lib/parc/server";
  std::vector<std::string> server_names;  // extra SANs for the server certificate
  std::string log_level = "info";
  uint32_t heartbeat_seconds = 60;
  int64_t default_token_ttl = 24 * 3600;
  uint32_t max_message_bytes = 16 * 1024 * 1024;
  int client_cert_days = 365;
  // Worker threads for the synchronous RPCs (enrollment and admin).
  int sync_threads = 4;
  // Network installation (docs/netboot.md): the boot server is off unless
  // boot_listen is set. The plain HTTP listener serves iPXE scripts and boot
  // files only, never answer files (they hold enrollment tokens).
  std::string boot_listen;       // HTTPS, e.g. 0.0.0.0:8443
  std::string boot_http_listen;  // e.g. 0.0.0.0:8080; "" = off
  std::string boot_url;          // https://NAME:PORT machines use; default: advertise host, boot port
  std::string boot_http_url;     // http://NAME:PORT; default likewise
  int64_t netboot_token_ttl = 3 * 3600;     // an install plus its first boot
  int64_t netboot_arm_seconds = 24 * 3600;  // how long a recorded machine stays armed
  // Largest TLS record the server writes (gRPC's grpc.tsi.max_frame_size,
  // 1024..16384). Content downloads are sent in records of this size: with
  // 16 KiB, 10 parallel 50 MiB GetContent streams took ~0.7x the time they
  // took with 4 KiB (tests/bench/push_vs_nginx.sh); 4 KiB saves ~3.6 KB of
  // server memory per idle connection (docs: DESIGN "measured facts"), for
  // fleets where memory per session matters more than download speed.
  int tls_frame_bytes = 16384;

  std::filesystem::path database_path() const { return state_dir / "parc.db"; }
  std::filesystem::path pki_dir() const { return state_dir / "pki"; }
  std::filesystem::path admin_credentials_path() const { return state_dir / "admin.pem"; }
};

// Reads a TOML file into config (keys as in the struct; see installer/parc-server.toml).
ExpectedVoid LoadServerConfigFile(const std::filesystem::path& file, ServerConfig& config);

}  // namespace parc::server
