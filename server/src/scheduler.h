// The deployment scheduler: turns deployments into per-host jobs and pushes
// each job over the host's live session the moment it is due, honouring the
// start time, deadline, maintenance window, parallelism and the failure-rate
// halt (canary). Everything it decides is in the parc database first, so a
// server restart picks up where it stopped: jobs that were sent are sent again
// when their host reconnects, and the agent answers a job it already ran with
// the outcome it recorded.
#pragma once

#include <condition_variable>
#include <functional>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parc/server/deploy_store.h"
#include "parc/server/storage.h"
#include "parc/v1/agent.pb.h"
#include "session.h"

namespace parc::server {

// What the server keeps of a capture job's output (the unsigned manifest and
// counts); agents refuse to hand over a larger one (agent.proto, ImageCapture).
inline constexpr size_t kMaxCaptureOutput = 1u << 20;

// The publisher keys agents must trust, as sent in Welcome and TrustedKeys.
std::vector<v1::PublisherKey> TrustedKeysForAgents(DeployStore& store);

class Scheduler {
 public:
  Scheduler(DeployStore& store, SessionRegistry& registry) : store_(store), registry_(registry) {}
  ~Scheduler() { Stop(); }

  void Start();
  void Stop();
  void Wake();

  // A host finished its Hello: resend the jobs it has in flight, then schedule.
  void HostOnline(const std::string& host_id);
  // Progress or outcome reported by an agent for one of its jobs.
  void OnJobUpdate(const std::string& host_id, const v1::JobUpdate& update);

  // Change counter for watchers (WatchDeployment): bumps on every job or deployment change.
  uint64_t generation();
  // Waits until generation() != seen or the timeout passes.
  void WaitForChange(uint64_t seen, std::chrono::milliseconds timeout);
  void Changed();

  static v1::Job ToWire(const JobRecord& job);

  // Called with a job's terminal update before the job is marked finished, so
  // that what the update carries (a policy report) is stored first: if this
  // fails the job stays open and the agent's answer is taken again later.
  using TerminalHook = std::function<ExpectedVoid(const JobRecord& job, const v1::JobUpdate& update)>;
  void SetTerminalHook(TerminalHook hook) { terminal_hook_ = std::move(hook); }

 private:
  void Loop();
  void Tick(int64_t now);
  void TickDeployment(DeploymentRecord& d, int64_t now);
  bool Send(JobRecord& job, int64_t now);

  DeployStore& store_;
  SessionRegistry& registry_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool wake_ = false;
  bool stop_ = false;
  uint64_t generation_ = 0;
  std::condition_variable change_cv_;
  std::thread thread_;
  TerminalHook terminal_hook_;
};

}  // namespace parc::server
