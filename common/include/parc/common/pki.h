// The parc PKI (OpenSSL): keys, CSRs, the internal CA, certificate parsing and
// fetching the chain a TLS server presents (to pin its CA before any trust).
// Keys are ECDSA P-256; certificates X.509 v3; fingerprints SHA-256 of the DER, lower-case hex.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "parc/common/error.h"

namespace parc::pki {

// A new ECDSA P-256 private key, PKCS#8 PEM.
Expected<std::string> GenerateKeyPem();
// The public key of a private key, SubjectPublicKeyInfo PEM.
Expected<std::string> PublicKeyPem(const std::string& private_key_pem);

// A PKCS#10 request for `common_name`, signed with the private key.
Expected<std::string> MakeCsr(const std::string& private_key_pem, const std::string& common_name);

struct CsrInfo {
  std::string public_key_pem;  // SubjectPublicKeyInfo PEM
  std::string common_name;
};
// Parses a CSR and checks its self-signature (proof of possession of the key).
// kInvalidArgument for anything malformed, oversized (> 16 KiB) or badly signed.
Expected<CsrInfo> VerifyCsr(const std::string& csr_pem);

struct CertInfo {
  std::string common_name;
  std::string organization;
  std::string issuer_common_name;
  std::string serial_hex;
  std::string fingerprint;     // SHA-256 of the DER, hex
  int64_t not_before = 0;
  int64_t not_after = 0;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  bool is_ca = false;
};
// Parses the first certificate of a PEM text.
Expected<CertInfo> ParseCertificate(const std::string& pem);
Expected<std::string> CertificateFingerprint(const std::string& pem);
// Splits a PEM bundle into its certificates (each one PEM block).
std::vector<std::string> SplitPemCertificates(const std::string& pem_bundle);
// True if `cert_pem` is signed by the key of `ca_pem` and valid now.
Expected<bool> IsSignedBy(const std::string& cert_pem, const std::string& ca_pem);

struct ServerCertRequest {
  std::vector<std::string> names;  // DNS names and IP addresses (both become SANs)
  int days = 825;
};

class CertificateAuthority {
 public:
  // Loads ca.key / ca.pem from dir, or creates them (key file 0600) on first start.
  static Expected<CertificateAuthority> LoadOrCreate(const std::filesystem::path& dir, const std::string& name = "Parc CA");

  const std::string& certificate_pem() const { return cert_pem_; }
  const std::string& fingerprint() const { return fingerprint_; }

  // Server certificate for the key `public_key_pem` (serverAuth).
  Expected<std::string> IssueServerCertificate(const std::string& public_key_pem, const ServerCertRequest& req) const;
  // Client certificate (clientAuth) with subject CN=common_name, O=organization.
  // The subject is always chosen here, never copied from a CSR.
  Expected<std::string> IssueClientCertificate(const std::string& public_key_pem, const std::string& common_name,
                                               const std::string& organization, int days) const;

 private:
  std::string key_pem_;
  std::string cert_pem_;
  std::string fingerprint_;
};

// Connects to host:port with TLS (ALPN h2) without verifying anything and returns
// the certificates the server presented, leaf first, as PEM. Used once, at
// enrollment, to obtain the CA certificate whose fingerprint the technician pins.
Expected<std::vector<std::string>> FetchPeerChain(const std::string& host, uint16_t port, int timeout_ms = 5000);

}  // namespace parc::pki
