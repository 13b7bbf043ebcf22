// Operations on a target root shared by the package installer and the
// hardening engine: recording paths before a change and putting them back
// exactly (the on-disk rollback point), the root's own accounts, systemd unit
// links on disk, config line edits, and running a step under a timeout.
// Linux only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/installer.h"

namespace parc::pkg::rootfs {

namespace fs = std::filesystem;

// One path as it was before a change. Paths inside the root are absolute
// in-system paths ("/opt/hello/bin/hello"); paths inside the state directory
// (kept maintainer scripts) are relative to it and have in_state set.
struct PathRecord {
  std::string path;
  bool in_state = false;
  bool existed = false;
  std::string type;       // "file", "dir", "symlink" (when existed)
  unsigned mode = 0;      // permission bits incl. setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  std::string target;     // symlink target
  std::string sha256;     // file content digest
  std::string saved;      // file content, relative to the point directory
  int64_t mtime_ns = 0;   // files only
};

nlohmann::json PathRecordToJson(const PathRecord& r);
PathRecord PathRecordFromJson(const nlohmann::json& j);  // throws nlohmann::json::exception on bad input

// Records the current state of path (host location `host`) into point_dir,
// saving a file's bytes as data/<index>.
Expected<PathRecord> RecordPath(const fs::path& host, const std::string& path, bool in_state,
                                const fs::path& point_dir, size_t index, uint64_t& bytes);

// Puts every recorded path back. remove_created_trees: a directory absent at
// the point is removed with its content (right for the transaction that just
// failed: everything inside came after); otherwise only when empty, with a
// note naming what kept it.
ExpectedVoid RestorePaths(const fs::path& root, const fs::path& state, const fs::path& point_dir,
                          const std::vector<PathRecord>& paths, bool remove_created_trees,
                          std::vector<std::string>& notes);

fs::path HostPath(const fs::path& root, const fs::path& state, const PathRecord& r);

ExpectedVoid FsyncPath(const fs::path& p);  // file or directory

// Users and groups of the target root (its /etc/passwd and /etc/group).
struct Accounts {
  std::map<std::string, uint32_t> users, groups;
  fs::path root;
  Expected<uint32_t> Uid(const std::string& name) const;
  Expected<uint32_t> Gid(const std::string& name) const;
};
Accounts LoadAccounts(const fs::path& root);

// systemd: the WantedBy= targets of a unit's [Install] section.
std::vector<std::string> ParseWantedBy(const std::string& unit_file);
// "enabled", "disabled" or "masked" as seen in <root>/etc/systemd/system.
std::string ServiceState(const fs::path& root, const std::string& unit);
// Existing <root>/etc/systemd/system/*.wants/<unit> links, as in-system paths.
std::vector<std::string> WantsLinks(const fs::path& root, const std::string& unit);

// Sets key<sep>value lines: replaces the first active line for each key,
// appends the missing ones.
std::string EditConfigText(const std::string& text, const std::string& separator,
                           const std::vector<std::pair<std::string, std::string>>& set);
// Rewrites a file atomically keeping its mode and owner (new files: 0644 root).
ExpectedVoid ReplaceFileKeepingMeta(const fs::path& host, const std::string& content);

// Runs argv (argv[0] absolute) in its own process group with env and cwd,
// stdin /dev/null, stdout+stderr captured (last 64 KiB); kills the group
// at the timeout.
StepOutput RunStep(const std::string& what, const std::vector<std::string>& argv,
                   const std::vector<std::string>& env, const fs::path& cwd, uint32_t timeout_seconds);
// The last n lines of a step's output, for error messages.
std::string LastLines(const std::string& output, size_t n);

}  // namespace parc::pkg::rootfs
