#include "server_pki.h"

#include <unistd.h>

#include <algorithm>

#include "parc/common/files.h"
#include "parc/common/log.h"

namespace parc::server {

std::vector<std::string> ServerNames(const ServerConfig& config) {
  std::vector<std::string> names = config.server_names;
  for (const char* n : {"localhost", "127.0.0.1", "::1"}) names.emplace_back(n);
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0]) names.emplace_back(host);
  std::vector<std::string> unique;
  for (auto& n : names)
    if (!n.empty() && std::find(unique.begin(), unique.end(), n) == unique.end()) unique.push_back(n);
  return unique;
}

namespace {

// Re-issue when the stored certificate is missing, expiring within 30 days, or
// does not cover every configured name.
bool ServerCertUsable(const std::string& cert_pem, const std::vector<std::string>& names,
                      const pki::CertificateAuthority& ca) {
  auto info = pki::ParseCertificate(cert_pem);
  if (!info) return false;
  auto signed_ok = pki::IsSignedBy(cert_pem, ca.certificate_pem());
  if (!signed_ok || !*signed_ok) return false;
  if (info->not_after < ::time(nullptr) + 30 * 86400) return false;
  for (const auto& n : names) {
    bool found = std::find(info->dns_names.begin(), info->dns_names.end(), n) != info->dns_names.end() ||
                 std::find(info->ip_addresses.begin(), info->ip_addresses.end(), n) != info->ip_addresses.end();
    if (!found) return false;
  }
  return true;
}

}  // namespace

Expected<ServerTls> BootstrapPki(const ServerConfig& config) {
  if (auto r = EnsureDirectory(config.state_dir, 0700); !r) return Fail(r.error());
  auto ca = pki::CertificateAuthority::LoadOrCreate(config.pki_dir());
  if (!ca) return Fail(ca.error().WithContext("internal CA"));
  ServerTls tls{std::move(*ca), {}, {}};

  auto key_path = config.pki_dir() / "server.key";
  auto cert_path = config.pki_dir() / "server.pem";
  auto names = ServerNames(config);
  auto key = ReadFile(key_path);
  auto cert = ReadFile(cert_path);
  if (key && cert && ServerCertUsable(*cert, names, tls.ca)) {
    tls.server_key_pem = *key;
    tls.server_chain_pem = *cert + tls.ca.certificate_pem();
  } else {
    auto new_key = pki::GenerateKeyPem();
    if (!new_key) return Fail(new_key.error());
    auto pub = pki::PublicKeyPem(*new_key);
    if (!pub) return Fail(pub.error());
    auto new_cert = tls.ca.IssueServerCertificate(*pub, pki::ServerCertRequest{names, 825});
    if (!new_cert) return Fail(new_cert.error().WithContext("server certificate"));
    if (auto r = WriteFileAtomic(key_path, *new_key, 0600); !r) return Fail(r.error());
    if (auto r = WriteFileAtomic(cert_path, *new_cert, 0644); !r) return Fail(r.error());
    std::string joined;
    for (const auto& n : names) joined += (joined.empty() ? "" : ", ") + n;
    spdlog::info("issued server certificate for {}", joined);
    tls.server_key_pem = *new_key;
    tls.server_chain_pem = *new_cert + tls.ca.certificate_pem();
  }
  return tls;
}

ExpectedVoid EnsureAdminCredentials(const ServerConfig& config, const pki::CertificateAuthority& ca,
                                    const std::string& advertise) {
  auto path = config.admin_credentials_path();
  std::string server_line = "# server: " + advertise + "\n";
  if (auto existing = ReadFile(path)) {
    // Keep the key and certificate; only refresh the address line when the server moved.
    auto pos = existing->find("# server: ");
    if (pos == std::string::npos) return {};
    auto end = existing->find('\n', pos);
    if (end == std::string::npos) return {};
    if (existing->compare(pos, end + 1 - pos, server_line) == 0) return {};
    std::string updated = existing->substr(0, pos) + server_line + existing->substr(end + 1);
    return WriteFileAtomic(path, updated, 0600);
  }
  auto key = pki::GenerateKeyPem();
  if (!key) return Fail(key.error());
  auto pub = pki::PublicKeyPem(*key);
  if (!pub) return Fail(pub.error());
  auto cert = ca.IssueClientCertificate(*pub, "admin", "parc-admin", 3650);
  if (!cert) return Fail(cert.error());
  std::string content = "# Parc admin credentials: private key, admin certificate, CA certificate.\n"
                        "# Whoever holds this file administers the parc. Keep it root-only (0600).\n" +
                        server_line + *key + *cert + ca.certificate_pem();
  if (auto r = WriteFileAtomic(path, content, 0600); !r) return r;
  spdlog::info("wrote admin credentials to {} (root only)", path.string());
  return {};
}

}  // namespace parc::server
