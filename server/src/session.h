// Live agent sessions: one gRPC callback reactor per connected agent (no thread
// per stream), and the registry that knows who is online and pushes to them.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auth.h"
#include "parc/server/storage.h"
#include "parc/v1/agent.pb.h"

namespace parc::server {

class AgentSession;

class SessionRegistry {
 public:
  // Registers the session of a host; returns the one it replaces (to be closed).
  std::shared_ptr<AgentSession> Add(const std::string& host_id, std::shared_ptr<AgentSession> session);
  void Remove(const std::string& host_id, const AgentSession* session);
  std::shared_ptr<AgentSession> Find(const std::string& host_id) const;
  std::vector<std::shared_ptr<AgentSession>> Snapshot() const;
  bool IsOnline(const std::string& host_id) const;
  size_t Count() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<AgentSession>> sessions_;
};

class Scheduler;
class DeployStore;

struct SessionContext {
  Storage* storage = nullptr;
  SessionRegistry* registry = nullptr;
  const RevocationList* revoked = nullptr;
  uint32_t heartbeat_seconds = 60;
  std::atomic<uint64_t>* reports_stored = nullptr;
  DeployStore* deploy = nullptr;      // null: no software distribution (tools, tests)
  Scheduler* scheduler = nullptr;
};

class AgentSession : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  // Creates the reactor and keeps it alive until gRPC calls OnDone.
  static AgentSession* Start(grpc::CallbackServerContext* context, const SessionContext& sc);

  // Queues a message for the agent; false if the session is closing.
  bool Push(v1::ServerMessage message);
  // Ends the session after telling the agent why.
  void Close(const std::string& reason, grpc::Status status);
  const std::string& host_id() const { return host_id_; }
  const std::string& peer() const { return peer_; }
  const std::string& agent_version() const { return agent_version_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  AgentSession(grpc::CallbackServerContext* context, const SessionContext& sc);
  void HandleHello(const v1::Hello& hello);
  void HandleReport(const v1::Report& report);
  void HandleRollbackPoints(const v1::RollbackPoints& points);
  // Requires mutex_ held.
  void FinishLocked(const grpc::Status& status);
  void StartNextWriteLocked();

  grpc::CallbackServerContext* context_;
  SessionContext sc_;
  std::shared_ptr<AgentSession> self_;  // released in OnDone
  std::string host_id_;
  std::string peer_;
  std::string agent_version_;
  std::string hostname_;
  bool hello_seen_ = false;
  int64_t last_touch_ = 0;

  v1::AgentMessage incoming_;
  std::mutex mutex_;
  std::deque<v1::ServerMessage> outgoing_;
  bool writing_ = false;
  bool finishing_ = false;  // Finish requested; done once writes drain
  bool finished_ = false;   // Finish called
  grpc::Status final_status_;
};

}  // namespace parc::server
