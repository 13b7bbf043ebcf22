// Walking a directory tree into index entries (without file content), in
// canonical order, never following a symlink: shared by capture and verify.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "parc/imaging/index.h"
#include "sys.h"
#include "work.h"

namespace parc::imaging::internal {

struct WalkOptions {
  bool one_file_system = true;
  std::vector<std::string> exclude;
  std::filesystem::path accounts_root;  // names for uids/gids; empty: none
};

struct FileJob {
  size_t entry;     // index into entries
  std::string rel;  // relative to the root: "etc/passwd"
  uint64_t ino;
};

struct WalkResult {
  std::vector<Entry> entries;  // files have size but no chunks
  std::vector<FileJob> files;
  std::vector<std::string> notes;
  uint64_t total_bytes = 0;
};

Expected<WalkResult> WalkTree(const sys::Fd& root, const WalkOptions& options, Ticker& ticker);

}  // namespace parc::imaging::internal
