// The software-distribution part of the parc database: publisher keys, the
// index of the content store, packages, deployments, per-host jobs and the
// rollback points agents report. Behind an interface like Storage so that a
// PostgreSQL backend can be added and run the same contract tests.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"

namespace parc::server {

struct PublisherKeyRecord {
  std::string key_id;
  std::string name;
  std::string public_key_pem;
  int64_t added_at = 0;
};

struct PackageRecord {
  std::string name, version, summary, publisher, key_id, sha256;
  uint64_t size = 0;
  int64_t signed_at = 0, expires_at = 0, uploaded_at = 0;
  uint32_t files = 0;
  std::string manifest_json;
};

struct DeploymentRecord {
  std::string id, package, version, sha256;
  uint64_t size = 0;
  bool remove = false;
  std::string state = "scheduled";  // scheduled, running, halted, canceled, completed
  std::string reason;
  int64_t created_at = 0;
  std::string created_by;
  int64_t start = 0, deadline = 0;
  std::string window;
  uint32_t max_parallel = 0;
  uint32_t halt_failure_percent = 0;
  std::vector<std::string> targets;
  uint32_t resumed_failed = 0, resumed_finished = 0;  // halt baseline after a resume

  // Scheduled, running or halted (it may be resumed): what it deploys must stay.
  bool Unfinished() const { return state != "completed" && state != "canceled"; }
};

struct JobRecord {
  std::string id, deployment_id;
  int64_t seq = 0;
  std::string host_id;
  std::string kind;  // install, remove, rollback, policy
  std::string package, version, sha256;  // policy jobs: the policy's name, version and baseline file
  uint64_t size = 0;
  std::string target_point;  // rollback jobs: the point to restore
  bool allow_downgrade = false;
  std::string state = "pending";  // pending, sent, downloading, verifying, installing, succeeded, failed, canceled
  uint32_t percent = 0;
  std::string message, output, point_id;
  int64_t created_at = 0, updated_at = 0;
  std::string params;  // kind-specific JSON (policy: manifest, signature, mode, level)

  bool Terminal() const { return state == "succeeded" || state == "failed" || state == "canceled"; }
  bool InFlight() const { return !Terminal() && state != "pending"; }
};

struct RollbackPointRecord {
  std::string host_id, point_id, job_id, package, action, from_version, to_version;
  int64_t created_at = 0;
  uint64_t paths = 0, bytes = 0;
  std::string state;
  int64_t reported_at = 0;
  std::string target;  // an image deployment's point: the tree target on the host
};

class DeployStore {
 public:
  virtual ~DeployStore() = default;

  virtual ExpectedVoid AddPublisherKey(const PublisherKeyRecord& key) = 0;  // same id again: updates the name
  virtual Expected<std::vector<PublisherKeyRecord>> ListPublisherKeys() = 0;

  virtual ExpectedVoid AddContent(const std::string& sha256, uint64_t size, int64_t at) = 0;
  virtual Expected<std::optional<uint64_t>> ContentSize(const std::string& sha256) = 0;

  // kAlreadyExists when name=version is registered with other bytes.
  virtual Expected<PackageRecord> AddPackage(const PackageRecord& p) = 0;
  virtual Expected<std::vector<PackageRecord>> ListPackages(const std::string& name) = 0;
  // version "" = the newest by Debian ordering.
  virtual Expected<PackageRecord> GetPackage(const std::string& name, const std::string& version) = 0;
  // Unregisters name=version and returns what it was; kNotFound when it is not registered.
  virtual Expected<PackageRecord> RemovePackage(const std::string& name, const std::string& version) = 0;
  // Forgets a content object once no package or policy names it: true when
  // it was forgotten (its file may go), false when one still does.
  virtual Expected<bool> ForgetUnusedContent(const std::string& sha256) = 0;
  // The content objects no package or policy names: pushed and never
  // registered (a refused registration, say), or left by a removal that
  // stopped before forgetting them.
  virtual Expected<std::vector<std::string>> UnreferencedContent() = 0;

  virtual ExpectedVoid CreateDeployment(const DeploymentRecord& d, const std::vector<JobRecord>& jobs) = 0;
  virtual Expected<DeploymentRecord> GetDeployment(const std::string& id_or_prefix) = 0;
  virtual Expected<std::vector<DeploymentRecord>> ListDeployments(bool active_only) = 0;
  virtual ExpectedVoid SetDeploymentState(const std::string& id, const std::string& state,
                                          const std::string& reason) = 0;
  // Resume after a halt: state running, and the halt rule restarts from these counts.
  virtual ExpectedVoid ResumeDeployment(const std::string& id, uint32_t failed, uint32_t finished) = 0;

  virtual ExpectedVoid CreateJob(const JobRecord& job) = 0;
  virtual Expected<JobRecord> GetJob(const std::string& id) = 0;
  virtual Expected<std::vector<JobRecord>> JobsOfDeployment(const std::string& deployment_id) = 0;
  // Jobs of a host that are not finished (pending or in flight), oldest first.
  virtual Expected<std::vector<JobRecord>> OpenJobsOfHost(const std::string& host_id) = 0;
  // Pending jobs without a deployment (rollbacks ordered by an admin).
  virtual Expected<std::vector<JobRecord>> PendingSingleJobs() = 0;
  virtual ExpectedVoid UpdateJob(const JobRecord& job) = 0;  // state, percent, message, output, point_id, updated_at

  // Replaces what the parc database holds for the host with the agent's list.
  virtual ExpectedVoid ReplaceRollbackPoints(const std::string& host_id,
                                             const std::vector<RollbackPointRecord>& points) = 0;
  virtual Expected<std::vector<RollbackPointRecord>> ListRollbackPoints(const std::string& host_id) = 0;
};

// Opens the deploy tables of the SQLite parc database (OpenSqliteStorage must
// have migrated it first; this is a second connection to the same file).
Expected<std::unique_ptr<DeployStore>> OpenSqliteDeployStore(const std::string& path);

}  // namespace parc::server
