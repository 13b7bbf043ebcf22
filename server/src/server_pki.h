// First-start bootstrap of the server's trust material in its state directory:
// the internal CA, the server certificate (re-issued when its names change) and
// the root-only admin credentials file parcctl uses.
#pragma once

#include <string>

#include "config.h"
#include "parc/common/error.h"
#include "parc/common/pki.h"

namespace parc::server {

struct ServerTls {
  pki::CertificateAuthority ca;
  std::string server_key_pem;
  std::string server_chain_pem;  // server certificate followed by the CA certificate
};

Expected<ServerTls> BootstrapPki(const ServerConfig& config);

// Writes the admin credentials file (0600) on first start; later only refreshes
// its "# server: ADDRESS" line, which parcctl uses as its default server.
ExpectedVoid EnsureAdminCredentials(const ServerConfig& config, const pki::CertificateAuthority& ca,
                                    const std::string& advertise);

// Names the server certificate covers: configured names plus localhost,
// 127.0.0.1, ::1, the host name and its FQDN.
std::vector<std::string> ServerNames(const ServerConfig& config);

}  // namespace parc::server
