#include "imaging_fixture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <sstream>

#include "parc/common/hash.h"
#include "parc/common/timeutil.h"

namespace parc::imaging::testing {

namespace {

std::string Hex(std::string_view s) { return HexEncode(s); }

std::string Xattrs(const fs::path& p) {
  std::string names(65536, '\0');
  ssize_t n = ::llistxattr(p.c_str(), names.data(), names.size());
  if (n <= 0) return "";
  names.resize(static_cast<size_t>(n));
  std::map<std::string, std::string> all;
  for (size_t pos = 0; pos < names.size();) {
    std::string k(names.c_str() + pos);
    pos += k.size() + 1;
    std::string v(65536, '\0');
    ssize_t m = ::lgetxattr(p.c_str(), k.c_str(), v.data(), v.size());
    v.resize(m > 0 ? static_cast<size_t>(m) : 0);
    all[k] = Hex(v);
  }
  std::string out;
  for (const auto& [k, v] : all) out += k + "=" + v + ";";
  return out;
}

void Check(int rc, const std::string& what) {
  if (rc != 0) FAIL(what << ": " << std::strerror(errno));
}

void Write(const fs::path& p, const std::string& data, mode_t mode, uid_t uid = 0, gid_t gid = 0) {
  test::WriteFile(p, data);
  Check(::chown(p.c_str(), uid, gid), "chown " + p.string());
  Check(::chmod(p.c_str(), mode), "chmod " + p.string());
}

void Dir(const fs::path& p, mode_t mode, uid_t uid = 0, gid_t gid = 0) {
  fs::create_directories(p);
  Check(::chown(p.c_str(), uid, gid), "chown " + p.string());
  Check(::chmod(p.c_str(), mode), "chmod " + p.string());
}

void SetX(const fs::path& p, const std::string& k, const std::string& v) {
  Check(::lsetxattr(p.c_str(), k.c_str(), v.data(), v.size(), 0), "setxattr " + k + " on " + p.string());
}

}  // namespace

Snapshot TakeSnapshot(const fs::path& root) {
  Snapshot out;
  std::map<std::pair<dev_t, ino_t>, std::string> first;
  std::vector<fs::path> all{root};
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end; !ec && it != end; it.increment(ec))
    all.push_back(it->path());
  std::vector<std::pair<std::string, fs::path>> named;
  for (const auto& p : all) named.emplace_back(p == root ? "/" : "/" + p.lexically_relative(root).string(), p);
  std::sort(named.begin(), named.end());  // the smallest path of a hard link group comes first
  for (const auto& [rel, p] : named) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    std::ostringstream s;
    s << "mode=" << std::oct << (st.st_mode & 07777) << std::dec << " owner=" << st.st_uid << ":" << st.st_gid
      << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " xattrs=" << Xattrs(p);
    if (S_ISREG(st.st_mode)) {
      s << " file size=" << st.st_size << " sha256=" << Sha256Hex(test::ReadFileOrEmpty(p));
    } else if (S_ISDIR(st.st_mode)) {
      s << " dir";
    } else if (S_ISLNK(st.st_mode)) {
      s << " symlink -> " << fs::read_symlink(p, ec).string();
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      s << (S_ISCHR(st.st_mode) ? " char " : " block ") << major(st.st_rdev) << "," << minor(st.st_rdev);
    } else if (S_ISFIFO(st.st_mode)) {
      s << " fifo";
    } else {
      s << " other";
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, inserted] = first.emplace(std::make_pair(st.st_dev, st.st_ino), rel);
      s << " inode-of=" << it->second;
    }
    out[rel] = s.str();
  }
  return out;
}

std::string DiffSnapshots(const Snapshot& expected, const Snapshot& actual) {
  std::string out;
  for (const auto& [p, v] : expected) {
    auto it = actual.find(p);
    if (it == actual.end()) out += "missing " + p + ": " + v + "\n";
    else if (it->second != v) out += "changed " + p + ":\n  expected " + v + "\n  actual   " + it->second + "\n";
  }
  for (const auto& [p, v] : actual)
    if (!expected.contains(p)) out += "extra   " + p + ": " + v + "\n";
  return out;
}

std::string RandomData(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

std::string AclXattr(const std::vector<AclEntry>& entries) {
  std::string out;
  auto put32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto put16 = [&](uint16_t v) { out.append(reinterpret_cast<const char*>(&v), 2); };
  put32(2);
  for (const auto& e : entries) {
    put16(e.tag);
    put16(e.perm);
    put32(e.id);
  }
  return out;
}

void BuildRichTree(const fs::path& root) {
  constexpr uint32_t kUndef = 0xFFFFFFFF;
  Dir(root, 0755);
  Dir(root / "etc", 0755);
  Write(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n", 0644);
  Write(root / "etc/group", "root:x:0:\nalice:x:1000:\nstaff:x:50:alice\ndisk:x:6:\n", 0644);
  Dir(root / "bin", 0755);
  Write(root / "bin/tool", RandomData(700 * 1024, 1), 0755);
  Write(root / "bin/suid", "#!/bin/sh\necho root\n", 04755);
  Write(root / "bin/sgid", "#!/bin/sh\necho group\n", 02755, 0, 50);
  Write(root / "bin/ping", RandomData(5000, 2), 0755);
  // security.capability: VFS_CAP_REVISION_2 | effective, permitted = cap_net_raw (13).
  std::string cap(20, '\0');
  uint32_t magic = 0x02000001, permitted = 1u << 13;
  std::memcpy(cap.data(), &magic, 4);
  std::memcpy(cap.data() + 4, &permitted, 4);
  SetX(root / "bin/ping", "security.capability", cap);
  Dir(root / "home", 0755);
  Dir(root / "home/alice", 0700, 1000, 1000);
  Write(root / "home/alice/notes", "alice's notes\n", 0600, 1000, 1000);
  Dir(root / "home/bob", 0750, 2000, 2000);  // no name for 2000 in etc/passwd
  Write(root / "home/bob/file", RandomData(40000, 3), 0640, 2000, 2000);
  Dir(root / "tmp", 01777);
  Dir(root / "srv", 0755);
  Dir(root / "srv/shared", 02775, 0, 50);
  Dir(root / "data", 0755);
  Write(root / "data/empty", "", 0644);
  Write(root / "data/small", "0123456789", 0644);
  Write(root / "data/big", RandomData(1536 * 1024, 4), 0644);
  Write(root / "data/zeros", std::string(600 * 1024, '\0'), 0644);
  {
    int fd = ::open((root / "data/sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Check(fd < 0 ? -1 : 0, "create sparse");
    std::string mid = RandomData(100000, 5);
    Check(::pwrite(fd, mid.data(), mid.size(), 2 << 20) == static_cast<ssize_t>(mid.size()) ? 0 : -1, "pwrite");
    Check(::ftruncate(fd, 4 << 20), "ftruncate");
    ::close(fd);
  }
  Write(root / "data/with space", "spaced\n", 0644);
  Write(root / "data/new\nline", "newline in the name\n", 0644);
  Write(root / "data/caf\xe9", "latin-1 name, not UTF-8\n", 0644);
  Write(root / "data/\xc3\xa9t\xc3\xa9", "UTF-8 name\n", 0644);
  Write(root / "data/xattrs", "with attributes\n", 0644);
  SetX(root / "data/xattrs", "user.note", "hello");
  SetX(root / "data/xattrs", "user.binary", std::string("\x00\x01\xff\x7f", 4));
  SetX(root / "data/xattrs", "trusted.secret", "only root sees this");
  Write(root / "data/acl.txt", "acl'd\n", 0640);
  // user::rw- user:1000:rw- group::r-- mask::rw- other::---
  SetX(root / "data/acl.txt", "system.posix_acl_access",
       AclXattr({{0x01, 6, kUndef}, {0x02, 6, 1000}, {0x04, 4, kUndef}, {0x10, 6, kUndef}, {0x20, 0, kUndef}}));
  Dir(root / "data/acldir", 0750);
  SetX(root / "data/acldir", "system.posix_acl_access",
       AclXattr({{0x01, 7, kUndef}, {0x04, 5, kUndef}, {0x08, 5, 50}, {0x10, 5, kUndef}, {0x20, 0, kUndef}}));
  SetX(root / "data/acldir", "system.posix_acl_default",
       AclXattr({{0x01, 7, kUndef}, {0x02, 7, 1000}, {0x04, 5, kUndef}, {0x10, 7, kUndef}, {0x20, 0, kUndef}}));
  SetX(root / "data/acldir", "user.dir-note", "on a directory");
  Write(root / "data/acldir/inside", "created under the default ACL: inherits it\n", 0640);
  Write(root / "data/hard1", RandomData(70000, 6), 0644, 1000, 50);
  Check(::link((root / "data/hard1").c_str(), (root / "data/hard2").c_str()), "link");
  Dir(root / "srv/other", 0755);
  Check(::link((root / "data/hard1").c_str(), (root / "srv/other/hard3").c_str()), "link");
  Dir(root / "usr", 0755);
  Dir(root / "usr/lib", 0755);
  Write(root / "usr/lib/libx.so", RandomData(20000, 7), 0644);
  fs::create_symlink("usr/lib", root / "lib");
  fs::create_symlink("/etc/passwd", root / "data/abs-link");
  fs::create_symlink("../nothing/here", root / "data/dangling");
  Check(::lchown((root / "data/dangling").c_str(), 1000, 1000), "lchown");
  SetX(root / "data/abs-link", "trusted.on-symlink", "symlinks carry xattrs too");
  Dir(root / "dev", 0755);
  Check(::mknod((root / "dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), "mknod null");
  Check(::chmod((root / "dev/null").c_str(), 0666), "chmod null");
  Check(::mknod((root / "dev/loop7").c_str(), S_IFBLK | 0660, makedev(7, 7)), "mknod loop");
  Check(::chown((root / "dev/loop7").c_str(), 0, 6), "chown loop");
  Check(::chmod((root / "dev/loop7").c_str(), 0660), "chmod loop");
  Check(::mkfifo((root / "dev/fifo").c_str(), 0620), "mkfifo");
  Check(::chmod((root / "dev/fifo").c_str(), 0620), "chmod fifo");
  // Nanosecond mtimes everywhere, deepest first so directories keep theirs.
  std::vector<fs::path> paths;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end; !ec && it != end; it.increment(ec))
    paths.push_back(it->path());
  std::sort(paths.begin(), paths.end(), [](const fs::path& a, const fs::path& b) { return a.string().size() > b.string().size(); });
  paths.push_back(root);
  int64_t t = 1700000000;
  for (const auto& p : paths) {
    timespec ts[2] = {{t, 5}, {t, 123456789}};
    ++t;
    Check(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW), "utimensat " + p.string());
  }
}

Env::Env() : tmp_("parc-imaging") {
  server_ = REQUIRE_OK(DirChunkStore::Open(tmp_.path() / "server"));
  cache_ = REQUIRE_OK(DirChunkStore::Open(tmp_.path() / "cache"));
  key_ = REQUIRE_OK(pkg::GenerateKey("test-publisher"));
}

DeployOptions Env::Options() const {
  DeployOptions o;
  o.trusted = {key_.public_key};
  return o;
}

Env::Captured Env::Sign(CaptureResult r) {
  int64_t now = NowUnix();
  Captured c;
  c.signed_manifest = REQUIRE_OK(SignManifest(r.image.manifest, key_, now, now + 3600));
  c.capture = std::move(r);
  c.capture.image.manifest = c.signed_manifest.manifest;
  return c;
}

Env::Captured Env::CaptureTreeSigned(const fs::path& root, const std::string& version, const Image* reuse) {
  CaptureOptions o;
  o.name = "test-tree";
  o.version = version;
  if (reuse) o.reuse = {reuse};
  return Sign(REQUIRE_OK(CaptureTree(root, *server_, o)));
}

Env::Captured Env::CaptureBlockSigned(const fs::path& source, const std::string& version, const Image* reuse) {
  CaptureOptions o;
  o.name = "test-disk";
  o.version = version;
  if (reuse) o.reuse = {reuse};
  return Sign(REQUIRE_OK(CaptureBlock(source, *server_, o)));
}

ExpectedVoid TestFetcher::Fetch(const ChunkRef& ref, uint64_t offset, const std::function<ExpectedVoid(std::string_view)>& sink) {
  ++calls;
  if (offset > 0) ++resumed;
  if (fail_after >= 0 && static_cast<int64_t>(chunks.load()) >= fail_after)
    return Fail(Errc::kUnavailable, "injected: the server went away");
  auto data = source_.Get(ref.object);
  if (!data) return Fail(data.error());
  if (tamper && !data->empty()) (*data)[data->size() / 2] ^= 0x01;
  if (offset > data->size()) return Fail(Errc::kInvalidArgument, "offset beyond the object");
  bool first = false;
  if (interrupt_each_once) {
    std::lock_guard lock(mu_);
    first = seen_[ref.object]++ == 0;
  }
  if (first && offset == 0 && data->size() > 1) {
    if (auto r = sink(std::string_view(*data).substr(0, data->size() / 2)); !r) return r;
    return Fail(Errc::kUnavailable, "injected: connection reset mid-chunk");
  }
  if (auto r = sink(std::string_view(*data).substr(offset)); !r) return r;
  ++chunks;
  bytes += data->size() - offset;
  return {};
}

}  // namespace parc::imaging::testing
