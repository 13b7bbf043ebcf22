// A tree snapshot for byte-identical comparisons: every path under a root
// with its type, mode, owner and content digest (files) or target (symlinks).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace parc::pkg::testing {

struct TreeNode {
  std::string type;     // "file", "dir", "symlink", "other"
  unsigned mode = 0;
  uint32_t uid = 0, gid = 0;
  std::string content;  // sha256 of files, target of symlinks
  bool operator==(const TreeNode&) const = default;
};

using TreeSnapshot = std::map<std::string, TreeNode>;  // "/etc/hello.conf" -> node

// Snapshots root; paths under `skip` prefixes (in-system, e.g. "/var/lib/dpkg") are left out.
TreeSnapshot Snapshot(const std::filesystem::path& root, const std::vector<std::string>& skip = {});
// Human-readable differences ("" when equal), for failure messages.
std::string DiffTrees(const TreeSnapshot& expected, const TreeSnapshot& actual);

}  // namespace parc::pkg::testing
