#include "config.h"

#include <toml++/toml.h>

namespace parc::server {

ExpectedVoid LoadServerConfigFile(const std::filesystem::path& file, ServerConfig& config) {
  toml::table t;
  try {
    t = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    return Fail(Errc::kParse, "configuration " + file.string() + ": " + std::string(e.description()) + " at line " +
                                  std::to_string(e.source().begin.line));
  }
  auto server = t["server"];
  if (auto v = server["listen"].value<std::string>()) config.listen = *v;
  if (auto v = server["advertise"].value<std::string>()) config.advertise = *v;
  if (auto v = server["state_dir"].value<std::string>()) config.state_dir = *v;
  if (auto v = server["log_level"].value<std::string>()) config.log_level = *v;
  if (auto v = server["heartbeat_seconds"].value<int64_t>()) config.heartbeat_seconds = static_cast<uint32_t>(*v);
  if (auto v = server["max_message_bytes"].value<int64_t>()) config.max_message_bytes = static_cast<uint32_t>(*v);
  if (auto v = server["sync_threads"].value<int64_t>()) config.sync_threads = static_cast<int>(*v);
  if (auto v = server["tls_frame_bytes"].value<int64_t>()) {
    if (*v < 1024 || *v > 16384)
      return Fail(Errc::kInvalidArgument, "configuration " + file.string() + ": tls_frame_bytes must be 1024..16384");
    config.tls_frame_bytes = static_cast<int>(*v);
  }
  if (auto arr = server["server_names"].as_array()) {
    for (auto& e : *arr)
      if (auto s = e.value<std::string>()) config.server_names.push_back(*s);
  }
  auto pki = t["pki"];
  if (auto v = pki["client_cert_days"].value<int64_t>()) config.client_cert_days = static_cast<int>(*v);
  auto enroll = t["enrollment"];
  if (auto v = enroll["default_token_ttl_seconds"].value<int64_t>()) config.default_token_ttl = *v;
  auto netboot = t["netboot"];
  if (auto v = netboot["listen"].value<std::string>()) config.boot_listen = *v;
  if (auto v = netboot["http_listen"].value<std::string>()) config.boot_http_listen = *v;
  if (auto v = netboot["url"].value<std::string>()) config.boot_url = *v;
  if (auto v = netboot["http_url"].value<std::string>()) config.boot_http_url = *v;
  if (auto v = netboot["token_ttl_seconds"].value<int64_t>()) config.netboot_token_ttl = *v;
  if (auto v = netboot["arm_seconds"].value<int64_t>()) config.netboot_arm_seconds = *v;
  // A token in an answer file is a key to the parc: it must not live long.
  if (config.netboot_token_ttl < 60 || config.netboot_token_ttl > 7 * 86400)
    return Fail(Errc::kInvalidArgument, "configuration " + file.string() +
                                            ": [netboot] token_ttl_seconds must be between 60 and 604800");
  if (config.netboot_arm_seconds < 60 || config.netboot_arm_seconds > 30 * 86400)
    return Fail(Errc::kInvalidArgument, "configuration " + file.string() +
                                            ": [netboot] arm_seconds must be between 60 and 2592000");
  return {};
}

}  // namespace parc::server
