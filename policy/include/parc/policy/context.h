// What a check sees of the target root, and the only way a remediation may
// change it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/rootfs.h"

namespace parc::policy {

namespace fs = std::filesystem;

struct OsInfo {
  std::string id;          // "debian"
  std::string version_id;  // "12"
  std::vector<std::string> id_like;
  bool windows = false;
};

class Context {
 public:
  // root "/" is the live system (runtime values are read and written);
  // anything else is an offline tree whose kernel is not the host's.
  explicit Context(fs::path root);

  const fs::path& root() const { return root_; }
  bool live() const { return live_; }
  const OsInfo& os() const { return os_; }
  // Whether a rule's platforms list matches this root ("linux", "debian",
  // "debian12", "ubuntu", "rhel", "windows"); empty list matches.
  bool PlatformMatches(const std::vector<std::string>& platforms) const;

  // The host path of an absolute in-system path. Symlinks met on the way are
  // resolved inside the root (an absolute target means <root>/target, as in a
  // chroot); a path or link that climbs above the root with ".." is refused.
  // follow_last=false leaves the last component unresolved (lstat, lchown).
  Expected<fs::path> Resolve(std::string_view in_system_path, bool follow_last = true) const;
  // The in-system form ("/etc/x") of a host path inside the root.
  std::string InSystem(const fs::path& host) const;
  // Resolve + read; kNotFound when absent.
  Expected<std::string> Read(std::string_view in_system_path) const;
  bool Exists(std::string_view in_system_path) const;
  // Expands a glob (*, ?, [..] in any component; `*` does not match a leading
  // dot) to existing in-system paths, sorted. Each directory is listed after
  // Resolve, so a link in the root never makes it list the host's directories
  // (glob(3) on <root>/pattern would); a directory linked above the root is an error.
  Expected<std::vector<std::string>> Glob(std::string_view pattern) const;

  // The root's own accounts (/etc/passwd, /etc/group).
  const pkg::rootfs::Accounts& accounts() const;
  // Installed dpkg packages of the root (/var/lib/dpkg/status): name -> version.
  const std::map<std::string, std::string>& dpkg_installed() const;
  bool PackageInstalled(const std::string& name) const { return dpkg_installed().contains(name); }

  // Drops cached accounts/packages (after a remediation changed them).
  void Invalidate();

 private:
  fs::path root_;
  bool live_ = false;
  OsInfo os_;
  mutable std::unique_ptr<pkg::rootfs::Accounts> accounts_;
  mutable std::unique_ptr<std::map<std::string, std::string>> dpkg_;
};

// Records then applies changes to the root during `policy apply`. Each
// in-system path is recorded once per rollback point (bytes, mode, owner,
// symlink target or absence), fsynced, before it is first modified.
class Change {
 public:
  virtual ~Change() = default;
  // Records path (and nothing else) so that the caller may modify it.
  virtual ExpectedVoid Record(std::string_view in_system_path) = 0;
  // Records the live kernel's current value of a sysctl before it is written.
  virtual ExpectedVoid RecordRuntimeSysctl(const std::string& key, const std::string& previous) = 0;
  // A note for the result ("takes effect after update-grub and a reboot").
  virtual void Note(std::string note) = 0;

  // Helpers: record, then act. Paths are in-system paths.
  // Writes content atomically; an existing file keeps its mode and owner,
  // a new one gets `mode` and root:root.
  ExpectedVoid WriteFile(const Context& ctx, std::string_view path, const std::string& content, unsigned mode = 0644);
  ExpectedVoid Chmod(const Context& ctx, std::string_view path, unsigned mode);
  ExpectedVoid Chown(const Context& ctx, std::string_view path, uint32_t uid, uint32_t gid);
  ExpectedVoid Remove(const Context& ctx, std::string_view path);  // file or symlink
  ExpectedVoid Symlink(const Context& ctx, std::string_view path, const std::string& target);
  // Writes /proc/sys/... (live root only; refused otherwise).
  ExpectedVoid SetRuntimeSysctl(const Context& ctx, const std::string& key, const std::string& value);
};

}  // namespace parc::policy
