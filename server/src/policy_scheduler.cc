#include "policy_scheduler.h"

#include <map>
#include <nlohmann/json.hpp>

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"

namespace parc::server {

void PolicyScheduler::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void PolicyScheduler::Stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PolicyScheduler::Wake() {
  {
    std::lock_guard lock(mutex_);
    wake_ = true;
  }
  cv_.notify_all();
}

void PolicyScheduler::Loop() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      // Intervals are seconds to days: a check for due runs every 2 s is plenty.
      cv_.wait_for(lock, std::chrono::seconds(2), [&] { return wake_ || stop_; });
      if (stop_) return;
      wake_ = false;
    }
    if (Tick(NowUnix()) > 0) jobs_.Wake();
  }
}

uint32_t PolicyScheduler::Tick(int64_t now) {
  std::lock_guard tick(tick_mutex_);
  return TickLocked(now);
}

Expected<uint32_t> PolicyScheduler::RunNow(const std::string& assignment_id, int64_t now) {
  std::lock_guard tick(tick_mutex_);
  if (auto r = store_.RequestRun(assignment_id, now); !r) return Fail(r.error());
  return TickLocked(now);
}

uint32_t PolicyScheduler::TickLocked(int64_t now) {
  auto due = store_.DueRuns(now);
  if (!due) {
    spdlog::error("policy scheduler: {}", due.error().message());
    return 0;
  }
  std::map<std::pair<std::string, std::string>, Expected<PolicyRecord>> policies;
  uint32_t created = 0;
  for (const auto& d : *due) {
    const auto& a = d.assignment;
    auto key = std::make_pair(a.policy, a.version);
    auto it = policies.find(key);
    if (it == policies.end()) it = policies.emplace(key, store_.GetPolicy(a.policy, a.version)).first;
    if (!it->second) {
      spdlog::warn("policy assignment {}: {}", a.id.substr(0, 8), it->second.error().message());
      continue;
    }
    const PolicyRecord& p = *it->second;
    JobRecord j;
    j.id = RandomUuid();
    j.host_id = d.host_id;
    j.kind = "policy";
    j.package = p.name;
    j.version = p.version;
    j.sha256 = p.sha256;
    j.size = p.size;
    // A pinned version is the admin's explicit choice, even if older than what the agent ran.
    j.allow_downgrade = !a.version.empty();
    j.state = "pending";
    j.message = "waiting for the host to be online";
    j.created_at = j.updated_at = now;
    j.params = nlohmann::json{{"manifest_json", p.manifest_json},
                              {"signature", HexEncode(p.signature)},
                              {"mode", a.mode},
                              {"level", a.level},
                              {"assignment_id", a.id}}
                   .dump();
    PolicyRunRecord run;
    run.job_id = j.id;
    run.assignment_id = a.id;
    run.host_id = d.host_id;
    run.policy = p.name;
    run.version = p.version;
    run.level = a.level;
    run.mode = a.mode;
    run.created_at = now;
    if (auto r = store_.CreateRun(j, run); !r) {
      spdlog::error("policy scheduler: cannot create the check of {} on {}: {}", p.name, d.host_id, r.error().message());
      continue;
    }
    ++created;
  }
  if (created) spdlog::info("policy checks: {} new run(s) queued", created);
  return created;
}

ExpectedVoid PolicyScheduler::OnTerminal(const JobRecord& job, const v1::JobUpdate& u) {
  if (job.kind != "policy") return {};
  RunOutcome o;
  o.ok = u.state() == v1::JobUpdate::SUCCEEDED;
  o.has_report = u.has_policy_report();
  o.message = u.message();
  o.point_id = u.point().point_id();
  if (o.has_report) {
    const auto& rep = u.policy_report();
    o.checked_at = rep.checked_at();
    if (rep.rules_size() > 10000) return Fail(Errc::kInvalidArgument, "policy report with more than 10000 rules refused");
    for (const auto& r : rep.rules()) {
      RuleResultRecord rr;
      rr.rule_id = r.id().substr(0, 128);
      rr.status = r.status();
      if (rr.status != "pass" && rr.status != "fail" && rr.status != "na") rr.status = "error";
      rr.title = r.title().substr(0, 512);
      rr.anssi = r.anssi().substr(0, 16);
      rr.level = r.level().substr(0, 16);
      rr.expected = r.expected();
      rr.found = r.found();
      rr.message = r.message();
      rr.manual = r.manual();
      rr.remediated = r.remediated();
      o.rules.push_back(std::move(rr));
    }
  }
  auto run = store_.FinishRun(job.id, o, NowUnix());
  if (!run) return Fail(run.error());
  if (run->regressed)
    spdlog::warn("policy {} on {}: {} rule(s) regressed since the last check", run->policy, run->host_id.substr(0, 8),
                 run->regressed);
  return {};
}

}  // namespace parc::server
