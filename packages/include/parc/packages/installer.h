// Transactional install, upgrade, remove and rollback of Parc packages into a
// target root, with an installed-package database and rollback points kept in
// the agent's state directory.
//
// Every change follows the same journaled path:
//   1. stage: the payload is already extracted into <root>/.parc-staging/<tx>
//      (same filesystem as the target, so renames are atomic);
//   2. rollback point: every path the change will create, overwrite or remove
//      is recorded with its previous content and metadata (bytes, mode, owner,
//      symlink target, or "absent"), plus service states and the previously
//      installed version; fsynced before anything is touched;
//   3. journal "applying" (fsynced);
//   4. apply: rename staged entries into place, remove what goes, config
//      lines, services, native (.deb through the real dpkg --root), scripts
//      (timeout, output captured);
//   5. commit: installed db updated and journal "committed" in one SQLite
//      transaction.
// A failure in 4 restores the rollback point and reports why. After a crash,
// Recover() (run at every agent start) restores the rollback point of any
// transaction that did not commit: the root ends in the old state or the new
// one, never half.
//
// Errors: refusals (platform, architecture, dependencies, conflicts,
// downgrade, dependents on remove, unknown owner) are kFailedPrecondition
// and nothing was changed; a failure once the change started (script, dpkg,
// file system) is kIo, the point was restored before returning and the
// message names the step and ends with its last output lines. Installing the
// version already installed is a no-op success (InstallResult.point.id empty).
// An Installer holds an exclusive lock on <state>/packages.lock for its whole
// life (Open waits up to 30 s for it): keep one per process and close it when
// idle so that `parc-agent package ...` can run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/archive.h"
#include "parc/packages/manifest.h"

namespace parc::pkg {

struct InstalledPackage {
  std::string name;
  std::string version;
  int64_t installed_at = 0;
  std::string manifest_json;  // canonical manifest as installed
};

// One rollback point as reported to the server (the data stays on the agent).
struct RollbackPoint {
  std::string id;             // UUID
  std::string job_id;         // job that made it ("" for local operations)
  std::string package;        // package name
  std::string action;         // "install", "upgrade", "remove", "rollback"
  std::string from_version;   // "" when it was not installed
  std::string to_version;     // "" after a remove
  int64_t created_at = 0;
  uint64_t paths = 0;         // number of paths recorded
  uint64_t bytes = 0;         // bytes of saved content
  std::string state;          // "open" (tx running), "committed", "restored", "rolled-back" (auto, failure)
};

struct StepOutput {           // a script or dpkg run
  std::string what;           // "post_install", "dpkg -i hello.deb"
  int exit_code = 0;
  std::string output;         // stdout+stderr, truncated to 64 KiB
  bool timed_out = false;
};

struct InstallOptions {
  std::string job_id;
  bool allow_downgrade = false;  // only when an admin ordered a rollback
  bool live = false;             // root is the running system: restart services with systemctl
  // Fault injection for the crash tests: "recording" (rollback point half
  // written), "mid-apply" or "before-commit" make the process SIGKILL itself
  // at that point. Empty in production.
  std::string crash_at;
};

struct InstallResult {
  RollbackPoint point;
  std::vector<StepOutput> steps;
  std::string message;         // "installed hello 1.0-1 (was 0.9-1)"
};

using StepProgress = std::function<void(const std::string& phase, int percent)>;

class Installer {
 public:
  // root: the target tree ("/" live); state: the agent state dir (packages.db, rollback/, journal).
  static Expected<std::unique_ptr<Installer>> Open(const std::filesystem::path& root,
                                                   const std::filesystem::path& state);
  ~Installer();

  // Restores any uncommitted transaction; returns the points it restored.
  Expected<std::vector<RollbackPoint>> Recover();

  // Installs or upgrades from a payload already extracted by ExtractPayload
  // into staging (which must be <root>/.parc-staging/...; it is consumed).
  // Checks: platform/arch, dependencies against installed packages (and their
  // provides), conflicts both ways, downgrade refused unless allowed.
  Expected<InstallResult> Install(const OpenedPackage& package, const std::filesystem::path& staging,
                                  const InstallOptions& options, const StepProgress& progress = {});
  // Removes an installed package (refused while another installed package depends on it).
  Expected<InstallResult> Remove(const std::string& name, const InstallOptions& options);
  // Restores a committed rollback point exactly (bytes, modes, owners, symlinks,
  // service states, installed-db entry), itself recorded as a new point.
  Expected<InstallResult> RollbackTo(const std::string& point_id, const InstallOptions& options);

  Expected<std::vector<InstalledPackage>> ListInstalled();
  Expected<std::optional<InstalledPackage>> Find(const std::string& name);
  Expected<std::vector<RollbackPoint>> ListRollbackPoints();

  // A fresh staging directory inside the root (same filesystem as the target).
  std::filesystem::path NewStagingDir() const;

 private:
  struct Impl;
  explicit Installer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace parc::pkg
