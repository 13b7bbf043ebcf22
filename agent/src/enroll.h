// `parc-agent enroll`: pin the server's CA, make a key and a CSR, trade the
// token for a certificate.
#pragma once

#include <string>

#include "agent_config.h"
#include "parc/common/error.h"

namespace parc::agent {

struct EnrollOptions {
  std::string server;          // host:port
  std::string token;
  std::string ca_fingerprint;  // SHA-256 hex (colons and "sha256:" prefix allowed); "" = trust on first use
  std::string server_name;
  bool force = false;          // enroll again even if already enrolled
};

Expected<Enrollment> Enroll(const AgentConfig& config, const EnrollOptions& options);

// "AB:CD:..." / "sha256:abcd..." -> "abcd...".
std::string NormalizeFingerprint(const std::string& text);

}  // namespace parc::agent
