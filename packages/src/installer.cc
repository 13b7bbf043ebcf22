// The transactional installer: checks, rollback point, journal, apply,
// commit, automatic restore on failure and recovery after a crash. The
// algorithm is described in installer.h; the on-disk pieces are in
// install_fsops.cc and the system-facing ones in install_system.cc.
//
// Decisions worth knowing:
// - Installing the version already installed is a successful no-op ("already
//   installed"): no point is recorded, nothing is touched. Repair = remove +
//   install, or a rollback.
// - Refusals (platform, architecture, dependencies, conflicts, downgrade,
//   dependents on remove, unknown owner) are Errc::kFailedPrecondition and
//   nothing was changed. A failure once the change started (a script, dpkg,
//   the file system) is Errc::kIo: the point was restored before returning,
//   and the message names the step and ends with its last output lines.
// - One Installer per state directory at a time: Open() takes an exclusive
//   lock on <state>/packages.lock (waits up to 30 s), which is what makes it
//   safe for Recover() to clean every staging leftover.
// - Upgrades run the new version's pre_install/post_install with
//   PARC_ACTION=upgrade; the old version's remove scripts are not run.
// - Scripts run with /bin/sh, cwd = root, never chrooted: they get PARC_ROOT
//   and must write under it.
// - Depends are checked against installed Parc packages and their provides;
//   a package carrying a .deb leaves its dependencies to dpkg.
// - Config edits are not undone by a later remove (only by rolling back the
//   install point), like dpkg keeps conffiles on remove.
#include "parc/packages/installer.h"

#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <thread>

#include "installer_internal.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/sqlite.h"
#include "parc/common/timeutil.h"
#include "parc/packages/version.h"

namespace parc::pkg {

using namespace detail;

namespace {

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE installed(
  name TEXT PRIMARY KEY,
  version TEXT NOT NULL,
  installed_at INTEGER NOT NULL,
  manifest_json TEXT NOT NULL);
CREATE TABLE rollback_points(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  job_id TEXT NOT NULL,
  package TEXT NOT NULL,
  action TEXT NOT NULL,
  from_version TEXT NOT NULL,
  to_version TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  paths INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL);
CREATE TABLE journal(
  tx TEXT PRIMARY KEY,
  point_id TEXT NOT NULL,
  phase TEXT NOT NULL,          -- 'recording' (nothing applied yet) or 'applying'
  started_at INTEGER NOT NULL);
)sql";

const char* kSearchPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string FindProgram(const std::string& name) {
  for (const char* dir : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return name;
}

std::string Machine() {
  struct utsname u {};
  if (::uname(&u) != 0) return "";
  return u.machine;
}

// True when m (as installed: name, version, provides) satisfies c.
bool Provides(const Manifest& m, const Constraint& c) {
  if (m.name == c.name && Satisfies(m.version, c)) return true;
  for (const auto& p : m.provides) {
    if (p.name != c.name) continue;
    if (c.relation == Relation::kAny) return true;
    if (p.relation == Relation::kEqual && Satisfies(p.version, c)) return true;
  }
  return false;
}

std::string DebFileName(const std::string& package, const std::string& version) {
  std::string v;
  for (char ch : version) v += ch == ':' ? std::string("%3a") : std::string(1, ch);
  return package + "_" + v + ".deb";
}

Error StepError(const std::string& what, const StepOutput& s) {
  std::string how = s.timed_out ? "timed out" : "exited with status " + std::to_string(s.exit_code);
  std::string tail = LastLines(s.output, 10);
  return Error(Errc::kIo, what + " " + how + (tail.empty() ? "" : ":\n" + tail));
}

bool IsUnder(const fs::path& p, const fs::path& dir) {
  auto rel = p.lexically_normal().lexically_relative(dir.lexically_normal());
  return !rel.empty() && *rel.begin() != ".." && *rel.begin() != ".";
}

}  // namespace

struct Installer::Impl {
  fs::path root, state;
  sql::Database db;
  int lock_fd = -1;

  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }

  fs::path PointDir(const std::string& id) const { return state / "rollback" / id; }
  fs::path StagingRoot() const { return UnderRoot(root, "/.parc-staging"); }
  fs::path Host(const std::string& in_system) const { return UnderRoot(root, in_system); }

  // ---- installed db -------------------------------------------------------

  Expected<std::vector<InstalledPackage>> List() {
    auto st = db.Prepare("SELECT name, version, installed_at, manifest_json FROM installed ORDER BY name");
    if (!st) return Fail(st.error());
    std::vector<InstalledPackage> out;
    while (true) {
      auto row = st->Step();
      if (!row) return Fail(row.error());
      if (!*row) break;
      out.push_back({st->Text(0), st->Text(1), st->Int(2), st->Text(3)});
    }
    return out;
  }

  Expected<std::optional<InstalledPackage>> Find(const std::string& name) {
    auto st = db.Prepare("SELECT name, version, installed_at, manifest_json FROM installed WHERE name = ?");
    if (!st) return Fail(st.error());
    st->Bind(1, name);
    auto row = st->Step();
    if (!row) return Fail(row.error());
    if (!*row) return std::optional<InstalledPackage>();
    return std::optional<InstalledPackage>(InstalledPackage{st->Text(0), st->Text(1), st->Int(2), st->Text(3)});
  }

  ExpectedVoid SetInstalledRow(const std::string& package, const std::optional<InstalledPackage>& row) {
    if (!row) {
      auto st = db.Prepare("DELETE FROM installed WHERE name = ?");
      if (!st) return Fail(st.error());
      return st->Bind(1, package).Run();
    }
    auto st = db.Prepare(
        "INSERT INTO installed(name, version, installed_at, manifest_json) VALUES(?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET version = excluded.version, installed_at = excluded.installed_at, "
        "manifest_json = excluded.manifest_json");
    if (!st) return Fail(st.error());
    return st->Bind(1, row->name).Bind(2, row->version).Bind(3, row->installed_at).Bind(4, row->manifest_json).Run();
  }

  Expected<RollbackPoint> LoadPointRow(const std::string& id) {
    auto st = db.Prepare(
        "SELECT id, job_id, package, action, from_version, to_version, created_at, paths, bytes, state "
        "FROM rollback_points WHERE id = ?");
    if (!st) return Fail(st.error());
    st->Bind(1, id);
    auto row = st->Step();
    if (!row) return Fail(row.error());
    if (!*row) return Fail(Errc::kNotFound, "no rollback point " + id);
    return RowToPoint(*st);
  }

  static RollbackPoint RowToPoint(const sql::Statement& st) {
    RollbackPoint p;
    p.id = st.Text(0);
    p.job_id = st.Text(1);
    p.package = st.Text(2);
    p.action = st.Text(3);
    p.from_version = st.Text(4);
    p.to_version = st.Text(5);
    p.created_at = st.Int(6);
    p.paths = static_cast<uint64_t>(st.Int(7));
    p.bytes = static_cast<uint64_t>(st.Int(8));
    p.state = st.Text(9);
    return p;
  }

  ExpectedVoid SetPointState(const std::string& id, const std::string& state) {
    auto st = db.Prepare("UPDATE rollback_points SET state = ? WHERE id = ?");
    if (!st) return Fail(st.error());
    return st->Bind(1, state).Bind(2, id).Run();
  }

  ExpectedVoid DeleteJournal(const std::string& point_id) {
    auto st = db.Prepare("DELETE FROM journal WHERE point_id = ?");
    if (!st) return Fail(st.error());
    return st->Bind(1, point_id).Run();
  }

  // ---- dpkg ---------------------------------------------------------------

  std::vector<std::string> DpkgEnv() const { return {kSearchPath, "LANG=C", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}; }

  std::vector<std::string> DpkgArgs(std::vector<std::string> tail) const {
    std::vector<std::string> argv{FindProgram("dpkg")};
    if (root != "/") {
      argv.push_back("--root=" + root.string());
      // dpkg.cfg's log file is the host's: keep the target's history in the target.
      fs::path log_dir = UnderRoot(root, "/var/log");
      std::error_code ec;
      argv.push_back("--log=" + (fs::is_directory(log_dir, ec) ? (log_dir / "dpkg.log").string() : std::string("/dev/null")));
    }
    if (::geteuid() != 0) argv.push_back("--force-not-root");
    for (auto& t : tail) argv.push_back(std::move(t));
    return argv;
  }

  DebRecord DpkgStatus(const std::string& package) const {
    DebRecord d;
    d.package = package;
    auto s = RunStep("dpkg-query", {FindProgram("dpkg-query"), "--admindir=" + UnderRoot(root, "/var/lib/dpkg").string(),
                                    "-W", "-f=${Status}\t${Version}", package},
                     DpkgEnv(), "/", 60);
    if (s.exit_code != 0) return d;
    auto tab = s.output.find('\t');
    d.status = s.output.substr(0, tab);
    d.version = tab == std::string::npos ? "" : s.output.substr(tab + 1);
    while (!d.version.empty() && (d.version.back() == '\n' || d.version.back() == ' ')) d.version.pop_back();
    d.was_installed = d.status.find(" installed") != std::string::npos;
    return d;
  }

  // Package and Version fields of a .deb file.
  Expected<std::pair<std::string, std::string>> DebIdentity(const fs::path& deb) const {
    auto s = RunStep("dpkg-deb -f", {FindProgram("dpkg-deb"), "-f", deb.string(), "Package", "Version"}, DpkgEnv(), "/", 60);
    if (s.exit_code != 0) return Fail(Errc::kInvalidArgument, "not a Debian package: " + deb.filename().string() + ": " + LastLines(s.output, 3));
    std::string pkg, ver;
    size_t pos = 0;
    while (pos < s.output.size()) {
      size_t nl = s.output.find('\n', pos);
      std::string line = s.output.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? s.output.size() : nl + 1;
      if (line.rfind("Package: ", 0) == 0) pkg = line.substr(9);
      if (line.rfind("Version: ", 0) == 0) ver = line.substr(9);
    }
    if (pkg.empty()) return Fail(Errc::kInvalidArgument, deb.filename().string() + " has no Package field");
    return std::make_pair(pkg, ver);
  }

  // Puts the Debian packages of a point back in their recorded state.
  ExpectedVoid RestoreDebs(const PointData& p, std::vector<StepOutput>& steps) {
    for (const auto& d : p.debs) {
      DebRecord now = DpkgStatus(d.package);
      if (!d.was_installed) {
        if (now.status.empty() || now.status.find("not-installed") != std::string::npos) continue;
        auto s = RunStep("dpkg --purge " + d.package, DpkgArgs({"--purge", d.package}), DpkgEnv(), "/", 600);
        steps.push_back(s);
        if (s.exit_code != 0) return Fail(StepError("dpkg --purge " + d.package, s));
        continue;
      }
      if (now.was_installed && now.version == d.version) continue;
      fs::path saved = state / "native" / DebFileName(d.package, d.version);
      if (!PathExists(saved))
        return Fail(Errc::kNotFound, "the rollback point needs the Debian package " + d.package + " " + d.version +
                                         ", but its .deb is no longer available (" + saved.string() +
                                         "); reinstall that version by hand or from the server");
      auto s = RunStep("dpkg -i " + saved.filename().string(), DpkgArgs({"-i", saved.string()}), DpkgEnv(), "/", 600);
      steps.push_back(s);
      if (s.exit_code != 0) return Fail(StepError("dpkg -i " + saved.filename().string(), s));
    }
    return {};
  }

  // ---- transactions -------------------------------------------------------

  // Point row ("open") and journal row ("recording") in one transaction.
  Expected<PointData> Begin(const std::string& action, const std::string& package, const std::string& job_id,
                            const std::string& from, const std::string& to) {
    PointData p;
    p.id = RandomUuid();
    p.job_id = job_id;
    p.package = package;
    p.action = action;
    p.from_version = from;
    p.to_version = to;
    p.created_at = NowUnix();
    auto r = db.Transaction([&]() -> ExpectedVoid {
      auto st = db.Prepare(
          "INSERT INTO rollback_points(id, job_id, package, action, from_version, to_version, created_at, state) "
          "VALUES(?, ?, ?, ?, ?, ?, ?, 'open')");
      if (!st) return Fail(st.error());
      if (auto x = st->Bind(1, p.id).Bind(2, job_id).Bind(3, package).Bind(4, action).Bind(5, from).Bind(6, to)
                       .Bind(7, p.created_at).Run();
          !x)
        return x;
      auto j = db.Prepare("INSERT INTO journal(tx, point_id, phase, started_at) VALUES(?, ?, 'recording', ?)");
      if (!j) return Fail(j.error());
      return j->Bind(1, p.id).Bind(2, p.id).Bind(3, p.created_at).Run();
    });
    if (!r) return Fail(r.error());
    if (auto e = EnsureDirectory(PointDir(p.id) / "data", 0700); !e) return Fail(e.error());
    return p;
  }

  // Records every path (and its missing ancestors) into the point, writes
  // point.json, fsyncs, then journals "applying". After this returns, the
  // change may start.
  ExpectedVoid RecordAndArm(PointData& p, const std::set<std::pair<bool, std::string>>& wanted,
                            const std::string& crash_at = "") {
    std::set<std::pair<bool, std::string>> all = wanted;
    for (const auto& [in_state, path] : wanted) {
      fs::path rel = in_state ? fs::path(path) : fs::path(path).relative_path();
      fs::path acc;
      for (auto it = rel.begin(); it != rel.end(); ++it) {
        if (std::next(it) == rel.end()) break;
        acc /= *it;
        // (fs::path("/") / acc rather than "/" + string: g++ 12 -O3 warns falsely on the latter.)
        std::string ancestor = in_state ? acc.string() : (fs::path("/") / acc).string();
        fs::path host = in_state ? state / acc : Host(ancestor);
        std::error_code ec;
        if (!fs::exists(fs::symlink_status(host, ec))) all.insert({in_state, ancestor});
      }
    }
    fs::path dir = PointDir(p.id);
    size_t index = 0;
    for (const auto& [in_state, path] : all) {
      fs::path host = in_state ? state / path : Host(path);
      auto r = RecordPath(host, path, in_state, dir, index++, p.bytes);
      if (!r) return Fail(r.error().WithContext("recording the rollback point"));
      p.paths.push_back(std::move(*r));
      // Test-only fault injection: die with the point half written.
      if (crash_at == "recording" && index == all.size() / 2) ::raise(SIGKILL);
    }
    if (auto w = WritePoint(dir, p); !w) return w;
    return db.Transaction([&]() -> ExpectedVoid {
      auto st = db.Prepare("UPDATE rollback_points SET paths = ?, bytes = ? WHERE id = ?");
      if (!st) return Fail(st.error());
      if (auto x = st->Bind(1, static_cast<int64_t>(p.paths.size())).Bind(2, static_cast<int64_t>(p.bytes)).Bind(3, p.id).Run(); !x)
        return x;
      auto j = db.Prepare("UPDATE journal SET phase = 'applying' WHERE point_id = ?");
      if (!j) return Fail(j.error());
      return j->Bind(1, p.id).Run();
    });
  }

  // Puts a point back on the system (debs, then paths). Idempotent.
  ExpectedVoid Restore(const PointData& p, bool remove_created_trees, std::vector<std::string>& notes,
                       std::vector<StepOutput>& steps) {
    if (auto r = RestoreDebs(p, steps); !r) return r;
    // Ancestors a point needs but which went away since are created plainly.
    for (const auto& r : p.paths) {
      if (!r.existed) continue;
      std::error_code ec;
      fs::create_directories(HostPath(root, state, r).parent_path(), ec);
    }
    return RestorePaths(root, state, PointDir(p.id), p.paths, remove_created_trees, notes);
  }

  // A change failed: restore its point, mark it rolled back, drop the journal.
  Error Abort(const PointData& p, const Error& cause, std::vector<StepOutput>& steps) {
    std::vector<std::string> notes;
    auto r = Restore(p, true, notes, steps);
    if (!r)
      return Error(Errc::kIo, cause.message() + "\nrestoring the previous state failed too: " + r.error().message() +
                                  "\nthe transaction stays journaled; run `parc-agent package recover`");
    auto c = db.Transaction([&]() -> ExpectedVoid {
      if (auto x = SetPointState(p.id, "rolled-back"); !x) return x;
      return DeleteJournal(p.id);
    });
    if (!c) return Error(Errc::kIo, cause.message() + "\n(previous state restored, but the journal could not be closed: " +
                                        c.error().message() + ")");
    // A rolled-back point cannot be restored later: its saved copies go.
    std::error_code ec;
    fs::remove_all(PointDir(p.id), ec);
    return Error(cause.code(), cause.message() + "\nthe previous state was restored (rollback point " + p.id + ")");
  }

  ExpectedVoid Commit(const PointData& p, const std::optional<InstalledPackage>& row, const std::string& restored_point) {
    return db.Transaction([&]() -> ExpectedVoid {
      if (auto x = SetInstalledRow(p.package, row); !x) return x;
      if (auto x = SetPointState(p.id, "committed"); !x) return x;
      if (!restored_point.empty())
        if (auto x = SetPointState(restored_point, "restored"); !x) return x;
      return DeleteJournal(p.id);
    });
  }

  void CleanStaging(const fs::path& staging) {
    std::error_code ec;
    if (!staging.empty()) fs::remove_all(staging, ec);
    ::rmdir(StagingRoot().c_str());  // only when empty
  }

  StepOutput RunScript(const std::string& key, const fs::path& script, const std::string& package,
                       const std::string& version, const std::string& action, uint32_t timeout) {
    std::vector<std::string> env{kSearchPath, "LANG=C", "PARC_ROOT=" + root.string(), "PARC_PACKAGE=" + package,
                                 "PARC_VERSION=" + version, "PARC_ACTION=" + action};
    return RunStep(key, {"/bin/sh", script.string()}, env, root, timeout == 0 ? 300 : timeout);
  }

};

// ---- public API -------------------------------------------------------------

Installer::Installer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Installer::~Installer() = default;

Expected<std::unique_ptr<Installer>> Installer::Open(const fs::path& root, const fs::path& state) {
  auto impl = std::make_unique<Impl>();
  std::error_code ec;
  impl->root = root.empty() ? fs::path("/") : fs::absolute(root, ec).lexically_normal();
  if (impl->root.string().size() > 1 && impl->root.string().back() == '/')
    impl->root = impl->root.string().substr(0, impl->root.string().size() - 1);
  impl->state = fs::absolute(state, ec).lexically_normal();
  if (!fs::is_directory(impl->root, ec)) return Fail(Errc::kNotFound, "target root " + impl->root.string() + " is not a directory");
  if (auto r = EnsureDirectory(impl->state, 0700); !r) return Fail(r.error());
  if (auto r = EnsureDirectory(impl->state / "rollback", 0700); !r) return Fail(r.error());
  (void)FsyncPath(impl->state);

  fs::path lock = impl->state / "packages.lock";
  impl->lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) return Fail(ErrnoError(errno, "cannot open " + lock.string()));
  for (int waited_ms = 0;; waited_ms += 100) {
    if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK && errno != EINTR) return Fail(ErrnoError(errno, "cannot lock " + lock.string()));
    if (waited_ms >= 30'000)
      return Fail(Errc::kUnavailable, "another Parc installer is working with " + impl->state.string() + " (lock " +
                                          lock.string() + " held for 30 s)");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  sql::OpenOptions o;
  o.synchronous_full = true;
  auto db = sql::Database::Open(impl->state / "packages.db", o);
  if (!db) return Fail(db.error());
  impl->db = std::move(*db);
  if (auto r = sql::Migrate(impl->db, {kSchemaV1}); !r) return Fail(r.error().WithContext("package database"));
  return std::unique_ptr<Installer>(new Installer(std::move(impl)));
}

fs::path Installer::NewStagingDir() const {
  std::error_code ec;
  fs::create_directories(impl_->StagingRoot(), ec);
  ::chmod(impl_->StagingRoot().c_str(), 0700);
  return impl_->StagingRoot() / RandomToken(8);
}

Expected<std::vector<InstalledPackage>> Installer::ListInstalled() { return impl_->List(); }
Expected<std::optional<InstalledPackage>> Installer::Find(const std::string& name) { return impl_->Find(name); }

Expected<std::vector<RollbackPoint>> Installer::ListRollbackPoints() {
  auto st = impl_->db.Prepare(
      "SELECT id, job_id, package, action, from_version, to_version, created_at, paths, bytes, state "
      "FROM rollback_points ORDER BY seq");
  if (!st) return Fail(st.error());
  std::vector<RollbackPoint> out;
  while (true) {
    auto row = st->Step();
    if (!row) return Fail(row.error());
    if (!*row) break;
    out.push_back(Impl::RowToPoint(*st));
  }
  return out;
}

Expected<std::vector<RollbackPoint>> Installer::Recover() {
  auto& I = *impl_;
  std::vector<std::pair<std::string, std::string>> rows;
  {
    auto st = I.db.Prepare("SELECT point_id, phase FROM journal ORDER BY started_at");
    if (!st) return Fail(st.error());
    while (true) {
      auto row = st->Step();
      if (!row) return Fail(row.error());
      if (!*row) break;
      rows.emplace_back(st->Text(0), st->Text(1));
    }
  }
  std::vector<RollbackPoint> restored;
  for (const auto& [id, phase] : rows) {
    if (phase == "applying") {
      auto p = ReadPoint(I.PointDir(id));
      if (!p) return Fail(p.error().WithContext("recovering transaction " + id));
      std::vector<std::string> notes;
      std::vector<StepOutput> steps;
      if (auto r = I.Restore(*p, true, notes, steps); !r)
        return Fail(r.error().WithContext("recovering transaction " + id + " (" + p->action + " " + p->package + ")"));
    } else {
      // Interrupted while recording: nothing was applied; the partial point goes.
      std::error_code ec;
      fs::remove_all(I.PointDir(id), ec);
    }
    auto c = I.db.Transaction([&]() -> ExpectedVoid {
      if (auto x = I.SetPointState(id, "rolled-back"); !x) return x;
      return I.DeleteJournal(id);
    });
    if (!c) return Fail(c.error());
    std::error_code ec;
    fs::remove_all(I.PointDir(id), ec);
    auto rp = I.LoadPointRow(id);
    if (rp) restored.push_back(*rp);
  }
  // The lock is ours: no other installer can be staging right now.
  std::error_code ec;
  fs::remove_all(I.StagingRoot(), ec);
  return restored;
}

namespace {

// Manifests of the installed packages, parsed once per operation.
struct InstalledSet {
  std::vector<std::pair<InstalledPackage, Manifest>> items;
};

Expected<InstalledSet> ParseInstalled(const std::vector<InstalledPackage>& rows) {
  InstalledSet s;
  for (const auto& r : rows) {
    auto m = ParseManifest(r.manifest_json);
    if (!m) return Fail(m.error().WithContext("installed manifest of " + r.name));
    s.items.emplace_back(r, std::move(*m));
  }
  return s;
}

std::string UnitPathIn(const fs::path& root, const std::string& unit, const Manifest& m, const fs::path& staging,
                       std::string* text) {
  for (const char* dir : {"/etc/systemd/system/", "/usr/lib/systemd/system/", "/lib/systemd/system/"}) {
    std::string in_system = dir + unit;
    for (const auto& f : m.files) {
      if (f.path == in_system && f.type == EntryType::kFile && !staging.empty()) {
        auto t = ReadFile(staging / FileMember(f));
        if (t) {
          *text = *t;
          return in_system;
        }
      }
    }
    auto t = ReadFile(UnderRoot(root, in_system));
    if (t) {
      *text = *t;
      return in_system;
    }
  }
  return "";
}

}  // namespace

Expected<InstallResult> Installer::Install(const OpenedPackage& package, const fs::path& staging,
                                           const InstallOptions& options, const StepProgress& progress) {
  auto& I = *impl_;
  const Manifest& m = package.manifest;
  auto say = [&](const std::string& phase, int pct) {
    if (progress) progress(phase, pct);
  };
  auto refuse = [&](Errc code, const std::string& why) {
    I.CleanStaging(staging);
    return Fail(code, why);
  };
  if (!IsUnder(staging, I.StagingRoot()))
    return Fail(Errc::kInvalidArgument, "staging " + staging.string() + " is not inside " + I.StagingRoot().string() +
                                            " (use Installer::NewStagingDir)");
  if (std::error_code ec; !fs::is_directory(staging, ec)) return Fail(Errc::kNotFound, "staging " + staging.string() + " does not exist");
  say("checking", 0);

  if (!m.platforms.empty() && std::find(m.platforms.begin(), m.platforms.end(), "linux") == m.platforms.end())
    return refuse(Errc::kFailedPrecondition, m.Id() + " is not for Linux (platforms: " + [&] {
      std::string s;
      for (const auto& p : m.platforms) s += (s.empty() ? "" : ", ") + p;
      return s;
    }() + ")");
  const std::string machine = Machine();
  if (!m.architectures.empty() && std::find(m.architectures.begin(), m.architectures.end(), "all") == m.architectures.end() &&
      std::find(m.architectures.begin(), m.architectures.end(), machine) == m.architectures.end())
    return refuse(Errc::kFailedPrecondition, m.Id() + " is not built for " + machine);

  auto rows = I.List();
  if (!rows) return Fail(rows.error());
  auto set = ParseInstalled(*rows);
  if (!set) return Fail(set.error());
  const Manifest* old = nullptr;
  std::optional<InstalledPackage> old_row;
  for (const auto& [row, man] : set->items)
    if (row.name == m.name) {
      old = &man;
      old_row = row;
    }

  if (old) {
    int cmp = CompareVersions(m.version, old->version);
    if (cmp == 0) {
      I.CleanStaging(staging);
      InstallResult r;
      r.message = m.name + " " + m.version + " is already installed";
      return r;
    }
    if (cmp < 0 && !options.allow_downgrade)
      return refuse(Errc::kFailedPrecondition, "refusing to downgrade " + m.name + " from " + old->version + " to " +
                                                   m.version + " (an admin must order a rollback: allow_downgrade)");
  }

  const bool carries_deb = std::any_of(m.native.begin(), m.native.end(), [](const NativePayload& n) { return n.kind == NativeKind::kDeb; });
  if (!carries_deb) {
    for (const auto& d : m.depends) {
      bool ok = false;
      for (const auto& [row, man] : set->items)
        if (row.name != m.name && Provides(man, d)) ok = true;
      if (!ok) return refuse(Errc::kFailedPrecondition, m.Id() + " depends on " + d.String() + ", which is not installed");
    }
  }
  for (const auto& [row, man] : set->items) {
    if (row.name == m.name) continue;
    for (const auto& c : m.conflicts)
      if (Provides(man, c)) return refuse(Errc::kFailedPrecondition, m.Id() + " conflicts with installed " + man.Id() + " (" + c.String() + ")");
    for (const auto& c : man.conflicts)
      if (Provides(m, c)) return refuse(Errc::kFailedPrecondition, "installed " + man.Id() + " conflicts with " + m.Id() + " (" + c.String() + ")");
    if (old) {
      for (const auto& d : man.depends) {
        if (!Provides(*old, d) || Provides(m, d)) continue;
        bool other = false;
        for (const auto& [r2, m2] : set->items)
          if (r2.name != m.name && Provides(m2, d)) other = true;
        if (!other)
          return refuse(Errc::kFailedPrecondition, "installed " + man.Id() + " depends on " + d.String() + ", which " + m.Id() + " no longer satisfies");
      }
    }
  }

  // Owners are resolved in the target's own account files, before anything changes.
  Accounts accounts = LoadAccounts(I.root);
  std::vector<std::pair<uint32_t, uint32_t>> owners;
  for (const auto& f : m.files) {
    auto u = accounts.Uid(f.owner);
    if (!u) return refuse(Errc::kFailedPrecondition, f.path + ": " + u.error().message());
    auto g = accounts.Gid(f.group);
    if (!g) return refuse(Errc::kFailedPrecondition, f.path + ": " + g.error().message());
    owners.emplace_back(*u, *g);
  }

  // ---- the change set ----
  std::set<std::pair<bool, std::string>> record;
  std::set<std::string> new_paths;
  for (const auto& f : m.files) {
    record.insert({false, f.path});
    new_paths.insert(f.path);
  }
  std::vector<const FileEntry*> removed;  // of the old version, gone from the new one
  if (old)
    for (const auto& f : old->files)
      if (!new_paths.count(f.path)) {
        removed.push_back(&f);
        record.insert({false, f.path});
      }
  std::sort(removed.begin(), removed.end(), [](const FileEntry* a, const FileEntry* b) { return a->path > b->path; });
  for (const auto& c : m.config) record.insert({false, c.file});

  struct Link {
    std::string path, target;
  };
  std::vector<Link> links_to_create;
  std::vector<std::string> links_to_remove;
  std::vector<std::string> notes;
  std::vector<ServiceRecord> services;
  std::set<std::string> enabled_units;
  for (const auto& s : m.services) {
    services.push_back({s.unit, ServiceState(I.root, s.unit)});
    if (!s.enable) continue;
    enabled_units.insert(s.unit);
    std::string text;
    std::string unit_path = UnitPathIn(I.root, s.unit, m, staging, &text);
    if (unit_path.empty())
      return refuse(Errc::kFailedPrecondition, "service " + s.unit + " not found in the package nor in " +
                                                   I.root.string() + "/{etc,usr/lib,lib}/systemd/system");
    if (services.back().state == "masked") notes.push_back(s.unit + " is masked: left masked");
    auto wanted = ParseWantedBy(text);
    if (wanted.empty()) notes.push_back(s.unit + " has no WantedBy=: nothing to enable");
    for (const auto& t : wanted) {
      Link l{"/etc/systemd/system/" + t + ".wants/" + s.unit, unit_path};
      links_to_create.push_back(l);
      record.insert({false, l.path});
    }
  }
  if (old)
    for (const auto& s : old->services)
      if (s.enable && !enabled_units.count(s.unit)) {
        services.push_back({s.unit, ServiceState(I.root, s.unit)});
        for (const auto& l : WantsLinks(I.root, s.unit)) {
          links_to_remove.push_back(l);
          record.insert({false, l});
        }
      }

  // Maintainer scripts kept in the state dir for the remove of this version.
  const std::string scripts_rel = "scripts/" + m.name;
  record.insert({true, scripts_rel});
  for (const auto& [key, s] : m.scripts) record.insert({true, scripts_rel + "/" + key});
  if (old)
    for (const auto& [key, s] : old->scripts) record.insert({true, scripts_rel + "/" + key});

  struct DebToInstall {
    fs::path staged;
    std::string package, version, sha256;
  };
  std::vector<DebToInstall> debs;
  for (const auto& n : m.native) {
    if (n.kind != NativeKind::kDeb) return refuse(Errc::kFailedPrecondition, m.Id() + " carries a Windows installer (" + n.name + ")");
    fs::path staged = staging / NativeMember(n);
    auto id = I.DebIdentity(staged);
    if (!id) return refuse(Errc::kInvalidArgument, id.error().message());
    debs.push_back({staged, id->first, id->second, n.sha256});
  }

  // ---- rollback point, journal ----
  say("recording rollback point", 10);
  std::string action = old ? (CompareVersions(m.version, old->version) > 0 ? "upgrade" : "downgrade") : "install";
  auto pd = I.Begin(action == "downgrade" ? "upgrade" : action, m.name, options.job_id, old ? old->version : "", m.version);
  if (!pd) return refuse(Errc::kIo, pd.error().message());
  pd->services = services;
  pd->installed = old_row;
  for (const auto& d : debs) pd->debs.push_back(I.DpkgStatus(d.package));
  if (auto r = I.RecordAndArm(*pd, record, options.crash_at); !r) {
    // Nothing applied yet: the point goes away as Recover() would drop it.
    std::vector<StepOutput> none;
    Error e = I.Abort(*pd, r.error(), none);
    I.CleanStaging(staging);
    return Fail(e);
  }

  InstallResult result;
  const std::string script_action = old ? "upgrade" : "install";
  auto fail = [&](const Error& e) {
    Error out = I.Abort(*pd, Error(e.code(), "installing " + m.Id() + " failed: " + e.message()), result.steps);
    I.CleanStaging(staging);
    return Fail(out);
  };
  auto run_script = [&](const std::string& key) -> ExpectedVoid {
    auto it = m.scripts.find(key);
    if (it == m.scripts.end()) return {};
    say(key, 0);
    auto s = I.RunScript(key, staging / ScriptMember(it->second), m.name, m.version, script_action, m.script_timeout_seconds);
    result.steps.push_back(s);
    if (s.exit_code != 0 || s.timed_out) return Fail(StepError(key, s));
    return {};
  };

  say("applying", 30);
  if (auto r = run_script("pre_install"); !r) return fail(r.error());

  std::set<fs::path> dirty_dirs;
  for (const FileEntry* f : removed) {
    fs::path host = I.Host(f->path);
    dirty_dirs.insert(host.parent_path());
    if (f->type == EntryType::kDirectory) {
      if (::rmdir(host.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
        return fail(ErrnoError(errno, "cannot remove " + host.string()));
    } else if (::unlink(host.c_str()) != 0 && errno != ENOENT) {
      return fail(ErrnoError(errno, "cannot remove " + host.string()));
    }
  }

  // Entries in path order: a directory comes before what it holds.
  std::vector<size_t> order(m.files.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return m.files[a].path < m.files[b].path; });
  size_t placed = 0;
  const size_t crash_after = std::max<size_t>(1, order.size() / 2);
  for (size_t i : order) {
    const FileEntry& f = m.files[i];
    const auto [uid, gid] = owners[i];
    fs::path host = I.Host(f.path);
    std::error_code ec;
    fs::create_directories(host.parent_path(), ec);
    if (ec) return fail(Error(Errc::kIo, "cannot create " + host.parent_path().string() + ": " + ec.message()));
    dirty_dirs.insert(host.parent_path());
    if (f.type == EntryType::kDirectory) {
      struct stat st {};
      if (::lstat(host.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        if (::unlink(host.c_str()) != 0) return fail(ErrnoError(errno, "cannot replace " + host.string()));
      }
      if (::mkdir(host.c_str(), 0700) != 0 && errno != EEXIST) return fail(ErrnoError(errno, "cannot create " + host.string()));
      if (::lchown(host.c_str(), uid, gid) != 0 || ::chmod(host.c_str(), f.mode) != 0)
        return fail(ErrnoError(errno, "cannot set owner/mode of " + host.string()));
    } else {
      fs::path staged = staging / FileMember(f);
      if (::lchown(staged.c_str(), uid, gid) != 0) return fail(ErrnoError(errno, "cannot set owner of " + staged.string()));
      if (f.type == EntryType::kFile && ::chmod(staged.c_str(), f.mode) != 0)
        return fail(ErrnoError(errno, "cannot set mode of " + staged.string()));
      if (f.type == EntryType::kFile)
        if (auto s = FsyncPath(staged); !s) return fail(s.error());
      if (::rename(staged.c_str(), host.c_str()) != 0) return fail(ErrnoError(errno, "cannot put " + f.path + " in place"));
    }
    ++placed;
    // Test-only fault injection (PARC_CRASH_AT in the agent CLI): die with half the entries in place.
    if (options.crash_at == "mid-apply" && placed == crash_after) ::raise(SIGKILL);
  }
  if (options.crash_at == "mid-apply") ::raise(SIGKILL);  // a package with no entries

  say("configuring", 60);
  for (const auto& c : m.config) {
    fs::path host = I.Host(c.file);
    auto text = PathExists(host) ? ReadFile(host) : Expected<std::string>(std::string());
    if (!text) return fail(text.error());
    std::error_code ec;
    fs::create_directories(host.parent_path(), ec);
    if (auto r = ReplaceFileKeepingMeta(host, EditConfigText(*text, c.separator, c.set)); !r) return fail(r.error());
  }

  for (const auto& l : links_to_remove)
    if (::unlink(I.Host(l).c_str()) != 0 && errno != ENOENT) return fail(ErrnoError(errno, "cannot disable " + l));
  for (const auto& l : links_to_create) {
    fs::path host = I.Host(l.path);
    std::error_code ec;
    fs::create_directories(host.parent_path(), ec);
    ::unlink(host.c_str());
    if (::symlink(l.target.c_str(), host.c_str()) != 0) return fail(ErrnoError(errno, "cannot enable " + l.path));
    dirty_dirs.insert(host.parent_path());
  }

  // Kept scripts: exactly the new version's.
  {
    fs::path dir = I.state / scripts_rel;
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (auto r = EnsureDirectory(dir, 0700); !r) return fail(r.error());
    for (const auto& [key, s] : m.scripts) {
      auto text = ReadFile(staging / ScriptMember(s));
      if (!text) return fail(text.error());
      if (auto r = WriteFileAtomic(dir / key, *text, 0700); !r) return fail(r.error());
    }
    dirty_dirs.insert(dir);
  }

  for (const auto& d : debs) {
    say("dpkg", 70);
    // Kept so that a later rollback can put this version back.
    fs::path keep = I.state / "native" / DebFileName(d.package, d.version);
    if (auto r = EnsureDirectory(keep.parent_path(), 0700); !r) return fail(r.error());
    auto bytes = ReadFile(d.staged);
    if (!bytes) return fail(bytes.error());
    if (auto r = WriteFileAtomic(keep, *bytes, 0600); !r) return fail(r.error());
    if (auto r = WriteFileAtomic(keep.parent_path() / (d.sha256 + ".id"), d.package + "\t" + d.version + "\n", 0600); !r)
      return fail(r.error());
    std::string what = "dpkg -i " + d.staged.filename().string();
    auto s = RunStep(what, I.DpkgArgs({"-i", d.staged.string()}), I.DpkgEnv(), "/", std::max<uint32_t>(m.script_timeout_seconds, 600));
    result.steps.push_back(s);
    if (s.exit_code != 0 || s.timed_out) return fail(StepError(what, s));
  }

  say("post_install", 80);
  if (auto r = run_script("post_install"); !r) return fail(r.error());

  if (options.live && !m.services.empty()) {
    auto s = RunStep("systemctl daemon-reload", {FindProgram("systemctl"), "daemon-reload"}, {kSearchPath}, "/", 120);
    result.steps.push_back(s);
    if (s.exit_code != 0) return fail(StepError(s.what, s));
    for (const auto& sv : m.services) {
      if (!sv.restart) continue;
      auto r = RunStep("systemctl restart " + sv.unit, {FindProgram("systemctl"), "restart", sv.unit}, {kSearchPath}, "/", 300);
      result.steps.push_back(r);
      if (r.exit_code != 0) return fail(StepError(r.what, r));
    }
  }

  for (const auto& d : dirty_dirs)
    if (std::error_code ec; fs::is_directory(d, ec)) (void)FsyncPath(d);

  // Test-only fault injection: everything applied, nothing committed.
  if (options.crash_at == "before-commit") ::raise(SIGKILL);

  say("committing", 95);
  InstalledPackage row{m.name, m.version, NowUnix(), package.manifest_bytes};
  if (auto c = I.Commit(*pd, row, ""); !c) return fail(c.error());
  I.CleanStaging(staging);

  auto rp = I.LoadPointRow(pd->id);
  if (rp) result.point = *rp;
  result.message = (action == "install" ? "installed " : action == "upgrade" ? "upgraded " : "downgraded ") + m.name + " " +
                   m.version + (old ? " (was " + old->version + ")" : "");
  for (const auto& n : notes) result.message += "\nnote: " + n;
  say("done", 100);
  return result;
}

Expected<InstallResult> Installer::Remove(const std::string& name, const InstallOptions& options) {
  auto& I = *impl_;
  auto rows = I.List();
  if (!rows) return Fail(rows.error());
  auto set = ParseInstalled(*rows);
  if (!set) return Fail(set.error());
  const Manifest* m = nullptr;
  std::optional<InstalledPackage> row;
  for (const auto& [r, man] : set->items)
    if (r.name == name) {
      m = &man;
      row = r;
    }
  if (!m) return Fail(Errc::kNotFound, name + " is not installed");
  for (const auto& [r, man] : set->items) {
    if (r.name == name) continue;
    for (const auto& d : man.depends) {
      if (!Provides(*m, d)) continue;
      bool other = false;
      for (const auto& [r2, m2] : set->items)
        if (r2.name != name && r2.name != r.name && Provides(m2, d)) other = true;
      if (!other) return Fail(Errc::kFailedPrecondition, "cannot remove " + name + ": installed " + man.Id() + " depends on " + d.String());
    }
  }

  std::set<std::pair<bool, std::string>> record;
  for (const auto& f : m->files) record.insert({false, f.path});
  for (const auto& c : m->config) record.insert({false, c.file});
  std::vector<ServiceRecord> services;
  std::vector<std::string> links;
  for (const auto& s : m->services) {
    services.push_back({s.unit, ServiceState(I.root, s.unit)});
    if (!s.enable) continue;
    for (const auto& l : WantsLinks(I.root, s.unit)) {
      links.push_back(l);
      record.insert({false, l});
    }
  }
  const std::string scripts_rel = "scripts/" + name;
  record.insert({true, scripts_rel});
  for (const auto& [key, s] : m->scripts) record.insert({true, scripts_rel + "/" + key});

  // Debian packages this version installed: named by the sidecar written at install.
  std::vector<std::string> deb_names;
  for (const auto& n : m->native) {
    if (n.kind != NativeKind::kDeb) continue;
    auto id = ReadFile(I.state / "native" / (n.sha256 + ".id"));
    if (!id) return Fail(Errc::kNotFound, "cannot tell which Debian package " + n.name + " installed: " + id.error().message());
    std::string pkg = id->substr(0, id->find('\t'));
    if (std::find(deb_names.begin(), deb_names.end(), pkg) == deb_names.end()) deb_names.push_back(pkg);
  }

  auto pd = I.Begin("remove", name, options.job_id, m->version, "");
  if (!pd) return Fail(pd.error());
  pd->services = services;
  pd->installed = row;
  for (const auto& d : deb_names) pd->debs.push_back(I.DpkgStatus(d));
  if (auto r = I.RecordAndArm(*pd, record); !r) {
    std::vector<StepOutput> none;
    return Fail(I.Abort(*pd, r.error(), none));
  }

  InstallResult result;
  auto fail = [&](const Error& e) { return Fail(I.Abort(*pd, Error(e.code(), "removing " + m->Id() + " failed: " + e.message()), result.steps)); };
  auto run_script = [&](const std::string& key) -> ExpectedVoid {
    if (!m->scripts.count(key)) return {};
    fs::path script = I.state / scripts_rel / key;
    if (!PathExists(script)) return Fail(Errc::kNotFound, key + " of " + m->Id() + " is missing from " + script.parent_path().string());
    auto s = I.RunScript(key, script, m->name, m->version, "remove", m->script_timeout_seconds);
    result.steps.push_back(s);
    if (s.exit_code != 0 || s.timed_out) return Fail(StepError(key, s));
    return {};
  };

  if (auto r = run_script("pre_remove"); !r) return fail(r.error());
  for (const auto& l : links)
    if (::unlink(I.Host(l).c_str()) != 0 && errno != ENOENT) return fail(ErrnoError(errno, "cannot disable " + l));
  for (const auto& d : deb_names) {
    auto s = RunStep("dpkg --remove " + d, I.DpkgArgs({"--remove", d}), I.DpkgEnv(), "/", 600);
    result.steps.push_back(s);
    if (s.exit_code != 0 || s.timed_out) return fail(StepError(s.what, s));
  }
  std::vector<const FileEntry*> files;
  for (const auto& f : m->files) files.push_back(&f);
  std::sort(files.begin(), files.end(), [](const FileEntry* a, const FileEntry* b) { return a->path > b->path; });
  for (const FileEntry* f : files) {
    fs::path host = I.Host(f->path);
    if (f->type == EntryType::kDirectory) {
      // Directories still holding other things stay.
      if (::rmdir(host.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
        return fail(ErrnoError(errno, "cannot remove " + host.string()));
    } else if (::unlink(host.c_str()) != 0 && errno != ENOENT) {
      return fail(ErrnoError(errno, "cannot remove " + host.string()));
    }
  }
  if (auto r = run_script("post_remove"); !r) return fail(r.error());
  {
    std::error_code ec;
    fs::remove_all(I.state / scripts_rel, ec);
  }
  if (auto c = I.Commit(*pd, std::nullopt, ""); !c) return fail(c.error());
  auto rp = I.LoadPointRow(pd->id);
  if (rp) result.point = *rp;
  result.message = "removed " + m->Id();
  return result;
}

Expected<InstallResult> Installer::RollbackTo(const std::string& point_id, const InstallOptions& options) {
  auto& I = *impl_;
  auto target = I.LoadPointRow(point_id);
  if (!target) return Fail(target.error());
  if (target->state != "committed" && target->state != "restored")
    return Fail(Errc::kFailedPrecondition, "rollback point " + point_id + " is " + target->state +
                                               ": only a committed change can be rolled back");
  auto p = ReadPoint(I.PointDir(point_id));
  if (!p) return Fail(p.error());
  auto cur = I.Find(p->package);
  if (!cur) return Fail(cur.error());

  std::set<std::pair<bool, std::string>> record;
  for (const auto& r : p->paths) record.insert({r.in_state, r.path});
  auto pd = I.Begin("rollback", p->package, options.job_id, *cur ? (*cur)->version : "", p->from_version);
  if (!pd) return Fail(pd.error());
  pd->installed = *cur;
  pd->services = p->services;
  for (auto& s : pd->services) s.state = ServiceState(I.root, s.unit);
  for (const auto& d : p->debs) pd->debs.push_back(I.DpkgStatus(d.package));
  if (auto r = I.RecordAndArm(*pd, record); !r) {
    std::vector<StepOutput> none;
    return Fail(I.Abort(*pd, r.error(), none));
  }
  InstallResult result;
  std::vector<std::string> notes;
  if (auto r = I.Restore(*p, false, notes, result.steps); !r)
    return Fail(I.Abort(*pd, r.error().WithContext("rolling back to " + point_id), result.steps));
  if (auto c = I.Commit(*pd, p->installed, point_id); !c)
    return Fail(I.Abort(*pd, c.error(), result.steps));
  auto rp = I.LoadPointRow(pd->id);
  if (rp) result.point = *rp;
  result.message = "rolled back " + p->package + " to the state before " + p->action + " (" +
                   (p->from_version.empty() ? std::string("not installed") : p->from_version) + ")";
  for (const auto& n : notes) result.message += "\nnote: " + n;
  return result;
}

}  // namespace parc::pkg
