// parcctl's hardening commands: sign and upload baselines, assign them to
// groups (audit or enforce), and read compliance, through the server's
// PolicyService (same admin certificate and server as the admin API).
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "parc/common/files.h"
#include "parc/common/timeutil.h"
#include "parc/ctl/csv.h"
#include "parc/ctl/exit_codes.h"
#include "parc/ctl/table.h"
#include "parc/ctl/text.h"
#include "parc/packages/signing.h"
#include "parc/policy/signed.h"

namespace parc::ctl {
namespace {

std::string Percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v);
  return buf;
}

std::string TimeOrNever(int64_t t) { return t > 0 ? FormatTime(t) : "never"; }

std::string Interval(int64_t seconds) {
  if (seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

std::string Drift(uint32_t regressed, uint32_t improved) {
  if (!regressed && !improved) return "-";
  std::string out;
  if (regressed) out += "-" + std::to_string(regressed);
  if (improved) out += (out.empty() ? "+" : " +") + std::to_string(improved);
  return out;
}

std::string RuleDrift(const v1::RuleStatus& r) {
  if (r.previous_status().empty()) return "new";
  if (r.previous_status() == r.status()) return "-";
  return "was " + r.previous_status();
}

std::string AssignmentLabel(const v1::AssignmentInfo& a) {
  return a.policy() + (a.version().empty() ? "" : "=" + a.version());
}

std::string StateCell(const v1::HostCompliance& h) {
  if (h.state() == "checked") return "checked";
  return h.state() + (h.message().empty() ? "" : ": " + h.message());
}

std::string RenderHosts(const v1::ComplianceResponse& c, size_t width) {
  Table t({"HOST", "POLICY", "MODE", "LEVEL", "SCORE", "PASS", "FAIL", "N/A", "ERR", "DRIFT", "CHECKED", "STATE"});
  for (const auto& h : c.hosts()) {
    bool checked = h.checked_at() > 0;
    t.AddRow({h.hostname().empty() ? ShortId(h.host_id()) : h.hostname(), h.policy() + " " + h.version(), h.mode(),
              h.level(), checked ? Percent(h.score()) : "-", checked ? std::to_string(h.pass()) : "-",
              checked ? std::to_string(h.fail()) + (h.manual() ? " (" + std::to_string(h.manual()) + " manual)" : "") : "-",
              checked ? std::to_string(h.na()) : "-", checked ? std::to_string(h.error()) : "-",
              Drift(h.regressed(), h.improved()), TimeOrNever(h.checked_at()), StateCell(h)});
  }
  return t.Render(width);
}

std::string RenderRules(const v1::ComplianceResponse& c, size_t width) {
  Table t({"RULE", "ANSSI", "LEVEL", "PASS", "FAIL", "N/A", "ERR", "SCORE", "DRIFT", "TITLE"});
  for (const auto& r : c.rules())
    t.AddRow({r.rule_id(), r.anssi().empty() ? "-" : r.anssi(), r.level(), std::to_string(r.pass()),
              std::to_string(r.fail()), std::to_string(r.na()), std::to_string(r.error()), Percent(r.score()),
              Drift(r.regressed(), r.improved()), r.title()});
  return t.Render(width);
}

std::string RenderDetails(const v1::ComplianceResponse& c, size_t width, bool show_host) {
  std::vector<std::string> head = {"STATUS", "ANSSI", "RULE", "DRIFT", "EXPECTED", "FOUND"};
  if (show_host) head.insert(head.begin(), "HOST");
  Table t(head);
  for (const auto& d : c.details()) {
    std::string status = d.status() + (d.manual() && d.status() == "fail" ? "*" : "") + (d.remediated() ? " (fixed)" : "");
    std::string found = d.found();
    if (d.status() != "pass" && !d.message().empty()) found += (found.empty() ? "" : "; ") + d.message();
    std::vector<std::string> row = {status, d.anssi().empty() ? "-" : d.anssi(), d.rule_id(), RuleDrift(d),
                                    d.status() == "fail" ? d.expected() : "", found};
    if (show_host) row.insert(row.begin(), d.hostname().empty() ? ShortId(d.host_id()) : d.hostname());
    t.AddRow(row);
  }
  return t.Render(width);
}

std::string ComplianceCsv(const v1::ComplianceResponse& c) {
  std::string out = CsvRecord({"host_id", "hostname", "policy", "rule_id", "anssi", "level", "status", "previous_status",
                               "since", "manual", "remediated", "expected", "found", "message"});
  for (const auto& d : c.details())
    out += CsvRecord({d.host_id(), d.hostname(), d.policy(), d.rule_id(), d.anssi(), d.level(), d.status(),
                      d.previous_status(), d.since() ? FormatTime(d.since()) : "", d.manual() ? "true" : "false",
                      d.remediated() ? "true" : "false", d.expected(), d.found(), d.message()});
  return out;
}

}  // namespace

int Commands::ConnectPolicy() {
  if (int rc = ConnectDeploy()) return rc;
  if (!policy_) policy_ = v1::PolicyService::NewStub(deploy_channel_);
  return kExitOk;
}

int Commands::PolicyPush() {
  auto text = ReadFile(o_.path);
  if (!text) return LocalError(text.error(), ExitCodeForError(text.error()));
  auto key = pkg::LoadPrivateKey(o_.key);
  if (!key) return LocalError(key.error(), ExitCodeForError(key.error()));
  auto lifetime = ParseDuration(o_.expires);
  if (!lifetime) return UsageError("bad --expires '" + o_.expires + "' (use 30d, 365d ...)");
  // Parsed here first: a mistake is reported with its line before anything is uploaded.
  auto signed_policy = policy::SignPolicy(*text, o_.path, *key, now_, now_ + *lifetime);
  if (!signed_policy) return LocalError(signed_policy.error(), kExitUsage);
  FileDigest digest;
  if (int rc = UploadContent(o_.path, digest)) return rc;
  if (digest.sha256 != signed_policy->manifest.sha256)
    return LocalError(Error(Errc::kIo, o_.path + " changed while it was being uploaded; run the command again"),
                      kExitFailure);
  if (int rc = ConnectPolicy()) return rc;
  v1::RegisterPolicyRequest req;
  req.set_manifest_json(signed_policy->manifest_json);
  req.set_signature(signed_policy->signature);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::PolicyInfo info;
  if (auto st = policy_->RegisterPolicy(&ctx, req, &info); !st.ok()) return RpcFailed(st);
  return Emit(info, [&] {
    FieldList f;
    f.Add("Registered", Printable(info.name()) + " " + Printable(info.version()));
    f.Add("Title", Printable(info.title()));
    f.Add("Rules", std::to_string(info.rule_count()));
    f.Add("Signed by", info.publisher() + " (" + info.key_id() + ")");
    f.Add("Expires", FormatTime(info.expires_at()));
    return f.Render() + "Next: parcctl policy assign " + info.name() + " --to group:GROUP --mode audit\n";
  });
}

int Commands::PolicyList() {
  if (int rc = ConnectPolicy()) return rc;
  v1::ListPoliciesResponse policies;
  {
    grpc::ClientContext ctx;
    conn_->SetDeadline(ctx);
    if (auto st = policy_->ListPolicies(&ctx, v1::ListPoliciesRequest(), &policies); !st.ok()) return RpcFailed(st);
  }
  v1::ListAssignmentsRequest areq;
  areq.set_group(o_.group);
  areq.set_include_inactive(o_.all);
  v1::ListAssignmentsResponse assignments;
  {
    grpc::ClientContext ctx;
    conn_->SetDeadline(ctx);
    if (auto st = policy_->ListAssignments(&ctx, areq, &assignments); !st.ok()) return RpcFailed(st);
  }
  if (o_.json) {
    // One document holding both lists.
    auto p = ToJson(policies);
    auto a = ToJson(assignments);
    if (!p || !a) return LocalError(Error(Errc::kInternal, "cannot encode JSON"), kExitFailure);
    nlohmann::json both{{"policies", nlohmann::json::parse(*p)["policies"]},
                        {"assignments", nlohmann::json::parse(*a)["assignments"]}};
    out_ << both.dump() << "\n";
    return kExitOk;
  }
  if (policies.policies().empty()) {
    out_ << "No policy registered yet: parcctl policy push BASELINE.toml --key PUBLISHER.key\n";
    return kExitOk;
  }
  Table t({"POLICY", "VERSION", "RULES", "SIGNED BY", "EXPIRES", "TITLE"});
  for (const auto& p : policies.policies())
    t.AddRow({p.name(), p.version(), std::to_string(p.rule_count()), p.publisher(), FormatTime(p.expires_at()), p.title()});
  out_ << t.Render(Render().max_width) << "\n";
  if (assignments.assignments().empty()) {
    out_ << "No assignment: parcctl policy assign NAME --to group:GROUP --mode audit\n";
    return kExitOk;
  }
  Table a({"ASSIGNMENT", "POLICY", "GROUP", "MODE", "LEVEL", "EVERY", "HOSTS", "CHECKED", "STATE"});
  for (const auto& x : assignments.assignments())
    a.AddRow({ShortId(x.assignment_id()), AssignmentLabel(x), x.group(), x.mode(), x.level(), Interval(x.interval_seconds()),
              std::to_string(x.hosts()), std::to_string(x.hosts_checked()), x.active() ? "active" : "removed"});
  out_ << a.Render(Render().max_width);
  return kExitOk;
}

int Commands::PolicyShow() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return UsageError(ref.error().message());
  if (int rc = ConnectPolicy()) return rc;
  v1::GetPolicyRequest req;
  req.set_name(ref->name);
  req.set_version(ref->version);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::PolicyInfo info;
  if (auto st = policy_->GetPolicy(&ctx, req, &info); !st.ok()) return RpcFailed(st);
  return Emit(info, [&] {
    FieldList f;
    f.Add("Policy", info.name());
    f.Add("Version", info.version());
    f.Add("Title", info.title());
    f.Add("Signed by", info.publisher() + " (" + info.key_id() + ") on " + FormatTime(info.signed_at()));
    f.Add("Expires", FormatTime(info.expires_at()));
    f.Add("SHA-256", info.sha256());
    f.Add("Rules", std::to_string(info.rule_count()));
    Table t({"RULE", "ANSSI", "LEVEL", "KIND", "TITLE"});
    for (const auto& r : info.rules())
      t.AddRow({r.id(), r.anssi().empty() ? "-" : r.anssi(), r.level(), r.kind(), r.title()});
    return f.Render() + "\n" + t.Render(Render().max_width);
  });
}

int Commands::PolicyAssign() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return UsageError(ref.error().message());
  std::string group = o_.group;
  for (const auto& t : o_.to) {
    if (t.rfind("group:", 0) != 0 || t.size() == 6)
      return UsageError("policies are assigned to groups: --to group:NAME (got '" + t + "')");
    if (!group.empty() && group != t.substr(6)) return UsageError("one group per assignment");
    group = t.substr(6);
  }
  if (group.empty()) return UsageError("give the group: --to group:NAME");
  int64_t interval = 0;
  if (!o_.every.empty()) {
    auto d = ParseDuration(o_.every);
    if (!d || *d <= 0) return UsageError("bad --every '" + o_.every + "' (use 30m, 6h, 1d ...)");
    interval = *d;
  }
  if (int rc = ConnectPolicy()) return rc;
  v1::AssignPolicyRequest req;
  req.set_policy(ref->name);
  req.set_version(ref->version);
  req.set_group(group);
  req.set_mode(o_.mode);
  req.set_level(o_.level);
  req.set_interval_seconds(interval);
  req.set_comment(o_.comment);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::AssignmentInfo info;
  if (auto st = policy_->AssignPolicy(&ctx, req, &info); !st.ok()) return RpcFailed(st);
  return Emit(info, [&] {
    return "assignment " + info.assignment_id() + ": " + AssignmentLabel(info) + " on group " + info.group() + " (" +
           std::to_string(info.hosts()) + " hosts), " + info.mode() + ", level " + info.level() + ", every " +
           Interval(info.interval_seconds()) + "\nchecks start now on online hosts; follow with: parcctl compliance --group " +
           info.group() + "\n";
  });
}

int Commands::PolicyUnassign() {
  if (int rc = ConnectPolicy()) return rc;
  v1::UnassignRequest req;
  req.set_assignment_id(o_.id);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::AssignmentInfo info;
  if (auto st = policy_->Unassign(&ctx, req, &info); !st.ok()) return RpcFailed(st);
  return Emit(info, [&] {
    return "assignment " + info.assignment_id() + " removed: " + AssignmentLabel(info) + " is no longer checked on group " +
           info.group() + " (its results stay in the parc; changes already made stay until rolled back)\n";
  });
}

int Commands::PolicyRun() {
  if (int rc = ConnectPolicy()) return rc;
  v1::RunAssignmentRequest req;
  req.set_assignment_id(o_.id);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::RunAssignmentResponse resp;
  if (auto st = policy_->RunAssignment(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    return std::to_string(resp.jobs_created()) + " check(s) queued (" + std::to_string(resp.hosts_online()) +
           " hosts online now; the others are checked when they connect)\n";
  });
}

int Commands::Compliance() {
  std::string format = o_.format.empty() ? (o_.json ? "json" : "table") : o_.format;
  double fail_under = -1;
  if (!o_.fail_under.empty()) {
    std::string v = o_.fail_under;
    if (v.back() == '%') v.pop_back();
    auto pct = ParsePercent(v);
    if (!pct) return UsageError("bad --fail-under '" + o_.fail_under + "' (use 0% to 100%)");
    fail_under = *pct;
  }
  if (int rc = ConnectPolicy()) return rc;
  v1::ComplianceRequest req;
  req.set_group(o_.group);
  req.set_host(o_.host);
  req.set_rule(o_.rule);
  req.set_policy(o_.policy);
  req.set_with_rules(format == "csv");
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ComplianceResponse resp;
  if (auto st = policy_->GetCompliance(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  std::string text;
  if (format == "json") {
    auto json = ToJson(resp);
    if (!json) return LocalError(json.error(), kExitFailure);
    text = *json + "\n";
  } else if (format == "csv") {
    text = ComplianceCsv(resp);
  } else {
    size_t width = Render().max_width;
    if (resp.hosts().empty()) {
      text = "No policy result in this scope yet (see parcctl policy list).\n";
    } else if (!o_.rule.empty()) {
      text = RenderDetails(resp, width, true);
      if (resp.details().empty()) text = "No host has a result for rule " + o_.rule + ".\n";
    } else {
      text = RenderHosts(resp, width);
      if (!o_.host.empty()) text += "\n" + RenderDetails(resp, width, false) + "(fail* = needs a person: not remediable here)\n";
      else if (o_.by_rule) text += "\n" + RenderRules(resp, width);
      text += "Score: " + Percent(resp.score()) + " of decided rules pass (DRIFT: -worse +better since the previous check)\n";
    }
  }
  if (!o_.output.empty()) {
    if (auto r = WriteFileAtomic(o_.output, text, 0644); !r) return LocalError(r.error(), kExitFailure);
  } else {
    out_ << text;
  }
  if (fail_under >= 0 && resp.score() < fail_under) {
    err_ << "parcctl: compliance score " << Percent(resp.score()) << " is under " << Percent(fail_under) << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace parc::ctl
