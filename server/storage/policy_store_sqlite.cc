// SQLite implementation of PolicyStore: its own connection (like the deploy
// store), serialised by a mutex. Check traffic is one small transaction per
// answered run.
#include <map>
#include <mutex>
#include <set>

#include "job_rows.h"
#include "parc/packages/version.h"
#include "parc/server/policy_store.h"
#include "sql_util.h"

namespace parc::server {
namespace {

using detail::Cursor;

constexpr const char* kPolicyColumns =
    "name, version, title, sha256, size, key_id, publisher, signed_at, expires_at, uploaded_at, rule_count, rules_json, "
    "manifest_json, signature";
constexpr const char* kAssignmentColumns =
    "id, policy, version, group_name, mode, level, interval_seconds, active, created_at, created_by, comment, "
    "run_requested_at";
constexpr const char* kRunColumns =
    "job_id, assignment_id, host_id, policy, version, level, mode, created_at, finished_at, ok, checked_at, pass, fail, "
    "na, error, manual, remediated, regressed, improved, message, point_id";
constexpr const char* kRuleColumns =
    "host_id, assignment_id, rule_id, policy, title, anssi, level, status, expected, found, message, manual, remediated, "
    "previous_status, since, checked_at, job_id";

PolicyRecord ReadPolicy(const sql::Statement& s) {
  PolicyRecord p;
  p.name = s.Text(0);
  p.version = s.Text(1);
  p.title = s.Text(2);
  p.sha256 = s.Text(3);
  p.size = static_cast<uint64_t>(s.Int(4));
  p.key_id = s.Text(5);
  p.publisher = s.Text(6);
  p.signed_at = s.Int(7);
  p.expires_at = s.Int(8);
  p.uploaded_at = s.Int(9);
  p.rule_count = static_cast<uint32_t>(s.Int(10));
  p.rules_json = s.Text(11);
  p.manifest_json = s.Text(12);
  p.signature = s.Text(13);
  return p;
}

AssignmentRecord ReadAssignment(const sql::Statement& s, int c = 0) {
  AssignmentRecord a;
  a.id = s.Text(c + 0);
  a.policy = s.Text(c + 1);
  a.version = s.Text(c + 2);
  a.group = s.Text(c + 3);
  a.mode = s.Text(c + 4);
  a.level = s.Text(c + 5);
  a.interval_seconds = s.Int(c + 6);
  a.active = s.Int(c + 7) != 0;
  a.created_at = s.Int(c + 8);
  a.created_by = s.Text(c + 9);
  a.comment = s.Text(c + 10);
  a.run_requested_at = s.Int(c + 11);
  return a;
}

PolicyRunRecord ReadRun(const sql::Statement& s) {
  PolicyRunRecord r;
  r.job_id = s.Text(0);
  r.assignment_id = s.Text(1);
  r.host_id = s.Text(2);
  r.policy = s.Text(3);
  r.version = s.Text(4);
  r.level = s.Text(5);
  r.mode = s.Text(6);
  r.created_at = s.Int(7);
  r.finished_at = s.Int(8);
  r.ok = s.Int(9) != 0;
  r.checked_at = s.Int(10);
  uint32_t* counts[] = {&r.pass, &r.fail, &r.na, &r.error, &r.manual, &r.remediated, &r.regressed, &r.improved};
  for (int i = 0; i < 8; ++i) *counts[i] = static_cast<uint32_t>(s.Int(11 + i));
  r.message = s.Text(19);
  r.point_id = s.Text(20);
  return r;
}

RuleResultRecord ReadRule(const sql::Statement& s) {
  RuleResultRecord r;
  r.host_id = s.Text(0);
  r.assignment_id = s.Text(1);
  r.rule_id = s.Text(2);
  r.policy = s.Text(3);
  r.title = s.Text(4);
  r.anssi = s.Text(5);
  r.level = s.Text(6);
  r.status = s.Text(7);
  r.expected = s.Text(8);
  r.found = s.Text(9);
  r.message = s.Text(10);
  r.manual = s.Int(11) != 0;
  r.remediated = s.Int(12) != 0;
  r.previous_status = s.Text(13);
  r.since = s.Int(14);
  r.checked_at = s.Int(15);
  r.job_id = s.Text(16);
  return r;
}

bool Good(const std::string& status) { return status == "pass"; }
bool Bad(const std::string& status) { return status == "fail" || status == "error"; }

class SqlitePolicyStore final : public PolicyStore {
 public:
  explicit SqlitePolicyStore(sql::Database db) : db_(std::move(db)) {}

  Expected<PolicyRecord> AddPolicy(const PolicyRecord& p) override {
    std::lock_guard lock(mutex_);
    {
      PARC_ASSIGN(c, Q(std::string("SELECT ") + kPolicyColumns + " FROM policies WHERE name = ?1 AND version = ?2"));
      c->Bind(1, p.name).Bind(2, p.version);
      PARC_ASSIGN(row, c->Step());
      if (row) {
        PolicyRecord existing = ReadPolicy(*c);
        if (existing.sha256 == p.sha256) return existing;
        return Fail(Errc::kAlreadyExists, "policy " + p.name + " " + p.version +
                                              " is already registered with a different baseline file (" +
                                              existing.sha256.substr(0, 12) + "); raise 'version' in [baseline] instead");
      }
    }
    PARC_ASSIGN(c, Q(std::string("INSERT INTO policies(") + kPolicyColumns +
                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"));
    c->Bind(1, p.name).Bind(2, p.version).Bind(3, p.title).Bind(4, p.sha256).Bind(5, static_cast<int64_t>(p.size));
    c->Bind(6, p.key_id).Bind(7, p.publisher).Bind(8, p.signed_at).Bind(9, p.expires_at).Bind(10, p.uploaded_at);
    c->Bind(11, static_cast<int64_t>(p.rule_count)).Bind(12, p.rules_json).Bind(13, p.manifest_json);
    c->BindBlob(14, p.signature);
    PARC_TRY(c->Run());
    return p;
  }

  Expected<std::vector<PolicyRecord>> ListPolicies(const std::string& name) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kPolicyColumns +
                     " FROM policies WHERE ?1 = '' OR name = ?1 ORDER BY name, uploaded_at"));
    c->Bind(1, name);
    std::vector<PolicyRecord> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { out.push_back(ReadPolicy(s)); }));
    std::stable_sort(out.begin(), out.end(), [](const PolicyRecord& a, const PolicyRecord& b) {
      if (a.name != b.name) return a.name < b.name;
      return pkg::CompareVersions(a.version, b.version) < 0;
    });
    return out;
  }

  Expected<PolicyRecord> GetPolicy(const std::string& name, const std::string& version) override {
    auto all = ListPolicies(name);
    if (!all) return Fail(all.error());
    if (all->empty()) return Fail(Errc::kNotFound, "no policy named '" + name + "' (see parcctl policy list)");
    if (version.empty()) return all->back();
    for (const auto& p : *all)
      if (p.version == version) return p;
    return Fail(Errc::kNotFound, "policy " + name + " has no version " + version + " (newest: " + all->back().version + ")");
  }

  ExpectedVoid CreateAssignment(const AssignmentRecord& a) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("INSERT INTO policy_assignments(") + kAssignmentColumns +
                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
    c->Bind(1, a.id).Bind(2, a.policy).Bind(3, a.version).Bind(4, a.group).Bind(5, a.mode).Bind(6, a.level);
    c->Bind(7, a.interval_seconds).Bind(8, a.active).Bind(9, a.created_at).Bind(10, a.created_by).Bind(11, a.comment);
    c->Bind(12, a.run_requested_at);
    return c->Run();
  }

  Expected<AssignmentRecord> GetAssignment(const std::string& ref) override {
    std::lock_guard lock(mutex_);
    if (ref.empty()) return Fail(Errc::kInvalidArgument, "no assignment id given");
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kAssignmentColumns +
                     " FROM policy_assignments WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2"));
    c->Bind(1, ref);
    std::vector<AssignmentRecord> found;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { found.push_back(ReadAssignment(s)); }));
    if (found.empty()) return Fail(Errc::kNotFound, "no policy assignment " + ref + " (see parcctl policy list)");
    if (found.size() > 1) return Fail(Errc::kInvalidArgument, "assignment prefix " + ref + " is ambiguous; give more characters");
    return found.front();
  }

  Expected<std::vector<AssignmentRecord>> ListAssignments(const std::string& group, bool include_inactive) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kAssignmentColumns +
                     " FROM policy_assignments WHERE (?1 = '' OR group_name = ?1) AND (?2 OR active = 1) "
                     "ORDER BY created_at, id"));
    c->Bind(1, group).Bind(2, include_inactive);
    std::vector<AssignmentRecord> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { out.push_back(ReadAssignment(s)); }));
    return out;
  }

  ExpectedVoid SetAssignmentActive(const std::string& id, bool active, int64_t now) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      {
        PARC_ASSIGN(c, Q("UPDATE policy_assignments SET active = ?2 WHERE id = ?1"));
        c->Bind(1, id).Bind(2, active);
        PARC_TRY(c->Run());
      }
      if (active) return {};
      // Runs not sent yet are dropped; one already on an agent finishes and is recorded.
      {
        PARC_ASSIGN(c, Q("UPDATE jobs SET state = 'canceled', message = 'the policy assignment was removed', "
                         "updated_at = ?2 WHERE state = 'pending' AND id IN "
                         "(SELECT job_id FROM policy_runs WHERE assignment_id = ?1 AND finished_at = 0)"));
        c->Bind(1, id).Bind(2, now);
        PARC_TRY(c->Run());
      }
      PARC_ASSIGN(c, Q("UPDATE policy_runs SET finished_at = ?2, message = 'the policy assignment was removed' "
                       "WHERE assignment_id = ?1 AND finished_at = 0 AND job_id IN "
                       "(SELECT id FROM jobs WHERE state = 'canceled')"));
      c->Bind(1, id).Bind(2, now);
      return c->Run();
    });
  }

  ExpectedVoid RequestRun(const std::string& id, int64_t at) override {
    std::lock_guard lock(mutex_);
    // The watermark is the newest run now: only runs created after it answer
    // the request (times are seconds: a run created earlier in the same second
    // as the request must not count).
    PARC_ASSIGN(c, Q("UPDATE policy_assignments SET run_requested_at = ?2, "
                     "run_requested_after = (SELECT IFNULL(MAX(rowid), 0) FROM policy_runs) WHERE id = ?1"));
    c->Bind(1, id).Bind(2, at);
    return c->Run();
  }

  Expected<std::vector<DueRun>> DueRuns(int64_t now) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT gm.host_id, ") + Prefixed("a.", kAssignmentColumns) +
                     " FROM policy_assignments a"
                     " JOIN group_members gm ON gm.group_name = a.group_name"
                     " JOIN hosts h ON h.id = gm.host_id"
                     " WHERE a.active = 1 AND h.revoked = 0 AND h.superseded_by = ''"
                     " AND NOT EXISTS (SELECT 1 FROM policy_runs r WHERE r.host_id = gm.host_id"
                     "   AND r.assignment_id = a.id AND r.finished_at = 0)"
                     " AND NOT EXISTS (SELECT 1 FROM policy_runs r WHERE r.host_id = gm.host_id"
                     "   AND r.assignment_id = a.id AND r.created_at > ?1 - a.interval_seconds"
                     "   AND r.rowid > a.run_requested_after)"
                     " ORDER BY a.created_at, gm.host_id"));
    c->Bind(1, now);
    std::vector<DueRun> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { out.push_back({ReadAssignment(s, 1), s.Text(0)}); }));
    return out;
  }

  ExpectedVoid CreateRun(const JobRecord& job, const PolicyRunRecord& r) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      PARC_TRY(detail::InsertJob(db_, job));
      PARC_ASSIGN(c, Q("INSERT INTO policy_runs(job_id, assignment_id, host_id, policy, version, level, mode, created_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
      c->Bind(1, r.job_id).Bind(2, r.assignment_id).Bind(3, r.host_id).Bind(4, r.policy).Bind(5, r.version);
      c->Bind(6, r.level).Bind(7, r.mode).Bind(8, r.created_at);
      return c->Run();
    });
  }

  Expected<PolicyRunRecord> GetRun(const std::string& job_id) override {
    std::lock_guard lock(mutex_);
    return GetRunLocked(job_id);
  }

  Expected<PolicyRunRecord> FinishRun(const std::string& job_id, const RunOutcome& outcome, int64_t now) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(run, GetRunLocked(job_id));
    if (run.finished_at > 0) return run;  // answered before (a re-sent outcome)
    PolicyRunRecord done = run;
    PARC_TRY(db_.Transaction([&]() -> ExpectedVoid {
      done.finished_at = now;
      done.ok = outcome.ok;
      done.message = outcome.message.substr(0, 4096);
      done.point_id = outcome.point_id;
      if (outcome.has_report) {
        done.checked_at = outcome.checked_at;
        PARC_TRY(StoreRules(done, outcome, now));
      }
      PARC_ASSIGN(c, Q("UPDATE policy_runs SET finished_at = ?2, ok = ?3, checked_at = ?4, pass = ?5, fail = ?6, "
                       "na = ?7, error = ?8, manual = ?9, remediated = ?10, regressed = ?11, improved = ?12, "
                       "message = ?13, point_id = ?14 WHERE job_id = ?1"));
      c->Bind(1, job_id).Bind(2, done.finished_at).Bind(3, done.ok).Bind(4, done.checked_at);
      uint32_t counts[] = {done.pass, done.fail, done.na, done.error, done.manual, done.remediated, done.regressed,
                           done.improved};
      for (int i = 0; i < 8; ++i) c->Bind(5 + i, static_cast<int64_t>(counts[i]));
      c->Bind(13, done.message).Bind(14, done.point_id);
      return c->Run();
    }));
    return done;
  }

  Expected<std::vector<PolicyRunRecord>> LatestRuns(const std::string& host_id) override {
    return Runs(std::string("SELECT ") + kRunColumns +
                    " FROM policy_runs r WHERE r.finished_at > 0 AND (?1 = '' OR r.host_id = ?1) AND r.rowid = "
                    "(SELECT MAX(r2.rowid) FROM policy_runs r2 WHERE r2.host_id = r.host_id "
                    "AND r2.assignment_id = r.assignment_id AND r2.finished_at > 0) ORDER BY r.host_id, r.assignment_id",
                host_id);
  }

  Expected<std::vector<PolicyRunRecord>> OpenRuns(const std::string& host_id) override {
    return Runs(std::string("SELECT ") + kRunColumns +
                    " FROM policy_runs WHERE finished_at = 0 AND (?1 = '' OR host_id = ?1) ORDER BY host_id, created_at",
                host_id);
  }

  Expected<std::vector<RuleResultRecord>> RuleResults(const std::string& host_id, const std::string& assignment_id,
                                                      const std::string& rule_id) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kRuleColumns +
                     " FROM policy_rule_results WHERE (?1 = '' OR host_id = ?1) AND (?2 = '' OR assignment_id = ?2) "
                     "AND (?3 = '' OR rule_id = ?3) ORDER BY host_id, assignment_id, rule_id"));
    c->Bind(1, host_id).Bind(2, assignment_id).Bind(3, rule_id);
    std::vector<RuleResultRecord> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { out.push_back(ReadRule(s)); }));
    return out;
  }

  Expected<std::vector<RuleHistoryRecord>> RuleHistory(const std::string& host_id, int64_t since) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("SELECT host_id, assignment_id, rule_id, job_id, at, old_status, new_status, found "
                     "FROM policy_rule_history WHERE (?1 = '' OR host_id = ?1) AND at >= ?2 ORDER BY at, rowid"));
    c->Bind(1, host_id).Bind(2, since);
    std::vector<RuleHistoryRecord> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) {
      out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4), s.Text(5), s.Text(6), s.Text(7)});
    }));
    return out;
  }

 private:
  Expected<Cursor> Q(const std::string& sql) { return detail::Query(db_, sql); }

  static std::string Prefixed(const std::string& prefix, const std::string& columns) {
    std::string out;
    size_t i = 0;
    while (i < columns.size()) {
      size_t j = columns.find(", ", i);
      if (j == std::string::npos) j = columns.size();
      out += (out.empty() ? "" : ", ") + prefix + columns.substr(i, j - i);
      i = j + 2;
    }
    return out;
  }

  Expected<PolicyRunRecord> GetRunLocked(const std::string& job_id) {
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kRunColumns + " FROM policy_runs WHERE job_id = ?1"));
    c->Bind(1, job_id);
    PARC_ASSIGN(row, c->Step());
    if (!row) return Fail(Errc::kNotFound, "no policy run for job " + job_id);
    return ReadRun(*c);
  }

  Expected<std::vector<PolicyRunRecord>> Runs(const std::string& sql, const std::string& arg) {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(sql));
    c->Bind(1, arg);
    std::vector<PolicyRunRecord> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { out.push_back(ReadRun(s)); }));
    return out;
  }

  // Replaces the run's host/assignment rule results, counting and recording
  // every status change against what the previous check found.
  ExpectedVoid StoreRules(PolicyRunRecord& run, const RunOutcome& outcome, int64_t now) {
    std::map<std::string, RuleResultRecord> before;
    {
      PARC_ASSIGN(c, Q(std::string("SELECT ") + kRuleColumns +
                       " FROM policy_rule_results WHERE host_id = ?1 AND assignment_id = ?2"));
      c->Bind(1, run.host_id).Bind(2, run.assignment_id);
      PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) {
        auto r = ReadRule(s);
        before.emplace(r.rule_id, std::move(r));
      }));
    }
    auto history = [&](const std::string& rule, const std::string& old_status, const std::string& new_status,
                       const std::string& found) -> ExpectedVoid {
      PARC_ASSIGN(c, Q("INSERT INTO policy_rule_history(host_id, assignment_id, rule_id, job_id, at, old_status, "
                       "new_status, found) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
      c->Bind(1, run.host_id).Bind(2, run.assignment_id).Bind(3, rule).Bind(4, run.job_id).Bind(5, now);
      c->Bind(6, old_status).Bind(7, new_status).Bind(8, found.substr(0, 1024));
      return c->Run();
    };
    std::set<std::string> seen;
    for (RuleResultRecord r : outcome.rules) {
      if (r.rule_id.empty() || !seen.insert(r.rule_id).second) continue;
      r.host_id = run.host_id;
      r.assignment_id = run.assignment_id;
      r.policy = run.policy;
      r.checked_at = outcome.checked_at;
      r.job_id = run.job_id;
      auto it = before.find(r.rule_id);
      r.previous_status = it == before.end() ? "" : it->second.status;
      r.since = it != before.end() && it->second.status == r.status ? it->second.since : now;
      if (r.previous_status != r.status) PARC_TRY(history(r.rule_id, r.previous_status, r.status, r.found));
      if (Bad(r.status) && Good(r.previous_status)) ++run.regressed;
      if (Good(r.status) && Bad(r.previous_status)) ++run.improved;
      if (r.status == "pass") ++run.pass;
      else if (r.status == "fail") ++run.fail;
      else if (r.status == "na") ++run.na;
      else ++run.error;
      run.manual += r.manual && r.status == "fail";
      run.remediated += r.remediated;
      PARC_ASSIGN(c, Q(std::string("INSERT OR REPLACE INTO policy_rule_results(") + kRuleColumns +
                       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"));
      c->Bind(1, r.host_id).Bind(2, r.assignment_id).Bind(3, r.rule_id).Bind(4, r.policy).Bind(5, r.title);
      c->Bind(6, r.anssi).Bind(7, r.level).Bind(8, r.status).Bind(9, r.expected.substr(0, 2048));
      c->Bind(10, r.found.substr(0, 2048)).Bind(11, r.message.substr(0, 2048)).Bind(12, r.manual).Bind(13, r.remediated);
      c->Bind(14, r.previous_status).Bind(15, r.since).Bind(16, r.checked_at).Bind(17, r.job_id);
      PARC_TRY(c->Run());
    }
    // Rules the policy no longer has (a new version dropped them).
    for (const auto& [id, old] : before) {
      if (seen.contains(id)) continue;
      PARC_TRY(history(id, old.status, "gone", ""));
      PARC_ASSIGN(c, Q("DELETE FROM policy_rule_results WHERE host_id = ?1 AND assignment_id = ?2 AND rule_id = ?3"));
      c->Bind(1, run.host_id).Bind(2, run.assignment_id).Bind(3, id);
      PARC_TRY(c->Run());
    }
    return {};
  }

  std::mutex mutex_;
  sql::Database db_;
};

}  // namespace

Expected<std::unique_ptr<PolicyStore>> OpenSqlitePolicyStore(const std::string& path) {
  auto db = sql::Database::Open(path, sql::OpenOptions{.busy_timeout_ms = 30000});
  if (!db) return Fail(db.error().WithContext("opening the parc database for policies"));
  auto version = db->Prepare("SELECT 1 FROM sqlite_master WHERE name = 'policy_runs'");
  if (!version) return Fail(version.error());
  auto row = version->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Errc::kFailedPrecondition, "the parc database has no policy tables (not migrated)");
  return std::unique_ptr<PolicyStore>(std::make_unique<SqlitePolicyStore>(std::move(*db)));
}

}  // namespace parc::server
