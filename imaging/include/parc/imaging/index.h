// The image index (docs/images.md): a small signed manifest in canonical JSON
// naming, by digest, a body of JSON lines stored as chunks like any content.
// The body lists either a file tree (one entry per path) or a raw block
// image (one chunk per line). Parsers are strict: unknown keys, wrong types,
// non-canonical order, paths that escape the root and impossible sizes are
// errors that say where.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"
#include "parc/imaging/chunk_store.h"
#include "parc/imaging/chunker.h"
#include "parc/packages/signing.h"

namespace parc::imaging {

inline constexpr const char* kImageFormat = "parc-image/1";

enum class ImageKind { kTree, kBlock };
std::string_view KindName(ImageKind k);  // "tree", "block"

enum class EntryType { kDirectory, kFile, kSymlink, kHardlink, kCharDevice, kBlockDevice, kFifo };
std::string_view EntryTypeName(EntryType t);  // "dir", "file", "symlink", "hardlink", "char", "block", "fifo"

// One path of a tree image. A hardlink entry carries only path and target
// (the earlier path whose inode it shares); every other entry carries the
// inode's metadata.
struct Entry {
  std::string path;  // absolute in-image path: "/", "/etc", "/etc/passwd"
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (07777)
  uint32_t uid = 0, gid = 0;
  std::string user, group;  // names in the captured root's accounts; "" if none
  int64_t mtime = 0;        // seconds since the epoch
  uint32_t mtime_nsec = 0;
  std::map<std::string, std::string> xattrs;  // name -> raw value (ACLs: system.posix_acl_*)
  uint64_t size = 0;                          // files: sum of chunk sizes, or of data
  std::vector<ChunkRef> chunks;               // files (none when the content is inline)
  std::string data;                           // small files: the content itself, in the index (then no chunks)
  std::string target;                         // symlink target (data, never followed) or hardlink path
  uint32_t major = 0, minor = 0;              // char and block devices
  bool operator==(const Entry&) const = default;
};

struct Manifest {
  std::string name, version;
  ImageKind kind = ImageKind::kTree;
  std::string publisher, key_id;  // empty until signed
  int64_t created_at = 0, signed_at = 0, expires_at = 0;
  ChunkerParams chunking;
  int zstd_level = 3;        // informational: how the chunks were compressed
  uint64_t size = 0;         // tree: bytes of all regular files; block: bytes of the image
  uint64_t entries = 0;      // tree: body lines (entries); block: chunks
  uint64_t chunks = 0;       // distinct content chunks (not counting the body)
  uint64_t stored_size = 0;  // stored bytes of those distinct chunks
  // The body: its plain bytes, their digest, and the chunks that hold them.
  uint64_t body_size = 0;
  Digest body_sha256;
  std::vector<ChunkRef> body_chunks;
  bool operator==(const Manifest&) const = default;
};

// A manifest with its body read.
struct Image {
  Manifest manifest;
  std::vector<Entry> entries;    // tree, in canonical order
  std::vector<ChunkRef> blocks;  // block image, in order
  // Distinct content chunks (tree files or block image), first use order.
  std::vector<ChunkRef> UniqueChunks() const;
};

// Limits a parser enforces on top of the chunk rules.
struct IndexLimits {
  uint64_t max_body_bytes = 4ull << 30;
  uint64_t max_image_bytes = 64ull << 40;  // 64 TiB
  size_t max_line_bytes = 1u << 20;
  size_t max_xattr_bytes = 64u << 10;  // per value (Linux's own limit)
  size_t max_inline_bytes = 64u << 10;  // a file's content kept in the index itself
};

// Canonical bytes: what is signed (manifest) and stored (body).
std::string CanonicalManifest(const Manifest& m);
Expected<Manifest> ParseManifest(std::string_view json, const IndexLimits& limits = {});
std::string SerializeBody(const Image& image);
// Checks the body against m (digest, size, entry count, totals) and parses it.
Expected<Image> ParseBody(const Manifest& m, std::string_view body, const IndexLimits& limits = {});

// Name [a-z0-9][a-z0-9+._-]* and version [A-Za-z0-9.+~:_-]+, each at most 128.
ExpectedVoid ValidateNameVersion(const std::string& name, const std::string& version);

// Path rules (also used by capture and deploy): "/" or "/a/b" with no empty,
// "." or ".." component, no NUL, each component at most 255 bytes, at most
// 4000 bytes in all.
ExpectedVoid ValidatePath(std::string_view path);
// Canonical order: component by component, bytes compared unsigned (the
// order of a depth-first walk with sorted names).
bool PathLess(std::string_view a, std::string_view b);

struct SignedManifest {
  Manifest manifest;
  std::string json;       // canonical bytes, exactly what was signed
  std::string signature;  // raw 64-byte Ed25519 signature
};
// Sets publisher/key_id/signed_at/expires_at and signs with a publisher key.
Expected<SignedManifest> SignManifest(Manifest m, const pkg::KeyPair& key, int64_t now, int64_t expires_at);
// Parses, then checks signature, trusted key and validity period through
// pkg::VerifySignedBytes (what = "image").
Expected<Manifest> VerifyManifest(std::string_view json, std::string_view signature,
                                  const std::vector<pkg::PublicKey>& trusted, int64_t now);

// Reads the body chunks (from `cache`, else `fetcher`, which may be null),
// verifies every one and the whole body, parses it. Fetched body chunks are
// kept in the cache.
Expected<Image> LoadImage(const Manifest& m, ChunkStore& cache, ChunkFetcher* fetcher, const IndexLimits& limits = {});

// The image identity used in deploy journals: SHA-256 of the manifest bytes.
std::string ManifestId(std::string_view manifest_json);

}  // namespace parc::imaging
