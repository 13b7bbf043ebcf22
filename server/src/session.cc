#include "session.h"

#include "parc/common/inventory_model.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "scheduler.h"

namespace parc::server {

std::shared_ptr<AgentSession> SessionRegistry::Add(const std::string& host_id, std::shared_ptr<AgentSession> session) {
  std::lock_guard lock(mutex_);
  auto& slot = sessions_[host_id];
  auto previous = std::move(slot);
  slot = std::move(session);
  return previous;
}

void SessionRegistry::Remove(const std::string& host_id, const AgentSession* session) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(host_id);
  if (it != sessions_.end() && it->second.get() == session) sessions_.erase(it);
}

std::shared_ptr<AgentSession> SessionRegistry::Find(const std::string& host_id) const {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(host_id);
  return it == sessions_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<AgentSession>> SessionRegistry::Snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<AgentSession>> out;
  out.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) out.push_back(s);
  return out;
}

bool SessionRegistry::IsOnline(const std::string& host_id) const {
  std::lock_guard lock(mutex_);
  return sessions_.count(host_id) != 0;
}

size_t SessionRegistry::Count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

AgentSession* AgentSession::Start(grpc::CallbackServerContext* context, const SessionContext& sc) {
  auto session = std::shared_ptr<AgentSession>(new AgentSession(context, sc));
  session->self_ = session;
  AgentSession* raw = session.get();
  auto peer = Authenticate(*context, *sc.revoked, kAgentOrganization);
  if (!peer) {
    spdlog::warn("refused agent session from {}: {}", context->peer(), peer.error().message());
    std::lock_guard lock(raw->mutex_);
    raw->FinishLocked(ToStatus(peer.error()));
    return raw;
  }
  raw->host_id_ = peer->common_name;
  raw->peer_ = peer->address;
  raw->StartRead(&raw->incoming_);
  return raw;
}

AgentSession::AgentSession(grpc::CallbackServerContext* context, const SessionContext& sc)
    : context_(context), sc_(sc) {}

bool AgentSession::Push(v1::ServerMessage message) {
  std::lock_guard lock(mutex_);
  if (finishing_ || finished_) return false;
  outgoing_.push_back(std::move(message));
  if (!writing_) StartNextWriteLocked();
  return true;
}

void AgentSession::StartNextWriteLocked() {
  if (outgoing_.empty()) {
    writing_ = false;
    if (finishing_ && !finished_) {
      finished_ = true;
      Finish(final_status_);
    }
    return;
  }
  writing_ = true;
  StartWrite(&outgoing_.front());
}

void AgentSession::OnWriteDone(bool ok) {
  std::lock_guard lock(mutex_);
  outgoing_.pop_front();
  if (!ok) {
    // The stream is broken; drop what is left and end.
    outgoing_.clear();
    writing_ = false;
    FinishLocked(grpc::Status::CANCELLED);
    return;
  }
  StartNextWriteLocked();
}

void AgentSession::FinishLocked(const grpc::Status& status) {
  if (finished_) return;
  if (!finishing_) {
    finishing_ = true;
    final_status_ = status;
  }
  if (!writing_) {
    finished_ = true;
    Finish(final_status_);
  }
}

void AgentSession::Close(const std::string& reason, grpc::Status status) {
  v1::ServerMessage notice;
  notice.mutable_notice()->set_message(reason);
  std::lock_guard lock(mutex_);
  if (finishing_ || finished_) return;
  outgoing_.push_back(std::move(notice));
  if (!writing_) StartNextWriteLocked();
  FinishLocked(status);
}

void AgentSession::OnCancel() {
  std::lock_guard lock(mutex_);
  FinishLocked(grpc::Status::CANCELLED);
}

void AgentSession::OnDone() {
  if (hello_seen_) {
    sc_.registry->Remove(host_id_, this);
    sc_.storage->TouchHostAsync(host_id_, NowUnix(), agent_version_, "");
    spdlog::info("agent {} ({}) disconnected", hostname_.empty() ? host_id_ : hostname_, host_id_);
  }
  self_.reset();  // may delete this
}

void AgentSession::OnReadDone(bool ok) {
  if (!ok) {
    std::lock_guard lock(mutex_);
    FinishLocked(grpc::Status::OK);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (finishing_ || finished_) return;
  }
  if (!hello_seen_ && !incoming_.has_hello()) {
    Close("the first message of a session must be Hello", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected Hello first"));
    return;
  }
  switch (incoming_.body_case()) {
    case v1::AgentMessage::kHello:
      if (hello_seen_) {
        Close("Hello sent twice", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Hello sent twice"));
        return;
      }
      HandleHello(incoming_.hello());
      break;
    case v1::AgentMessage::kReport:
      HandleReport(incoming_.report());
      break;
    case v1::AgentMessage::kHeartbeat: {
      int64_t now = NowUnix();
      // Heartbeats keep last_seen fresh without a database write per beat.
      if (now - last_touch_ >= static_cast<int64_t>(sc_.heartbeat_seconds)) {
        last_touch_ = now;
        sc_.storage->TouchHostAsync(host_id_, now, agent_version_, "");
      }
      break;
    }
    case v1::AgentMessage::kJobUpdate:
      if (sc_.scheduler) sc_.scheduler->OnJobUpdate(host_id_, incoming_.job_update());
      break;
    case v1::AgentMessage::kRollbackPoints:
      HandleRollbackPoints(incoming_.rollback_points());
      break;
    case v1::AgentMessage::kCommandResult:
      spdlog::info("agent {}: command {} {}: {}", hostname_, incoming_.command_result().command_id(),
                   incoming_.command_result().ok() ? "done" : "failed", incoming_.command_result().message());
      break;
    default:
      Close("unknown message", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty or unknown agent message"));
      return;
  }
  StartRead(&incoming_);
}

void AgentSession::HandleHello(const v1::Hello& hello) {
  hello_seen_ = true;
  agent_version_ = hello.agent_version();
  hostname_ = hello.hostname();
  auto host = sc_.storage->GetHost(host_id_);
  if (!host) {
    Close("this host is not in the parc (" + host.error().message() + ")",
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown host " + host_id_));
    return;
  }
  if (host->revoked) {
    Close("this host has been revoked", grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "host revoked"));
    return;
  }
  auto previous = sc_.registry->Add(host_id_, self_);
  if (previous) previous->Close("replaced by a newer session of the same host", grpc::Status::CANCELLED);
  last_touch_ = NowUnix();
  sc_.storage->TouchHostAsync(host_id_, last_touch_, agent_version_, hostname_);

  v1::ServerMessage welcome;
  auto* w = welcome.mutable_welcome();
  w->set_host_id(host_id_);
  w->set_heartbeat_seconds(sc_.heartbeat_seconds);
  w->set_server_time(NowUnix());
  w->set_full_inventory_wanted(host->inventory_digest.empty() || host->inventory_digest != hello.inventory_digest());
  if (sc_.deploy)
    for (auto& k : TrustedKeysForAgents(*sc_.deploy)) *w->add_trusted_keys() = std::move(k);
  Push(std::move(welcome));
  spdlog::info("agent {} ({}) connected from {}, version {}", hostname_, host_id_, peer_, agent_version_);
  // Jobs it had in flight (server or agent restarted) go out again; the agent
  // answers a job it already ran with its recorded outcome.
  if (sc_.scheduler) sc_.scheduler->HostOnline(host_id_);
}

void AgentSession::HandleRollbackPoints(const v1::RollbackPoints& points) {
  if (!sc_.deploy) return;
  if (points.points_size() > 100000) {
    spdlog::warn("agent {} sent {} rollback points; ignored", hostname_, points.points_size());
    return;
  }
  std::vector<RollbackPointRecord> records;
  int64_t now = NowUnix();
  for (const auto& p : points.points()) {
    if (p.point_id().empty() || p.point_id().size() > 64) continue;
    RollbackPointRecord r;
    r.host_id = host_id_;
    r.point_id = p.point_id();
    r.job_id = p.job_id().substr(0, 64);
    r.package = p.package().substr(0, 256);
    r.action = p.action().substr(0, 32);
    r.from_version = p.from_version().substr(0, 256);
    r.to_version = p.to_version().substr(0, 256);
    r.created_at = p.created_at();
    r.paths = p.paths();
    r.bytes = p.bytes();
    r.state = p.state().substr(0, 32);
    r.target = p.target().substr(0, 4096);
    r.reported_at = now;
    records.push_back(std::move(r));
  }
  if (auto r = sc_.deploy->ReplaceRollbackPoints(host_id_, records); !r)
    spdlog::error("cannot store rollback points of {}: {}", hostname_, r.error().message());
}

void AgentSession::HandleReport(const v1::Report& report) {
  if (report.report_id().empty() || report.report_id().size() > 128) {
    v1::ServerMessage ack;
    ack.mutable_report_ack()->set_report_id(report.report_id().substr(0, 128));
    ack.mutable_report_ack()->set_error("report id missing or too long");
    ack.mutable_report_ack()->set_rejected(true);
    Push(std::move(ack));
    return;
  }
  ReportIn in;
  in.host_id = host_id_;
  in.report_id = report.report_id();
  in.sequence = report.sequence();
  in.received_at = NowUnix();
  if (report.has_full_inventory()) {
    in.full = inventory::Flatten(report.full_inventory());
  } else if (report.has_inventory_delta()) {
    in.delta = report.inventory_delta();
  } else {
    v1::ServerMessage ack;
    ack.mutable_report_ack()->set_report_id(report.report_id());
    ack.mutable_report_ack()->set_error("report has no content");
    ack.mutable_report_ack()->set_rejected(true);
    Push(std::move(ack));
    return;
  }
  std::string report_id = report.report_id();
  std::weak_ptr<AgentSession> weak = self_;
  auto* counter = sc_.reports_stored;
  std::string host = hostname_;
  sc_.storage->ApplyReportAsync(std::move(in), [weak, report_id, counter, host](Expected<ReportOutcome> outcome) {
    v1::ServerMessage msg;
    auto* ack = msg.mutable_report_ack();
    ack->set_report_id(report_id);
    if (outcome) {
      ack->set_stored(!outcome->full_wanted);
      ack->set_full_inventory_wanted(outcome->full_wanted);
      if (counter && !outcome->full_wanted && !outcome->duplicate) counter->fetch_add(1);
      if (outcome->history_rows > 0) spdlog::info("inventory of {} changed: {} history rows", host, outcome->history_rows);
    } else {
      ack->set_stored(false);
      ack->set_error(outcome.error().message());
      ack->set_rejected(outcome.error().Is(Errc::kInvalidArgument) || outcome.error().Is(Errc::kParse));
      spdlog::warn("report {} from {} refused: {}", report_id, host, outcome.error().message());
    }
    if (auto self = weak.lock()) self->Push(std::move(msg));
  });
}

}  // namespace parc::server
