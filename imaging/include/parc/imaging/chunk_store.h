// Chunks and where they live. A chunk is stored as one zstd frame and named
// by the SHA-256 of those stored bytes, exactly as the server's content store
// names every object (<dir>/objects/ab/<sha256>), so the content store verifies
// chunk uploads unchanged and any dumb mirror can serve them. The index also
// carries the SHA-256 of the plain bytes: that is what seeding from existing
// content matches on, and what every decoded chunk is checked against.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::imaging {

struct Digest {
  std::array<uint8_t, 32> bytes{};
  std::string Hex() const;
  std::string Short() const;  // the first 16 hex characters, for messages
  static Expected<Digest> FromHex(std::string_view hex);  // 64 lower-case hex characters
  static Digest Of(std::string_view data);                 // SHA-256
  auto operator<=>(const Digest&) const = default;
};
struct DigestHash {
  size_t operator()(const Digest& d) const noexcept {
    size_t h;
    static_assert(sizeof h <= sizeof d.bytes);
    std::memcpy(&h, d.bytes.data(), sizeof h);  // already uniformly distributed
    return h;
  }
};

// One chunk as an index names it.
struct ChunkRef {
  Digest object;             // SHA-256 of the stored (zstd) bytes: the store address
  Digest sha256;             // SHA-256 of the plain bytes
  uint32_t size = 0;         // plain bytes
  uint32_t stored_size = 0;  // stored bytes
  bool operator==(const ChunkRef&) const = default;
};

// Compresses a chunk as one zstd frame (content size recorded, no checksum:
// the digests are the check) and fills ref.
Expected<std::string> EncodeChunk(std::string_view plain, int zstd_level, ChunkRef& ref);
// The only way stored bytes become plain bytes: checks the stored digest and
// size, decompresses into exactly ref.size bytes, checks the plain digest.
// A mismatch is Errc::kCrypto naming the chunk.
Expected<std::string> DecodeChunk(const ChunkRef& ref, std::string_view stored);
// Largest stored size a chunk of `plain_size` bytes may have.
uint64_t MaxStoredSize(uint64_t plain_size);

// get/put/has by stored digest. Implementations are safe to call from several
// threads at once.
class ChunkStore {
 public:
  virtual ~ChunkStore() = default;
  virtual bool Has(const Digest& object) const = 0;
  // The stored bytes as kept (callers verify them with DecodeChunk);
  // Errc::kNotFound when absent.
  virtual Expected<std::string> Get(const Digest& object) const = 0;
  // Keeps stored bytes under their digest; refuses bytes that do not hash to
  // `object` (Errc::kCrypto). Putting an object already present does nothing.
  ExpectedVoid Put(const Digest& object, std::string_view stored);
  // Put for bytes the caller has just checked against `object` (DecodeChunk
  // did): not hashed again.
  virtual ExpectedVoid PutChecked(const Digest& object, std::string_view stored) = 0;
  // Drops an object (a corrupt one found by a reader); absent is fine.
  virtual ExpectedVoid Remove(const Digest& object) = 0;
  // Makes every object Put so far durable (one filesystem sync, not one
  // fsync per object).
  virtual ExpectedVoid Sync() = 0;
};

// The content store layout in a directory: <dir>/objects/ab/<sha256>, writes
// through <dir>/incoming/ and a rename. Pointing it at the server's content
// directory reads and writes the server's objects.
class DirChunkStore final : public ChunkStore {
 public:
  static Expected<std::unique_ptr<DirChunkStore>> Open(const std::filesystem::path& dir);
  std::filesystem::path ObjectPath(const Digest& object) const;
  const std::filesystem::path& dir() const { return dir_; }

  bool Has(const Digest& object) const override;
  Expected<std::string> Get(const Digest& object) const override;
  ExpectedVoid PutChecked(const Digest& object, std::string_view stored) override;
  ExpectedVoid Remove(const Digest& object) override;
  ExpectedVoid Sync() override;

 private:
  explicit DirChunkStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

// A chunk cache in a few large files: <dir>/packs/NNNNNNNN.pack, records
// appended one after the other (docs/images.md, "The agent's chunk cache").
// The agent keeps its cache this way because a deployment puts thousands of
// small chunks: one file per chunk costs an inode, a rename and their journal
// work each, a pack costs one append. Every instance appends to a pack of its
// own, created on its first Put and locked while open, so two processes on one
// directory never write the same file (neither sees the other's new objects
// until it is opened again). Open reads the record headers of every pack
// (not the data) into memory; a record torn by a crash ends its pack's scan
// and is cut off when no writer holds that pack. Get returns the bytes as
// stored: callers verify them (DecodeChunk) and Remove what does not match,
// which appends a removal record. Space of removed objects is not reclaimed.
class PackChunkStore final : public ChunkStore {
 public:
  struct Options {
    uint64_t max_pack_bytes = 256ull << 20;  // a new pack is started beyond this
  };
  static Expected<std::unique_ptr<PackChunkStore>> Open(const std::filesystem::path& dir, Options options);
  static Expected<std::unique_ptr<PackChunkStore>> Open(const std::filesystem::path& dir) { return Open(dir, Options{}); }
  ~PackChunkStore() override;

  bool Has(const Digest& object) const override;
  Expected<std::string> Get(const Digest& object) const override;
  ExpectedVoid PutChecked(const Digest& object, std::string_view stored) override;
  ExpectedVoid Remove(const Digest& object) override;
  ExpectedVoid Sync() override;

  size_t ObjectCount() const;
  size_t PackCount() const;  // packs this instance reads (deleted ones excluded)

  struct PruneReport {
    uint64_t kept = 0, kept_bytes = 0;        // objects kept and their stored bytes
    uint64_t dropped = 0, dropped_bytes = 0;  // objects dropped and their stored bytes
    uint64_t packs_deleted = 0;               // emptied or rewritten packs
    uint64_t copied = 0, copied_bytes = 0;    // kept objects moved out of rewritten packs
    uint64_t freed_bytes = 0;                 // pack and index bytes given back to the filesystem
  };
  // Keeps the objects `keep` says yes to, drops the others and gives their
  // space back: a pack left without a kept object is deleted; a pack whose
  // kept objects fill less than half of it is rewritten (they are appended
  // to the pack this instance writes, synced, then the old pack is deleted);
  // other packs keep their dropped bytes, each dropped object getting a
  // removal entry. The pack this instance writes is never rewritten, and a
  // pack another instance writes (locked) is left alone. A crash at any point
  // loses no kept object: copies are durable before their originals go, and
  // an index goes before its pack. A dropped object a crash brings back is
  // still checked by every reader. `step`, when set, is called after each
  // stage ("moved": copies and removal entries written; "synced": they are
  // on disk; "index-deleted", for each pack deleted: its index is gone, the
  // pack not yet): the crash tests kill the process there.
  Expected<PruneReport> Prune(const std::function<bool(const Digest&)>& keep,
                              const std::function<void(std::string_view step)>& step = {});

 private:
  struct State;
  explicit PackChunkStore(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

// Where missing chunks come from: the agent implements it over
// AgentService.GetContent (digest + offset). Called from several threads at
// once (DeployOptions::fetch_parallelism).
class ChunkFetcher {
 public:
  virtual ~ChunkFetcher() = default;
  // Streams the stored bytes of ref.object from `offset` to its end into
  // `sink`, in pieces of any size. Errc::kUnavailable means "try again": the
  // caller retries from the bytes it already has. The caller verifies.
  virtual ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset,
                             const std::function<ExpectedVoid(std::string_view)>& sink) = 0;
  // The whole stored bytes of several chunks in one round trip: sink(i, bytes)
  // for refs[i], as each arrives. It may deliver only some of them (the
  // caller fetches the others with Fetch); the default delivers none. A sink
  // error stops it and is returned. The caller verifies.
  virtual ExpectedVoid FetchMany(const std::vector<ChunkRef>& refs,
                                 const std::function<ExpectedVoid(size_t, std::string_view)>& sink) {
    (void)refs;
    (void)sink;
    return {};
  }
};

// A fetcher reading another store: a mirror directory, a USB stick, the
// server's content directory in tests.
class StoreFetcher final : public ChunkFetcher {
 public:
  explicit StoreFetcher(const ChunkStore& source) : source_(source) {}
  ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset,
                     const std::function<ExpectedVoid(std::string_view)>& sink) override;

 private:
  const ChunkStore& source_;
};

}  // namespace parc::imaging
