// find: a search of the whole root for world-writable files, unowned files,
// world-writable directories without the sticky bit, setuid/setgid files.
//
// The walk is a plain openat/readdir/fstatat recursion relative to directory
// descriptors: no link is ever followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW),
// no path is re-resolved from the top, other filesystems are not entered, and
// entries whose type readdir already tells are not stat'ed when the search
// cannot care about them (links and regular files for a directory search).
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <unordered_set>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

enum class Search { kWorldWritableFiles, kUnowned, kWorldWritableDirs, kSetuidSetgid };

constexpr size_t kShown = 20;
constexpr int kMaxDepth = 512;  // deeper trees are reported, not walked (descriptor use grows with depth)

const char* const kAlwaysExcluded[] = {"/proc", "/sys", "/dev", "/run"};

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

struct WalkResult {
  uint64_t count = 0;            // findings
  uint64_t entries = 0;          // entries looked at
  std::set<std::string> first;   // the kShown smallest paths (stable across runs)
  std::vector<std::string> all;  // every finding (remediation only)
  std::vector<std::string> unreadable;
};

class Walker {
 public:
  Walker(Search search, const std::vector<std::string>& excluded, const std::vector<std::string>& allowed,
         std::unordered_set<uint32_t> uids, std::unordered_set<uint32_t> gids, bool keep_all, WalkResult& out)
      : search_(search), excluded_(excluded), allowed_(allowed), uids_(std::move(uids)), gids_(std::move(gids)),
        keep_all_(keep_all), out_(out) {}

  void Run(const fs::path& root) {
    int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      out_.unreadable.push_back("/ (" + std::string(std::strerror(errno)) + ")");
      return;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return;
    }
    dev_ = st.st_dev;
    path_.clear();  // "" is the root; children are "/name"
    Dir(fd, 0);     // takes fd
  }

 private:
  bool Excluded() const {
    for (const auto& e : excluded_)
      if (path_.size() == e.size() && path_ == e) return true;
    return false;
  }

  // What readdir's d_type lets us skip without a stat.
  bool NeedStat(unsigned char type) const {
    switch (search_) {
      case Search::kUnowned: return true;
      case Search::kWorldWritableDirs: return type == DT_DIR || type == DT_UNKNOWN;
      case Search::kWorldWritableFiles:
      case Search::kSetuidSetgid: return type == DT_DIR || type == DT_REG || type == DT_UNKNOWN;
    }
    return true;
  }

  bool Matches(const struct stat& st) const {
    switch (search_) {
      case Search::kWorldWritableFiles: return S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH);
      case Search::kWorldWritableDirs: return S_ISDIR(st.st_mode) && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX);
      case Search::kUnowned: return !uids_.contains(st.st_uid) || !gids_.contains(st.st_gid);
      case Search::kSetuidSetgid:
        if (!S_ISREG(st.st_mode) || !(st.st_mode & (S_ISUID | S_ISGID))) return false;
        for (const auto& a : allowed_)
          if (::fnmatch(a.c_str(), path_.c_str(), FNM_PATHNAME) == 0) return false;
        return true;
    }
    return false;
  }

  void Found() {
    ++out_.count;
    if (keep_all_) out_.all.push_back(path_);
    if (out_.first.size() < kShown || path_ < *out_.first.rbegin()) {
      out_.first.insert(path_);
      if (out_.first.size() > kShown) out_.first.erase(std::prev(out_.first.end()));
    }
  }

  void Unreadable() { out_.unreadable.push_back((path_.empty() ? "/" : path_) + " (" + std::strerror(errno) + ")"); }

  // Reads the directory open at fd (whose path is path_); owns fd.
  void Dir(int fd, int depth) {
    DirPtr d(::fdopendir(fd));
    if (!d) {
      Unreadable();
      ::close(fd);
      return;
    }
    if (depth >= kMaxDepth) {
      errno = ELOOP;
      Unreadable();
      return;
    }
    const size_t base = path_.size();
    while (true) {
      errno = 0;
      const dirent* e = ::readdir(d.get());
      if (!e) {
        if (errno != 0) Unreadable();
        break;
      }
      const char* name = e->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      path_.resize(base);
      path_ += '/';
      path_ += name;
      ++out_.entries;
      if (Excluded()) continue;
      if (!NeedStat(e->d_type)) continue;
      struct stat st {};
      if (::fstatat(::dirfd(d.get()), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) Unreadable();
        continue;
      }
      if (S_ISDIR(st.st_mode) && st.st_dev != dev_) continue;  // another filesystem: not crossed
      if (Matches(st)) Found();
      if (!S_ISDIR(st.st_mode)) continue;
      int child = ::openat(::dirfd(d.get()), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        Unreadable();
        continue;
      }
      Dir(child, depth + 1);
    }
    path_.resize(base);
  }

  Search search_;
  const std::vector<std::string>& excluded_;
  const std::vector<std::string>& allowed_;
  std::unordered_set<uint32_t> uids_, gids_;
  bool keep_all_;
  WalkResult& out_;
  dev_t dev_ = 0;
  std::string path_;
};

class Find final : public Check {
 public:
  Find(Search search, std::string search_name, std::vector<std::string> exclude, std::vector<std::string> allowed)
      : search_(search), name_(std::move(search_name)), allowed_(std::move(allowed)) {
    for (const char* e : kAlwaysExcluded) excluded_.emplace_back(e);
    for (auto& e : exclude)
      if (std::find(excluded_.begin(), excluded_.end(), e) == excluded_.end()) excluded_.push_back(std::move(e));
  }

  Finding Evaluate(const Context& ctx) const override {
    WalkResult w = Walk(ctx, false);
    std::string expected = "no " + What() + " (excluded: " + Join(excluded_, ", ") + ")";
    std::string found;
    if (w.count == 0) {
      found = "none found in " + std::to_string(w.entries) + " entries";
    } else {
      found = std::to_string(w.count) + " found: " + Join(std::vector<std::string>(w.first.begin(), w.first.end()), ", ");
      if (w.count > w.first.size()) found += ", ... (" + std::to_string(w.count - w.first.size()) + " more)";
    }
    Finding f = w.count == 0 ? Pass(expected, found) : FailWith(expected, found);
    if (!w.unreadable.empty()) {
      f.message = std::to_string(w.unreadable.size()) + " entries could not be read: " + w.unreadable.front();
      if (w.unreadable.size() > 1) f.message += ", ...";
    }
    return f;
  }

  std::string CannotRemediate(const Context& ctx) const override {
    (void)ctx;
    if (search_ == Search::kUnowned)
      return "give each file an owner and group of this system (chown), or remove it: Parc cannot guess who owns it";
    if (search_ == Search::kSetuidSetgid)
      return "review each program: remove the bit (chmod u-s,g-s) or add it to 'allowed' if it is needed";
    return "";
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    if (!CannotRemediate(ctx).empty()) return Fail(Errc::kFailedPrecondition, CannotRemediate(ctx));
    WalkResult w = Walk(ctx, true);
    for (const auto& p : w.all) {
      auto host = ctx.Resolve(p, false);
      if (!host) return Fail(host.error());
      struct stat st {};
      if (::lstat(host->c_str(), &st) != 0) return Fail(ErrnoError(errno, "cannot inspect " + host->string()));
      if (S_ISLNK(st.st_mode)) continue;  // replaced by a link since the walk: never chmod through it
      unsigned mode = st.st_mode & 07777;
      mode = search_ == Search::kWorldWritableFiles ? (mode & ~unsigned(S_IWOTH)) : (mode | S_ISVTX);
      if (auto r = change.Chmod(ctx, p, mode); !r) return r;
    }
    return {};
  }

 private:
  WalkResult Walk(const Context& ctx, bool keep_all) const {
    WalkResult w;
    std::unordered_set<uint32_t> uids{0}, gids{0};
    if (search_ == Search::kUnowned) {
      for (const auto& [n, id] : ctx.accounts().users) uids.insert(id);
      for (const auto& [n, id] : ctx.accounts().groups) gids.insert(id);
    }
    Walker walker(search_, excluded_, allowed_, std::move(uids), std::move(gids), keep_all, w);
    walker.Run(ctx.root());
    return w;
  }

  std::string What() const {
    switch (search_) {
      case Search::kWorldWritableFiles: return "world-writable files";
      case Search::kUnowned: return "files without a known owner or group";
      case Search::kWorldWritableDirs: return "world-writable directories without the sticky bit";
      case Search::kSetuidSetgid: return "setuid/setgid files outside the allowed list";
    }
    return name_;
  }

  static std::string Join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
  }

  Search search_;
  std::string name_;
  std::vector<std::string> excluded_, allowed_;
};

}  // namespace

Expected<CheckPtr> MakeFind(Fields& f) {
  auto name = f.OneOf("search", {"world_writable_files", "unowned", "world_writable_dirs_without_sticky", "setuid_setgid"});
  if (!name) return Fail(name.error());
  Search search = *name == "world_writable_files" ? Search::kWorldWritableFiles
                  : *name == "unowned"            ? Search::kUnowned
                  : *name == "setuid_setgid"      ? Search::kSetuidSetgid
                                                  : Search::kWorldWritableDirs;
  auto exclude = f.Paths("exclude", false);
  if (!exclude) return Fail(exclude.error());
  for (auto& e : *exclude) {
    while (e.size() > 1 && e.back() == '/') e.pop_back();
    if (e == "/") return Fail(f.Bad("exclude", "excluding / leaves nothing to search"));
  }
  if (search != Search::kSetuidSetgid && f.Has("allowed"))
    return Fail(f.Bad("allowed", "only a setuid_setgid search takes an allowed list"));
  auto allowed = f.Paths("allowed", false);
  if (!allowed) return Fail(allowed.error());
  return std::make_shared<Find>(search, *name, std::move(*exclude), std::move(*allowed));
}

}  // namespace parc::policy::kinds
