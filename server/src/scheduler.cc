#include "scheduler.h"

#include <nlohmann/json.hpp>

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "window.h"

namespace parc::server {

std::vector<v1::PublisherKey> TrustedKeysForAgents(DeployStore& store) {
  std::vector<v1::PublisherKey> out;
  auto keys = store.ListPublisherKeys();
  if (!keys) {
    spdlog::error("cannot read publisher keys: {}", keys.error().message());
    return out;
  }
  for (const auto& k : *keys) {
    v1::PublisherKey p;
    p.set_key_id(k.key_id);
    p.set_name(k.name);
    p.set_public_key_pem(k.public_key_pem);
    out.push_back(std::move(p));
  }
  return out;
}


void Scheduler::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Wake() {
  {
    std::lock_guard lock(mutex_);
    wake_ = true;
  }
  cv_.notify_all();
}

void Scheduler::Changed() {
  {
    std::lock_guard lock(mutex_);
    ++generation_;
  }
  change_cv_.notify_all();
}

uint64_t Scheduler::generation() {
  std::lock_guard lock(mutex_);
  return generation_;
}

void Scheduler::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  change_cv_.wait_for(lock, timeout, [&] { return generation_ != seen || stop_; });
}

void Scheduler::Loop() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      // Time-driven rules (start, deadline, windows) need a tick even when nothing happens.
      cv_.wait_for(lock, std::chrono::seconds(1), [&] { return wake_ || stop_; });
      if (stop_) return;
      wake_ = false;
    }
    Tick(NowUnix());
  }
}

v1::Job Scheduler::ToWire(const JobRecord& j) {
  v1::Job w;
  w.set_job_id(j.id);
  w.set_deployment_id(j.deployment_id);
  if (j.kind == "install") {
    auto* in = w.mutable_install();
    in->set_name(j.package);
    in->set_version(j.version);
    in->set_content_sha256(j.sha256);
    in->set_size(j.size);
    in->set_allow_downgrade(j.allow_downgrade);
  } else if (j.kind == "remove") {
    w.mutable_remove()->set_name(j.package);
  } else if (j.kind == "rollback") {
    w.mutable_rollback()->set_point_id(j.target_point);
  } else if (j.kind == "policy") {
    auto* p = w.mutable_policy();
    p->set_name(j.package);
    p->set_version(j.version);
    p->set_content_sha256(j.sha256);
    p->set_size(j.size);
    p->set_allow_downgrade(j.allow_downgrade);
    auto params = nlohmann::json::parse(j.params, nullptr, false);
    if (params.is_object()) {
      p->set_manifest_json(params.value("manifest_json", ""));
      if (auto sig = HexDecode(params.value("signature", ""))) p->set_signature(*sig);
      p->set_enforce(params.value("mode", "") == "enforce");
      p->set_level(params.value("level", ""));
      p->set_assignment_id(params.value("assignment_id", ""));
    }
  } else if (j.kind == "capture") {
    auto* c = w.mutable_capture();
    c->set_name(j.package);
    c->set_version(j.version);
    auto params = nlohmann::json::parse(j.params, nullptr, false);
    if (params.is_object()) {
      c->set_source(params.value("source", ""));
      if (auto e = params.find("exclude"); e != params.end() && e->is_array())
        for (const auto& x : *e)
          if (x.is_string()) c->add_exclude(x.get<std::string>());
    }
  } else if (j.kind == "image") {
    auto* im = w.mutable_image();
    im->set_name(j.package);
    im->set_version(j.version);
    auto params = nlohmann::json::parse(j.params, nullptr, false);
    if (params.is_object()) {
      im->set_manifest_json(params.value("manifest_json", ""));
      if (auto sig = HexDecode(params.value("signature", ""))) im->set_signature(*sig);
      im->set_kind(params.value("kind", ""));
      im->set_target(params.value("target", ""));
      im->set_commit(params.value("commit", false));
    }
  }
  return w;
}

bool Scheduler::Send(JobRecord& job, int64_t now) {
  auto session = registry_.Find(job.host_id);
  if (!session) return false;
  v1::ServerMessage msg;
  *msg.mutable_command()->mutable_job() = ToWire(job);
  msg.mutable_command()->set_command_id(job.id);
  JobRecord before = job;
  if (job.state == "pending") {
    job.state = "sent";
    job.message = "sent to the agent";
    job.updated_at = now;
    // Recorded before the push: after a crash the job is resent, never forgotten.
    if (auto r = store_.UpdateJob(job); !r) {
      spdlog::error("scheduler: cannot record job {}: {}", job.id, r.error().message());
      job = before;
      return false;
    }
  }
  if (session->Push(std::move(msg))) return true;
  // The session was closing (the agent is reconnecting): the job never left,
  // so it goes back to pending and the next tick sends it on the new session.
  // Left as "sent" it would count against --max-parallel until a reconnect.
  if (before.state == "pending") {
    job = before;
    if (auto r = store_.UpdateJob(job); !r)
      spdlog::error("scheduler: cannot record job {}: {}", job.id, r.error().message());
  }
  return false;
}

void Scheduler::HostOnline(const std::string& host_id) {
  auto open = store_.OpenJobsOfHost(host_id);
  if (!open) {
    spdlog::error("scheduler: jobs of {}: {}", host_id, open.error().message());
    return;
  }
  int64_t now = NowUnix();
  for (auto& job : *open)
    if (job.InFlight()) Send(job, now);  // the agent answers with its recorded outcome if it already ran it
  Wake();
}

namespace {

std::string StateFromWire(v1::JobUpdate::State s) {
  switch (s) {
    case v1::JobUpdate::RECEIVED: return "received";
    case v1::JobUpdate::DOWNLOADING: return "downloading";
    case v1::JobUpdate::VERIFYING: return "verifying";
    case v1::JobUpdate::INSTALLING: return "installing";
    case v1::JobUpdate::SUCCEEDED: return "succeeded";
    case v1::JobUpdate::FAILED: return "failed";
    default: return "";
  }
}

}  // namespace

void Scheduler::OnJobUpdate(const std::string& host_id, const v1::JobUpdate& u) {
  auto job = store_.GetJob(u.job_id());
  if (!job) {
    spdlog::warn("agent {} reported unknown job {}", host_id, u.job_id());
    return;
  }
  if (job->host_id != host_id) {
    spdlog::warn("agent {} reported job {} of another host; ignored", host_id, u.job_id());
    return;
  }
  std::string state = StateFromWire(u.state());
  if (state.empty() || job->Terminal()) return;
  bool terminal = state == "succeeded" || state == "failed";
  if (terminal && terminal_hook_) {
    if (auto r = terminal_hook_(*job, u); !r) {
      spdlog::error("scheduler: cannot record the outcome of job {}: {}; it is asked again at the next reconnect",
                    job->id, r.error().message());
      return;
    }
  }
  job->state = state;
  job->percent = std::min<uint32_t>(u.percent(), 100);
  job->message = u.message().substr(0, 4096);
  // A capture's output is the image's manifest (to be signed): kept whole up to 1 MiB (the agent refuses larger).
  if (!u.output().empty()) job->output = u.output().substr(0, job->kind == "capture" ? kMaxCaptureOutput : 65536);
  if (!u.point().point_id().empty()) job->point_id = u.point().point_id();
  job->updated_at = NowUnix();
  if (auto r = store_.UpdateJob(*job); !r) {
    spdlog::error("scheduler: cannot record update of job {}: {}", job->id, r.error().message());
    return;
  }
  if (job->Terminal())
    spdlog::info("job {} on {} {}: {}", job->id.substr(0, 8), host_id.substr(0, 8), job->state, job->message);
  Changed();
  if (job->Terminal()) Wake();
}

void Scheduler::Tick(int64_t now) {
  auto deployments = store_.ListDeployments(true);
  if (!deployments) {
    spdlog::error("scheduler: {}", deployments.error().message());
    return;
  }
  for (auto& d : *deployments) TickDeployment(d, now);
  // Single jobs (rollbacks ordered by an admin) go out as soon as the host is online.
  if (auto single = store_.PendingSingleJobs()) {
    for (auto& job : *single)
      if (Send(job, now)) Changed();
  }
}

void Scheduler::TickDeployment(DeploymentRecord& d, int64_t now) {
  auto set_state = [&](const std::string& state, const std::string& reason) {
    if (auto r = store_.SetDeploymentState(d.id, state, reason); !r) {
      spdlog::error("scheduler: deployment {}: {}", d.id, r.error().message());
      return;
    }
    spdlog::info("deployment {} ({} {}): {}{}", d.id.substr(0, 8), d.package, d.version, state,
                 reason.empty() ? "" : " - " + reason);
    d.state = state;
    Changed();
  };
  if (d.start > now) return;
  auto jobs = store_.JobsOfDeployment(d.id);
  if (!jobs) return;
  if (d.state == "scheduled") set_state("running", "");

  size_t in_flight = 0, failed = 0, finished = 0, open = 0;
  for (const auto& j : *jobs) {
    if (j.InFlight()) ++in_flight;
    if (j.state == "failed") ++failed;
    if (j.state == "succeeded" || j.state == "failed") ++finished;
    if (!j.Terminal()) ++open;
  }
  if (open == 0) {
    set_state("completed", failed ? std::to_string(failed) + " of " + std::to_string(jobs->size()) + " hosts failed" : "");
    return;
  }
  // After a resume the rule looks only at what finished since.
  size_t new_failed = failed - std::min<size_t>(failed, d.resumed_failed);
  size_t new_finished = finished - std::min<size_t>(finished, d.resumed_finished);
  if (d.halt_failure_percent > 0 && new_finished > 0 && new_failed * 100 >= d.halt_failure_percent * new_finished) {
    set_state("halted", std::to_string(new_failed) + " of " + std::to_string(new_finished) + " finished hosts failed (" +
                            std::to_string(new_failed * 100 / new_finished) + "% >= " + std::to_string(d.halt_failure_percent) +
                            "%); 'parcctl deploy resume' continues");
    return;
  }
  if (d.deadline > 0 && now > d.deadline) {
    for (auto j : *jobs) {
      if (j.state != "pending") continue;
      j.state = "failed";
      j.message = "the deadline passed before this host could start (offline or outside the window)";
      j.updated_at = now;
      (void)store_.UpdateJob(j);
      Changed();
    }
    return;
  }
  if (!d.window.empty()) {
    auto w = ParseWindow(d.window);
    if (w && !w->ContainsTime(now)) return;
  }
  size_t limit = d.max_parallel ? d.max_parallel : SIZE_MAX;
  for (auto& j : *jobs) {
    if (in_flight >= limit) break;
    if (j.state != "pending") continue;
    if (Send(j, now)) {
      ++in_flight;
      Changed();
    }
  }
}

}  // namespace parc::server
