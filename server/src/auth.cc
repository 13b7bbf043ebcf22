#include "auth.h"

#include <mutex>

#include "parc/common/pki.h"

namespace parc::server {

Expected<PeerIdentity> PeerOf(const grpc::ServerContextBase& context) {
  auto auth = context.auth_context();
  if (!auth) return Fail(Errc::kUnauthenticated, "no TLS session");
  auto pem = auth->FindPropertyValues("x509_pem_cert");
  if (pem.empty()) return Fail(Errc::kUnauthenticated, "no client certificate presented (enroll first)");
  std::string cert(pem.front().data(), pem.front().size());
  auto info = pki::ParseCertificate(cert);
  if (!info) return Fail(Errc::kUnauthenticated, "unreadable client certificate");
  return PeerIdentity{info->common_name, info->organization, info->fingerprint, context.peer()};
}

void RevocationList::Add(const std::string& fingerprint) {
  std::unique_lock lock(mutex_);
  revoked_.insert(fingerprint);
}

bool RevocationList::IsRevoked(const std::string& fingerprint) const {
  std::shared_lock lock(mutex_);
  return revoked_.count(fingerprint) != 0;
}

Expected<PeerIdentity> Authenticate(const grpc::ServerContextBase& context, const RevocationList& revoked,
                                    const char* organization) {
  auto peer = PeerOf(context);
  if (!peer) return peer;
  if (revoked.IsRevoked(peer->fingerprint))
    return Fail(Errc::kUnauthenticated, "certificate of " + peer->common_name + " has been revoked");
  if (peer->organization != organization)
    return Fail(Errc::kPermissionDenied, std::string("this call needs a ") + organization + " certificate, not " +
                                             (peer->organization.empty() ? "an unknown one" : peer->organization));
  return peer;
}

grpc::Status ToStatus(const Error& error) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (error.errc()) {
    case Errc::kOk: code = grpc::StatusCode::OK; break;
    case Errc::kInvalidArgument:
    case Errc::kParse: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case Errc::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case Errc::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case Errc::kPermissionDenied: code = grpc::StatusCode::PERMISSION_DENIED; break;
    case Errc::kUnauthenticated:
    case Errc::kExpired: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case Errc::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case Errc::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case Errc::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    default: code = grpc::StatusCode::INTERNAL; break;
  }
  return grpc::Status(code, error.message());
}

}  // namespace parc::server
