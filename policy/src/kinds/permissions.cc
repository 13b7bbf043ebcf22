// permissions: owner, group and maximum mode of paths (globs allowed),
// optionally of everything below them.
#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

enum class Want { kAny, kFile, kDir };

constexpr size_t kShown = 20;  // offending paths listed in a result

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

std::string Octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

std::string NameOf(const std::map<std::string, uint32_t>& ids, uint32_t id) {
  for (const auto& [name, v] : ids)
    if (v == id) return name;
  return std::to_string(id);
}

struct Entry {
  std::string path;  // canonical in-system path (no link on the way)
  struct stat st {};
};

class Permissions final : public Check {
 public:
  Permissions(std::vector<std::string> paths, std::optional<std::string> owner, std::optional<std::string> group,
              std::optional<unsigned> mode, bool recursive, Want want)
      : paths_(std::move(paths)), owner_(std::move(owner)), group_(std::move(group)), mode_(mode),
        recursive_(recursive), want_(want) {}

  Finding Evaluate(const Context& ctx) const override {
    auto ids = WantedIds(ctx);
    if (!ids) return ErrorFinding(ids.error().message());
    auto entries = Collect(ctx);
    if (!entries) return ErrorFinding(entries.error().message());
    if (entries->empty()) return NotApplicable("nothing matches " + PathList() + TypeWord());
    std::vector<std::string> bad;
    for (const auto& e : *entries) {
      std::string why = Problems(ctx, e.st, *ids);
      if (!why.empty()) bad.push_back(e.path + ": " + why);
    }
    if (bad.empty()) {
      if (entries->size() == 1) return Pass(ExpectedText(), entries->front().path + ": " + Describe(ctx, entries->front().st));
      return Pass(ExpectedText(), std::to_string(entries->size()) + " paths checked, all compliant");
    }
    std::string found;
    for (size_t i = 0; i < bad.size() && i < kShown; ++i) found += (found.empty() ? "" : "; ") + bad[i];
    if (bad.size() > kShown) found += "; ...";
    found += " (" + std::to_string(bad.size()) + " of " + std::to_string(entries->size()) + " paths not compliant)";
    return FailWith(ExpectedText(), found);
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    auto ids = WantedIds(ctx);
    if (!ids) return Fail(ids.error());
    auto entries = Collect(ctx);
    if (!entries) return Fail(entries.error());
    for (const auto& e : *entries) {
      if (Problems(ctx, e.st, *ids).empty()) continue;
      uint32_t uid = ids->uid.value_or(e.st.st_uid), gid = ids->gid.value_or(e.st.st_gid);
      unsigned target = (e.st.st_mode & 07777) & (mode_ ? *mode_ : 07777u);
      if (uid != e.st.st_uid || gid != e.st.st_gid)
        if (auto r = change.Chown(ctx, e.path, uid, gid); !r) return r;
      // chown(2) drops setuid/setgid even for root: the mode is set after it.
      auto host = ctx.Resolve(e.path);
      if (!host) return Fail(host.error());
      struct stat now {};
      if (::lstat(host->c_str(), &now) != 0) return Fail(ErrnoError(errno, "cannot inspect " + host->string()));
      if ((now.st_mode & 07777) != target)
        if (auto r = change.Chmod(ctx, e.path, target); !r) return r;
    }
    return {};
  }

 private:
  struct Ids {
    std::optional<uint32_t> uid, gid;
  };

  Expected<Ids> WantedIds(const Context& ctx) const {
    Ids ids;
    if (owner_) {
      auto u = ctx.accounts().Uid(*owner_);
      if (!u) return Fail(u.error());
      ids.uid = *u;
    }
    if (group_) {
      auto g = ctx.accounts().Gid(*group_);
      if (!g) return Fail(g.error());
      ids.gid = *g;
    }
    return ids;
  }

  bool Wanted(const struct stat& st) const {
    switch (want_) {
      case Want::kFile: return S_ISREG(st.st_mode);
      case Want::kDir: return S_ISDIR(st.st_mode);
      case Want::kAny: return S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
    }
    return false;
  }

  // Every match (links in the given paths are followed inside the root; links
  // met while descending are not), sorted and without duplicates.
  Expected<std::vector<Entry>> Collect(const Context& ctx) const {
    std::map<std::string, Entry> found;
    for (const auto& pattern : paths_) {
      auto matches = ctx.Glob(pattern);
      if (!matches) return Fail(matches.error());
      for (const auto& p : *matches) {
        auto host = ctx.Resolve(p);
        if (!host) return Fail(host.error());
        struct stat st {};
        if (::lstat(host->c_str(), &st) != 0) continue;  // absent, or a dangling link
        std::string canon = ctx.InSystem(*host);
        if (Wanted(st)) found.emplace(canon, Entry{canon, st});
        if (recursive_ && S_ISDIR(st.st_mode)) Descend(*host, canon, found);
      }
    }
    std::vector<Entry> out;
    for (auto& [k, e] : found) out.push_back(std::move(e));
    return out;
  }

  void Descend(const fs::path& host_dir, const std::string& dir, std::map<std::string, Entry>& found) const {
    DirPtr d(::opendir(host_dir.c_str()));
    if (!d) return;
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d.get())) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
    d.reset();
    for (const auto& n : names) {
      fs::path host = host_dir / n;
      std::string path = (dir == "/" ? "" : dir) + "/" + n;
      struct stat st {};
      if (::lstat(host.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) continue;
      if (Wanted(st)) found.emplace(path, Entry{path, st});
      if (S_ISDIR(st.st_mode)) Descend(host, path, found);
    }
  }

  std::string Problems(const Context& ctx, const struct stat& st, const Ids& ids) const {
    std::string out;
    auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
    if (ids.uid && st.st_uid != *ids.uid) add("owner " + NameOf(ctx.accounts().users, st.st_uid));
    if (ids.gid && st.st_gid != *ids.gid) add("group " + NameOf(ctx.accounts().groups, st.st_gid));
    if (mode_) {
      unsigned extra = (st.st_mode & 07777) & ~*mode_;
      if (extra) add("mode " + Octal(st.st_mode) + " (" + Octal(extra) + " not allowed)");
    }
    return out;
  }

  std::string Describe(const Context& ctx, const struct stat& st) const {
    return NameOf(ctx.accounts().users, st.st_uid) + ":" + NameOf(ctx.accounts().groups, st.st_gid) + " " +
           Octal(st.st_mode);
  }

  std::string PathList() const {
    std::string out;
    for (const auto& p : paths_) out += (out.empty() ? "" : ", ") + p;
    return out;
  }

  std::string TypeWord() const {
    return want_ == Want::kFile ? " (files)" : want_ == Want::kDir ? " (directories)" : "";
  }

  std::string ExpectedText() const {
    std::string want;
    auto add = [&](const std::string& s) { want += (want.empty() ? "" : ", ") + s; };
    if (owner_) add("owner " + *owner_);
    if (group_) add("group " + *group_);
    if (mode_) add("mode " + Octal(*mode_) + " or stricter");
    return PathList() + (recursive_ ? " and everything below" : "") + TypeWord() + ": " + want;
  }

  std::vector<std::string> paths_;
  std::optional<std::string> owner_, group_;
  std::optional<unsigned> mode_;
  bool recursive_;
  Want want_;
};

Expected<std::optional<std::string>> AccountField(Fields& f, const std::string& key) {
  if (!f.Has(key)) {
    (void)f.StringOr(key, "");
    return std::optional<std::string>{};
  }
  auto v = f.String(key);
  if (!v) return Fail(v.error());
  if (v->empty() || v->find_first_of(": \t\n/") != std::string::npos)
    return Fail(f.Bad(key, "'" + *v + "' is not a user or group name (or numeric id)"));
  return std::optional<std::string>(*v);
}

}  // namespace

Expected<CheckPtr> MakePermissions(Fields& f) {
  auto paths = f.Paths("paths");
  if (!paths) return Fail(paths.error());
  auto owner = AccountField(f, "owner");
  if (!owner) return Fail(owner.error());
  auto group = AccountField(f, "group");
  if (!group) return Fail(group.error());
  std::optional<unsigned> mode;
  if (f.Has("mode")) {
    auto m = f.Mode("mode");
    if (!m) return Fail(m.error());
    mode = *m;
  } else {
    (void)f.StringOr("mode", "");
  }
  if (!*owner && !*group && !mode) return Fail(f.Bad("paths", "a permissions rule needs at least one of owner, group, mode"));
  auto recursive = f.BoolOr("recursive", false);
  if (!recursive) return Fail(recursive.error());
  auto type = f.OneOf("type", {"any", "file", "dir"}, "any");
  if (!type) return Fail(type.error());
  Want want = *type == "file" ? Want::kFile : *type == "dir" ? Want::kDir : Want::kAny;
  return std::make_shared<Permissions>(*paths, *owner, *group, mode, *recursive, want);
}

}  // namespace parc::policy::kinds
