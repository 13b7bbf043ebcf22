// Capture: a directory tree, an image file or a block device becomes an image
// index plus chunks in a store. Chunks are hashed, compressed and stored on
// several threads; the manifest comes back unsigned (sign it with
// SignManifest, possibly elsewhere: the publisher key need not be where the
// master is).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/imaging/chunk_store.h"
#include "parc/imaging/index.h"
#include "parc/imaging/progress.h"

namespace parc::imaging {

struct CaptureOptions {
  std::string name, version;  // index rules: name [a-z0-9][a-z0-9+._-]*, version [A-Za-z0-9.+~:_-]+
  ChunkerParams chunking;
  // Level 5 rather than zstd's default 3: a capture is made once and deployed
  // many times; 5 stores ~2% fewer bytes (a debootstrap'd tree: 110.9 -> 108.8
  // MB) for ~40% more compression CPU, and decompresses as fast.
  int zstd_level = 5;
  unsigned threads = 0;  // 0: one per core
  // Tree: a file of at most this many bytes is kept in the index itself
  // (Entry::data) instead of in a chunk of its own: thousands of small files
  // cost no objects, no round trips and no cache entries, and compress
  // together with the index. 0: never; at most IndexLimits::max_inline_bytes.
  uint32_t inline_max = 4096;
  // Earlier images (typically the previous version) whose chunks are in the
  // store: a chunk with the same plain digest is referenced, not compressed
  // again. Without them every chunk is compressed (the store still keeps one
  // copy of identical stored bytes).
  std::vector<const Image*> reuse;
  // Tree: where user and group names come from (its etc/passwd and
  // etc/group); default the captured tree itself.
  std::optional<std::filesystem::path> accounts_root;
  // Tree: mount points below the root are recorded as empty directories
  // (a live system's /proc, /sys, /dev, /run).
  bool one_file_system = true;
  // Tree: in-image paths left out with everything below them ("/tmp/cache").
  std::vector<std::string> exclude;
  int64_t now = 0;  // created_at; 0 = the clock
  ProgressFn progress;
};

struct CaptureResult {
  Image image;                // manifest unsigned
  std::string manifest_json;  // its canonical bytes
  uint64_t read_bytes = 0;
  uint64_t chunks_compressed = 0;  // not found in `reuse`
  uint64_t chunks_reused = 0;      // found in `reuse` or earlier in this capture
  uint64_t objects_written = 0;    // new objects in the store (content and body)
  uint64_t bytes_written = 0;      // their stored bytes
  std::vector<std::string> notes;  // sockets skipped, mount points not entered, files that changed while read
};

Expected<CaptureResult> CaptureTree(const std::filesystem::path& root, ChunkStore& store, const CaptureOptions& options);
// A regular file (disk or partition image) or a block device, as one chunk list.
Expected<CaptureResult> CaptureBlock(const std::filesystem::path& source, ChunkStore& store, const CaptureOptions& options);

}  // namespace parc::imaging
