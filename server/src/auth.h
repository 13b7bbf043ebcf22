// Who is calling: the client certificate gRPC verified against the parc CA
// (mutual TLS), and whether it has been revoked since.
#pragma once

#include <grpcpp/grpcpp.h>

#include <set>
#include <shared_mutex>
#include <string>

#include "parc/common/error.h"

namespace parc::server {

inline constexpr const char* kAgentOrganization = "parc-agent";
inline constexpr const char* kAdminOrganization = "parc-admin";

struct PeerIdentity {
  std::string common_name;   // host id for agents, user name for admins
  std::string organization;  // kAgentOrganization or kAdminOrganization
  std::string fingerprint;   // SHA-256 of the certificate
  std::string address;       // "ipv4:127.0.0.1:5555"
};

// The verified client certificate of the call, or kUnauthenticated when the
// caller presented none.
Expected<PeerIdentity> PeerOf(const grpc::ServerContextBase& context);

// Fingerprints of revoked certificates, kept in memory so that checking costs
// no database read per call.
class RevocationList {
 public:
  void Add(const std::string& fingerprint);
  bool IsRevoked(const std::string& fingerprint) const;

 private:
  mutable std::shared_mutex mutex_;
  std::set<std::string> revoked_;
};

// Checks the peer is of `organization` and not revoked.
Expected<PeerIdentity> Authenticate(const grpc::ServerContextBase& context, const RevocationList& revoked,
                                    const char* organization);

grpc::Status ToStatus(const Error& error);

}  // namespace parc::server
