// Linux implementation of imaging/src/sys.h.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sys.h"

namespace parc::imaging::sys {

namespace {

std::string Str(std::string_view s) { return std::string(s); }
const char* NameOrDot(const std::string& s) { return s.empty() ? "." : s.c_str(); }

Type TypeOf(mode_t m) {
  if (S_ISREG(m)) return Type::kFile;
  if (S_ISDIR(m)) return Type::kDir;
  if (S_ISLNK(m)) return Type::kSymlink;
  if (S_ISCHR(m)) return Type::kCharDevice;
  if (S_ISBLK(m)) return Type::kBlockDevice;
  if (S_ISFIFO(m)) return Type::kFifo;
  if (S_ISSOCK(m)) return Type::kSocket;
  return Type::kOther;
}

Stat FromStat(const struct stat& st) {
  Stat s;
  s.type = TypeOf(st.st_mode);
  s.mode = st.st_mode & 07777;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  s.size = static_cast<uint64_t>(st.st_size);
  s.mtime_sec = st.st_mtim.tv_sec;
  s.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.nlink = st.st_nlink;
  s.rdev_major = major(st.st_rdev);
  s.rdev_minor = minor(st.st_rdev);
  return s;
}

// Path of dir/name through /proc for the l*xattr calls, which take no
// directory handle; the last component is still not followed.
std::string ProcPath(const Fd& dir, std::string_view name) {
  return "/proc/self/fd/" + std::to_string(dir.get()) + "/" + Str(name);
}

Expected<Fd> OpenAt(int dir, const char* name, int flags) {
  int fd = ::openat(dir, name, flags | O_CLOEXEC);
  if (fd < 0 && errno == EPERM && (flags & O_NOATIME)) fd = ::openat(dir, name, (flags & ~O_NOATIME) | O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError(errno, std::string("cannot open ") + name));
  return Fd(fd);
}

void Times(int64_t sec, uint32_t nsec, timespec ts[2]) {
  ts[0].tv_sec = 0;
  ts[0].tv_nsec = UTIME_OMIT;  // atime: left as the kernel sets it
  ts[1].tv_sec = static_cast<time_t>(sec);
  ts[1].tv_nsec = nsec;
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<Fd> OpenDirectory(const fs::path& path) {
  return OpenAt(AT_FDCWD, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

Expected<Fd> OpenDirectoryAt(const Fd& dir, std::string_view name) {
  return OpenAt(dir.get(), Str(name).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

Expected<Fd> OpenBeneath(const Fd& root, std::string_view rel, bool directory) {
  std::string r = rel.empty() ? "." : Str(rel);
  int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (directory ? O_DIRECTORY : O_NOATIME);
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root.get(), r.c_str(), &how, sizeof how);
  if (fd < 0 && errno == EPERM && !directory) {
    how.flags = static_cast<uint64_t>(flags & ~O_NOATIME);
    fd = ::syscall(SYS_openat2, root.get(), r.c_str(), &how, sizeof how);
  }
  if (fd >= 0) return Fd(static_cast<int>(fd));
  if (errno != ENOSYS) return Fail(ErrnoError(errno, "cannot open " + r));
  // Kernels before 5.6: walk component by component, never following.
  int cur = root.get();
  Fd held;
  size_t start = 0;
  while (true) {
    size_t slash = r.find('/', start);
    std::string comp = r.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (comp == "..") return Fail(Errc::kPermissionDenied, "cannot open " + r + ": '..' is not allowed");
    bool last = slash == std::string::npos;
    auto next = OpenAt(cur, comp.c_str(), last ? flags : (O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (!next) return Fail(next.error().WithContext(r));
    if (last) return next;
    held = std::move(*next);
    cur = held.get();
    start = slash + 1;
  }
}

Expected<Fd> OpenReadAt(const Fd& dir, std::string_view name) {
  return OpenAt(dir.get(), Str(name).c_str(), O_RDONLY | O_NOFOLLOW | O_NOATIME);
}

Expected<Fd> OpenRead(const fs::path& path) { return OpenAt(AT_FDCWD, path.c_str(), O_RDONLY | O_NOFOLLOW); }

Expected<Fd> OpenWrite(const fs::path& path, bool create) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0644);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot open " + path.string() + " for writing"));
  return Fd(fd);
}

Expected<Fd> CreateFileAt(const Fd& dir, std::string_view name) {
  int fd = ::openat(dir.get(), Str(name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot create " + Str(name)));
  return Fd(fd);
}

Expected<Fd> OpenTmpFile(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot create a temporary file in " + dir.string()));
  return Fd(fd);
}

Expected<Stat> FStat(const Fd& fd) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Fail(ErrnoError(errno, "fstat"));
  return FromStat(st);
}

Expected<Stat> StatAt(const Fd& dir, std::string_view name) {
  struct stat st {};
  std::string n = Str(name);
  if (::fstatat(dir.get(), NameOrDot(n), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Fail(ErrnoError(errno, "cannot stat " + n));
  return FromStat(st);
}

Expected<Stat> LStat(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Fail(ErrnoError(errno, "cannot stat " + path.string()));
  return FromStat(st);
}

Expected<std::vector<std::string>> ListDirectory(const Fd& dir) {
  int fd = ::dup(dir.get());
  if (fd < 0) return Fail(ErrnoError(errno, "dup"));
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return Fail(ErrnoError(e, "cannot list directory"));
  }
  ::rewinddir(d);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  int err = errno;
  ::closedir(d);
  if (err) return Fail(ErrnoError(err, "cannot list directory"));
  return names;
}

Expected<std::string> ReadLinkAt(const Fd& dir, std::string_view name) {
  std::string buf(256, '\0');
  std::string n = Str(name);
  while (true) {
    ssize_t len = ::readlinkat(dir.get(), n.c_str(), buf.data(), buf.size());
    if (len < 0) return Fail(ErrnoError(errno, "cannot read link " + n));
    if (static_cast<size_t>(len) < buf.size()) {
      buf.resize(static_cast<size_t>(len));
      return buf;
    }
    if (buf.size() >= (1u << 16)) return Fail(Errc::kResourceExhausted, "symlink target of " + n + " is too long");
    buf.resize(buf.size() * 4);
  }
}

Expected<std::map<std::string, std::string>> ListXattrs(const Fd& dir, std::string_view name) {
  std::string path = ProcPath(dir, name);
  bool self = name.empty();
  auto list = [&](char* buf, size_t n) {
    return self ? ::flistxattr(dir.get(), buf, n) : ::llistxattr(path.c_str(), buf, n);
  };
  auto get = [&](const char* key, void* buf, size_t n) {
    return self ? ::fgetxattr(dir.get(), key, buf, n) : ::lgetxattr(path.c_str(), key, buf, n);
  };
  std::map<std::string, std::string> out;
  std::string names;
  while (true) {
    ssize_t n = list(nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return out;
      return Fail(ErrnoError(errno, "cannot list extended attributes of " + Str(name)));
    }
    if (n == 0) return out;
    names.resize(static_cast<size_t>(n));
    n = list(names.data(), names.size());
    if (n < 0 && errno == ERANGE) continue;  // grew meanwhile
    if (n < 0) return Fail(ErrnoError(errno, "cannot list extended attributes of " + Str(name)));
    names.resize(static_cast<size_t>(n));
    break;
  }
  for (size_t pos = 0; pos < names.size();) {
    std::string key(names.c_str() + pos);
    pos += key.size() + 1;
    if (key.empty()) continue;
    std::string value;
    while (true) {
      ssize_t n = get(key.c_str(), nullptr, 0);
      if (n < 0 && errno == ENODATA) break;  // removed meanwhile
      if (n < 0) return Fail(ErrnoError(errno, "cannot read extended attribute " + key + " of " + Str(name)));
      value.resize(static_cast<size_t>(n));
      n = get(key.c_str(), value.data(), value.size());
      if (n < 0 && errno == ERANGE) continue;
      if (n < 0) return Fail(ErrnoError(errno, "cannot read extended attribute " + key + " of " + Str(name)));
      value.resize(static_cast<size_t>(n));
      out[key] = std::move(value);
      break;
    }
  }
  return out;
}

ExpectedVoid MakeDirectoryAt(const Fd& dir, std::string_view name, uint32_t mode) {
  if (::mkdirat(dir.get(), Str(name).c_str(), mode) != 0) return Fail(ErrnoError(errno, "cannot create directory " + Str(name)));
  return {};
}

ExpectedVoid SymlinkAt(std::string_view target, const Fd& dir, std::string_view name) {
  if (::symlinkat(Str(target).c_str(), dir.get(), Str(name).c_str()) != 0)
    return Fail(ErrnoError(errno, "cannot create symlink " + Str(name)));
  return {};
}

ExpectedVoid HardlinkAt(const Fd& from_dir, std::string_view from, const Fd& dir, std::string_view name) {
  if (::linkat(from_dir.get(), Str(from).c_str(), dir.get(), Str(name).c_str(), 0) != 0)
    return Fail(ErrnoError(errno, "cannot create hard link " + Str(name) + " to " + Str(from)));
  return {};
}

ExpectedVoid MakeNodeAt(const Fd& dir, std::string_view name, Type type, uint32_t mode, uint32_t maj, uint32_t min) {
  mode_t kind = type == Type::kCharDevice ? S_IFCHR : type == Type::kBlockDevice ? S_IFBLK : S_IFIFO;
  dev_t dev = type == Type::kFifo ? 0 : makedev(maj, min);
  if (::mknodat(dir.get(), Str(name).c_str(), kind | (mode & 07777), dev) != 0)
    return Fail(ErrnoError(errno, "cannot create node " + Str(name)));
  return {};
}

ExpectedVoid SetOwnerAt(const Fd& dir, std::string_view name, uint32_t uid, uint32_t gid) {
  std::string n = Str(name);
  int flags = n.empty() ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW;
  if (::fchownat(dir.get(), n.c_str(), uid, gid, flags) != 0) return Fail(ErrnoError(errno, "cannot set the owner of " + n));
  return {};
}

ExpectedVoid SetModeAt(const Fd& dir, std::string_view name, uint32_t mode) {
  std::string n = Str(name);
  int r = n.empty() ? ::fchmod(dir.get(), mode) : ::fchmodat(dir.get(), n.c_str(), mode, AT_SYMLINK_NOFOLLOW);
  if (r != 0) return Fail(ErrnoError(errno, "cannot set the mode of " + n));
  return {};
}

ExpectedVoid SetXattrAt(const Fd& dir, std::string_view name, const std::string& key, std::string_view value) {
  int r = name.empty() ? ::fsetxattr(dir.get(), key.c_str(), value.data(), value.size(), 0)
                       : ::lsetxattr(ProcPath(dir, name).c_str(), key.c_str(), value.data(), value.size(), 0);
  if (r != 0) return Fail(ErrnoError(errno, "cannot set extended attribute " + key + " of " + Str(name)));
  return {};
}

ExpectedVoid SetMtimeAt(const Fd& dir, std::string_view name, int64_t sec, uint32_t nsec) {
  timespec ts[2];
  Times(sec, nsec, ts);
  std::string n = Str(name);
  int r = n.empty() ? ::futimens(dir.get(), ts) : ::utimensat(dir.get(), n.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  if (r != 0) return Fail(ErrnoError(errno, "cannot set the time of " + n));
  return {};
}

ExpectedVoid SetOwner(const Fd& fd, uint32_t uid, uint32_t gid) {
  if (::fchown(fd.get(), uid, gid) != 0) return Fail(ErrnoError(errno, "cannot set the owner"));
  return {};
}

ExpectedVoid SetMode(const Fd& fd, uint32_t mode) {
  if (::fchmod(fd.get(), mode) != 0) return Fail(ErrnoError(errno, "cannot set the mode"));
  return {};
}

ExpectedVoid SetXattr(const Fd& fd, const std::string& key, std::string_view value) {
  if (::fsetxattr(fd.get(), key.c_str(), value.data(), value.size(), 0) != 0)
    return Fail(ErrnoError(errno, "cannot set extended attribute " + key));
  return {};
}

ExpectedVoid SetMtime(const Fd& fd, int64_t sec, uint32_t nsec) {
  timespec ts[2];
  Times(sec, nsec, ts);
  if (::futimens(fd.get(), ts) != 0) return Fail(ErrnoError(errno, "cannot set the time"));
  return {};
}

Expected<size_t> ReadFull(const Fd& fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd.get(), buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(errno, "read"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

Expected<size_t> PReadFull(const Fd& fd, char* buf, size_t n, uint64_t offset) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd.get(), buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(errno, "read"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

ExpectedVoid WriteAll(const Fd& fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t r = ::write(fd.get(), data.data(), data.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSPC) return Fail(Errc::kResourceExhausted, "no space left on the target");
      return Fail(ErrnoError(errno, "write"));
    }
    data.remove_prefix(static_cast<size_t>(r));
  }
  return {};
}

ExpectedVoid PWriteAll(const Fd& fd, std::string_view data, uint64_t offset) {
  while (!data.empty()) {
    ssize_t r = ::pwrite(fd.get(), data.data(), data.size(), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSPC) return Fail(Errc::kResourceExhausted, "no space left on the target");
      return Fail(ErrnoError(errno, "write"));
    }
    data.remove_prefix(static_cast<size_t>(r));
    offset += static_cast<uint64_t>(r);
  }
  return {};
}

ExpectedVoid Truncate(const Fd& fd, uint64_t size) {
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Fail(ErrnoError(errno, "cannot set the file size"));
  return {};
}

Expected<uint64_t> SizeOf(const Fd& fd) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Fail(ErrnoError(errno, "fstat"));
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return Fail(ErrnoError(errno, "BLKGETSIZE64"));
    return size;
  }
  if (!S_ISREG(st.st_mode)) return Fail(Errc::kInvalidArgument, "not a regular file or a block device");
  return static_cast<uint64_t>(st.st_size);
}

void DropCache(const Fd& fd) { ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); }

uint64_t PageSize() {
  static const uint64_t size = [] {
    long n = ::sysconf(_SC_PAGESIZE);
    return n > 0 && (n & (n - 1)) == 0 ? static_cast<uint64_t>(n) : uint64_t{4096};
  }();
  return size;
}

void StartWriteback(const Fd& fd, uint64_t offset, uint64_t len) {
  // Advisory: a failure shows up in WriteBackAndDrop or fsync.
  (void)::sync_file_range(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE);
}

ExpectedVoid WriteBackAndDrop(const Fd& fd, uint64_t offset, uint64_t len) {
  if (::sync_file_range(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(len),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
    return Fail(ErrnoError(errno, "writing back bytes " + std::to_string(offset) + "-" + std::to_string(offset + len - 1)));
  ::posix_fadvise(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
  return {};
}

ExpectedVoid Fsync(const Fd& fd) {
  if (::fsync(fd.get()) != 0) return Fail(ErrnoError(errno, "fsync"));
  return {};
}

ExpectedVoid Fdatasync(const Fd& fd) {
  if (::fdatasync(fd.get()) != 0) return Fail(ErrnoError(errno, "fdatasync"));
  return {};
}

Expected<bool> TryLock(const Fd& fd) {
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return true;
  if (errno == EWOULDBLOCK) return false;
  return Fail(ErrnoError(errno, "flock"));
}

ExpectedVoid FsyncPath(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot open " + path.string()));
  int r = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (r != 0) return Fail(ErrnoError(e, "cannot fsync " + path.string()));
  return {};
}

ExpectedVoid SyncFilesystem(const Fd& fd) {
  if (::syncfs(fd.get()) != 0) return Fail(ErrnoError(errno, "syncfs"));
  return {};
}

Expected<uint64_t> FreeBytes(const fs::path& path) {
  struct statvfs v {};
  if (::statvfs(path.c_str(), &v) != 0) return Fail(ErrnoError(errno, "statvfs " + path.string()));
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

ExpectedVoid Rename(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return Fail(ErrnoError(errno, "cannot rename " + from.string() + " to " + to.string()));
  return {};
}

Expected<bool> Exchange(const fs::path& a, const fs::path& b) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return true;
  if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) return false;
  return Fail(ErrnoError(errno, "cannot swap " + a.string() + " and " + b.string()));
}

ExpectedVoid RemoveTree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return Fail(Errc::kIo, "cannot remove " + path.string() + ": " + ec.message());
  return {};
}

ExpectedVoid RemoveFile(const fs::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Fail(ErrnoError(errno, "cannot remove " + path.string()));
  return {};
}

ExpectedVoid MakeDirectory(const fs::path& path, uint32_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
    return Fail(ErrnoError(errno, "cannot create directory " + path.string()));
  return {};
}

ExpectedVoid WriteNewFile(const fs::path& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot create " + path.string()));
  Fd f(fd);
  if (auto w = WriteAll(f, data); !w) return Fail(w.error().WithContext(path.string()));
  return {};
}

Expected<std::string> ReadWholeFile(const fs::path& path, uint64_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return Fail(Errc::kNotFound, path.string() + " does not exist");
    return Fail(ErrnoError(errno, "cannot open " + path.string()));
  }
  Fd f(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Fail(ErrnoError(errno, "fstat " + path.string()));
  if (!S_ISREG(st.st_mode)) return Fail(Errc::kInvalidArgument, path.string() + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max)
    return Fail(Errc::kResourceExhausted, path.string() + " is larger than " + std::to_string(max) + " bytes");
  std::string out(static_cast<size_t>(st.st_size), '\0');
  auto n = ReadFull(f, out.data(), out.size());
  if (!n) return Fail(n.error().WithContext(path.string()));
  out.resize(*n);
  return out;
}

bool Exists(const fs::path& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace parc::imaging::sys
