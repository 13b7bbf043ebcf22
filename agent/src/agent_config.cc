#include "agent_config.h"

#include <toml++/toml.h>

#include <sstream>

#include "parc/common/files.h"

namespace parc::agent {

namespace {
Expected<toml::table> ParseToml(const std::filesystem::path& file) {
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    if (!PathExists(file)) return Fail(Errc::kNotFound, file.string() + " does not exist");
    return Fail(Errc::kParse, file.string() + ": " + std::string(e.description()) + " at line " +
                                  std::to_string(e.source().begin.line));
  }
}
}  // namespace

ExpectedVoid LoadAgentConfigFile(const std::filesystem::path& file, AgentConfig& config) {
  auto t = ParseToml(file);
  if (!t) return Fail(t.error());
  auto a = (*t)["agent"];
  if (auto v = a["state_dir"].value<std::string>()) config.state_dir = *v;
  if (auto v = a["root"].value<std::string>()) config.root = *v;
  if (auto v = a["log_level"].value<std::string>()) config.log_level = *v;
  if (auto v = a["inventory_interval_seconds"].value<int64_t>()) config.inventory_interval = *v;
  if (auto v = a["max_backoff_seconds"].value<int64_t>()) config.max_backoff = *v;
  return {};
}

Expected<Enrollment> LoadEnrollment(const AgentConfig& config) {
  if (!PathExists(config.enrollment_path()))
    return Fail(Errc::kNotFound, "this agent is not enrolled yet (no " + config.enrollment_path().string() +
                                     "); run: parc-agent enroll --server HOST:PORT --token TOKEN");
  auto t = ParseToml(config.enrollment_path());
  if (!t) return Fail(t.error());
  Enrollment e;
  e.server = (*t)["server"].value_or(std::string());
  e.server_name = (*t)["server_name"].value_or(std::string());
  e.host_id = (*t)["host_id"].value_or(std::string());
  e.ca_fingerprint = (*t)["ca_fingerprint"].value_or(std::string());
  e.enrolled_at = (*t)["enrolled_at"].value_or(int64_t{0});
  if (e.server.empty() || e.host_id.empty())
    return Fail(Errc::kParse, config.enrollment_path().string() + " is incomplete; enroll again with --force");
  return e;
}

ExpectedVoid SaveEnrollment(const AgentConfig& config, const Enrollment& e) {
  toml::table t{{"server", e.server},           {"server_name", e.server_name},
                {"host_id", e.host_id},         {"ca_fingerprint", e.ca_fingerprint},
                {"enrolled_at", e.enrolled_at}};
  std::ostringstream out;
  out << "# Written by parc-agent enroll. The CA pinned here is the only one this agent trusts.\n" << t << "\n";
  return WriteFileAtomic(config.enrollment_path(), out.str(), 0644);
}

}  // namespace parc::agent
