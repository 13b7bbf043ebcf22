// The hardening part of the parc database: signed policies, their assignment
// to groups, check runs (each a job the scheduler sends) and the compliance
// results with their history. Behind an interface like Storage and
// DeployStore so that a PostgreSQL backend can run the same contract tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/server/deploy_store.h"

namespace parc::server {

struct PolicyRecord {
  std::string name, version, title, sha256;
  uint64_t size = 0;
  std::string key_id, publisher;
  int64_t signed_at = 0, expires_at = 0, uploaded_at = 0;
  uint32_t rule_count = 0;
  std::string rules_json = "[]";  // [{id, title, anssi, source, level, kind}]
  std::string manifest_json, signature;
};

struct AssignmentRecord {
  std::string id, policy, version, group, mode, level;
  int64_t interval_seconds = 0;
  bool active = true;
  int64_t created_at = 0;
  std::string created_by, comment;
  int64_t run_requested_at = 0;
};

struct PolicyRunRecord {
  std::string job_id, assignment_id, host_id, policy, version, level, mode;
  int64_t created_at = 0;
  int64_t finished_at = 0;  // 0 = not answered yet
  bool ok = false;
  int64_t checked_at = 0;
  uint32_t pass = 0, fail = 0, na = 0, error = 0, manual = 0, remediated = 0, regressed = 0, improved = 0;
  std::string message, point_id;
  // pass / (pass + fail) in percent; 100 when nothing applies.
  double Score() const { return pass + fail == 0 ? 100.0 : 100.0 * pass / (pass + fail); }
};

struct RuleResultRecord {
  std::string host_id, assignment_id, rule_id, policy, title, anssi, level;
  std::string status;  // pass, fail, na, error
  std::string expected, found, message;
  bool manual = false, remediated = false;
  std::string previous_status;  // at the check before; "" = first check
  int64_t since = 0, checked_at = 0;
  std::string job_id;
};

struct RuleHistoryRecord {
  std::string host_id, assignment_id, rule_id, job_id;
  int64_t at = 0;
  std::string old_status, new_status, found;
};

// What an agent answered for a run.
struct RunOutcome {
  bool ok = false;          // the job succeeded (its findings may still fail)
  bool has_report = false;  // a check ran and rules holds its results (also after a failed, undone apply)
  std::string message;      // why it did not run, or what the apply did
  int64_t checked_at = 0;
  std::string point_id;     // enforce: the rollback point of the remediation
  std::vector<RuleResultRecord> rules;  // rule_id, status, texts (host/assignment set by the store)
};

struct DueRun {
  AssignmentRecord assignment;
  std::string host_id;
};

class PolicyStore {
 public:
  virtual ~PolicyStore() = default;

  // kAlreadyExists when name=version is registered with other bytes.
  virtual Expected<PolicyRecord> AddPolicy(const PolicyRecord& p) = 0;
  virtual Expected<std::vector<PolicyRecord>> ListPolicies(const std::string& name) = 0;  // versions in Debian order
  virtual Expected<PolicyRecord> GetPolicy(const std::string& name, const std::string& version) = 0;  // "" = newest

  virtual ExpectedVoid CreateAssignment(const AssignmentRecord& a) = 0;
  virtual Expected<AssignmentRecord> GetAssignment(const std::string& id_or_prefix) = 0;
  virtual Expected<std::vector<AssignmentRecord>> ListAssignments(const std::string& group, bool include_inactive) = 0;
  // Deactivating cancels the assignment's runs not sent yet.
  virtual ExpectedVoid SetAssignmentActive(const std::string& id, bool active, int64_t now) = 0;
  virtual ExpectedVoid RequestRun(const std::string& id, int64_t at) = 0;

  // (assignment, host) pairs that need a check now: an active assignment, a
  // member host that is neither revoked nor superseded, no run still open,
  // and no run created within the interval since the last "check now".
  virtual Expected<std::vector<DueRun>> DueRuns(int64_t now) = 0;
  // Inserts the job and its run row in one transaction.
  virtual ExpectedVoid CreateRun(const JobRecord& job, const PolicyRunRecord& run) = 0;
  virtual Expected<PolicyRunRecord> GetRun(const std::string& job_id) = 0;
  // Stores the outcome: the run's summary, every rule's latest result with
  // the status it had before, and a history row for each status change.
  // Idempotent: a run already finished is left as it is.
  virtual Expected<PolicyRunRecord> FinishRun(const std::string& job_id, const RunOutcome& outcome, int64_t now) = 0;

  // The latest finished run of every (host, assignment), host "" = all hosts.
  virtual Expected<std::vector<PolicyRunRecord>> LatestRuns(const std::string& host_id) = 0;
  // Runs not answered yet.
  virtual Expected<std::vector<PolicyRunRecord>> OpenRuns(const std::string& host_id) = 0;
  // Latest rule results; empty arguments select everything.
  virtual Expected<std::vector<RuleResultRecord>> RuleResults(const std::string& host_id, const std::string& assignment_id,
                                                              const std::string& rule_id) = 0;
  virtual Expected<std::vector<RuleHistoryRecord>> RuleHistory(const std::string& host_id, int64_t since) = 0;
};

// A second connection to the migrated SQLite parc database, like the deploy store.
Expected<std::unique_ptr<PolicyStore>> OpenSqlitePolicyStore(const std::string& path);

}  // namespace parc::server
