// parc-agent configuration. Two sources: the operator's TOML file (optional)
// and the enrollment record the agent writes into its state directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "parc/common/error.h"

namespace parc::agent {

struct AgentConfig {
  std::filesystem::path state_dir = "/var/lib/parc/agent";
  std::filesystem::path root = "/";
  std::string log_level = "info";
  int64_t inventory_interval = 3600;   // seconds between scheduled inventories
  int64_t max_backoff = 300;           // reconnect delay cap, seconds
  int64_t initial_backoff_ms = 1000;
  size_t max_outbox_reports = 1000;    // beyond this, queued inventories collapse into one full report

  std::filesystem::path key_path() const { return state_dir / "agent.key"; }
  std::filesystem::path cert_path() const { return state_dir / "agent.pem"; }
  std::filesystem::path ca_path() const { return state_dir / "ca.pem"; }
  std::filesystem::path enrollment_path() const { return state_dir / "enrollment.toml"; }
  std::filesystem::path outbox_path() const { return state_dir / "outbox.db"; }
};

// What enrollment established; written once by `parc-agent enroll`.
struct Enrollment {
  std::string server;       // host:port
  std::string server_name;  // TLS name to verify ("" = host part of server)
  std::string host_id;
  std::string ca_fingerprint;
  int64_t enrolled_at = 0;
};

ExpectedVoid LoadAgentConfigFile(const std::filesystem::path& file, AgentConfig& config);
Expected<Enrollment> LoadEnrollment(const AgentConfig& config);
ExpectedVoid SaveEnrollment(const AgentConfig& config, const Enrollment& enrollment);

}  // namespace parc::agent
