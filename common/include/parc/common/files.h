// Small filesystem helpers that never throw.
#pragma once

#include <filesystem>
#include <string>

#include "parc/common/error.h"

namespace parc {

Expected<std::string> ReadFile(const std::filesystem::path& path);
// Reads at most max_bytes; for /proc and /sys files whose size is not known.
Expected<std::string> ReadSmallFile(const std::filesystem::path& path, size_t max_bytes = 1 << 20);
// Writes through a temporary file, fsync and rename: readers see the old or the new content.
ExpectedVoid WriteFileAtomic(const std::filesystem::path& path, std::string_view data, unsigned mode = 0644);
ExpectedVoid EnsureDirectory(const std::filesystem::path& path, unsigned mode = 0755);
bool PathExists(const std::filesystem::path& path);

// Joins an absolute in-system path ("/etc/os-release") under a root directory ("/tmp/root").
std::filesystem::path UnderRoot(const std::filesystem::path& root, std::string_view absolute);

}  // namespace parc
