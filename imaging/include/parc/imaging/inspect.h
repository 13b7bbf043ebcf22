// Comparing: a target against an image (verify), and two images (diff).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/imaging/index.h"
#include "parc/imaging/progress.h"

namespace parc::imaging {

struct Difference {
  std::string path;    // in-image path; a block target's path for block images
  std::string what;    // "missing", "extra", "type", "content", "size", "mode", "owner", "mtime", "xattrs", "target", "device"
  std::string detail;  // expected vs found, or the byte range
  bool operator==(const Difference&) const = default;
};

struct VerifyOptions {
  unsigned threads = 0;
  bool check_mtime = true;  // directories included
  bool report_extra = true;  // paths on the target that the image does not have
  ProgressFn progress;
};

struct VerifyReport {
  std::vector<Difference> differences;  // in path order
  uint64_t checked_entries = 0, checked_bytes = 0;
  uint64_t differing_bytes = 0;  // content bytes that differ (block: whole chunks)
  bool ok() const { return differences.empty(); }
};

// A tree against its image: every entry's type, metadata and content
// (hashed at the image's chunk boundaries), without following symlinks.
Expected<VerifyReport> VerifyTree(const Image& image, const std::filesystem::path& target, const VerifyOptions& options = {});
// A file or block device against a block image, chunk by chunk.
Expected<VerifyReport> VerifyBlock(const Image& image, const std::filesystem::path& target, const VerifyOptions& options = {});

struct ImageDiff {
  std::vector<std::string> added, removed;  // tree paths
  std::vector<Difference> changed;          // tree: one per path, `what` lists the changes ("content,mtime")
  uint64_t added_bytes = 0, removed_bytes = 0, changed_bytes = 0;  // file bytes (changed: their new size); block: changed bytes
  uint64_t changed_blocks = 0;              // block: chunk positions that differ
  // What a machine holding `from` must receive to deploy `to`: distinct
  // chunks of `to` (its body included) whose stored object and plain bytes
  // are both absent from `from`.
  uint64_t chunks_to_transfer = 0, bytes_to_transfer = 0;
  uint64_t chunks_total = 0, bytes_total = 0;  // the same for all of `to`
};
ImageDiff DiffImages(const Image& from, const Image& to);

}  // namespace parc::imaging
