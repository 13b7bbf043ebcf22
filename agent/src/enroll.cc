#include "enroll.h"

#include <algorithm>
#include <cctype>

#include "channel.h"
#include "parc/agent/inventory.h"
#include "parc/common/files.h"
#include "parc/common/inventory_model.h"
#include "parc/common/identity.h"
#include "parc/common/log.h"
#include "parc/common/pki.h"
#include "parc/common/timeutil.h"
#include "parc/v1/agent.grpc.pb.h"

namespace parc::agent {

std::string NormalizeFingerprint(const std::string& text) {
  std::string s = text;
  if (s.rfind("sha256:", 0) == 0 || s.rfind("SHA256:", 0) == 0) s = s.substr(7);
  std::string out;
  for (char c : s)
    if (std::isxdigit(static_cast<unsigned char>(c))) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return out;
}

namespace {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

Expected<HostPort> SplitServer(const std::string& server) {
  auto colon = server.rfind(':');
  if (colon == std::string::npos || colon == 0) return Fail(Errc::kInvalidArgument, "--server must be HOST:PORT, got '" + server + "'");
  HostPort hp;
  hp.host = server.substr(0, colon);
  if (hp.host.size() > 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  try {
    unsigned long p = std::stoul(server.substr(colon + 1));
    if (p == 0 || p > 65535) throw std::out_of_range("port");
    hp.port = static_cast<uint16_t>(p);
  } catch (const std::exception&) {
    return Fail(Errc::kInvalidArgument, "bad port in --server '" + server + "'");
  }
  return hp;
}

// The CA is the self-signed CA certificate the server sends after its own.
Expected<std::string> ObtainCa(const HostPort& hp, const std::string& pinned) {
  auto chain = pki::FetchPeerChain(hp.host, hp.port);
  if (!chain) return Fail(chain.error());
  if (chain->size() < 2) return Fail(Errc::kCrypto, "the server did not present its CA certificate (is this a parc-server?)");
  const std::string& leaf = chain->front();
  const std::string& ca = chain->back();
  auto ca_info = pki::ParseCertificate(ca);
  if (!ca_info || !ca_info->is_ca) return Fail(Errc::kCrypto, "the server's last certificate is not a CA certificate");
  if (!pinned.empty() && ca_info->fingerprint != pinned) {
    return Fail(Errc::kUnauthenticated,
                "the server's CA fingerprint is " + ca_info->fingerprint + " but you pinned " + pinned +
                    ": refusing to enroll (wrong server, or something is intercepting the connection)");
  }
  auto signed_ok = pki::IsSignedBy(leaf, ca);
  if (!signed_ok || !*signed_ok) return Fail(Errc::kCrypto, "the server certificate is not signed by the CA it presented");
  if (pinned.empty())
    spdlog::warn("no --ca-fingerprint given: trusting the server's CA {} on first use", ca_info->fingerprint);
  return ca;
}

std::string StatusText(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE: return "server unreachable: " + s.error_message();
    default: return s.error_message();
  }
}

}  // namespace

Expected<Enrollment> Enroll(const AgentConfig& config, const EnrollOptions& options) {
  if (!options.force && PathExists(config.enrollment_path())) {
    auto existing = LoadEnrollment(config);
    return Fail(Errc::kAlreadyExists, "this agent is already enrolled" +
                                          (existing ? " as " + existing->host_id + " with " + existing->server : std::string()) +
                                          "; use --force to enroll again");
  }
  auto hp = SplitServer(options.server);
  if (!hp) return Fail(hp.error());
  if (options.token.empty()) return Fail(Errc::kInvalidArgument, "--token is required");
  std::string pinned = NormalizeFingerprint(options.ca_fingerprint);
  if (!options.ca_fingerprint.empty() && pinned.size() != 64)
    return Fail(Errc::kInvalidArgument, "--ca-fingerprint must be a SHA-256 fingerprint (64 hex digits)");

  if (auto r = EnsureDirectory(config.state_dir, 0700); !r) return Fail(r.error());
  auto ca = ObtainCa(*hp, pinned);
  if (!ca) return Fail(ca.error().WithContext("cannot reach a trustworthy server at " + options.server));

  auto key = pki::GenerateKeyPem();
  if (!key) return Fail(key.error());
  auto collected = CollectInventory(CollectOptions{config.root});
  std::string hostname;
  v1::EnrollRequest request;
  if (collected) {
    hostname = collected->inventory.os().hostname();
    for (const auto& claim : IdentityClaims(inventory::Flatten(collected->inventory))) request.add_fingerprint(claim);
    request.mutable_platform()->set_distribution(collected->inventory.os().id() + " " + collected->inventory.os().version_id());
    request.mutable_platform()->set_arch(collected->inventory.os().architecture());
  }
  request.mutable_platform()->set_os("linux");
  auto csr = pki::MakeCsr(*key, hostname.empty() ? "parc-agent" : hostname);
  if (!csr) return Fail(csr.error());
  request.set_token(options.token);
  request.set_csr_pem(*csr);
  request.set_hostname(hostname);

  ChannelOptions co;
  co.server = options.server;
  co.server_name = options.server_name;
  co.ca_pem = *ca;
  auto stub = v1::AgentService::NewStub(MakeChannel(co));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::EnrollResponse response;
  grpc::Status status = stub->Enroll(&ctx, request, &response);
  if (!status.ok()) {
    Errc code = status.error_code() == grpc::StatusCode::UNAVAILABLE ? Errc::kUnavailable : Errc::kUnauthenticated;
    return Fail(code, "enrollment refused: " + StatusText(status));
  }
  auto issued = pki::ParseCertificate(response.certificate_pem());
  if (!issued || issued->common_name != response.host_id())
    return Fail(Errc::kCrypto, "the server returned an unusable certificate");

  if (auto r = WriteFileAtomic(config.key_path(), *key, 0600); !r) return Fail(r.error());
  if (auto r = WriteFileAtomic(config.cert_path(), response.certificate_pem(), 0644); !r) return Fail(r.error());
  if (auto r = WriteFileAtomic(config.ca_path(), *ca, 0644); !r) return Fail(r.error());
  // A new identity starts with an empty outbox: reports of a previous enrollment are not ours to send.
  std::error_code ec;
  std::filesystem::remove(config.outbox_path(), ec);
  std::filesystem::remove(config.outbox_path().string() + "-wal", ec);
  std::filesystem::remove(config.outbox_path().string() + "-shm", ec);
  Enrollment e;
  e.server = options.server;
  e.server_name = options.server_name;
  e.host_id = response.host_id();
  e.ca_fingerprint = pki::CertificateFingerprint(*ca).value_or("");
  e.enrolled_at = NowUnix();
  if (auto r = SaveEnrollment(config, e); !r) return Fail(r.error());
  return e;
}

}  // namespace parc::agent
