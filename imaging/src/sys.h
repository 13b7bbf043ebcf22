// The operating-system calls imaging needs, behind one neutral header
// (implementation: imaging/platform/linux/sys_linux.cc). Every name passed
// with a directory handle is resolved without following a symbolic link in
// its last component; OpenBeneath refuses symlinks in every component and
// anything outside the directory it starts from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::imaging::sys {

namespace fs = std::filesystem;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

enum class Type { kFile, kDir, kSymlink, kCharDevice, kBlockDevice, kFifo, kSocket, kOther };

struct Stat {
  Type type = Type::kOther;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t dev = 0, ino = 0, nlink = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
};

// Opening. `rel` is relative ("etc/passwd"); "" or "." is the directory itself.
Expected<Fd> OpenDirectory(const fs::path& path);  // no symlink as the last component
Expected<Fd> OpenDirectoryAt(const Fd& dir, std::string_view name);  // not following name
Expected<Fd> OpenBeneath(const Fd& root, std::string_view rel, bool directory);  // read-only
Expected<Fd> OpenReadAt(const Fd& dir, std::string_view name);                   // regular file, no atime update
Expected<Fd> OpenRead(const fs::path& path);                                     // file or block device
Expected<Fd> OpenWrite(const fs::path& path, bool create);                        // file or block device
Expected<Fd> CreateFileAt(const Fd& dir, std::string_view name);                 // O_EXCL, mode 0600
Expected<Fd> OpenTmpFile(const fs::path& dir);                                    // unnamed, gone when closed
// An advisory exclusive lock on the whole file (flock), held until every
// descriptor of this open file is closed; false when another holds it.
Expected<bool> TryLock(const Fd& fd);

// Reading a tree.
Expected<Stat> FStat(const Fd& fd);
Expected<Stat> StatAt(const Fd& dir, std::string_view name);  // lstat semantics
Expected<Stat> LStat(const fs::path& path);
Expected<std::vector<std::string>> ListDirectory(const Fd& dir);  // without . and ..
Expected<std::string> ReadLinkAt(const Fd& dir, std::string_view name);
// Extended attributes of dir/name (not followed), names -> raw values.
Expected<std::map<std::string, std::string>> ListXattrs(const Fd& dir, std::string_view name);

// Writing a tree. Names are single components.
ExpectedVoid MakeDirectoryAt(const Fd& dir, std::string_view name, uint32_t mode);
ExpectedVoid SymlinkAt(std::string_view target, const Fd& dir, std::string_view name);
ExpectedVoid HardlinkAt(const Fd& from_dir, std::string_view from, const Fd& dir, std::string_view name);
ExpectedVoid MakeNodeAt(const Fd& dir, std::string_view name, Type type, uint32_t mode, uint32_t major, uint32_t minor);
// Owner, mode, xattrs, mtime of dir/name without following it (mode is
// skipped for symlinks, which have none on Linux). Order matters: owner
// first (chown clears setuid bits and file capabilities), mtime last.
ExpectedVoid SetOwnerAt(const Fd& dir, std::string_view name, uint32_t uid, uint32_t gid);
ExpectedVoid SetModeAt(const Fd& dir, std::string_view name, uint32_t mode);
ExpectedVoid SetXattrAt(const Fd& dir, std::string_view name, const std::string& key, std::string_view value);
ExpectedVoid SetMtimeAt(const Fd& dir, std::string_view name, int64_t sec, uint32_t nsec);
// The same through an open file.
ExpectedVoid SetOwner(const Fd& fd, uint32_t uid, uint32_t gid);
ExpectedVoid SetMode(const Fd& fd, uint32_t mode);
ExpectedVoid SetXattr(const Fd& fd, const std::string& key, std::string_view value);
ExpectedVoid SetMtime(const Fd& fd, int64_t sec, uint32_t nsec);

// Data.
// Reads up to n bytes at the current position (short only at end of file).
Expected<size_t> ReadFull(const Fd& fd, char* buf, size_t n);
Expected<size_t> PReadFull(const Fd& fd, char* buf, size_t n, uint64_t offset);
ExpectedVoid WriteAll(const Fd& fd, std::string_view data);
ExpectedVoid PWriteAll(const Fd& fd, std::string_view data, uint64_t offset);
ExpectedVoid Truncate(const Fd& fd, uint64_t size);
// Size of a regular file or a block device (BLKGETSIZE64).
Expected<uint64_t> SizeOf(const Fd& fd);
// Drops cached pages so that a read-back reaches the device.
void DropCache(const Fd& fd);
// A byte range: starts writing its dirty pages back without waiting
// (StartWriteback), or writes them and waits until the device has them, then
// drops them from the cache so that the next read of the range reaches the
// device (WriteBackAndDrop). Pages dirtied again meanwhile stay cached.
uint64_t PageSize();  // a power of two
void StartWriteback(const Fd& fd, uint64_t offset, uint64_t len);  // len 0: to the end of the file
ExpectedVoid WriteBackAndDrop(const Fd& fd, uint64_t offset, uint64_t len);

// Durability and swapping.
ExpectedVoid Fsync(const Fd& fd);
ExpectedVoid Fdatasync(const Fd& fd);
ExpectedVoid FsyncPath(const fs::path& path);
ExpectedVoid SyncFilesystem(const Fd& fd);  // syncfs: every dirty page of that filesystem
Expected<uint64_t> FreeBytes(const fs::path& path);
ExpectedVoid Rename(const fs::path& from, const fs::path& to);
// Atomically swaps two paths (renameat2 RENAME_EXCHANGE). false when this
// kernel or filesystem cannot: the caller falls back to two renames.
Expected<bool> Exchange(const fs::path& a, const fs::path& b);
ExpectedVoid RemoveTree(const fs::path& path);  // absent is fine; never follows symlinks
ExpectedVoid RemoveFile(const fs::path& path);  // absent is fine
ExpectedVoid MakeDirectory(const fs::path& path, uint32_t mode);  // existing is fine
// Creates path (which must not exist) with data, mode 0644, not synced.
ExpectedVoid WriteNewFile(const fs::path& path, std::string_view data);
// Whole small file (at most max bytes).
Expected<std::string> ReadWholeFile(const fs::path& path, uint64_t max);
bool Exists(const fs::path& path);  // lstat succeeds

}  // namespace parc::imaging::sys
