#include <nlohmann/json.hpp>
#include <optional>

#include "deploy_common.h"
#include "gather.h"
#include "parc/common/files.h"
#include "parc/common/timeutil.h"
#include "parc/imaging/deploy.h"
#include "parc/imaging/inspect.h"
#include "parc/packages/rootfs.h"
#include "stream.h"
#include "sys.h"

namespace parc::imaging {

namespace fs = std::filesystem;
using internal::Gatherer;
using internal::Ticker;

namespace {

// --- where things are -------------------------------------------------------

struct Paths {
  fs::path target, parent, staging, previous, journal, trash;
};

Expected<Paths> PathsFor(const fs::path& target) {
  std::error_code ec;
  fs::path t = fs::absolute(target, ec).lexically_normal();
  if (ec) return Fail(Errc::kInvalidArgument, "target " + target.string() + ": " + ec.message());
  if (!t.has_filename()) t = t.parent_path();
  std::string name = t.filename().string();
  if (name.empty() || name == "." || name == ".." || t == t.root_path())
    return Fail(Errc::kInvalidArgument, "target " + target.string() + " must name a directory below another one");
  Paths p;
  p.target = t;
  p.parent = t.parent_path();
  auto sibling = [&](std::string_view suffix) { return p.parent / ("." + name + std::string(suffix)); };
  p.staging = sibling(internal::kStagingSuffix);
  p.previous = sibling(internal::kPreviousSuffix);
  p.journal = sibling(internal::kJournalSuffix);
  p.trash = sibling(internal::kTrashSuffix);
  return p;
}

uint64_t InoOf(const fs::path& p) {
  auto st = sys::LStat(p);
  return st ? st->ino : 0;
}

// --- the journal -------------------------------------------------------------

// A deployment as the journal records it.
struct Deployed {
  std::string image_id, name, version;
  bool had_target = false;
  uint64_t new_ino = 0, old_ino = 0;  // the new tree's directory, the previous one's
};

struct Journal : Deployed {
  std::string state;  // writing, staged, swapped, rolling-back
  // DeployOptions::commit_previous: the deployment still in place (swapped,
  // not committed) while this one is written. It is committed when this one
  // is swapped in, and is the journal again if this one is discarded.
  std::optional<Deployed> kept;
};

Deployed ParseDeployed(const nlohmann::json& j) {
  Deployed out;
  out.image_id = j.at("image_id").get<std::string>();
  out.name = j.at("name").get<std::string>();
  out.version = j.at("version").get<std::string>();
  out.had_target = j.at("had_target").get<bool>();
  out.new_ino = j.at("new_ino").get<uint64_t>();
  out.old_ino = j.at("old_ino").get<uint64_t>();
  return out;
}

nlohmann::json DeployedJson(const Deployed& d) {
  return {{"image_id", d.image_id}, {"name", d.name},       {"version", d.version},
          {"had_target", d.had_target}, {"new_ino", d.new_ino}, {"old_ino", d.old_ino}};
}

Expected<std::optional<Journal>> ReadJournal(const Paths& p) {
  if (!sys::Exists(p.journal)) return std::optional<Journal>{};
  auto text = ReadSmallFile(p.journal, 1 << 20);
  if (!text) return Fail(text.error());
  try {
    auto j = nlohmann::json::parse(*text);
    Journal out;
    static_cast<Deployed&>(out) = ParseDeployed(j);
    out.state = j.at("state").get<std::string>();
    if (out.state != "writing" && out.state != "staged" && out.state != "swapped" && out.state != "rolling-back")
      return Fail(Errc::kParse, p.journal.string() + ": unknown state '" + out.state + "'");
    if (auto k = j.find("kept"); k != j.end()) out.kept = ParseDeployed(*k);
    return std::optional<Journal>(out);
  } catch (const nlohmann::json::exception& e) {
    return Fail(Errc::kParse, p.journal.string() + ": " + e.what());
  }
}

ExpectedVoid WriteJournal(const Paths& p, const Journal& j) {
  nlohmann::json o = DeployedJson(j);
  o["format"] = "parc-image-deploy/1";
  o["state"] = j.state;
  if (j.kept) o["kept"] = DeployedJson(*j.kept);
  return WriteFileAtomic(p.journal, o.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0600);
}

ExpectedVoid RemoveJournal(const Paths& p) {
  if (auto r = sys::RemoveFile(p.journal); !r) return r;
  return sys::FsyncPath(p.parent);
}

// A deployment that never reached the target is over: the journal is the
// kept deployment's again (in place, not committed), or goes. A kept
// deployment whose previous tree is gone (moved aside for the swap, then a
// crash) was being committed: its journal goes too.
ExpectedVoid DropUnswapped(const Paths& p, const Journal& j) {
  if (j.kept && (!j.kept->had_target || InoOf(p.previous) == j.kept->old_ino)) {
    Journal back;
    static_cast<Deployed&>(back) = *j.kept;
    back.state = "swapped";
    return WriteJournal(p, back);
  }
  return RemoveJournal(p);
}

// A crash between the swap and the journal update: the inodes say whether the
// swap happened; finish moving the previous tree aside if it did.
ExpectedVoid SettleSwap(const Paths& p, Journal& j) {
  if (j.state != "staged" || j.new_ino == 0 || InoOf(p.target) != j.new_ino) return {};
  if (j.had_target && InoOf(p.staging) == j.old_ino)
    if (auto r = sys::Rename(p.staging, p.previous); !r) return r;
  if (auto r = sys::FsyncPath(p.parent); !r) return r;
  j.state = "swapped";
  j.kept.reset();
  return WriteJournal(p, j);
}

ExpectedVoid Swap(const Paths& p, Journal& j) {
  // The kept deployment is committed now: its previous tree makes room for
  // the one this swap sets aside (and is removed with the trash).
  if (j.kept && j.kept->had_target && InoOf(p.previous) == j.kept->old_ino)
    if (auto r = sys::Rename(p.previous, p.trash); !r) return r;
  if (j.had_target && InoOf(p.target) == j.old_ino) {
    auto ex = sys::Exchange(p.staging, p.target);
    if (!ex) return Fail(ex.error());
    if (*ex) {
      if (auto r = sys::Rename(p.staging, p.previous); !r) return r;
    } else {  // no RENAME_EXCHANGE here: two renames, the journal covers the gap
      if (auto r = sys::Rename(p.target, p.previous); !r) return r;
      if (auto r = sys::Rename(p.staging, p.target); !r) return r;
    }
  } else if (!sys::Exists(p.target)) {
    if (auto r = sys::Rename(p.staging, p.target); !r) return r;
  } else {
    return Fail(Errc::kFailedPrecondition, p.target.string() + " changed during the deployment; deploy again");
  }
  if (auto r = sys::FsyncPath(p.parent); !r) return r;
  j.state = "swapped";
  j.kept.reset();
  return WriteJournal(p, j);
}

std::string Describe(const Journal& j) { return j.name + " " + j.version; }

// --- writing the new tree ------------------------------------------------------

std::string Rel(const std::string& path) { return path == "/" ? std::string() : path.substr(1); }
std::string ParentRel(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? std::string() : path.substr(1, slash - 1);
}
std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The last few directories a worker opened inside the new tree.
class DirCache {
 public:
  explicit DirCache(const sys::Fd& root) : root_(root) {}
  Expected<const sys::Fd*> Get(const std::string& rel) {
    if (rel.empty()) return &root_;
    for (auto& s : slots_)
      if (s.fd && s.rel == rel) return &s.fd;
    auto fd = sys::OpenBeneath(root_, rel, true);
    if (!fd) return Fail(fd.error());
    Slot& s = slots_[next_++ % slots_.size()];
    s.rel = rel;
    s.fd = std::move(*fd);
    return &s.fd;
  }

 private:
  struct Slot {
    std::string rel;
    sys::Fd fd;
  };
  const sys::Fd& root_;
  std::array<Slot, 4> slots_;
  size_t next_ = 0;
};

// Seed files in the current target, one open at a time per worker.
class SeedFiles {
 public:
  SeedFiles(const sys::Fd* target, const std::vector<std::string>* rels) : target_(target), rels_(rels) {}
  ExpectedVoid Read(uint32_t source, uint64_t offset, char* buf, size_t n) {
    if (!target_ || source >= rels_->size()) return Fail(Errc::kInternal, "no such seed");
    if (source != open_ || !fd_) {
      auto fd = sys::OpenBeneath(*target_, (*rels_)[source], false);
      if (!fd) return Fail(fd.error());
      fd_ = std::move(*fd);
      open_ = source;
    }
    auto got = sys::PReadFull(fd_, buf, n, offset);
    if (!got) return Fail(got.error());
    if (*got != n) return Fail(Errc::kIo, "seed file shrank");
    return {};
  }

 private:
  const sys::Fd* target_;
  const std::vector<std::string>* rels_;
  uint32_t open_ = static_cast<uint32_t>(-1);
  sys::Fd fd_;
};

struct Owner {
  uint32_t uid, gid;
};

class TreeWriter {
 public:
  TreeWriter(const Image& image, const sys::Fd& root, Gatherer& gatherer, const DeployOptions& o, Ticker& ticker,
             const sys::Fd* seed_root, const std::vector<std::string>* seed_rels)
      : image_(image), root_(root), gatherer_(gatherer), o_(o), ticker_(ticker), seed_root_(seed_root), seed_rels_(seed_rels) {
    if (o.owners_by_name) accounts_ = pkg::rootfs::LoadAccounts(o.accounts_root);
  }

  ExpectedVoid Write() {
    DirCache dirs(root_);
    std::vector<size_t> leaves, links, directories;
    for (size_t i = 0; i < image_.entries.size(); ++i) {
      const Entry& e = image_.entries[i];
      if (e.type == EntryType::kDirectory) directories.push_back(i);
      else if (e.type == EntryType::kHardlink) links.push_back(i);
      else leaves.push_back(i);
    }
    // Directories first, private until their metadata is applied last.
    for (size_t i : directories) {
      const Entry& e = image_.entries[i];
      if (e.path == "/") continue;
      auto parent = dirs.Get(ParentRel(e.path));
      if (!parent) return Fail(parent.error().WithContext(e.path));
      if (auto r = sys::MakeDirectoryAt(**parent, BaseName(e.path), 0700); !r) return Fail(r.error().WithContext(e.path));
    }
    unsigned threads = internal::ThreadCount(o_.threads);
    std::vector<std::unique_ptr<DirCache>> caches;
    std::vector<std::unique_ptr<SeedFiles>> seeds;
    for (unsigned w = 0; w < threads; ++w) {
      caches.push_back(std::make_unique<DirCache>(root_));
      seeds.push_back(std::make_unique<SeedFiles>(seed_root_, seed_rels_));
    }
    ticker_.Phase("write", image_.manifest.size, image_.entries.size());
    auto r = internal::ParallelFor(leaves.size(), threads, ticker_, [&](size_t k, unsigned w) -> ExpectedVoid {
      const Entry& e = image_.entries[leaves[k]];
      auto parent = caches[w]->Get(ParentRel(e.path));
      if (!parent) return Fail(parent.error().WithContext(e.path));
      auto done = Leaf(e, **parent, *seeds[w]);
      if (!done) return Fail(done.error().WithContext(e.path));
      ticker_.Add(e.size, 1);
      return {};
    });
    if (!r) return r;
    for (size_t i : links) {
      const Entry& e = image_.entries[i];
      auto from = sys::OpenBeneath(root_, ParentRel(e.target), true);
      if (!from) return Fail(from.error().WithContext(e.path));
      auto parent = dirs.Get(ParentRel(e.path));
      if (!parent) return Fail(parent.error().WithContext(e.path));
      if (auto l = sys::HardlinkAt(*from, BaseName(e.target), **parent, BaseName(e.path)); !l)
        return Fail(l.error().WithContext(e.path));
    }
    // Directory metadata last: creating entries inside changes a directory's
    // mtime, and a default ACL would be inherited by what is created in it.
    for (auto it = directories.rbegin(); it != directories.rend(); ++it) {
      const Entry& e = image_.entries[*it];
      const sys::Fd* parent = &root_;
      std::string name;
      if (e.path != "/") {
        auto p = dirs.Get(ParentRel(e.path));
        if (!p) return Fail(p.error().WithContext(e.path));
        parent = *p;
        name = BaseName(e.path);
      }
      if (auto m = MetaAt(e, *parent, name); !m) return Fail(m.error().WithContext(e.path));
    }
    ticker_.Tick(true);
    return {};
  }

  uint64_t written() const { return written_.load(); }

 private:
  Owner OwnerOf(const Entry& e) const {
    Owner o{e.uid, e.gid};
    if (!o_.owners_by_name) return o;
    if (!e.user.empty())
      if (auto u = accounts_.Uid(e.user)) o.uid = *u;
    if (!e.group.empty())
      if (auto g = accounts_.Gid(e.group)) o.gid = *g;
    return o;
  }

  // Owner first (chown clears setuid bits and file capabilities), then mode,
  // extended attributes (ACLs, capabilities), and the mtime last.
  ExpectedVoid MetaAt(const Entry& e, const sys::Fd& dir, const std::string& name) {
    Owner ow = OwnerOf(e);
    if (auto r = sys::SetOwnerAt(dir, name, ow.uid, ow.gid); !r) return r;
    if (e.type != EntryType::kSymlink)
      if (auto r = sys::SetModeAt(dir, name, e.mode); !r) return r;
    for (const auto& [k, v] : e.xattrs)
      if (auto r = sys::SetXattrAt(dir, name, k, v); !r) return r;
    return sys::SetMtimeAt(dir, name, e.mtime, e.mtime_nsec);
  }

  ExpectedVoid Leaf(const Entry& e, const sys::Fd& dir, SeedFiles& seeds) {
    std::string name = BaseName(e.path);
    switch (e.type) {
      case EntryType::kFile: return File(e, dir, name, seeds);
      case EntryType::kSymlink:
        if (auto r = sys::SymlinkAt(e.target, dir, name); !r) return r;
        return MetaAt(e, dir, name);
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
      case EntryType::kFifo: {
        sys::Type t = e.type == EntryType::kCharDevice   ? sys::Type::kCharDevice
                      : e.type == EntryType::kBlockDevice ? sys::Type::kBlockDevice
                                                          : sys::Type::kFifo;
        if (auto r = sys::MakeNodeAt(dir, name, t, 0600, e.major, e.minor); !r) return r;
        return MetaAt(e, dir, name);
      }
      default: return Fail(Errc::kInternal, "unexpected entry type");
    }
  }

  ExpectedVoid File(const Entry& e, const sys::Fd& dir, const std::string& name, SeedFiles& seeds) {
    auto fd = sys::CreateFileAt(dir, name);
    if (!fd) return Fail(fd.error());
    internal::SeedRead read = [&](uint32_t s, uint64_t off, char* buf, size_t n) { return seeds.Read(s, off, buf, n); };
    uint64_t offset = 0;
    bool holes = false;
    if (!e.data.empty())  // kept in the index: no chunk
      if (auto w = sys::PWriteAll(*fd, e.data, 0); !w) return w;
    for (const auto& c : e.chunks) {
      auto plain = gatherer_.Plain(c, read);
      if (!plain) return Fail(plain.error());
      // Zero blocks stay holes, as in a sparse source.
      if (plain->size() >= 4096 && internal::AllZero(*plain)) holes = true;
      else if (auto w = sys::PWriteAll(*fd, *plain, offset); !w) return w;
      offset += c.size;
    }
    if (holes)
      if (auto t = sys::Truncate(*fd, e.size); !t) return t;
    // The device starts on it now, so the sync before the swap has little left.
    if (e.size > 0) sys::StartWriteback(*fd, 0, 0);
    written_.fetch_add(e.size);
    Owner ow = OwnerOf(e);
    if (auto r = sys::SetOwner(*fd, ow.uid, ow.gid); !r) return r;
    if (auto r = sys::SetMode(*fd, e.mode); !r) return r;
    for (const auto& [k, v] : e.xattrs)
      if (auto r = sys::SetXattr(*fd, k, v); !r) return r;
    return sys::SetMtime(*fd, e.mtime, e.mtime_nsec);
  }

  const Image& image_;
  const sys::Fd& root_;
  Gatherer& gatherer_;
  const DeployOptions& o_;
  Ticker& ticker_;
  const sys::Fd* seed_root_;
  const std::vector<std::string>* seed_rels_;
  pkg::rootfs::Accounts accounts_;
  std::atomic<uint64_t> written_{0};
};

// Seeding: files at the same path in the current target are cut with the
// image's chunker; chunks the image needs and the cache lacks are noted.
ExpectedVoid ScanSeeds(const Image& image, const sys::Fd& target, Gatherer& g, const DeployOptions& o, Ticker& ticker,
                       std::vector<std::string>& rels) {
  for (const auto& e : image.entries) {
    if (e.type != EntryType::kFile) continue;
    bool wanted = false;
    for (const auto& c : e.chunks) wanted |= g.Wanted(c.sha256);
    if (wanted) rels.push_back(Rel(e.path));
  }
  if (rels.empty()) return {};
  ticker.Phase("seed", 0, rels.size());
  Chunker chunker(image.manifest.chunking);
  return internal::ParallelFor(rels.size(), internal::ThreadCount(o.threads), ticker, [&](size_t k, unsigned) -> ExpectedVoid {
    auto fd = sys::OpenBeneath(target, rels[k], false);
    if (!fd) return {};  // absent, a symlink, unreadable: nothing to reuse
    auto st = sys::FStat(*fd);
    if (!st || st->type != sys::Type::kFile) return {};
    auto cut = internal::CutStream(*fd, st->size, chunker, [&](std::string_view chunk, uint64_t offset) -> ExpectedVoid {
      if (g.WantedSize(static_cast<uint32_t>(chunk.size()))) {
        Digest d = Digest::Of(chunk);
        if (g.Wanted(d)) g.Seeded(d, static_cast<uint32_t>(k), offset);
      }
      return {};
    });
    (void)cut;  // an unreadable seed is only a seed less
    ticker.Add(st->size, 1);
    return {};
  });
}

ExpectedVoid VerifyNewTree(const Image& image, const fs::path& staging, const DeployOptions& o) {
  VerifyOptions vo;
  vo.threads = o.threads;
  vo.progress = o.progress;
  auto check = VerifyTree(image, staging, vo);
  if (!check) return Fail(check.error().WithContext("checking the new tree"));
  if (check->ok()) return {};
  const Difference& d = check->differences.front();
  return Fail(Errc::kCrypto, "the new tree differs from the signed image (" + std::to_string(check->differences.size()) +
                                 " difference(s), first " + d.path + ": " + d.what +
                                 (d.detail.empty() ? "" : ", " + d.detail) + ")");
}

ExpectedVoid CheckTarget(const Paths& p) {
  auto parent = sys::LStat(p.parent);
  if (!parent || parent->type != sys::Type::kDir)
    return Fail(Errc::kFailedPrecondition, "the parent of the target, " + p.parent.string() + ", is not a directory");
  if (!sys::Exists(p.target)) return {};
  auto st = sys::LStat(p.target);
  if (!st) return Fail(st.error());
  if (st->type != sys::Type::kDir)
    return Fail(Errc::kFailedPrecondition, "the target " + p.target.string() + " exists and is not a directory (symlinks are not followed)");
  if (st->dev != parent->dev)
    return Fail(Errc::kFailedPrecondition, "the target " + p.target.string() +
                                               " is a mount point: the new tree must be written next to it on the same filesystem; "
                                               "deploy to a directory inside it instead");
  return {};
}

}  // namespace

Expected<DeployReport> DeployTree(std::string_view manifest_json, std::string_view signature, const fs::path& target,
                                  ChunkStore& cache, ChunkFetcher* given_fetcher, const DeployOptions& o) {
  std::optional<internal::CountingFetcher> counting;
  if (given_fetcher) counting.emplace(*given_fetcher);
  ChunkFetcher* fetcher = counting ? &*counting : nullptr;
  auto image = internal::OpenSignedImage(manifest_json, signature, ImageKind::kTree, cache, fetcher, o);
  if (!image) return Fail(image.error().WithContext("deploy to " + target.string()));
  if (o.verify && o.owners_by_name)
    return Fail(Errc::kInvalidArgument, "verifying a tree deployed with owners by name is not supported");
  auto paths = PathsFor(target);
  if (!paths) return Fail(paths.error());
  const Paths& p = *paths;
  DeployReport report;
  report.name = image->manifest.name;
  report.version = image->manifest.version;
  report.image_id = ManifestId(manifest_json);
  report.index_fetched = counting ? counting->chunks.load() : 0;
  auto ctx = [&](const Error& e) { return Fail(e.WithContext("deploy of " + report.name + " " + report.version + " to " + p.target.string())); };

  if (auto r = sys::RemoveTree(p.trash); !r) return ctx(r.error());
  auto journal = ReadJournal(p);
  if (!journal) return ctx(journal.error());
  if (*journal)
    if (auto s = SettleSwap(p, **journal); !s) return ctx(s.error());
  bool staged_ready = false;
  if (*journal && ((*journal)->state == "writing" || (*journal)->state == "staged")) {
    Journal& j = **journal;
    if (j.state == "staged" && j.image_id == report.image_id && InoOf(p.staging) == j.new_ino) {
      staged_ready = true;  // complete and synced before an interruption: only the swap is left
    } else {
      // Half-written: discarded, and what was in place before is again.
      if (auto r = sys::RemoveTree(p.staging); !r) return ctx(r.error());
      if (auto r = DropUnswapped(p, j); !r) return ctx(r.error());
      journal = ReadJournal(p);
      if (!journal) return ctx(journal.error());
    }
  }
  std::optional<Deployed> kept;  // with commit_previous: the deployment in place, committed at the swap
  if (!staged_ready && *journal) {  // swapped or rolling back
    Journal& j = **journal;
    if (j.state == "swapped" && j.image_id == report.image_id) {
      // Swapped in before an interruption, or kept uncommitted: checked in place.
      if (o.verify)
        if (auto v = VerifyNewTree(*image, p.target, o); !v) {
          auto rolled = RollbackTree(p.target);
          return ctx(Error(v.error().code(), v.error().message() + "; " +
                                                (rolled ? "the previous tree is back" : "rollback failed: " + rolled.error().message())));
        }
      report.already_deployed = true;
      if (j.had_target) report.previous = p.previous;
      return report;
    }
    if (j.state != "swapped" || !o.commit_previous)
      return Fail(Errc::kFailedPrecondition, "the deployment of " + Describe(j) + " to " + p.target.string() +
                                                 " is neither committed nor rolled back; commit or roll it back first");
    kept = static_cast<const Deployed&>(j);
  } else if (!staged_ready) {
    if (sys::Exists(p.staging))
      if (auto r = sys::RemoveTree(p.staging); !r) return ctx(r.error());
    if (sys::Exists(p.previous))
      return ctx(Error(Errc::kFailedPrecondition, p.previous.string() +
                                                      " exists but no deployment refers to it; move it away or remove it"));
  }
  if (auto c = CheckTarget(p); !c) return ctx(c.error());

  Ticker ticker(o.progress);
  Journal j;
  if (staged_ready) {
    j = **journal;
    if (o.verify)
      if (auto v = VerifyNewTree(*image, p.staging, o); !v) {
        (void)sys::RemoveTree(p.staging);
        (void)DropUnswapped(p, j);
        return ctx(v.error().WithContext("not swapped in"));
      }
  } else {
    uint64_t need = image->manifest.size + image->entries.size() * 4096ull;
    if (auto free = sys::FreeBytes(p.parent); free && *free < need)
      return ctx(Error(Errc::kResourceExhausted, "needs about " + std::to_string(need >> 20) + " MiB, " +
                                                     std::to_string(*free >> 20) + " MiB are free"));
    Gatherer gatherer(image->UniqueChunks(), cache, fetcher, o, ticker);
    if (auto r = gatherer.CheckCache(); !r) return ctx(r.error());
    std::optional<sys::Fd> target_fd;
    std::vector<std::string> seed_rels;
    if (o.seed && gatherer.missing() > 0 && sys::Exists(p.target)) {
      auto fd = sys::OpenDirectory(p.target);
      if (fd) {
        target_fd = std::move(*fd);
        if (auto s = ScanSeeds(*image, *target_fd, gatherer, o, ticker, seed_rels); !s) return ctx(s.error());
      }
    }
    j.state = "writing";
    j.image_id = report.image_id;
    j.name = report.name;
    j.version = report.version;
    j.had_target = sys::Exists(p.target);
    j.old_ino = j.had_target ? InoOf(p.target) : 0;
    j.kept = kept;
    if (auto w = WriteJournal(p, j); !w) return ctx(w.error());
    auto discard = [&](const Error& e) {
      (void)sys::RemoveTree(p.staging);
      (void)DropUnswapped(p, j);
      return ctx(e);
    };
    if (auto r = sys::MakeDirectory(p.staging, 0700); !r) return discard(r.error());
    auto staging_fd = sys::OpenDirectory(p.staging);
    if (!staging_fd) return discard(staging_fd.error());
    // The new tree is written while the missing chunks are fetched: a file
    // waits only for its own chunks; a failed fetch stops the writers and
    // discards the half-written tree.
    std::vector<const ChunkRef*> uses;
    for (const auto& e : image->entries)
      if (e.type == EntryType::kFile)
        for (const auto& c : e.chunks) uses.push_back(&c);
    uint64_t written = 0;
    auto w = internal::FetchWhileWriting(gatherer, uses, ticker, "write", image->manifest.size, image->entries.size(),
                                         [&](Ticker& t) -> ExpectedVoid {
                                           TreeWriter writer(*image, *staging_fd, gatherer, o, t,
                                                             target_fd ? &*target_fd : nullptr, &seed_rels);
                                           auto r = writer.Write();
                                           written = writer.written();
                                           return r;
                                         });
    if (!w) return discard(w.error());
    // Checked while the device catches up: the check reads what was written.
    internal::Background syncing([&] { return sys::SyncFilesystem(*staging_fd); });
    if (o.verify)
      if (auto v = VerifyNewTree(*image, p.staging, o); !v) {
        (void)syncing.Wait();
        return discard(v.error().WithContext("not swapped in"));
      }
    ticker.Phase("sync", 0, 0);
    if (auto s = syncing.Wait([&] { ticker.Tick(); }); !s) return discard(s.error());
    gatherer.Fill(report);
    report.written_bytes = written;
    j.state = "staged";
    j.new_ino = InoOf(p.staging);
    if (auto w = WriteJournal(p, j); !w) return discard(w.error());
  }
  ticker.Phase("swap", 0, 0);
  if (auto s = Swap(p, j); !s) return ctx(s.error());
  (void)sys::RemoveTree(p.trash);  // a committed kept deployment's previous tree; else the next call removes it
  if (j.had_target) report.previous = p.previous;
  if (counting) report.fetched_bytes = counting->bytes.load();
  ticker.Tick(true);
  return report;
}

ExpectedVoid CommitTree(const fs::path& target) {
  auto paths = PathsFor(target);
  if (!paths) return Fail(paths.error());
  const Paths& p = *paths;
  auto journal = ReadJournal(p);
  if (!journal) return Fail(journal.error());
  if (!*journal) return sys::RemoveTree(p.trash);
  Journal& j = **journal;
  if (auto s = SettleSwap(p, j); !s) return s;
  if (j.state != "swapped")
    return Fail(Errc::kFailedPrecondition, "the deployment of " + Describe(j) + " to " + p.target.string() +
                                               " is not in place (" + j.state + "): deploy again to finish it, or roll it back");
  if (sys::Exists(p.previous))
    if (auto r = sys::Rename(p.previous, p.trash); !r) return r;
  if (auto r = RemoveJournal(p); !r) return r;
  return sys::RemoveTree(p.trash);
}

ExpectedVoid RollbackTree(const fs::path& target) {
  auto paths = PathsFor(target);
  if (!paths) return Fail(paths.error());
  const Paths& p = *paths;
  auto journal = ReadJournal(p);
  if (!journal) return Fail(journal.error());
  if (!*journal) return Fail(Errc::kFailedPrecondition, "no deployment to " + p.target.string() + " to roll back");
  Journal& j = **journal;
  if (auto s = SettleSwap(p, j); !s) return s;
  if (j.state == "writing" || j.state == "staged") {  // the target was never touched
    if (auto r = sys::RemoveTree(p.staging); !r) return r;
    return DropUnswapped(p, j);
  }
  j.state = "rolling-back";
  if (auto w = WriteJournal(p, j); !w) return w;
  if (j.had_target) {
    if (InoOf(p.target) == j.new_ino && InoOf(p.previous) == j.old_ino) {
      auto ex = sys::Exchange(p.previous, p.target);
      if (!ex) return Fail(ex.error());
      if (!*ex) {
        if (auto r = sys::Rename(p.target, p.trash); !r) return r;
        if (auto r = sys::Rename(p.previous, p.target); !r) return r;
      }
    }
    if (InoOf(p.previous) == j.new_ino)
      if (auto r = sys::Rename(p.previous, p.trash); !r) return r;
    if (InoOf(p.target) != j.old_ino)
      return Fail(Errc::kFailedPrecondition, "cannot roll back " + p.target.string() + ": the previous tree is not where it was left");
  } else if (InoOf(p.target) == j.new_ino) {
    if (auto r = sys::Rename(p.target, p.trash); !r) return r;
  }
  if (auto r = sys::FsyncPath(p.parent); !r) return r;
  if (auto r = RemoveJournal(p); !r) return r;
  return sys::RemoveTree(p.trash);
}

Expected<TreeDeployment> InspectTree(const fs::path& target) {
  auto paths = PathsFor(target);
  if (!paths) return Fail(paths.error());
  auto journal = ReadJournal(*paths);
  if (!journal) return Fail(journal.error());
  TreeDeployment d;
  if (!*journal) return d;
  const Journal& j = **journal;
  d.name = j.name;
  d.version = j.version;
  d.image_id = j.image_id;
  bool swapped = j.state == "swapped" || (j.state == "staged" && j.new_ino && InoOf(paths->target) == j.new_ino);
  d.state = j.state == "writing"        ? TreeDeployment::State::kWriting
            : j.state == "rolling-back" ? TreeDeployment::State::kRollingBack
            : swapped                   ? TreeDeployment::State::kSwapped
                                        : TreeDeployment::State::kStaged;
  if (swapped && j.had_target) d.previous = paths->previous;
  if (!swapped && j.kept) d.kept_image_id = j.kept->image_id;
  return d;
}

}  // namespace parc::imaging
