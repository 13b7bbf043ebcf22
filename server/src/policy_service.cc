// PolicyService: signed hardening policies, their assignment to groups, and
// compliance. Admin-authenticated like AdminService; every change audited.
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/policy/signed.h"
#include "policy_scheduler.h"
#include "services.h"

namespace parc::server {

namespace {

constexpr int64_t kDefaultInterval = 24 * 3600;
constexpr uint64_t kMaxBaselineBytes = 4 << 20;

void FillPolicy(const PolicyRecord& p, bool with_rules, v1::PolicyInfo* out) {
  out->set_name(p.name);
  out->set_version(p.version);
  out->set_title(p.title);
  out->set_sha256(p.sha256);
  out->set_size(p.size);
  out->set_key_id(p.key_id);
  out->set_publisher(p.publisher);
  out->set_signed_at(p.signed_at);
  out->set_expires_at(p.expires_at);
  out->set_uploaded_at(p.uploaded_at);
  out->set_rule_count(p.rule_count);
  if (!with_rules) return;
  auto rules = nlohmann::json::parse(p.rules_json, nullptr, false);
  if (!rules.is_array()) return;
  for (const auto& r : rules) {
    if (!r.is_object()) continue;
    auto* o = out->add_rules();
    o->set_id(r.value("id", ""));
    o->set_title(r.value("title", ""));
    o->set_anssi(r.value("anssi", ""));
    o->set_source(r.value("source", ""));
    o->set_level(r.value("level", ""));
    o->set_kind(r.value("kind", ""));
  }
}

void FillAssignment(const AssignmentRecord& a, v1::AssignmentInfo* out) {
  out->set_assignment_id(a.id);
  out->set_policy(a.policy);
  out->set_version(a.version);
  out->set_group(a.group);
  out->set_mode(a.mode);
  out->set_level(a.level);
  out->set_interval_seconds(a.interval_seconds);
  out->set_active(a.active);
  out->set_created_at(a.created_at);
  out->set_created_by(a.created_by);
  out->set_comment(a.comment);
}

bool Good(const std::string& s) { return s == "pass"; }
bool Bad(const std::string& s) { return s == "fail" || s == "error"; }

}  // namespace

grpc::Status PolicyServiceImpl::RegisterPolicy(grpc::ServerContext* context, const v1::RegisterPolicyRequest* request,
                                               v1::PolicyInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  std::vector<pkg::PublicKey> trusted;
  auto keys = state_.deploy->ListPublisherKeys();
  if (!keys) return ToStatus(keys.error());
  for (const auto& k : *keys)
    if (auto pk = pkg::ParsePublicKey(k.public_key_pem, k.name)) trusted.push_back(*pk);
  if (trusted.empty())
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "no publisher key is trusted yet: add one with 'parcctl key add NAME.pub' first"};
  auto m = policy::VerifyPolicyManifest(request->manifest_json(), request->signature(), trusted, NowUnix());
  if (!m) return {grpc::StatusCode::FAILED_PRECONDITION, "policy refused: " + m.error().message()};
  std::lock_guard content(state_.content_mu);  // the baseline stays until the policy names it
  auto size = state_.content->Size(m->sha256);
  if (!size) return {grpc::StatusCode::NOT_FOUND, "the baseline file " + m->sha256 + " is not uploaded; upload it first"};
  if (*size > kMaxBaselineBytes)
    return {grpc::StatusCode::INVALID_ARGUMENT, "a baseline file is at most 4 MiB"};
  auto bytes = ReadFile(state_.content->ObjectPath(m->sha256));
  if (!bytes) return ToStatus(bytes.error());
  auto baseline = policy::OpenSignedBaseline(*m, *bytes);
  if (!baseline) return {grpc::StatusCode::FAILED_PRECONDITION, "policy refused: " + baseline.error().message()};
  PolicyRecord rec;
  rec.name = m->name;
  rec.version = m->version;
  rec.title = baseline->title;
  rec.sha256 = m->sha256;
  rec.size = m->size;
  rec.key_id = m->key_id;
  rec.publisher = m->publisher;
  rec.signed_at = m->signed_at;
  rec.expires_at = m->expires_at;
  rec.uploaded_at = NowUnix();
  rec.rule_count = static_cast<uint32_t>(baseline->rules.size());
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : baseline->rules)
    rules.push_back({{"id", r.id}, {"title", r.title}, {"anssi", r.anssi}, {"source", r.source},
                     {"level", policy::LevelName(r.level)}, {"kind", r.kind}});
  rec.rules_json = rules.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  rec.manifest_json = request->manifest_json();
  rec.signature = request->signature();
  (void)state_.deploy->AddContent(m->sha256, *size, NowUnix());
  auto stored = state_.policies->AddPolicy(rec);
  if (!stored) return ToStatus(stored.error());
  state_.Audit(*who, "policy.register", m->name + "=" + m->version, m->sha256);
  FillPolicy(*stored, true, response);
  return grpc::Status::OK;
}

grpc::Status PolicyServiceImpl::ListPolicies(grpc::ServerContext* context, const v1::ListPoliciesRequest* request,
                                             v1::ListPoliciesResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto list = state_.policies->ListPolicies(request->name());
  if (!list) return ToStatus(list.error());
  for (const auto& p : *list) FillPolicy(p, false, response->add_policies());
  return grpc::Status::OK;
}

grpc::Status PolicyServiceImpl::GetPolicy(grpc::ServerContext* context, const v1::GetPolicyRequest* request,
                                          v1::PolicyInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto p = state_.policies->GetPolicy(request->name(), request->version());
  if (!p) return ToStatus(p.error());
  FillPolicy(*p, true, response);
  return grpc::Status::OK;
}

Expected<v1::AssignmentInfo> PolicyServiceImpl::Describe(const AssignmentRecord& a) {
  v1::AssignmentInfo info;
  FillAssignment(a, &info);
  HostFilter f;
  f.group = a.group;
  f.include_revoked = false;
  auto hosts = state_.storage->ListHosts(f);
  if (!hosts) return Fail(hosts.error());
  auto runs = state_.policies->LatestRuns("");
  if (!runs) return Fail(runs.error());
  std::set<std::string> checked;
  for (const auto& r : *runs)
    if (r.assignment_id == a.id) checked.insert(r.host_id);
  uint32_t n = 0, with_result = 0;
  for (const auto& h : *hosts) {
    if (!h.superseded_by.empty()) continue;
    ++n;
    with_result += checked.contains(h.id);
  }
  info.set_hosts(n);
  info.set_hosts_checked(with_result);
  return info;
}

grpc::Status PolicyServiceImpl::AssignPolicy(grpc::ServerContext* context, const v1::AssignPolicyRequest* request,
                                             v1::AssignmentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (request->mode() != "audit" && request->mode() != "enforce")
    return {grpc::StatusCode::INVALID_ARGUMENT, "mode must be audit (check only) or enforce (check and remediate)"};
  std::string level = request->level().empty() ? "intermediary" : request->level();
  if (!policy::ParseLevel(level))
    return {grpc::StatusCode::INVALID_ARGUMENT, "level must be minimal, intermediary, enhanced or high"};
  if (request->interval_seconds() < 0) return {grpc::StatusCode::INVALID_ARGUMENT, "the interval must be positive"};
  auto p = state_.policies->GetPolicy(request->policy(), request->version());
  if (!p) return ToStatus(p.error());
  auto groups = state_.storage->ListGroups();
  if (!groups) return ToStatus(groups.error());
  bool known = false;
  for (const auto& g : *groups) known = known || g.name == request->group();
  if (!known)
    return {grpc::StatusCode::NOT_FOUND, "no group named '" + request->group() + "' (see parcctl group list)"};
  AssignmentRecord a;
  a.id = RandomUuid();
  a.policy = p->name;
  a.version = request->version();
  a.group = request->group();
  a.mode = request->mode();
  a.level = level;
  a.interval_seconds = request->interval_seconds() ? request->interval_seconds() : kDefaultInterval;
  a.created_at = NowUnix();
  a.created_by = who->common_name;
  a.comment = request->comment().substr(0, 1024);
  if (auto r = state_.policies->CreateAssignment(a); !r) return ToStatus(r.error());
  state_.Audit(*who, "policy.assign", a.id,
               a.policy + (a.version.empty() ? "" : "=" + a.version) + " to group " + a.group + ", " + a.mode + ", " +
                   a.level + ", every " + std::to_string(a.interval_seconds) + " s" +
                   (a.comment.empty() ? "" : " (" + a.comment + ")"));
  state_.policy_scheduler->Wake();
  auto info = Describe(a);
  if (!info) return ToStatus(info.error());
  *response = std::move(*info);
  return grpc::Status::OK;
}

grpc::Status PolicyServiceImpl::Unassign(grpc::ServerContext* context, const v1::UnassignRequest* request,
                                         v1::AssignmentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto a = state_.policies->GetAssignment(request->assignment_id());
  if (!a) return ToStatus(a.error());
  if (auto r = state_.policies->SetAssignmentActive(a->id, false, NowUnix()); !r) return ToStatus(r.error());
  a->active = false;
  state_.Audit(*who, "policy.unassign", a->id, a->policy + " from group " + a->group);
  state_.scheduler->Changed();
  auto info = Describe(*a);
  if (!info) return ToStatus(info.error());
  *response = std::move(*info);
  return grpc::Status::OK;
}

grpc::Status PolicyServiceImpl::ListAssignments(grpc::ServerContext* context, const v1::ListAssignmentsRequest* request,
                                                v1::ListAssignmentsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto list = state_.policies->ListAssignments(request->group(), request->include_inactive());
  if (!list) return ToStatus(list.error());
  for (const auto& a : *list) {
    auto info = Describe(a);
    if (!info) return ToStatus(info.error());
    *response->add_assignments() = std::move(*info);
  }
  return grpc::Status::OK;
}

grpc::Status PolicyServiceImpl::RunAssignment(grpc::ServerContext* context, const v1::RunAssignmentRequest* request,
                                              v1::RunAssignmentResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto a = state_.policies->GetAssignment(request->assignment_id());
  if (!a) return ToStatus(a.error());
  if (!a->active) return {grpc::StatusCode::FAILED_PRECONDITION, "assignment " + a->id + " was removed"};
  int64_t now = NowUnix();
  auto created = state_.policy_scheduler->RunNow(a->id, now);
  if (!created) return ToStatus(created.error());
  state_.Audit(*who, "policy.run", a->id, a->policy + " on group " + a->group);
  response->set_jobs_created(*created);
  state_.scheduler->Wake();
  HostFilter f;
  f.group = a->group;
  auto hosts = state_.storage->ListHosts(f);
  if (hosts) {
    uint32_t online = 0;
    for (const auto& h : *hosts) online += state_.registry.IsOnline(h.id);
    response->set_hosts_online(online);
  }
  return grpc::Status::OK;
}

grpc::Status PolicyServiceImpl::GetCompliance(grpc::ServerContext* context, const v1::ComplianceRequest* request,
                                              v1::ComplianceResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  // The hosts in scope.
  std::map<std::string, HostRecord> hosts;
  if (!request->host().empty()) {
    auto h = state_.storage->GetHost(request->host());
    if (!h) return ToStatus(h.error());
    if (!request->group().empty() &&
        std::find(h->groups.begin(), h->groups.end(), request->group()) == h->groups.end())
      return {grpc::StatusCode::NOT_FOUND, "host " + h->hostname + " is not in group " + request->group()};
    hosts.emplace(h->id, *h);
  } else {
    HostFilter f;
    f.group = request->group();
    auto list = state_.storage->ListHosts(f);
    if (!list) return ToStatus(list.error());
    for (auto& h : *list) hosts.emplace(h.id, std::move(h));
  }
  std::string only_host = request->host().empty() ? "" : hosts.begin()->first;
  auto assignments = state_.policies->ListAssignments("", true);
  if (!assignments) return ToStatus(assignments.error());
  std::map<std::string, AssignmentRecord> by_id;
  for (auto& a : *assignments) by_id.emplace(a.id, std::move(a));
  auto latest = state_.policies->LatestRuns(only_host);
  if (!latest) return ToStatus(latest.error());
  auto open = state_.policies->OpenRuns(only_host);
  if (!open) return ToStatus(open.error());

  auto in_scope = [&](const std::string& host_id, const std::string& assignment_id) {
    if (!hosts.contains(host_id)) return false;
    auto a = by_id.find(assignment_id);
    // A removed assignment's results stay in the database but are no longer compliance.
    if (a == by_id.end() || !a->second.active) return false;
    return request->policy().empty() || a->second.policy == request->policy();
  };
  // One row per (host, assignment): the latest result, or "pending" before the first.
  std::map<std::pair<std::string, std::string>, v1::HostCompliance> rows;
  auto row_of = [&](const std::string& host_id, const AssignmentRecord& a) -> v1::HostCompliance& {
    auto& r = rows[{host_id, a.id}];
    if (r.host_id().empty()) {
      const auto& h = hosts.at(host_id);
      r.set_host_id(host_id);
      r.set_hostname(h.hostname);
      r.set_policy(a.policy);
      r.set_level(a.level);
      r.set_mode(a.mode);
      r.set_assignment_id(a.id);
      r.set_online(state_.registry.IsOnline(host_id));
    }
    return r;
  };
  uint64_t total_pass = 0, total_fail = 0;
  for (const auto& run : *latest) {
    if (!in_scope(run.host_id, run.assignment_id)) continue;
    auto& r = row_of(run.host_id, by_id.at(run.assignment_id));
    r.set_version(run.version);
    r.set_level(run.level);
    r.set_mode(run.mode);
    r.set_checked_at(run.checked_at);
    r.set_score(run.Score());
    r.set_pass(run.pass);
    r.set_fail(run.fail);
    r.set_na(run.na);
    r.set_error(run.error);
    r.set_manual(run.manual);
    r.set_remediated(run.remediated);
    r.set_regressed(run.regressed);
    r.set_improved(run.improved);
    r.set_state(run.ok ? "checked" : "failed");
    r.set_message(run.message);
    r.set_point_id(run.point_id);
    total_pass += run.pass;
    total_fail += run.fail;
  }
  for (const auto& run : *open) {
    if (!in_scope(run.host_id, run.assignment_id)) continue;
    auto& r = row_of(run.host_id, by_id.at(run.assignment_id));
    if (r.state().empty()) {
      r.set_state("pending");
      r.set_version(run.version);
      r.set_message(r.online() ? "check sent, waiting for the answer" : "waiting for the host to be online");
    }
  }
  // Hosts of an active assignment's group without any run yet.
  for (const auto& [id, a] : by_id) {
    if (!a.active) continue;
    for (const auto& [host_id, h] : hosts) {
      if (!in_scope(host_id, id) || h.revoked || !h.superseded_by.empty()) continue;
      if (std::find(h.groups.begin(), h.groups.end(), a.group) == h.groups.end()) continue;
      auto& r = row_of(host_id, a);
      if (r.state().empty()) {
        r.set_state("pending");
        r.set_message("not checked yet");
      }
    }
  }
  for (auto& [key, r] : rows) *response->add_hosts() = std::move(r);
  response->set_score(total_pass + total_fail == 0 ? 100.0 : 100.0 * static_cast<double>(total_pass) /
                                                              static_cast<double>(total_pass + total_fail));

  auto rules = state_.policies->RuleResults(only_host, "", request->rule());
  if (!rules) return ToStatus(rules.error());
  bool details = request->with_rules() || !request->host().empty() || !request->rule().empty();
  std::map<std::pair<std::string, std::string>, v1::RuleCompliance> per_rule;
  for (const auto& rr : *rules) {
    if (!in_scope(rr.host_id, rr.assignment_id)) continue;
    auto& agg = per_rule[{rr.policy, rr.rule_id}];
    if (agg.rule_id().empty()) {
      agg.set_policy(rr.policy);
      agg.set_rule_id(rr.rule_id);
      agg.set_title(rr.title);
      agg.set_anssi(rr.anssi);
      agg.set_level(rr.level);
    }
    if (rr.status == "pass") agg.set_pass(agg.pass() + 1);
    else if (rr.status == "fail") agg.set_fail(agg.fail() + 1);
    else if (rr.status == "na") agg.set_na(agg.na() + 1);
    else agg.set_error(agg.error() + 1);
    // Drift only counts where the last check changed it.
    if (Bad(rr.status) && Good(rr.previous_status)) agg.set_regressed(agg.regressed() + 1);
    if (Good(rr.status) && Bad(rr.previous_status)) agg.set_improved(agg.improved() + 1);
    if (!details) continue;
    auto* d = response->add_details();
    d->set_host_id(rr.host_id);
    d->set_hostname(hosts.at(rr.host_id).hostname);
    d->set_policy(rr.policy);
    d->set_rule_id(rr.rule_id);
    d->set_title(rr.title);
    d->set_anssi(rr.anssi);
    d->set_level(rr.level);
    d->set_status(rr.status);
    d->set_expected(rr.expected);
    d->set_found(rr.found);
    d->set_message(rr.message);
    d->set_manual(rr.manual);
    d->set_remediated(rr.remediated);
    d->set_previous_status(rr.previous_status);
    d->set_since(rr.since);
  }
  for (auto& [key, agg] : per_rule) {
    uint32_t decided = agg.pass() + agg.fail();
    agg.set_score(decided == 0 ? 100.0 : 100.0 * agg.pass() / decided);
    *response->add_rules() = std::move(agg);
  }
  return grpc::Status::OK;
}

}  // namespace parc::server
