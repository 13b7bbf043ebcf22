#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "image_service.h"
#include "services.h"

namespace parc::server {

grpc::Status AgentServiceImpl::Enroll(grpc::ServerContext* context, const v1::EnrollRequest* request,
                                      v1::EnrollResponse* response) {
  const std::string& token = request->token();
  auto dot = token.find('.');
  if (token.size() > 256 || dot == std::string::npos || dot == 0 || dot + 1 >= token.size()) {
    spdlog::warn("enrollment from {} refused: malformed token", context->peer());
    return {grpc::StatusCode::INVALID_ARGUMENT, "malformed enrollment token (expected ID.SECRET as printed by 'parcctl token create')"};
  }
  auto csr = pki::VerifyCsr(request->csr_pem());
  if (!csr) return {grpc::StatusCode::INVALID_ARGUMENT, "bad certificate signing request: " + csr.error().message()};
  if (request->hostname().size() > 255) return {grpc::StatusCode::INVALID_ARGUMENT, "hostname too long"};

  NewHost host;
  host.id = RandomUuid();
  host.hostname = request->hostname();
  host.platform_os = request->platform().os().substr(0, 64);
  host.platform_arch = request->platform().arch().substr(0, 64);
  host.distribution = request->platform().distribution().substr(0, 128);
  for (const auto& claim : request->fingerprint())
    if (claim.size() <= 256 && host.identity.size() < 64) host.identity.push_back(claim);
  host.enrolled_at = NowUnix();

  // The certificate is issued before the token is consumed so that a CA failure
  // leaves the token usable; it is worthless until the host record exists.
  auto cert = state_.ca->IssueClientCertificate(csr->public_key_pem, host.id, kAgentOrganization,
                                                state_.config->client_cert_days);
  if (!cert) return ToStatus(cert.error().WithContext("cannot issue certificate"));
  auto info = pki::ParseCertificate(*cert);
  if (!info) return ToStatus(info.error());
  host.cert_fingerprint = info->fingerprint;
  host.cert_expires_at = info->not_after;

  std::string token_id = token.substr(0, dot);
  auto record = state_.storage->EnrollHost(token_id, Sha256Hex(token.substr(dot + 1)), host);
  if (!record) {
    spdlog::warn("enrollment of '{}' from {} refused: {}", host.hostname, context->peer(), record.error().message());
    return ToStatus(record.error());
  }
  if (!record->previous_host_id.empty() && !state_.registry.IsOnline(record->previous_host_id)) {
    // Same hardware, old record silent: a reinstalled machine, not a clone.
    (void)state_.storage->MarkSuperseded(record->previous_host_id, record->id);
  }
  (void)state_.storage->AppendAudit({NowUnix(), "token:" + token_id, "host.enroll", record->id,
                                     "hostname=" + host.hostname + " peer=" + context->peer()});
  response->set_host_id(record->id);
  response->set_certificate_pem(*cert);
  response->set_ca_certificate_pem(state_.ca->certificate_pem());
  if (!record->groups.empty()) response->set_group(record->groups.front());
  response->set_previous_host_id(record->previous_host_id);
  spdlog::info("enrolled host '{}' as {}{}", host.hostname, record->id,
               record->previous_host_id.empty() ? "" : " (same machine as " + record->previous_host_id + ")");
  return grpc::Status::OK;
}

grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* AgentServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  SessionContext sc;
  sc.storage = state_.storage;
  sc.registry = &state_.registry;
  sc.revoked = &state_.revoked;
  sc.heartbeat_seconds = state_.config->heartbeat_seconds;
  sc.reports_stored = &state_.reports_stored;
  sc.deploy = state_.deploy;
  sc.scheduler = state_.scheduler;
  return AgentSession::Start(context, sc);
}

namespace {

// GetContent's answer, ContentChunk, is encoded here rather than by protobuf
// so that the object's bytes go from read(2) straight into the slice gRPC
// sends: serializing a message would copy every byte once more (measured: the
// largest copy on the server during 50 parallel 200 MB downloads). The fields
// are offset (1) and total_size (3) in a small head slice, then data (2) in a
// slice of its own. Field order does not matter to protobuf parsers: agents
// decode it with the generated code.
void PutVarint(uint8_t*& p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
}

class RefusedWrite final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit RefusedWrite(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// Streams one object from an offset, one 1 MiB message in flight at a time
// (gRPC queues it; HTTP/2 flow control paces the reads of the file).
class ContentSender final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ContentSender(grpc::CallbackServerContext* context, ContentStore::Reader object, uint64_t offset)
      : context_(context), object_(std::move(object)), offset_(offset) {
    SendNext();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {  // the agent went away; it resumes from what it kept
      Finish(grpc::Status::OK);
      return;
    }
    offset_ += sent_;
    SendNext();
  }
  void OnDone() override { delete this; }

 private:
  void SendNext() {
    const uint64_t total = object_.size();
    if (offset_ >= total || context_->IsCancelled()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(ContentStore::kChunk, total - offset_));
    grpc::Slice data(grpc_slice_malloc(want), grpc::Slice::STEAL_REF);
    auto n = object_.ReadAt(offset_, reinterpret_cast<char*>(const_cast<uint8_t*>(data.begin())), want);
    if (!n) {
      Finish(ToStatus(n.error()));
      return;
    }
    if (*n == 0) {  // shorter than when opened: the agent's digest check tells
      Finish(grpc::Status::OK);
      return;
    }
    if (*n < want) data = data.sub(0, *n);
    // The read runs on a gRPC callback thread, which agent sessions share:
    // the next chunk is read ahead meanwhile, so that read does not wait
    // for the disk either.
    object_.WillNeed(offset_ + *n, ContentStore::kChunk);
    uint8_t head[3 + 3 * 10];
    uint8_t* p = head;
    *p++ = 0x08;  // field 1, varint
    PutVarint(p, offset_);
    *p++ = 0x18;  // field 3, varint
    PutVarint(p, total);
    *p++ = 0x12;  // field 2, length-delimited
    PutVarint(p, *n);
    grpc::Slice slices[2] = {grpc::Slice(head, static_cast<size_t>(p - head)), std::move(data)};
    message_ = grpc::ByteBuffer(slices, 2);
    sent_ = *n;
    StartWrite(&message_);
  }

  grpc::CallbackServerContext* context_;
  ContentStore::Reader object_;
  uint64_t offset_;
  uint64_t sent_ = 0;
  grpc::ByteBuffer message_;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* AgentServiceImpl::GetContent(grpc::CallbackServerContext* context,
                                                                        const grpc::ByteBuffer* request) {
  auto peer = Authenticate(*context, state_.revoked, kAgentOrganization);
  if (!peer) return new RefusedWrite(ToStatus(peer.error()));
  if (!state_.content) return new RefusedWrite({grpc::StatusCode::UNIMPLEMENTED, "this server has no content store"});
  v1::GetContentRequest req;
  grpc::ByteBuffer copy(*request);  // Deserialize takes a mutable buffer (it shares the slices, no copy)
  if (!grpc::SerializationTraits<v1::GetContentRequest>::Deserialize(&copy, &req).ok())
    return new RefusedWrite({grpc::StatusCode::INVALID_ARGUMENT, "malformed GetContent request"});
  auto object = state_.content->Open(req.sha256());
  if (!object) return new RefusedWrite(ToStatus(object.error()));
  if (req.offset() > object->size())
    return new RefusedWrite({grpc::StatusCode::INVALID_ARGUMENT, "offset beyond the end of the object"});
  return new ContentSender(context, std::move(*object), req.offset());
}

namespace {
// Test-only fault injection (PARC_CRASH_AT=server-mid-objects): the server
// SIGKILLs itself after sending ten objects, as a crash or a power cut would.
bool CrashMidObjects() {
  static const bool on = [] {
    const char* v = std::getenv("PARC_CRASH_AT");
    return v && std::string_view(v) == "server-mid-objects";
  }();
  return on;
}
std::atomic<int> objects_sent{0};
}  // namespace

grpc::Status AgentServiceImpl::GetObjects(grpc::ServerContext* context, const v1::GetObjectsRequest* request,
                                          grpc::ServerWriter<v1::ObjectData>* writer) {
  constexpr int kMaxObjects = 1024;
  constexpr uint64_t kMaxObjectBytes = 4u << 20;
  auto peer = Authenticate(*context, state_.revoked, kAgentOrganization);
  if (!peer) return ToStatus(peer.error());
  if (!state_.content) return {grpc::StatusCode::UNIMPLEMENTED, "this server has no content store"};
  if (request->sha256_size() > kMaxObjects)
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most " + std::to_string(kMaxObjects) + " objects per call"};
  v1::ObjectData msg;
  for (const auto& digest : request->sha256()) {
    if (context->IsCancelled()) break;
    auto object = state_.content->Open(digest);
    if (!object) return ToStatus(object.error());
    if (object->size() > kMaxObjectBytes)
      return {grpc::StatusCode::INVALID_ARGUMENT, "object " + digest.substr(0, 16) + " is larger than 4 MiB: fetch it with GetContent"};
    std::string* data = msg.mutable_data();
    data->resize(static_cast<size_t>(object->size()));
    for (uint64_t at = 0; at < data->size();) {
      auto n = object->ReadAt(at, data->data() + at, data->size() - at);
      if (!n) return ToStatus(n.error());
      if (*n == 0) return {grpc::StatusCode::INTERNAL, "object " + digest.substr(0, 16) + " is shorter than recorded"};
      at += *n;
    }
    msg.set_sha256(digest);
    if (!writer->Write(msg)) break;  // client gone
    if (CrashMidObjects() && ++objects_sent == 10) ::raise(SIGKILL);
  }
  return grpc::Status::OK;
}

Expected<PeerIdentity> AgentServiceImpl::CapturingAgent(const grpc::ServerContext& context) {
  auto peer = Authenticate(context, state_.revoked, kAgentOrganization);
  if (!peer) return Fail(peer.error());
  if (!state_.content || !state_.deploy) return Fail(Errc::kFailedPrecondition, "this server has no content store");
  auto open = state_.deploy->OpenJobsOfHost(peer->common_name);
  if (!open) return Fail(open.error());
  for (const auto& j : *open)
    if (j.kind == "capture" && j.InFlight()) return peer;
  return Fail(Errc::kPermissionDenied,
              "this host has no image capture in progress: agents may upload only the image of a capture job "
              "(parcctl image capture --on host:H)");
}

grpc::Status AgentServiceImpl::MissingObjects(grpc::ServerContext* context, const v1::MissingObjectsRequest* request,
                                              v1::MissingObjectsResponse* response) {
  if (auto peer = CapturingAgent(*context); !peer) return ToStatus(peer.error());
  return FindMissingObjects(state_, *request, response);
}

grpc::Status AgentServiceImpl::PutObjects(grpc::ServerContext* context, grpc::ServerReader<v1::PutObjectRequest>* reader,
                                          v1::PutObjectsResponse* response) {
  auto peer = CapturingAgent(*context);
  if (!peer) return ToStatus(peer.error());
  auto st = StoreObjects(state_, reader, response);
  if (response->stored())
    spdlog::info("host {} uploaded {} captured objects ({} bytes)", peer->common_name, response->stored(),
                 response->stored_bytes());
  return st;
}

}  // namespace parc::server
