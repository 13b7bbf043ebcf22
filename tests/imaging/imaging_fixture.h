// Shared by the imaging tests: publisher keys, a "server" store and an
// agent cache, a tree with every kind of metadata, a snapshot that sees all
// of it (written independently of the library's own walker), and fetchers
// that count, fail or tamper.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "parc/imaging/capture.h"
#include "parc/imaging/chunk_store.h"
#include "parc/imaging/deploy.h"
#include "parc/imaging/index.h"
#include "parc/imaging/inspect.h"
#include "parc/packages/signing.h"
#include "test_support.h"

namespace parc::imaging::testing {

namespace fs = std::filesystem;

#define REQUIRE_OK(expr)                                                  \
  [&]() {                                                                 \
    auto _r = (expr);                                                     \
    if (!_r) FAIL("unexpected error: " << _r.error().message());         \
    return std::move(*_r);                                                \
  }()
#define REQUIRE_VOID_OK(expr)                                             \
  do {                                                                    \
    auto _r = (expr);                                                     \
    if (!_r) FAIL("unexpected error: " << _r.error().message());         \
  } while (0)

// Every path under root: type, mode, owner, mtime (ns), size, content digest,
// symlink target, device numbers, xattrs, and which paths share an inode.
using Snapshot = std::map<std::string, std::string>;
Snapshot TakeSnapshot(const fs::path& root);
std::string DiffSnapshots(const Snapshot& expected, const Snapshot& actual);  // "" when equal

// Deterministic pseudo-random bytes.
std::string RandomData(size_t n, uint64_t seed);

// A tree using every entry type and kind of metadata Linux has: files of
// many sizes (empty, small, multi-chunk, sparse), setuid/setgid/sticky,
// owners with and without names in the tree's etc/passwd, nanosecond
// mtimes, user/trusted/security xattrs, access and default POSIX ACLs,
// relative/absolute/dangling symlinks, hard links, char and block devices,
// a fifo.
void BuildRichTree(const fs::path& root);

// A POSIX ACL as the kernel stores it in system.posix_acl_* (version 2).
struct AclEntry {
  uint16_t tag, perm;
  uint32_t id;
};
std::string AclXattr(const std::vector<AclEntry>& entries);

class Env {
 public:
  Env();
  fs::path dir() const { return tmp_.path(); }
  DirChunkStore& server() { return *server_; }  // what the publisher captured into
  DirChunkStore& cache() { return *cache_; }    // the agent's local cache
  const pkg::KeyPair& key() const { return key_; }
  DeployOptions Options() const;

  struct Captured {
    CaptureResult capture;
    SignedManifest signed_manifest;
    const std::string& json() const { return signed_manifest.json; }
    const std::string& sig() const { return signed_manifest.signature; }
    const Image& image() const { return capture.image; }
  };
  Captured CaptureTreeSigned(const fs::path& root, const std::string& version, const Image* reuse = nullptr);
  Captured CaptureBlockSigned(const fs::path& source, const std::string& version, const Image* reuse = nullptr);
  Captured Sign(CaptureResult r);

 private:
  test::TempDir tmp_;
  std::unique_ptr<DirChunkStore> server_, cache_;
  pkg::KeyPair key_;
};

// Serves from a store; counts calls and bytes; can fail after N chunks,
// cut a chunk halfway with kUnavailable once, or flip a byte.
class TestFetcher : public ChunkFetcher {
 public:
  explicit TestFetcher(const ChunkStore& source) : source_(source) {}
  ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset, const std::function<ExpectedVoid(std::string_view)>& sink) override;

  std::atomic<uint64_t> calls{0}, chunks{0}, bytes{0}, resumed{0};
  std::atomic<int64_t> fail_after = -1;   // complete chunks served before every call fails (kUnavailable)
  std::atomic<bool> interrupt_each_once = false;  // first call per chunk sends half then kUnavailable
  std::atomic<bool> tamper = false;               // flip a byte of every chunk served

 private:
  const ChunkStore& source_;
  std::mutex mu_;
  std::map<Digest, int> seen_;
};

// Serves FetchMany too, as the agent's GetObjects does, but only every other
// chunk of each batch (the caller must fetch the rest alone); `tamper_batch`
// flips a byte of every chunk it serves that way.
class BatchFetcher : public TestFetcher {
 public:
  explicit BatchFetcher(const ChunkStore& source) : TestFetcher(source), store_(source) {}
  ExpectedVoid FetchMany(const std::vector<ChunkRef>& refs,
                         const std::function<ExpectedVoid(size_t, std::string_view)>& sink) override {
    batches.fetch_add(1);
    for (size_t i = 0; i < refs.size(); i += 2) {
      auto data = store_.Get(refs[i].object);
      if (!data) return Fail(data.error());
      if (tamper_batch && !spare.contains(refs[i].object)) (*data)[data->size() / 2] ^= 0x20;
      batched.fetch_add(1);
      if (auto r = sink(i, *data); !r) return r;
    }
    return {};
  }
  std::atomic<uint64_t> batches{0}, batched{0};
  std::atomic<bool> tamper_batch = false;
  std::set<Digest> spare;  // never tampered (set before fetching)

 private:
  const ChunkStore& store_;
};

}  // namespace parc::imaging::testing
