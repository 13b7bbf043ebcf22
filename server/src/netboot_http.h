// The boot server: cpp-httplib listeners (HTTPS with the server certificate
// of the internal CA, and optionally plain HTTP for iPXE scripts and boot
// files only) in front of NetbootCore. Routes: docs/netboot.md.
#pragma once

#include <memory>
#include <string>

#include "netboot_core.h"

namespace parc::server {

class BootHttpServer {
 public:
  // https: TLS with key_pem and chain_pem (server certificate then CA).
  static Expected<std::unique_ptr<BootHttpServer>> Start(NetbootCore& core, const std::string& listen, bool https,
                                                         const std::string& key_pem, const std::string& chain_pem);
  ~BootHttpServer();
  BootHttpServer(const BootHttpServer&) = delete;
  BootHttpServer& operator=(const BootHttpServer&) = delete;
  int port() const;
  void Stop();

  struct Impl;

 private:
  explicit BootHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The listeners the configuration asks for (none when boot_listen and
// boot_http_listen are empty), with the core's URLs set from the bound ports:
// the configured boot URLs, else the host of `advertise` with each port.
// Writes STATE/boot.addr ("https URL\nhttp URL\n") for scripts and tests.
struct BootServers {
  std::unique_ptr<BootHttpServer> https, http;
};
Expected<BootServers> StartBootServers(const ServerConfig& config, NetbootCore& core, const std::string& key_pem,
                                       const std::string& chain_pem, const std::string& advertise);

// "0.0.0.0:8443" -> host "0.0.0.0", port 8443; "[::]:8443" -> "::".
Expected<std::pair<std::string, int>> SplitListenAddress(const std::string& listen);

}  // namespace parc::server
