// The installer's rollback point file (point.json); the path recording and
// system pieces it shares with the hardening engine are in parc/packages/rootfs.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/installer.h"
#include "parc/packages/rootfs.h"

namespace parc::pkg::detail {

using namespace parc::pkg::rootfs;

namespace fs = std::filesystem;

// dpkg's view of a native package before the change.
struct DebRecord {
  std::string package;    // Debian package name
  bool was_installed = false;
  std::string version;
  std::string status;     // "install ok installed", ...
};

struct ServiceRecord {
  std::string unit;
  std::string state;      // "enabled", "disabled", "masked" (informational; the links are path records)
};

struct PointData {
  std::string id, job_id, package, action, from_version, to_version;
  int64_t created_at = 0;
  std::vector<PathRecord> paths;
  std::vector<ServiceRecord> services;
  std::vector<DebRecord> debs;
  std::optional<InstalledPackage> installed;  // the package's installed-db row before the change
  uint64_t bytes = 0;
};

// point.json, fsynced together with the directories holding it.
ExpectedVoid WritePoint(const fs::path& point_dir, const PointData& point);
Expected<PointData> ReadPoint(const fs::path& point_dir);

}  // namespace parc::pkg::detail
