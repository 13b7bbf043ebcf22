// check / apply / rollback. The rollback point of an apply lives in
// <state>/policy/rollback/<id>/point.json (+ data/<n> saved bytes); its state
// is "open" while the apply runs, so a crash is undone by the next Open.
#include "parc/policy/engine.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/policy/context.h"

namespace parc::policy {

namespace fs = std::filesystem;
namespace rootfs = pkg::rootfs;

int Report::Count(Status s) const {
  int n = 0;
  for (const auto& r : rules) n += r.status == s;
  return n;
}

double Report::Score() const {
  int pass = Count(Status::kPass), fail = Count(Status::kFail);
  return pass + fail == 0 ? 100.0 : 100.0 * pass / (pass + fail);
}

nlohmann::json Report::ToJson() const {
  nlohmann::json j;
  j["baseline"] = baseline;
  j["baseline_version"] = baseline_version;
  j["level"] = LevelName(level);
  j["root"] = root;
  j["checked_at"] = checked_at;
  j["duration_ms"] = duration_ms;
  j["summary"] = {{"pass", Count(Status::kPass)},
                  {"fail", Count(Status::kFail)},
                  {"na", Count(Status::kNotApplicable)},
                  {"error", Count(Status::kError)},
                  {"score", Score()}};
  j["rules"] = nlohmann::json::array();
  for (const auto& r : rules) {
    nlohmann::json e{{"id", r.id},       {"title", r.title},       {"anssi", r.anssi},
                     {"kind", r.kind},   {"level", LevelName(r.level)}, {"status", StatusName(r.status)},
                     {"expected", r.expected}, {"found", r.found}, {"message", r.message}};
    if (!r.source.empty()) e["source"] = r.source;
    if (r.manual) e["manual"] = true;
    if (r.remediated) e["remediated"] = true;
    j["rules"].push_back(std::move(e));
  }
  return j;
}

nlohmann::json PolicyPoint::ToJson() const {
  return {{"id", id},     {"baseline", baseline}, {"level", LevelName(level)}, {"root", root},
          {"created_at", created_at}, {"rules", rules}, {"paths", paths}, {"bytes", bytes}, {"state", state}};
}

namespace {

bool Selected(const Rule& r, const SelectOptions& s) {
  if (!s.only_rules.empty()) return std::find(s.only_rules.begin(), s.only_rules.end(), r.id) != s.only_rules.end();
  return r.level <= s.level;
}

RuleResult Evaluate(const Rule& rule, const Context& ctx) {
  RuleResult rr;
  rr.id = rule.id;
  rr.title = rule.title;
  rr.anssi = rule.anssi;
  rr.source = rule.source;
  rr.kind = rule.kind;
  rr.level = rule.level;
  Finding f;
  if (!ctx.PlatformMatches(rule.platforms)) {
    std::string list;
    for (const auto& p : rule.platforms) list += (list.empty() ? "" : ", ") + p;
    f = {Status::kNotApplicable, "", "", "rule for " + list + "; this root is " +
                                             (ctx.os().windows ? std::string("windows") : ctx.os().id + " " + ctx.os().version_id)};
  } else if (!rule.when_package.empty() && !ctx.PackageInstalled(rule.when_package)) {
    f = {Status::kNotApplicable, "", "", "package " + rule.when_package + " is not installed"};
  } else if (auto when = rule.when_path.empty() ? Expected<fs::path>() : ctx.Resolve(rule.when_path); !when) {
    // A link climbing above the root is hostile, not "absent".
    f = {Status::kError, "", "", when.error().message()};
  } else if (!rule.when_path.empty() && !ctx.Exists(rule.when_path)) {
    f = {Status::kNotApplicable, "", "", rule.when_path + " does not exist"};
  } else {
    f = rule.check->Evaluate(ctx);
  }
  rr.status = f.status;
  rr.expected = std::move(f.expected);
  rr.found = std::move(f.found);
  rr.message = std::move(f.message);
  if (rr.status == Status::kFail) {
    std::string why = rule.remediate ? rule.check->CannotRemediate(ctx) : "the rule is check-only (remediate = false)";
    if (!why.empty()) {
      rr.manual = true;
      rr.message = rr.message.empty() ? why : rr.message + "; " + why;
    }
  }
  return rr;
}

Report CheckWith(const Baseline& b, const Context& ctx, const SelectOptions& select) {
  auto start = std::chrono::steady_clock::now();
  Report rep;
  rep.baseline = b.name;
  rep.baseline_version = b.version;
  rep.level = select.level;
  rep.root = ctx.root().string();
  rep.checked_at = NowUnix();
  for (const auto& rule : b.rules)
    if (Selected(rule, select)) rep.rules.push_back(Evaluate(rule, ctx));
  rep.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return rep;
}

struct RuntimeValue {
  std::string key, previous;
};

struct PointFile {
  PolicyPoint meta;
  std::vector<rootfs::PathRecord> paths;
  std::vector<RuntimeValue> sysctls;
};

// point.json holds the point's metadata and runtime values, rewritten on
// state changes; records.jsonl one recorded path per line, appended and
// fsynced before that path is changed (a torn last line is a path that was
// never changed). Appending keeps recording n paths O(n), not O(n^2).
constexpr const char* kRecords = "records.jsonl";

ExpectedVoid WritePointFile(const fs::path& dir, const PointFile& p) {
  nlohmann::json j = p.meta.ToJson();
  j["runtime_sysctls"] = nlohmann::json::array();
  for (const auto& s : p.sysctls) j["runtime_sysctls"].push_back({{"key", s.key}, {"previous", s.previous}});
  if (auto r = WriteFileAtomic(dir / "point.json", j.dump(1), 0600); !r) return r;
  std::error_code ec;
  if (fs::exists(dir / "data", ec))
    if (auto r = rootfs::FsyncPath(dir / "data"); !r) return r;
  return rootfs::FsyncPath(dir);
}

ExpectedVoid AppendRecord(const fs::path& dir, const rootfs::PathRecord& r) {
  std::string line = rootfs::PathRecordToJson(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  fs::path file = dir / kRecords;
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot open " + file.string()));
  ssize_t n = ::write(fd, line.data(), line.size());
  int err = errno;
  bool synced = n == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  if (!synced && n >= 0) err = errno ? errno : EIO;
  ::close(fd);
  if (!synced) return Fail(ErrnoError(err, "cannot record into " + file.string()));
  // The data/ entry and a new records file must be durable too.
  if (fs::exists(dir / "data")) (void)rootfs::FsyncPath(dir / "data");
  return rootfs::FsyncPath(dir);
}

Expected<PointFile> ReadPointFile(const fs::path& dir) {
  auto text = ReadFile(dir / "point.json");
  if (!text) return Fail(text.error());
  try {
    auto j = nlohmann::json::parse(*text);
    PointFile p;
    p.meta.id = j.at("id").get<std::string>();
    p.meta.baseline = j.at("baseline").get<std::string>();
    p.meta.level = ParseLevel(j.at("level").get<std::string>()).value_or(Level::kMinimal);
    p.meta.root = j.at("root").get<std::string>();
    p.meta.created_at = j.at("created_at").get<int64_t>();
    p.meta.rules = j.at("rules").get<std::vector<std::string>>();
    p.meta.paths = j.at("paths").get<uint64_t>();
    p.meta.bytes = j.at("bytes").get<uint64_t>();
    p.meta.state = j.at("state").get<std::string>();
    for (const auto& e : j.at("runtime_sysctls")) p.sysctls.push_back({e.at("key").get<std::string>(), e.at("previous").get<std::string>()});
    if (auto records = ReadFile(dir / kRecords)) {
      size_t i = 0;
      while (i < records->size()) {
        size_t nl = records->find('\n', i);
        if (nl == std::string::npos) break;  // torn by a crash: that path was never changed
        p.paths.push_back(rootfs::PathRecordFromJson(nlohmann::json::parse(records->substr(i, nl - i))));
        i = nl + 1;
      }
    }
    p.meta.paths = p.paths.size();
    p.meta.bytes = 0;
    for (const auto& r : p.paths)
      if (r.type == "file") {
        std::error_code ec;
        auto size = fs::file_size(dir / r.saved, ec);
        if (!ec) p.meta.bytes += size;
      }
    return p;
  } catch (const std::exception& e) {
    return Fail(Errc::kParse, "policy rollback point " + (dir / "point.json").string() + " is unreadable: " + e.what());
  }
}

void WriteRuntime(const std::string& key, const std::string& value) {
  std::string rel = key;
  std::replace(rel.begin(), rel.end(), '.', '/');
  fs::path proc = fs::path("/proc/sys") / rel;
  int fd = ::open(proc.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)!::write(fd, value.data(), value.size());
  ::close(fd);
}

// Puts a point's paths (and runtime values on the live system) back.
ExpectedVoid Restore(const fs::path& root, const fs::path& dir, const PointFile& p, bool whole_trees,
                     std::vector<std::string>& notes) {
  if (auto r = rootfs::RestorePaths(root, dir, dir, p.paths, whole_trees, notes); !r) return r;
  if (root == "/")
    for (auto it = p.sysctls.rbegin(); it != p.sysctls.rend(); ++it) WriteRuntime(it->key, it->previous);
  return {};
}

// The Change given to remediations: records into the open point first.
class Recorder final : public Change {
 public:
  Recorder(const Context& ctx, fs::path dir, PointFile& point) : ctx_(ctx), dir_(std::move(dir)), point_(point) {}

  ExpectedVoid Record(std::string_view in_system_path) override {
    // Resolved here (links inside the root, the last one not followed), so a
    // link in the path can never make the record or its restore land on the host.
    auto host = ctx_.Resolve(in_system_path, false);
    if (!host) return Fail(host.error());
    std::string path = ctx_.InSystem(*host);
    if (recorded_.contains(path)) return {};
    if (auto d = EnsureDirectory(dir_ / "data", 0700); !d) return d;
    auto rec = rootfs::RecordPath(*host, path, false, dir_, point_.paths.size(), point_.meta.bytes);
    if (!rec) return Fail(rec.error());
    if (auto r = AppendRecord(dir_, *rec); !r) return r;
    point_.paths.push_back(std::move(*rec));
    point_.meta.paths = point_.paths.size();
    recorded_.insert(path);
    return {};
  }

  ExpectedVoid RecordRuntimeSysctl(const std::string& key, const std::string& previous) override {
    for (const auto& s : point_.sysctls)
      if (s.key == key) return {};
    point_.sysctls.push_back({key, previous});
    return WritePointFile(dir_, point_);
  }

  void Note(std::string note) override { notes.push_back(std::move(note)); }

  std::vector<std::string> notes;

 private:
  const Context& ctx_;
  fs::path dir_;
  PointFile& point_;
  std::set<std::string> recorded_;
};

void CrashIf(const std::string& crash_at, const char* here) {
  if (crash_at == here) ::kill(::getpid(), SIGKILL);
}

}  // namespace

Report CheckBaseline(const Baseline& baseline, const fs::path& root, const SelectOptions& select) {
  Context ctx(root);
  return CheckWith(baseline, ctx, select);
}

struct Engine::Impl {
  fs::path root, state, points_dir;
  int lock_fd = -1;
  std::vector<PolicyPoint> recovered;
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;
const std::vector<PolicyPoint>& Engine::recovered() const { return impl_->recovered; }

Expected<std::unique_ptr<Engine>> Engine::Open(const fs::path& root, const fs::path& state) {
  auto impl = std::make_unique<Impl>();
  std::error_code ec;
  impl->root = fs::weakly_canonical(root, ec);
  if (ec || !fs::is_directory(impl->root)) return Fail(Errc::kNotFound, "root " + root.string() + " is not a directory");
  impl->state = state;
  impl->points_dir = state / "policy" / "rollback";
  if (auto r = EnsureDirectory(impl->points_dir, 0700); !r) return Fail(r.error().WithContext("cannot prepare the policy state"));
  fs::path lock = state / "policy.lock";
  impl->lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) return Fail(ErrnoError(errno, "cannot open " + lock.string()));
  for (int i = 0;; ++i) {
    if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) == 0) break;
    if (i >= 300) return Fail(Errc::kUnavailable, "another policy apply or rollback holds " + lock.string() + "; try again when it ends");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::unique_ptr<Engine> engine(new Engine(std::move(impl)));
  // Undo applies a crash left open.
  for (const auto& entry : fs::directory_iterator(engine->impl_->points_dir, ec)) {
    auto p = ReadPointFile(entry.path());
    if (!p || p->meta.state != "open") continue;
    std::vector<std::string> notes;
    if (auto r = Restore(p->meta.root, entry.path(), *p, true, notes); !r)
      return Fail(r.error().WithContext("cannot undo the interrupted apply " + p->meta.id));
    p->meta.state = "restored";
    if (auto w = WritePointFile(entry.path(), *p); !w) return Fail(w.error());
    engine->impl_->recovered.push_back(p->meta);
  }
  return engine;
}

Expected<ApplyResult> Engine::Apply(const Baseline& baseline, const SelectOptions& select, const std::string& crash_at) {
  Context ctx(impl_->root);
  ApplyResult result;
  result.before = CheckWith(baseline, ctx, select);
  std::vector<const Rule*> todo;
  for (const auto& rr : result.before.rules) {
    if (rr.status != Status::kFail || rr.manual) continue;
    for (const auto& rule : baseline.rules)
      if (rule.id == rr.id) todo.push_back(&rule);
  }
  if (todo.empty()) {
    result.after = result.before;
    return result;
  }
  PointFile point;
  point.meta.id = RandomUuid();
  point.meta.baseline = baseline.name;
  point.meta.level = select.level;
  point.meta.root = impl_->root.string();
  point.meta.created_at = NowUnix();
  point.meta.state = "open";
  fs::path dir = impl_->points_dir / point.meta.id;
  if (auto r = EnsureDirectory(dir, 0700); !r) return Fail(r.error());
  if (auto r = WritePointFile(dir, point); !r) return Fail(r.error());
  if (auto r = rootfs::FsyncPath(impl_->points_dir); !r) return Fail(r.error());

  Recorder rec(ctx, dir, point);
  for (size_t i = 0; i < todo.size(); ++i) {
    const Rule& rule = *todo[i];
    auto r = rule.check->Remediate(ctx, rec);
    if (i == 0) CrashIf(crash_at, "after-first-rule");
    if (!r) {
      std::vector<std::string> notes;
      auto undo = Restore(impl_->root, dir, point, true, notes);
      point.meta.state = "restored";
      (void)WritePointFile(dir, point);
      Error e = r.error().WithContext("rule " + rule.id + " could not be remediated");
      if (!undo) return Fail(Errc::kInternal, e.message() + "; putting the previous state back ALSO failed: " + undo.error().message());
      return Fail(Errc::kIo, e.message() + "; every change of this apply was undone");
    }
    point.meta.rules.push_back(rule.id);
    ctx.Invalidate();
  }
  CrashIf(crash_at, "before-commit");
  point.meta.state = "committed";
  if (auto r = WritePointFile(dir, point); !r) return Fail(r.error());
  result.after = CheckWith(baseline, ctx, select);
  std::set<std::string> done(point.meta.rules.begin(), point.meta.rules.end());
  for (auto& rr : result.after.rules) {
    if (!done.contains(rr.id)) continue;
    rr.remediated = true;
    if (rr.status == Status::kFail) result.notes.push_back("rule " + rr.id + " still fails after its remediation: " + rr.found);
  }
  for (auto& n : rec.notes) result.notes.push_back(std::move(n));
  result.point = point.meta;
  return result;
}

Expected<PolicyPoint> Engine::Rollback(const std::string& point_id) {
  if (point_id.empty() || point_id.find('/') != std::string::npos || point_id.find("..") != std::string::npos)
    return Fail(Errc::kInvalidArgument, "'" + point_id + "' is not a rollback point id");
  fs::path dir = impl_->points_dir / point_id;
  if (!PathExists(dir / "point.json"))
    return Fail(Errc::kNotFound, "no policy rollback point " + point_id + " (see 'parc-agent policy rollback-points')");
  auto p = ReadPointFile(dir);
  if (!p) return Fail(p.error());
  if (p->meta.state != "committed")
    return Fail(Errc::kFailedPrecondition, "rollback point " + point_id + " is " + p->meta.state + ": there is nothing to undo");
  if (fs::path(p->meta.root) != impl_->root)
    return Fail(Errc::kFailedPrecondition, "rollback point " + point_id + " belongs to root " + p->meta.root + ", not " + impl_->root.string());
  std::vector<std::string> notes;
  if (auto r = Restore(impl_->root, dir, *p, false, notes); !r) return Fail(r.error().WithContext("rollback " + point_id));
  p->meta.state = "rolled-back";
  if (auto r = WritePointFile(dir, *p); !r) return Fail(r.error());
  return p->meta;
}

Expected<std::vector<PolicyPoint>> Engine::ListPoints() {
  std::vector<PolicyPoint> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(impl_->points_dir, ec)) {
    auto p = ReadPointFile(entry.path());
    if (p) out.push_back(p->meta);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.created_at < b.created_at || (a.created_at == b.created_at && a.id < b.id); });
  return out;
}

}  // namespace parc::policy
