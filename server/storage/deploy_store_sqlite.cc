// SQLite implementation of DeployStore. Deployment traffic is small next to
// inventory ingest (a few rows per job state change), so it uses one
// connection of its own, serialised by a mutex, beside the inventory writer.
#include <mutex>

#include <nlohmann/json.hpp>

#include "parc/packages/version.h"
#include "parc/server/deploy_store.h"
#include "job_rows.h"
#include "sql_util.h"

namespace parc::server {
namespace {

using detail::Cursor;
using detail::kJobColumns;
using detail::ReadJob;

constexpr const char* kDeploymentColumns =
    "id, package, version, sha256, size, remove, state, reason, created_at, created_by, start_at, deadline, "
    "maint_window, max_parallel, halt_failure_percent, targets, resumed_failed, resumed_finished";
constexpr const char* kPackageColumns =
    "name, version, summary, publisher, key_id, sha256, size, signed_at, expires_at, uploaded_at, files, manifest_json";

DeploymentRecord ReadDeployment(const sql::Statement& s) {
  DeploymentRecord d;
  d.id = s.Text(0);
  d.package = s.Text(1);
  d.version = s.Text(2);
  d.sha256 = s.Text(3);
  d.size = static_cast<uint64_t>(s.Int(4));
  d.remove = s.Int(5) != 0;
  d.state = s.Text(6);
  d.reason = s.Text(7);
  d.created_at = s.Int(8);
  d.created_by = s.Text(9);
  d.start = s.Int(10);
  d.deadline = s.Int(11);
  d.window = s.Text(12);
  d.max_parallel = static_cast<uint32_t>(s.Int(13));
  d.halt_failure_percent = static_cast<uint32_t>(s.Int(14));
  auto targets = nlohmann::json::parse(s.Text(15), nullptr, false);
  if (targets.is_array())
    for (const auto& t : targets)
      if (t.is_string()) d.targets.push_back(t.get<std::string>());
  d.resumed_failed = static_cast<uint32_t>(s.Int(16));
  d.resumed_finished = static_cast<uint32_t>(s.Int(17));
  return d;
}

PackageRecord ReadPackage(const sql::Statement& s) {
  PackageRecord p;
  p.name = s.Text(0);
  p.version = s.Text(1);
  p.summary = s.Text(2);
  p.publisher = s.Text(3);
  p.key_id = s.Text(4);
  p.sha256 = s.Text(5);
  p.size = static_cast<uint64_t>(s.Int(6));
  p.signed_at = s.Int(7);
  p.expires_at = s.Int(8);
  p.uploaded_at = s.Int(9);
  p.files = static_cast<uint32_t>(s.Int(10));
  p.manifest_json = s.Text(11);
  return p;
}

class SqliteDeployStore final : public DeployStore {
 public:
  explicit SqliteDeployStore(sql::Database db) : db_(std::move(db)) {}

  ExpectedVoid AddPublisherKey(const PublisherKeyRecord& k) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("INSERT INTO publisher_keys(key_id, name, public_key_pem, added_at) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT(key_id) DO UPDATE SET name = excluded.name"));
    c->Bind(1, k.key_id).Bind(2, k.name).Bind(3, k.public_key_pem).Bind(4, k.added_at);
    return c->Run();
  }

  Expected<std::vector<PublisherKeyRecord>> ListPublisherKeys() override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("SELECT key_id, name, public_key_pem, added_at FROM publisher_keys ORDER BY added_at, key_id"));
    std::vector<PublisherKeyRecord> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      out.push_back({c->Text(0), c->Text(1), c->Text(2), c->Int(3)});
    }
    return out;
  }

  ExpectedVoid AddContent(const std::string& sha256, uint64_t size, int64_t at) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("INSERT OR IGNORE INTO content_objects(sha256, size, stored_at) VALUES (?1, ?2, ?3)"));
    c->Bind(1, sha256).Bind(2, static_cast<int64_t>(size)).Bind(3, at);
    return c->Run();
  }

  Expected<std::optional<uint64_t>> ContentSize(const std::string& sha256) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("SELECT size FROM content_objects WHERE sha256 = ?1"));
    c->Bind(1, sha256);
    PARC_ASSIGN(row, c->Step());
    if (!row) return std::optional<uint64_t>();
    return std::optional<uint64_t>(static_cast<uint64_t>(c->Int(0)));
  }

  Expected<PackageRecord> AddPackage(const PackageRecord& p) override {
    std::lock_guard lock(mutex_);
    {
      PARC_ASSIGN(c, Q(std::string("SELECT ") + kPackageColumns + " FROM packages WHERE name = ?1 AND version = ?2"));
      c->Bind(1, p.name).Bind(2, p.version);
      PARC_ASSIGN(row, c->Step());
      if (row) {
        PackageRecord existing = ReadPackage(*c);
        if (existing.sha256 == p.sha256) return existing;
        return Fail(Errc::kAlreadyExists, "package " + p.name + " " + p.version +
                                              " is already registered with different content (" +
                                              existing.sha256.substr(0, 12) + "); publish a new version instead");
      }
    }
    PARC_ASSIGN(c, Q(std::string("INSERT INTO packages(") + kPackageColumns +
                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
    c->Bind(1, p.name).Bind(2, p.version).Bind(3, p.summary).Bind(4, p.publisher).Bind(5, p.key_id).Bind(6, p.sha256);
    c->Bind(7, static_cast<int64_t>(p.size)).Bind(8, p.signed_at).Bind(9, p.expires_at).Bind(10, p.uploaded_at);
    c->Bind(11, static_cast<int64_t>(p.files)).Bind(12, p.manifest_json);
    PARC_TRY(c->Run());
    return p;
  }

  Expected<std::vector<PackageRecord>> ListPackages(const std::string& name) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kPackageColumns +
                     " FROM packages WHERE ?1 = '' OR name = ?1 ORDER BY name, uploaded_at"));
    c->Bind(1, name);
    std::vector<PackageRecord> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      out.push_back(ReadPackage(*c));
    }
    std::stable_sort(out.begin(), out.end(), [](const PackageRecord& a, const PackageRecord& b) {
      if (a.name != b.name) return a.name < b.name;
      return pkg::CompareVersions(a.version, b.version) < 0;
    });
    return out;
  }

  Expected<PackageRecord> GetPackage(const std::string& name, const std::string& version) override {
    auto all = ListPackages(name);
    if (!all) return Fail(all.error());
    if (all->empty()) return Fail(Errc::kNotFound, "no package named '" + name + "' (see parcctl package list)");
    if (version.empty()) return all->back();
    for (const auto& p : *all)
      if (p.version == version) return p;
    return Fail(Errc::kNotFound, "package " + name + " has no version " + version + " (newest: " + all->back().version + ")");
  }

  Expected<PackageRecord> RemovePackage(const std::string& name, const std::string& version) override {
    auto p = GetPackage(name, version);
    if (!p) return p;
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("DELETE FROM packages WHERE name = ?1 AND version = ?2"));
    c->Bind(1, name).Bind(2, version);
    PARC_TRY(c->Run());
    if (db_.Changes() == 0) return Fail(Errc::kNotFound, "package " + name + " " + version + " was removed meanwhile");
    return p;
  }

  Expected<bool> ForgetUnusedContent(const std::string& sha256) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("DELETE FROM content_objects WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM packages WHERE "
                     "sha256 = ?1) AND NOT EXISTS (SELECT 1 FROM policies WHERE sha256 = ?1)"));
    c->Bind(1, sha256);
    PARC_TRY(c->Run());
    return db_.Changes() > 0;
  }

  Expected<std::vector<std::string>> UnreferencedContent() override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("SELECT sha256 FROM content_objects c WHERE NOT EXISTS (SELECT 1 FROM packages p WHERE p.sha256 = "
                     "c.sha256) AND NOT EXISTS (SELECT 1 FROM policies q WHERE q.sha256 = c.sha256) ORDER BY sha256"));
    std::vector<std::string> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      out.push_back(c->Text(0));
    }
    return out;
  }

  ExpectedVoid CreateDeployment(const DeploymentRecord& d, const std::vector<JobRecord>& jobs) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      PARC_ASSIGN(c, Q(std::string("INSERT INTO deployments(") + kDeploymentColumns +
                       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"));
      c->Bind(1, d.id).Bind(2, d.package).Bind(3, d.version).Bind(4, d.sha256).Bind(5, static_cast<int64_t>(d.size));
      c->Bind(6, d.remove).Bind(7, d.state).Bind(8, d.reason).Bind(9, d.created_at).Bind(10, d.created_by);
      c->Bind(11, d.start).Bind(12, d.deadline).Bind(13, d.window).Bind(14, static_cast<int64_t>(d.max_parallel));
      c->Bind(15, static_cast<int64_t>(d.halt_failure_percent)).Bind(16, nlohmann::json(d.targets).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      c->Bind(17, static_cast<int64_t>(d.resumed_failed)).Bind(18, static_cast<int64_t>(d.resumed_finished));
      PARC_TRY(c->Run());
      for (const auto& j : jobs) PARC_TRY(InsertJob(j));
      return {};
    });
  }

  Expected<DeploymentRecord> GetDeployment(const std::string& ref) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kDeploymentColumns + " FROM deployments WHERE id = ?1 OR id LIKE ?2 LIMIT 2"));
    c->Bind(1, ref).Bind(2, ref + "%");
    std::vector<DeploymentRecord> found;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      found.push_back(ReadDeployment(*c));
    }
    for (const auto& d : found)
      if (d.id == ref) return d;
    if (found.empty() || ref.empty()) return Fail(Errc::kNotFound, "no deployment '" + ref + "' (see parcctl deploy list)");
    if (found.size() > 1) return Fail(Errc::kInvalidArgument, "'" + ref + "' matches several deployments; give more characters");
    return found.front();
  }

  Expected<std::vector<DeploymentRecord>> ListDeployments(bool active_only) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kDeploymentColumns +
                     " FROM deployments WHERE ?1 = 0 OR state IN ('scheduled', 'running') ORDER BY created_at, id"));
    c->Bind(1, active_only);
    std::vector<DeploymentRecord> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      out.push_back(ReadDeployment(*c));
    }
    return out;
  }

  ExpectedVoid SetDeploymentState(const std::string& id, const std::string& state, const std::string& reason) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("UPDATE deployments SET state = ?2, reason = ?3 WHERE id = ?1"));
    c->Bind(1, id).Bind(2, state).Bind(3, reason);
    return c->Run();
  }

  ExpectedVoid ResumeDeployment(const std::string& id, uint32_t failed, uint32_t finished) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("UPDATE deployments SET state = 'running', reason = '', resumed_failed = ?2, "
                     "resumed_finished = ?3 WHERE id = ?1"));
    c->Bind(1, id).Bind(2, static_cast<int64_t>(failed)).Bind(3, static_cast<int64_t>(finished));
    return c->Run();
  }

  ExpectedVoid CreateJob(const JobRecord& job) override {
    std::lock_guard lock(mutex_);
    return InsertJob(job);
  }

  Expected<JobRecord> GetJob(const std::string& id) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?1"));
    c->Bind(1, id);
    PARC_ASSIGN(row, c->Step());
    if (!row) return Fail(Errc::kNotFound, "no job " + id);
    return ReadJob(*c);
  }

  Expected<std::vector<JobRecord>> JobsOfDeployment(const std::string& deployment_id) override {
    return Jobs(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE deployment_id = ?1 ORDER BY seq", deployment_id);
  }

  Expected<std::vector<JobRecord>> OpenJobsOfHost(const std::string& host_id) override {
    return Jobs(std::string("SELECT ") + kJobColumns +
                    " FROM jobs WHERE host_id = ?1 AND state NOT IN ('succeeded', 'failed', 'canceled') "
                    "ORDER BY created_at, seq",
                host_id);
  }

  Expected<std::vector<JobRecord>> PendingSingleJobs() override {
    return Jobs(std::string("SELECT ") + kJobColumns +
                    " FROM jobs WHERE deployment_id = ?1 AND state = 'pending' ORDER BY created_at",
                "");
  }

  ExpectedVoid UpdateJob(const JobRecord& j) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("UPDATE jobs SET state = ?2, percent = ?3, message = ?4, output = ?5, point_id = ?6, "
                     "updated_at = ?7 WHERE id = ?1"));
    c->Bind(1, j.id).Bind(2, j.state).Bind(3, static_cast<int64_t>(j.percent)).Bind(4, j.message).Bind(5, j.output);
    c->Bind(6, j.point_id).Bind(7, j.updated_at);
    return c->Run();
  }

  ExpectedVoid ReplaceRollbackPoints(const std::string& host_id, const std::vector<RollbackPointRecord>& points) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      {
        PARC_ASSIGN(c, Q("DELETE FROM rollback_points WHERE host_id = ?1"));
        c->Bind(1, host_id);
        PARC_TRY(c->Run());
      }
      PARC_ASSIGN(c, Q("INSERT OR REPLACE INTO rollback_points(host_id, point_id, job_id, package, action, from_version, "
                       "to_version, created_at, paths, bytes, state, reported_at, target) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
      for (const auto& p : points) {
        c->Reset();
        c->Bind(1, host_id).Bind(2, p.point_id).Bind(3, p.job_id).Bind(4, p.package).Bind(5, p.action);
        c->Bind(6, p.from_version).Bind(7, p.to_version).Bind(8, p.created_at);
        c->Bind(9, static_cast<int64_t>(p.paths)).Bind(10, static_cast<int64_t>(p.bytes)).Bind(11, p.state);
        c->Bind(12, p.reported_at).Bind(13, p.target);
        PARC_TRY(c->Run());
      }
      return {};
    });
  }

  Expected<std::vector<RollbackPointRecord>> ListRollbackPoints(const std::string& host_id) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("SELECT host_id, point_id, job_id, package, action, from_version, to_version, created_at, paths, "
                     "bytes, state, reported_at, target FROM rollback_points WHERE host_id = ?1 ORDER BY created_at, point_id"));
    c->Bind(1, host_id);
    std::vector<RollbackPointRecord> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      RollbackPointRecord p;
      p.host_id = c->Text(0);
      p.point_id = c->Text(1);
      p.job_id = c->Text(2);
      p.package = c->Text(3);
      p.action = c->Text(4);
      p.from_version = c->Text(5);
      p.to_version = c->Text(6);
      p.created_at = c->Int(7);
      p.paths = static_cast<uint64_t>(c->Int(8));
      p.bytes = static_cast<uint64_t>(c->Int(9));
      p.state = c->Text(10);
      p.reported_at = c->Int(11);
      p.target = c->Text(12);
      out.push_back(std::move(p));
    }
    return out;
  }

 private:
  Expected<Cursor> Q(const std::string& sql) {
    auto s = db_.Cached(sql);
    if (!s) return Fail(s.error());
    return Cursor(*s);
  }

  ExpectedVoid InsertJob(const JobRecord& j) { return detail::InsertJob(db_, j); }

  Expected<std::vector<JobRecord>> Jobs(const std::string& sql, const std::string& arg) {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(sql));
    c->Bind(1, arg);
    std::vector<JobRecord> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      out.push_back(ReadJob(*c));
    }
    return out;
  }

  std::mutex mutex_;
  sql::Database db_;
};

}  // namespace

Expected<std::unique_ptr<DeployStore>> OpenSqliteDeployStore(const std::string& path) {
  auto db = sql::Database::Open(path, sql::OpenOptions{.busy_timeout_ms = 30000});
  if (!db) return Fail(db.error().WithContext("opening the parc database for deployments"));
  auto version = db->Prepare("SELECT 1 FROM sqlite_master WHERE name = 'deployments'");
  if (!version) return Fail(version.error());
  auto row = version->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Errc::kFailedPrecondition, "the parc database has no deployment tables (not migrated)");
  return std::unique_ptr<DeployStore>(std::make_unique<SqliteDeployStore>(std::move(*db)));
}

}  // namespace parc::server
