#include "policy_job.h"

#include "parc/common/files.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/packages/signing.h"
#include "parc/packages/version.h"
#include "parc/policy/engine.h"
#include "parc/policy/signed.h"

namespace parc::agent {

namespace fs = std::filesystem;
using namespace parc::policy;

namespace {

v1::JobUpdate Failed(const std::string& job_id, const std::string& message) {
  v1::JobUpdate u;
  u.set_job_id(job_id);
  u.set_state(v1::JobUpdate::FAILED);
  u.set_message(message);
  return u;
}

void ToWire(const Report& rep, v1::PolicyReport* out) {
  out->set_baseline(rep.baseline);
  out->set_version(rep.baseline_version);
  out->set_level(std::string(LevelName(rep.level)));
  out->set_checked_at(rep.checked_at);
  out->set_duration_ms(rep.duration_ms);
  for (const auto& r : rep.rules) {
    auto* o = out->add_rules();
    o->set_id(r.id);
    o->set_status(std::string(StatusName(r.status)));
    o->set_expected(r.expected);
    o->set_found(r.found);
    o->set_message(r.message);
    o->set_manual(r.manual);
    o->set_remediated(r.remediated);
    o->set_title(r.title);
    o->set_anssi(r.anssi);
    o->set_level(std::string(LevelName(r.level)));
  }
}

v1::RollbackPointInfo ToWire(const PolicyPoint& p) {
  v1::RollbackPointInfo o;
  o.set_point_id(p.id);
  o.set_package(p.baseline);
  o.set_action("policy");
  o.set_created_at(p.created_at);
  o.set_paths(p.paths);
  o.set_bytes(p.bytes);
  o.set_state(p.state);
  return o;
}

std::string Summary(const Report& r) {
  return std::to_string(r.Count(Status::kPass)) + " pass, " + std::to_string(r.Count(Status::kFail)) + " fail, " +
         std::to_string(r.Count(Status::kNotApplicable)) + " not applicable, " + std::to_string(r.Count(Status::kError)) +
         " error";
}

// The version of a policy this agent last accepted (its saved manifest).
std::optional<std::string> AcceptedVersion(const fs::path& dir, const std::string& name) {
  auto text = ReadFile(dir / (name + ".manifest.json"));
  if (!text) return std::nullopt;
  auto m = ParsePolicyManifest(*text);
  if (!m) return std::nullopt;
  return m->version;
}

}  // namespace

v1::JobUpdate RunPolicyJob(const v1::Job& job, const PolicyJobEnv& env) {
  const auto& p = job.policy();
  const AgentConfig& config = *env.config;
  auto level = ParseLevel(p.level().empty() ? "intermediary" : p.level());
  if (!level) return Failed(job.job_id(), "the job names an unknown level '" + p.level() + "'");
  env.progress(v1::JobUpdate::VERIFYING, 0, "checking the policy signature");
  auto trusted = pkg::LoadTrustedKeys(config.state_dir / "trusted_keys.json");
  if (!trusted) return Failed(job.job_id(), trusted.error().message());
  auto m = VerifyPolicyManifest(p.manifest_json(), p.signature(), *trusted, NowUnix());
  if (!m) return Failed(job.job_id(), "policy refused: " + m.error().message());
  if (m->name != p.name() || m->version != p.version() || m->sha256 != p.content_sha256())
    return Failed(job.job_id(), "policy refused: the signed manifest describes " + m->name + " " + m->version +
                                    ", the job asked for " + p.name() + " " + p.version());
  fs::path dir = config.state_dir / "policies";
  if (auto known = AcceptedVersion(dir, m->name);
      known && pkg::CompareVersions(m->version, *known) < 0 && !p.allow_downgrade())
    return Failed(job.job_id(), "policy refused: version " + m->version + " of " + m->name +
                                    " is older than version " + *known +
                                    " already in force here (a replayed policy?); pin the version in the assignment "
                                    "to roll back on purpose");
  env.progress(v1::JobUpdate::DOWNLOADING, 0, "downloading the baseline");
  auto file = env.fetch(m->sha256, m->size);
  if (!file) return Failed(job.job_id(), file.error().message());
  auto bytes = ReadFile(*file);
  if (!bytes) return Failed(job.job_id(), bytes.error().message());
  auto baseline = OpenSignedBaseline(*m, *bytes);
  if (!baseline) return Failed(job.job_id(), "policy refused: " + baseline.error().message());
  // Kept so that `parc-agent policy check --baseline NAME` runs what the server assigned.
  if (auto r = EnsureDirectory(dir, 0700); !r) return Failed(job.job_id(), r.error().message());
  const std::pair<const char*, const std::string*> files[] = {
      {".toml", &*bytes}, {".manifest.json", &p.manifest_json()}, {".sig", &p.signature()}};
  for (auto [suffix, content] : files)
    if (auto r = WriteFileAtomic(dir / (m->name + suffix), *content, 0600); !r) return Failed(job.job_id(), r.error().message());

  SelectOptions select;
  select.level = *level;
  v1::JobUpdate u;
  u.set_job_id(job.job_id());
  if (!p.enforce()) {
    env.progress(v1::JobUpdate::INSTALLING, 0, "checking " + m->name + " " + m->version);
    auto rep = CheckBaseline(*baseline, config.root, select);
    u.set_state(v1::JobUpdate::SUCCEEDED);
    u.set_percent(100);
    u.set_message("checked: " + Summary(rep) + " (audit only, nothing changed)");
    ToWire(rep, u.mutable_policy_report());
    return u;
  }
  env.progress(v1::JobUpdate::INSTALLING, 0, "enforcing " + m->name + " " + m->version);
  auto engine = Engine::Open(config.root, config.state_dir);
  if (!engine) return Failed(job.job_id(), engine.error().message());
  auto r = (*engine)->Apply(*baseline, select, env.crash_at);
  if (!r) {
    // Undone: report what the root looks like now (as before the apply).
    u = Failed(job.job_id(), r.error().message());
    ToWire(CheckBaseline(*baseline, config.root, select), u.mutable_policy_report());
    return u;
  }
  u.set_state(v1::JobUpdate::SUCCEEDED);
  u.set_percent(100);
  auto* rep = u.mutable_policy_report();
  ToWire(r->after, rep);
  rep->set_before_pass(static_cast<uint32_t>(r->before.Count(Status::kPass)));
  rep->set_before_fail(static_cast<uint32_t>(r->before.Count(Status::kFail)));
  for (const auto& n : r->notes) rep->add_notes(n);
  int fixed = 0;
  for (const auto& rr : r->after.rules) fixed += rr.remediated && rr.status == Status::kPass;
  if (r->point.id.empty()) {
    u.set_message("enforced: nothing to remediate; " + Summary(r->after));
  } else {
    u.set_message("enforced: " + std::to_string(fixed) + " rule(s) remediated (rollback point " + r->point.id + "); now " +
                  Summary(r->after));
    *u.mutable_point() = ToWire(r->point);
  }
  return u;
}

std::vector<v1::RollbackPointInfo> PolicyRollbackPoints(const AgentConfig& config) {
  std::vector<v1::RollbackPointInfo> out;
  if (!PathExists(config.state_dir / "policy" / "rollback")) return out;
  auto engine = Engine::Open(config.root, config.state_dir);
  if (!engine) return out;
  auto points = (*engine)->ListPoints();
  if (!points) return out;
  for (const auto& p : *points) out.push_back(ToWire(p));
  return out;
}

std::optional<v1::JobUpdate> RestorePolicyPoint(const std::string& job_id, const std::string& point_id,
                                                const AgentConfig& config) {
  if (point_id.empty() || point_id.find('/') != std::string::npos || point_id.find("..") != std::string::npos)
    return std::nullopt;
  if (!PathExists(config.state_dir / "policy" / "rollback" / point_id / "point.json")) return std::nullopt;
  auto engine = Engine::Open(config.root, config.state_dir);
  if (!engine) return Failed(job_id, engine.error().message());
  auto p = (*engine)->Rollback(point_id);
  if (!p) return Failed(job_id, p.error().message());
  v1::JobUpdate u;
  u.set_job_id(job_id);
  u.set_state(v1::JobUpdate::SUCCEEDED);
  u.set_percent(100);
  u.set_message("restored policy rollback point " + p->id + " of " + p->baseline + " (" + std::to_string(p->paths) +
                " paths)");
  return u;
}

}  // namespace parc::agent
