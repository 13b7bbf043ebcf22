// The target root as checks see it (paths resolved inside the root, its own
// accounts and dpkg database) and the recorded change helpers.
#include "parc/policy/context.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "kinds/kinds.h"
#include "parc/common/files.h"

namespace parc::policy {

namespace {

std::vector<std::string> Components(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string Unquote(std::string v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

Context::Context(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  auto canon = fs::weakly_canonical(root_, ec);
  if (!ec) root_ = canon;
  live_ = root_ == "/";
  if (auto text = Read("/etc/os-release")) {
    for (const auto& line : kinds::Lines(*text)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string k = line.substr(0, eq), v = Unquote(line.substr(eq + 1));
      if (k == "ID") os_.id = v;
      if (k == "VERSION_ID") os_.version_id = v;
      if (k == "ID_LIKE") os_.id_like = kinds::SplitWords(v);
    }
  } else if (Exists("/Windows/System32")) {
    os_.windows = true;
  }
}

bool Context::PlatformMatches(const std::vector<std::string>& platforms) const {
  if (platforms.empty()) return true;
  auto like = [&](const std::string& name) {
    if (os_.id == name) return true;
    for (const auto& l : os_.id_like)
      if (l == name) return true;
    return false;
  };
  for (const auto& p : platforms) {
    if (p == "windows" && os_.windows) return true;
    if (os_.windows) continue;
    if (p == "linux") return true;
    if (p == "debian" && like("debian") && os_.id != "ubuntu") return true;
    if (p == "debian12" && os_.id == "debian" && os_.version_id == "12") return true;
    if (p == "ubuntu" && os_.id == "ubuntu") return true;
    if (p == "rhel" && (like("rhel") || like("fedora") || os_.id == "rhel")) return true;
  }
  return false;
}

Expected<fs::path> Context::Resolve(std::string_view in_system_path, bool follow_last) const {
  if (in_system_path.empty() || in_system_path[0] != '/')
    return Fail(Errc::kInvalidArgument, "'" + std::string(in_system_path) + "' is not an absolute path");
  if (live_) return fs::path(in_system_path);
  std::vector<std::string> todo = Components(in_system_path);
  std::reverse(todo.begin(), todo.end());  // back = next component
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.back());
    todo.pop_back();
    if (c == ".") continue;
    if (c == "..") {
      if (done.empty())
        return Fail(Errc::kPermissionDenied, "'" + std::string(in_system_path) + "' climbs above the root " + root_.string() + ": refused");
      done.pop_back();
      continue;
    }
    done.push_back(c);
    if (todo.empty() && !follow_last) break;
    fs::path host = root_;
    for (const auto& d : done) host /= d;
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) continue;
    if (++links > 40) return Fail(Errc::kInvalidArgument, "too many symbolic links in " + std::string(in_system_path));
    std::string target(4096, '\0');
    ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
    if (n < 0) return Fail(ErrnoError(errno, "cannot read link " + host.string()));
    target.resize(static_cast<size_t>(n));
    done.pop_back();
    if (!target.empty() && target[0] == '/') done.clear();
    auto parts = Components(target);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
  }
  fs::path out = root_;
  for (const auto& d : done) out /= d;
  return out;
}

std::string Context::InSystem(const fs::path& host) const {
  if (live_) return host.string();
  std::string h = host.string(), r = root_.string();
  if (h.size() <= r.size()) return "/";
  return h.substr(r.size());
}

Expected<std::string> Context::Read(std::string_view in_system_path) const {
  auto host = Resolve(in_system_path);
  if (!host) return Fail(host.error());
  std::error_code ec;
  if (!fs::exists(*host, ec)) return Fail(Errc::kNotFound, std::string(in_system_path) + " does not exist");
  return ReadFile(*host);
}

bool Context::Exists(std::string_view in_system_path) const {
  auto host = Resolve(in_system_path);
  if (!host) return false;
  struct stat st {};
  return ::stat(host->c_str(), &st) == 0;
}

namespace {

bool HasWildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::string JoinPath(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

// Whether an in-system path is a directory once resolved inside the root.
Expected<bool> IsDirInRoot(const Context& ctx, const std::string& path) {
  auto host = ctx.Resolve(path);
  if (!host) return Fail(host.error());
  struct stat st {};
  return ::stat(host->c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Expected<std::vector<std::string>> Context::Glob(std::string_view pattern) const {
  const Context& ctx = *this;
  if (pattern.empty() || pattern[0] != '/') return Fail(Errc::kInvalidArgument, "'" + std::string(pattern) + "' is not an absolute path");
  std::vector<std::string> comps;
  for (size_t i = 1; i <= pattern.size();) {
    size_t j = pattern.find('/', i);
    if (j == std::string_view::npos) j = pattern.size();
    if (j > i) comps.emplace_back(pattern.substr(i, j - i));
    i = j + 1;
  }
  std::vector<std::string> current = {"/"};
  for (size_t c = 0; c < comps.size(); ++c) {
    const bool last = c + 1 == comps.size();
    std::vector<std::string> next;
    for (const auto& prefix : current) {
      std::vector<std::string> candidates;
      if (!HasWildcard(comps[c])) {
        candidates.push_back(JoinPath(prefix, comps[c]));
      } else {
        auto dir = ctx.Resolve(prefix);
        if (!dir) return Fail(dir.error());
        std::error_code ec;
        for (fs::directory_iterator it(*dir, ec), end; !ec && it != end; it.increment(ec)) {
          std::string name = it->path().filename().string();
          if (::fnmatch(comps[c].c_str(), name.c_str(), FNM_PERIOD) == 0) candidates.push_back(JoinPath(prefix, name));
        }
      }
      for (auto& cand : candidates) {
        if (last) {
          auto host = ctx.Resolve(cand, false);
          if (!host) return Fail(host.error());
          struct stat st {};
          if (::lstat(host->c_str(), &st) == 0) next.push_back(std::move(cand));
        } else {
          auto dir = IsDirInRoot(ctx, cand);
          if (!dir) return Fail(dir.error());
          if (*dir) next.push_back(std::move(cand));
        }
      }
    }
    current = std::move(next);
  }
  if (comps.empty()) return current;
  std::sort(current.begin(), current.end());
  current.erase(std::unique(current.begin(), current.end()), current.end());
  return current;
}

const pkg::rootfs::Accounts& Context::accounts() const {
  if (!accounts_) accounts_ = std::make_unique<pkg::rootfs::Accounts>(pkg::rootfs::LoadAccounts(root_));
  return *accounts_;
}

const std::map<std::string, std::string>& Context::dpkg_installed() const {
  if (dpkg_) return *dpkg_;
  dpkg_ = std::make_unique<std::map<std::string, std::string>>();
  auto text = Read("/var/lib/dpkg/status");
  if (!text) return *dpkg_;
  std::string name, version, status;
  auto flush = [&] {
    if (!name.empty() && status.ends_with(" installed")) (*dpkg_)[name] = version;
    name.clear();
    version.clear();
    status.clear();
  };
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) {
      flush();
      continue;
    }
    if (line.starts_with("Package: ")) name = kinds::Trim(line.substr(9));
    else if (line.starts_with("Version: ")) version = kinds::Trim(line.substr(9));
    else if (line.starts_with("Status: ")) status = kinds::Trim(line.substr(8));
  }
  flush();
  return *dpkg_;
}

void Context::Invalidate() {
  accounts_.reset();
  dpkg_.reset();
}

// ---- Change helpers ---------------------------------------------------------

namespace {


}  // namespace

ExpectedVoid Change::WriteFile(const Context& ctx, std::string_view path, const std::string& content, unsigned mode) {
  auto host = ctx.Resolve(path);
  if (!host) return Fail(host.error());
  // Missing parents are recorded (absent) then created, so that a rollback removes them.
  std::vector<fs::path> missing;
  for (fs::path d = host->parent_path(); !d.empty() && d != ctx.root() && d != d.root_path(); d = d.parent_path()) {
    std::error_code ec;
    if (fs::exists(d, ec)) break;
    missing.push_back(d);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (auto r = Record(ctx.InSystem(*it)); !r) return r;
    if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) return Fail(ErrnoError(errno, "cannot create " + it->string()));
  }
  if (auto r = Record(ctx.InSystem(*host)); !r) return r;
  struct stat st {};
  if (::lstat(host->c_str(), &st) == 0) return pkg::rootfs::ReplaceFileKeepingMeta(*host, content);
  if (auto r = WriteFileAtomic(*host, content, mode); !r) return r;
  if (::chown(host->c_str(), 0, 0) != 0) return Fail(ErrnoError(errno, "cannot set the owner of " + host->string()));
  return {};
}

ExpectedVoid Change::Chmod(const Context& ctx, std::string_view path, unsigned mode) {
  auto host = ctx.Resolve(path);
  if (!host) return Fail(host.error());
  if (auto r = Record(ctx.InSystem(*host)); !r) return r;
  if (::chmod(host->c_str(), mode) != 0) return Fail(ErrnoError(errno, "cannot change the mode of " + host->string()));
  return {};
}

ExpectedVoid Change::Chown(const Context& ctx, std::string_view path, uint32_t uid, uint32_t gid) {
  auto host = ctx.Resolve(path);
  if (!host) return Fail(host.error());
  if (auto r = Record(ctx.InSystem(*host)); !r) return r;
  if (::chown(host->c_str(), uid, gid) != 0) return Fail(ErrnoError(errno, "cannot change the owner of " + host->string()));
  return {};
}

ExpectedVoid Change::Remove(const Context& ctx, std::string_view path) {
  auto host = ctx.Resolve(path, false);
  if (!host) return Fail(host.error());
  if (auto r = Record(ctx.InSystem(*host)); !r) return r;
  if (::unlink(host->c_str()) != 0 && errno != ENOENT) return Fail(ErrnoError(errno, "cannot remove " + host->string()));
  return {};
}

ExpectedVoid Change::Symlink(const Context& ctx, std::string_view path, const std::string& target) {
  auto host = ctx.Resolve(path, false);
  if (!host) return Fail(host.error());
  if (auto r = Record(ctx.InSystem(*host)); !r) return r;
  ::unlink(host->c_str());
  if (::symlink(target.c_str(), host->c_str()) != 0) return Fail(ErrnoError(errno, "cannot create the link " + host->string()));
  return {};
}

ExpectedVoid Change::SetRuntimeSysctl(const Context& ctx, const std::string& key, const std::string& value) {
  if (!ctx.live()) return Fail(Errc::kFailedPrecondition, "runtime sysctl values are only written on the live system");
  std::string rel = key;
  std::replace(rel.begin(), rel.end(), '.', '/');
  fs::path proc = fs::path("/proc/sys") / rel;
  auto prev = ReadSmallFile(proc, 4096);
  if (!prev) return Fail(prev.error());
  if (auto r = RecordRuntimeSysctl(key, kinds::CollapseSpaces(*prev)); !r) return r;
  int fd = ::open(proc.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot write " + proc.string()));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return Fail(ErrnoError(err, "cannot write " + proc.string()));
  return {};
}

}  // namespace parc::policy
