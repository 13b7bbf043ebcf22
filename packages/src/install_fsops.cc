// Rollback point on disk: recording paths before a change and putting them
// back exactly (bytes, mode, owner, symlink target, absence).
#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "installer_internal.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"

namespace parc::pkg::rootfs {

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::string TypeOf(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "file";
  if (S_ISDIR(st.st_mode)) return "dir";
  if (S_ISLNK(st.st_mode)) return "symlink";
  return "other";
}

Expected<std::string> ReadLink(const fs::path& p) {
  std::string buf(4096, '\0');
  ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
  if (n < 0) return Fail(ErrnoError(errno, "cannot read link " + p.string()));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// Copies src to dst (created 0600), hashing on the way; dst is fsynced.
Expected<std::string> CopyAndHash(const fs::path& src, const fs::path& dst, uint64_t& size) {
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.fd < 0) return Fail(ErrnoError(errno, "cannot open " + src.string()));
  Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (out.fd < 0) return Fail(ErrnoError(errno, "cannot create " + dst.string()));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) return Fail(Errc::kCrypto, "SHA-256 unavailable");
  char buf[1 << 16];
  size = 0;
  while (true) {
    ssize_t n = ::read(in.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(errno, "cannot read " + src.string()));
    }
    if (n == 0) break;
    EVP_DigestUpdate(md.get(), buf, static_cast<size_t>(n));
    size_t off = 0;
    while (off < static_cast<size_t>(n)) {
      ssize_t w = ::write(out.fd, buf + off, static_cast<size_t>(n) - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Fail(ErrnoError(errno, "cannot write " + dst.string()));
      }
      off += static_cast<size_t>(w);
    }
    size += static_cast<uint64_t>(n);
  }
  if (::fsync(out.fd) != 0) return Fail(ErrnoError(errno, "cannot sync " + dst.string()));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md.get(), digest, &len);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

ExpectedVoid SetMeta(const fs::path& p, const PathRecord& r) {
  if (::lchown(p.c_str(), r.uid, r.gid) != 0) return Fail(ErrnoError(errno, "cannot set owner of " + p.string()));
  if (r.type != "symlink" && ::chmod(p.c_str(), r.mode) != 0)
    return Fail(ErrnoError(errno, "cannot set mode of " + p.string()));
  return {};
}

ExpectedVoid RemoveTree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) return Fail(Errc::kIo, "cannot remove " + p.string() + ": " + ec.message());
  return {};
}

}  // namespace

fs::path HostPath(const fs::path& root, const fs::path& state, const PathRecord& r) {
  return r.in_state ? state / r.path : UnderRoot(root, r.path);
}

ExpectedVoid FsyncPath(const fs::path& p) {
  Fd f(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return Fail(ErrnoError(errno, "cannot open " + p.string()));
  if (::fsync(f.fd) != 0) return Fail(ErrnoError(errno, "cannot sync " + p.string()));
  return {};
}

Expected<PathRecord> RecordPath(const fs::path& host, const std::string& path, bool in_state,
                                const fs::path& point_dir, size_t index, uint64_t& bytes) {
  PathRecord r;
  r.path = path;
  r.in_state = in_state;
  struct stat st {};
  if (::lstat(host.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return r;
    return Fail(ErrnoError(errno, "cannot inspect " + host.string()));
  }
  r.existed = true;
  r.type = TypeOf(st);
  r.mode = st.st_mode & 07777;
  r.uid = st.st_uid;
  r.gid = st.st_gid;
  if (r.type == "other")
    return Fail(Errc::kFailedPrecondition, host.string() + " is a device, fifo or socket: Parc will not replace it");
  if (r.type == "symlink") {
    auto t = ReadLink(host);
    if (!t) return Fail(t.error());
    r.target = *t;
  } else if (r.type == "file") {
    r.saved = "data/" + std::to_string(index);
    uint64_t size = 0;
    auto sha = CopyAndHash(host, point_dir / r.saved, size);
    if (!sha) return Fail(sha.error());
    r.sha256 = *sha;
    r.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    bytes += size;
  }
  return r;
}

nlohmann::json PathRecordToJson(const PathRecord& r) {
  nlohmann::json e{{"path", r.path}, {"existed", r.existed}};
  if (r.in_state) e["in_state"] = true;
  if (r.existed) {
    e["type"] = r.type;
    e["mode"] = r.mode;
    e["uid"] = r.uid;
    e["gid"] = r.gid;
    if (r.type == "symlink") e["target"] = r.target;
    if (r.type == "file") {
      e["sha256"] = r.sha256;
      e["saved"] = r.saved;
      e["mtime_ns"] = r.mtime_ns;
    }
  }
  return e;
}

PathRecord PathRecordFromJson(const nlohmann::json& e) {
  PathRecord r;
  r.path = e.at("path").get<std::string>();
  r.in_state = e.value("in_state", false);
  r.existed = e.at("existed").get<bool>();
  if (r.existed) {
    r.type = e.at("type").get<std::string>();
    r.mode = e.at("mode").get<unsigned>();
    r.uid = e.at("uid").get<uint32_t>();
    r.gid = e.at("gid").get<uint32_t>();
    r.target = e.value("target", "");
    r.sha256 = e.value("sha256", "");
    r.saved = e.value("saved", "");
    r.mtime_ns = e.value("mtime_ns", int64_t{0});
  }
  return r;
}

ExpectedVoid RestorePaths(const fs::path& root, const fs::path& state, const fs::path& point_dir,
                          const std::vector<PathRecord>& paths, bool remove_created_trees,
                          std::vector<std::string>& notes) {
  std::vector<const PathRecord*> order;
  for (const auto& r : paths) order.push_back(&r);
  std::sort(order.begin(), order.end(), [](const PathRecord* a, const PathRecord* b) {
    if (a->in_state != b->in_state) return a->in_state < b->in_state;
    return a->path < b->path;
  });
  std::set<fs::path> touched_dirs;

  // 1. Deepest first: remove what was absent and what changed type.
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const PathRecord& r = **it;
    fs::path host = HostPath(root, state, r);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) continue;
    std::string now = TypeOf(st);
    if (r.existed && now == r.type) continue;
    touched_dirs.insert(host.parent_path());
    if (now == "dir") {
      if (!r.existed && !remove_created_trees) {
        if (::rmdir(host.c_str()) != 0) {
          if (errno == ENOTEMPTY || errno == EEXIST) {
            notes.push_back("kept directory " + r.path + ": it holds files that came later");
            continue;
          }
          return Fail(ErrnoError(errno, "cannot remove " + host.string()));
        }
        continue;
      }
      if (auto x = RemoveTree(host); !x) return x;
    } else if (::unlink(host.c_str()) != 0 && errno != ENOENT) {
      return Fail(ErrnoError(errno, "cannot remove " + host.string()));
    }
  }

  // 2. Parents first: put back what existed.
  for (const PathRecord* rp : order) {
    const PathRecord& r = *rp;
    if (!r.existed) continue;
    fs::path host = HostPath(root, state, r);
    touched_dirs.insert(host.parent_path());
    if (r.type == "dir") {
      if (::mkdir(host.c_str(), 0700) != 0 && errno != EEXIST)
        return Fail(ErrnoError(errno, "cannot create " + host.string()));
      if (auto x = SetMeta(host, r); !x) return x;
      continue;
    }
    fs::path tmp = host;
    tmp += ".parc-restore";
    ::unlink(tmp.c_str());
    if (r.type == "symlink") {
      if (::symlink(r.target.c_str(), tmp.c_str()) != 0)
        return Fail(ErrnoError(errno, "cannot create link " + tmp.string()));
      if (::lchown(tmp.c_str(), r.uid, r.gid) != 0) return Fail(ErrnoError(errno, "cannot set owner of " + tmp.string()));
    } else {
      uint64_t size = 0;
      auto sha = CopyAndHash(point_dir / r.saved, tmp, size);
      if (!sha) return Fail(sha.error().WithContext("restoring " + r.path));
      if (*sha != r.sha256) {
        ::unlink(tmp.c_str());
        return Fail(Errc::kIo, "saved copy of " + r.path + " in " + point_dir.string() + " is damaged (digest mismatch)");
      }
      if (::chown(tmp.c_str(), r.uid, r.gid) != 0 || ::chmod(tmp.c_str(), r.mode) != 0)
        return Fail(ErrnoError(errno, "cannot set owner/mode of " + tmp.string()));
      struct timespec times[2];
      times[0].tv_sec = 0;
      times[0].tv_nsec = UTIME_OMIT;
      times[1].tv_sec = static_cast<time_t>(r.mtime_ns / 1'000'000'000);
      times[1].tv_nsec = static_cast<long>(r.mtime_ns % 1'000'000'000);
      ::utimensat(AT_FDCWD, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
    if (::rename(tmp.c_str(), host.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return Fail(ErrnoError(err, "cannot put back " + host.string()));
    }
  }
  for (const auto& d : touched_dirs)
    if (std::error_code ec; fs::is_directory(d, ec)) (void)FsyncPath(d);
  return {};
}

}  // namespace parc::pkg::rootfs

namespace parc::pkg::detail {

ExpectedVoid WritePoint(const fs::path& point_dir, const PointData& p) {
  nlohmann::json j;
  j["id"] = p.id;
  j["job_id"] = p.job_id;
  j["package"] = p.package;
  j["action"] = p.action;
  j["from_version"] = p.from_version;
  j["to_version"] = p.to_version;
  j["created_at"] = p.created_at;
  j["bytes"] = p.bytes;
  j["paths"] = nlohmann::json::array();
  for (const auto& r : p.paths) j["paths"].push_back(PathRecordToJson(r));
  j["services"] = nlohmann::json::array();
  for (const auto& s : p.services) j["services"].push_back({{"unit", s.unit}, {"state", s.state}});
  j["debs"] = nlohmann::json::array();
  for (const auto& d : p.debs)
    j["debs"].push_back({{"package", d.package}, {"was_installed", d.was_installed}, {"version", d.version}, {"status", d.status}});
  if (p.installed) {
    j["installed"] = {{"name", p.installed->name},
                      {"version", p.installed->version},
                      {"installed_at", p.installed->installed_at},
                      {"manifest_json", p.installed->manifest_json}};
  } else {
    j["installed"] = nullptr;
  }
  std::string text;
  try {
    text = j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return Fail(Errc::kInternal, std::string("cannot write the rollback point: ") + e.what());
  }
  if (auto r = WriteFileAtomic(point_dir / "point.json", text, 0600); !r) return r;
  // The data files were fsynced when copied; now their directory entries.
  std::error_code ec;
  if (fs::exists(point_dir / "data", ec))
    if (auto r = FsyncPath(point_dir / "data"); !r) return r;
  if (auto r = FsyncPath(point_dir); !r) return r;
  return FsyncPath(point_dir.parent_path());
}

Expected<PointData> ReadPoint(const fs::path& point_dir) {
  auto text = ReadFile(point_dir / "point.json");
  if (!text) return Fail(text.error());
  try {
    auto j = nlohmann::json::parse(*text);
    PointData p;
    p.id = j.at("id").get<std::string>();
    p.job_id = j.value("job_id", "");
    p.package = j.at("package").get<std::string>();
    p.action = j.at("action").get<std::string>();
    p.from_version = j.value("from_version", "");
    p.to_version = j.value("to_version", "");
    p.created_at = j.value("created_at", int64_t{0});
    p.bytes = j.value("bytes", uint64_t{0});
    for (const auto& e : j.at("paths")) p.paths.push_back(PathRecordFromJson(e));
    for (const auto& s : j.at("services")) p.services.push_back({s.at("unit").get<std::string>(), s.at("state").get<std::string>()});
    for (const auto& d : j.at("debs"))
      p.debs.push_back({d.at("package").get<std::string>(), d.at("was_installed").get<bool>(),
                        d.value("version", ""), d.value("status", "")});
    if (!j.at("installed").is_null()) {
      const auto& i = j["installed"];
      p.installed = InstalledPackage{i.at("name").get<std::string>(), i.at("version").get<std::string>(),
                                     i.at("installed_at").get<int64_t>(), i.at("manifest_json").get<std::string>()};
    }
    return p;
  } catch (const std::exception& e) {
    return Fail(Errc::kParse, "rollback point " + (point_dir / "point.json").string() + " is unreadable: " + e.what());
  }
}

}  // namespace parc::pkg::detail
