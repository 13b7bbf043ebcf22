#include "walk.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "deploy_common.h"
#include "encoding.h"
#include "parc/packages/rootfs.h"

namespace parc::imaging::internal {

namespace {

class Walker {
 public:
  Walker(const WalkOptions& o, uint64_t root_dev, const pkg::rootfs::Accounts& accounts, Ticker& ticker)
      : o_(o), root_dev_(root_dev), ticker_(ticker) {
    for (const auto& [name, id] : accounts.users) users_.emplace(id, name);   // first name in order wins
    for (const auto& [name, id] : accounts.groups) groups_.emplace(id, name);
  }

  ExpectedVoid Root(const sys::Fd& root) {
    auto st = sys::StatAt(root, "");
    if (!st) return Fail(st.error());
    if (st->type != sys::Type::kDir) return Fail(Errc::kInvalidArgument, "the root of a tree image must be a directory");
    auto e = Meta(*st, "/", root, "");
    if (!e) return Fail(e.error());
    e->type = EntryType::kDirectory;
    r.entries.push_back(std::move(*e));
    return Walk(root, "/");
  }

  WalkResult r;

 private:
  Expected<Entry> Meta(const sys::Stat& st, const std::string& path, const sys::Fd& dir, const std::string& name) {
    Entry e;
    e.path = path;
    e.mode = st.mode;
    e.uid = st.uid;
    e.gid = st.gid;
    if (auto it = users_.find(st.uid); it != users_.end() && internal::ValidUtf8(it->second)) e.user = it->second;
    if (auto it = groups_.find(st.gid); it != groups_.end() && internal::ValidUtf8(it->second)) e.group = it->second;
    e.mtime = st.mtime_sec;
    e.mtime_nsec = st.mtime_nsec;
    auto x = sys::ListXattrs(dir, name);
    if (!x) return Fail(x.error().WithContext(path));
    for (auto& [k, v] : *x)
      if (!internal::ValidUtf8(k) || k.find('.') == std::string::npos)
        return Fail(Errc::kInvalidArgument, path + ": extended attribute name '" + k + "' cannot be recorded (not UTF-8 text)");
    e.xattrs = std::move(*x);
    return e;
  }

  bool Excluded(const std::string& path) const {
    for (const auto& x : o_.exclude)
      if (path == x || (path.size() > x.size() && path.compare(0, x.size(), x) == 0 && path[x.size()] == '/')) return true;
    return false;
  }

  ExpectedVoid Walk(const sys::Fd& dir, const std::string& path) {
    auto names = sys::ListDirectory(dir);
    if (!names) return Fail(names.error().WithContext(path));
    std::sort(names->begin(), names->end());  // bytewise: the canonical order
    for (const auto& name : *names) {
      std::string child = path == "/" ? "/" + name : path + "/" + name;
      if (Excluded(child)) continue;
      if (internal::IsDeploymentSibling(name)) {
        r.notes.push_back(child + ": a Parc tree deployment's working copy, journal or rollback point; not captured");
        continue;
      }
      if (auto v = ValidatePath(child); !v) return Fail(v.error());
      auto st = sys::StatAt(dir, name);
      if (!st) {
        if (st.error().Is(Errc::kNotFound)) {
          r.notes.push_back(child + ": removed while being captured");
          continue;
        }
        return Fail(st.error().WithContext(child));
      }
      if (st->type == sys::Type::kSocket || st->type == sys::Type::kOther) {
        r.notes.push_back(child + ": socket not captured");
        continue;
      }
      if (st->type != sys::Type::kDir && st->nlink > 1) {
        auto key = std::make_pair(st->dev, st->ino);
        if (auto it = links_.find(key); it != links_.end()) {
          Entry h;
          h.path = child;
          h.type = EntryType::kHardlink;
          h.target = it->second;
          r.entries.push_back(std::move(h));
          continue;
        }
        links_.emplace(key, child);
      }
      auto e = Meta(*st, child, dir, name);
      if (!e) return Fail(e.error());
      switch (st->type) {
        case sys::Type::kFile:
          e->type = EntryType::kFile;
          e->size = st->size;
          r.total_bytes += st->size;
          r.files.push_back(FileJob{r.entries.size(), child.substr(1), st->ino});
          break;
        case sys::Type::kSymlink: {
          e->type = EntryType::kSymlink;
          auto t = sys::ReadLinkAt(dir, name);
          if (!t) return Fail(t.error().WithContext(child));
          if (t->empty()) return Fail(Errc::kInvalidArgument, child + ": empty symlink target");
          e->target = std::move(*t);
          break;
        }
        case sys::Type::kCharDevice:
        case sys::Type::kBlockDevice:
          e->type = st->type == sys::Type::kCharDevice ? EntryType::kCharDevice : EntryType::kBlockDevice;
          e->major = st->rdev_major;
          e->minor = st->rdev_minor;
          break;
        case sys::Type::kFifo: e->type = EntryType::kFifo; break;
        case sys::Type::kDir: e->type = EntryType::kDirectory; break;
        default: break;
      }
      r.entries.push_back(std::move(*e));
      ticker_.Add(0, 1);
      if (!ticker_.Tick()) return Fail(Ticker::Cancelled());
      if (st->type == sys::Type::kDir) {
        if (o_.one_file_system && st->dev != root_dev_) {
          r.notes.push_back(child + ": mount point, recorded as an empty directory");
          continue;
        }
        auto sub = sys::OpenDirectoryAt(dir, name);
        if (!sub) return Fail(sub.error().WithContext(child));
        if (auto w = Walk(*sub, child); !w) return w;
      }
    }
    return {};
  }

  const WalkOptions& o_;
  uint64_t root_dev_;
  Ticker& ticker_;
  std::unordered_map<uint32_t, std::string> users_, groups_;
  std::map<std::pair<uint64_t, uint64_t>, std::string> links_;
};

}  // namespace

Expected<WalkResult> WalkTree(const sys::Fd& root, const WalkOptions& options, Ticker& ticker) {
  auto st = sys::FStat(root);
  if (!st) return Fail(st.error());
  pkg::rootfs::Accounts accounts;
  if (!options.accounts_root.empty()) accounts = pkg::rootfs::LoadAccounts(options.accounts_root);
  Walker w(options, st->dev, accounts, ticker);
  if (auto r = w.Root(root); !r) return Fail(r.error());
  return std::move(w.r);
}

}  // namespace parc::imaging::internal
