// The agent's chunk cache in pack files (PackChunkStore): objects survive
// reopening, removals are remembered, a crash's torn tail loses only the last
// objects, several instances on one directory never write the same pack,
// packs roll over, and concurrent puts all land.
#include <catch2/catch.hpp>

#include <sys/file.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "imaging_fixture.h"
#include "parc/common/files.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

struct Chunk {
  ChunkRef ref;
  std::string plain, stored;
};

Chunk MakeChunk(size_t size, uint64_t seed) {
  Chunk c;
  c.plain = RandomData(size, seed);
  auto stored = EncodeChunk(c.plain, 3, c.ref);
  REQUIRE(stored);
  c.stored = std::move(*stored);
  return c;
}

// What every reader of a store does: the stored bytes, checked and decoded.
bool Readable(const ChunkStore& store, const Chunk& c) {
  auto got = store.Get(c.ref.object);
  if (!got) return false;
  auto plain = DecodeChunk(c.ref, *got);
  return plain && *plain == c.plain;
}

uint64_t FileSize(const fs::path& p) { return fs::file_size(p); }

}  // namespace

TEST_CASE("pack store: objects survive reopening, a second put appends nothing, wrong bytes are refused", "[store][pack]") {
  test::TempDir dir("parc-pack");
  Chunk a = MakeChunk(70000, 1), b = MakeChunk(3000, 2);
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    CHECK_FALSE(store->Has(a.ref.object));
    CHECK(store->Get(a.ref.object).error().Is(Errc::kNotFound));
    REQUIRE_VOID_OK(store->Put(a.ref.object, a.stored));
    REQUIRE_VOID_OK(store->PutChecked(b.ref.object, b.stored));
    CHECK(Readable(*store, a));
    CHECK(Readable(*store, b));
    uint64_t size = FileSize(dir.path() / "packs/00000001.pack");
    CHECK(size == a.stored.size() + b.stored.size());
    REQUIRE_VOID_OK(store->Put(a.ref.object, a.stored));
    CHECK(FileSize(dir.path() / "packs/00000001.pack") == size);
    auto wrong = store->Put(Digest::Of("something else"), a.stored);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().Is(Errc::kCrypto));
    REQUIRE_VOID_OK(store->Sync());
    CHECK(store->ObjectCount() == 2);
  }
  auto again = REQUIRE_OK(PackChunkStore::Open(dir.path()));
  CHECK(again->ObjectCount() == 2);
  CHECK(Readable(*again, a));
  CHECK(Readable(*again, b));
  // No writer holds the pack any more: the new instance appends to it.
  Chunk c = MakeChunk(5000, 3);
  REQUIRE_VOID_OK(again->Put(c.ref.object, c.stored));
  CHECK(again->PackCount() == 1);
  CHECK(Readable(*REQUIRE_OK(PackChunkStore::Open(dir.path())), c));
}

TEST_CASE("pack store: a removed object stays removed after reopening and can be put again", "[store][pack]") {
  test::TempDir dir("parc-pack");
  Chunk a = MakeChunk(20000, 4), b = MakeChunk(20000, 5);
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    REQUIRE_VOID_OK(store->Put(a.ref.object, a.stored));
    REQUIRE_VOID_OK(store->Put(b.ref.object, b.stored));
    REQUIRE_VOID_OK(store->Remove(a.ref.object));
    REQUIRE_VOID_OK(store->Remove(Digest::Of("never stored")));  // absent is fine
    CHECK_FALSE(store->Has(a.ref.object));
    CHECK(store->Get(a.ref.object).error().Is(Errc::kNotFound));
  }
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    CHECK_FALSE(store->Has(a.ref.object));
    CHECK(Readable(*store, b));
    REQUIRE_VOID_OK(store->Put(a.ref.object, a.stored));
  }
  auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
  CHECK(Readable(*store, a));
  CHECK(Readable(*store, b));
}

TEST_CASE("pack store: a crash's torn tail loses only the last objects, appends continue after it", "[store][pack]") {
  test::TempDir dir("parc-pack");
  std::vector<Chunk> chunks;
  for (int i = 0; i < 4; ++i) chunks.push_back(MakeChunk(10000 + 1000 * i, 10 + i));
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    for (const auto& c : chunks) REQUIRE_VOID_OK(store->Put(c.ref.object, c.stored));
  }
  const fs::path pack = dir.path() / "packs/00000001.pack", idx = dir.path() / "packs/00000001.idx";

  SECTION("the last index entry half written") {
    fs::resize_file(idx, fs::file_size(idx) - 20);
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    CHECK(store->ObjectCount() == 3);
    CHECK_FALSE(store->Has(chunks[3].ref.object));
    for (int i = 0; i < 3; ++i) CHECK(Readable(*store, chunks[static_cast<size_t>(i)]));
  }
  SECTION("the index written, the last object's bytes not") {
    fs::resize_file(pack, fs::file_size(pack) - chunks[3].stored.size() / 2);
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    CHECK(store->ObjectCount() == 3);
    CHECK_FALSE(store->Has(chunks[3].ref.object));
  }
  SECTION("garbage in an index entry ends the index there") {
    std::string bytes = ReadFile(idx).value();
    bytes[56 * 2 + 20] ^= 0x40;  // inside the third entry's digest
    REQUIRE(WriteFileAtomic(idx, bytes));
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    CHECK(store->ObjectCount() == 2);
    CHECK(Readable(*store, chunks[0]));
    CHECK(Readable(*store, chunks[1]));
  }
  SECTION("bytes altered in the pack are returned as stored and refused by the reader's check") {
    std::string bytes = ReadFile(pack).value();
    bytes[chunks[0].stored.size() + 100] ^= 1;  // inside the second object
    REQUIRE(WriteFileAtomic(pack, bytes));
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    CHECK(store->ObjectCount() == 4);
    auto got = REQUIRE_OK(store->Get(chunks[1].ref.object));
    CHECK(DecodeChunk(chunks[1].ref, got).error().Is(Errc::kCrypto));
    REQUIRE_VOID_OK(store->Remove(chunks[1].ref.object));
    CHECK_FALSE(REQUIRE_OK(PackChunkStore::Open(dir.path()))->Has(chunks[1].ref.object));
    return;
  }
  // Whatever was lost, the store goes on: a new object after the damage is
  // found again, and so is everything that was intact.
  Chunk next = MakeChunk(12345, 99);
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    REQUIRE_VOID_OK(store->Put(next.ref.object, next.stored));
    REQUIRE_VOID_OK(store->Sync());
  }
  auto store = REQUIRE_OK(PackChunkStore::Open(dir.path()));
  CHECK(Readable(*store, next));
  CHECK(Readable(*store, chunks[0]));
  CHECK(Readable(*store, chunks[1]));
}

TEST_CASE("pack store: instances open on one directory write packs of their own, a later one sees both", "[store][pack]") {
  test::TempDir dir("parc-pack");
  Chunk x = MakeChunk(30000, 20), y = MakeChunk(30000, 21);
  {
    auto one = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    auto two = REQUIRE_OK(PackChunkStore::Open(dir.path()));
    REQUIRE_VOID_OK(one->Put(x.ref.object, x.stored));
    REQUIRE_VOID_OK(two->Put(y.ref.object, y.stored));
    // The first instance locked the pack it writes: the second took another.
    int fd = ::open((dir.path() / "packs/00000001.pack").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK(::flock(fd, LOCK_EX | LOCK_NB) != 0);
    ::close(fd);
    CHECK(fs::exists(dir.path() / "packs/00000002.pack"));
    CHECK_FALSE(one->Has(y.ref.object));  // not seen until opened again
  }
  auto three = REQUIRE_OK(PackChunkStore::Open(dir.path()));
  CHECK(three->PackCount() == 2);
  CHECK(Readable(*three, x));
  CHECK(Readable(*three, y));
}

TEST_CASE("pack store: packs roll over at their size limit and concurrent puts all land", "[store][pack]") {
  test::TempDir dir("parc-pack");
  std::vector<Chunk> chunks;
  for (int i = 0; i < 120; ++i) chunks.push_back(MakeChunk(2000 + 37 * static_cast<size_t>(i), 100 + static_cast<uint64_t>(i)));
  PackChunkStore::Options small;
  small.max_pack_bytes = 32 << 10;
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (size_t i = static_cast<size_t>(t); i < chunks.size(); i += 4)
          if (!store->Put(chunks[i].ref.object, chunks[i].stored)) ++failures;
        for (size_t i = 0; i < chunks.size(); ++i) (void)store->Get(chunks[i].ref.object);  // reads while others write
      });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    CHECK(store->ObjectCount() == chunks.size());
    CHECK(store->PackCount() > 2);
    REQUIRE_VOID_OK(store->Sync());
  }
  for (const auto& e : fs::directory_iterator(dir.path() / "packs"))
    if (e.path().extension() == ".pack") CHECK(e.file_size() <= (32u << 10) + 8000);
  auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
  CHECK(store->ObjectCount() == chunks.size());
  for (const auto& c : chunks) CHECK(Readable(*store, c));
}

namespace {

uint64_t PacksOnDisk(const fs::path& dir) {
  uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(dir / "packs")) bytes += e.file_size();
  return bytes;
}

}  // namespace

TEST_CASE("pack store: Prune keeps what it is told, deletes emptied packs, rewrites sparse ones, marks the rest removed", "[store][pack][prune]") {
  test::TempDir dir("parc-pack");
  PackChunkStore::Options small;
  small.max_pack_bytes = 40 << 10;
  // About ten 40 KiB packs of 4 KiB objects, in put order: i < 40 fill the
  // first packs (all dropped), 40..79 the middle ones (one in four kept:
  // sparse, rewritten), 80.. the last ones (all but one kept: stay as they are).
  std::vector<Chunk> chunks;
  for (int i = 0; i < 110; ++i) chunks.push_back(MakeChunk(4000, 500 + static_cast<uint64_t>(i)));
  auto kept = [&](size_t i) { return (i >= 40 && i < 80 && i % 4 == 0) || (i >= 80 && i != 95); };
  uint64_t before = 0;
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
    for (const auto& c : chunks) REQUIRE_VOID_OK(store->Put(c.ref.object, c.stored));
    REQUIRE_VOID_OK(store->Sync());
  }
  before = PacksOnDisk(dir.path());
  size_t packs_before = 0;
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));  // adopts the last pack as its writer
    packs_before = store->PackCount();
    std::set<Digest> keep;
    for (size_t i = 0; i < chunks.size(); ++i)
      if (kept(i)) keep.insert(chunks[i].ref.object);
    auto r = REQUIRE_OK(store->Prune([&](const Digest& d) { return keep.count(d) > 0; }));
    CHECK(r.kept == keep.size());
    CHECK(r.dropped == chunks.size() - keep.size());
    CHECK(r.copied == 10);  // the kept quarter of the middle packs
    CHECK(r.packs_deleted >= 5);
    CHECK(r.freed_bytes > 0);
    CHECK(store->PackCount() < packs_before);
    for (size_t i = 0; i < chunks.size(); ++i) {
      INFO("chunk " << i);
      CHECK(store->Has(chunks[i].ref.object) == kept(i));
      if (kept(i)) CHECK(Readable(*store, chunks[i]));
    }
  }
  CHECK(PacksOnDisk(dir.path()) < before / 2);
  // The same after reopening: the copies are found, the dropped ones stay dropped.
  auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
  for (size_t i = 0; i < chunks.size(); ++i) {
    INFO("chunk " << i);
    CHECK(store->Has(chunks[i].ref.object) == kept(i));
    if (kept(i)) CHECK(Readable(*store, chunks[i]));
  }
  // Nothing more to give back: a second Prune with the same set deletes nothing.
  std::set<Digest> keep;
  for (size_t i = 0; i < chunks.size(); ++i)
    if (kept(i)) keep.insert(chunks[i].ref.object);
  auto again = REQUIRE_OK(store->Prune([&](const Digest& d) { return keep.count(d) > 0; }));
  CHECK(again.dropped == 0);
  CHECK(again.copied == 0);
}

TEST_CASE("pack store: a Prune killed at any stage loses no kept object, and the next Prune finishes the work", "[store][pack][prune]") {
  // "index-deleted" happens once per deleted pack: killed after the first
  // (a pack with nothing kept) and after the eighth, the last (a rewritten
  // pack, whose kept objects must already live in their copies).
  auto [stage, occurrence] = GENERATE(table<std::string, int>(
      {{"moved", 1}, {"synced", 1}, {"index-deleted", 1}, {"index-deleted", 8}}));
  INFO("killed after: " << stage << " #" << occurrence);
  test::TempDir dir("parc-pack");
  PackChunkStore::Options small;
  small.max_pack_bytes = 40 << 10;
  // As above: the first packs all dropped, the middle ones sparse (rewritten), the last ones kept.
  std::vector<Chunk> chunks;
  for (int i = 0; i < 110; ++i) chunks.push_back(MakeChunk(4000, 700 + static_cast<uint64_t>(i)));
  auto kept = [&](size_t i) { return (i >= 40 && i < 80 && i % 4 == 0) || (i >= 80 && i != 95); };
  std::set<Digest> keep;
  for (size_t i = 0; i < chunks.size(); ++i)
    if (kept(i)) keep.insert(chunks[i].ref.object);
  auto keep_fn = [&](const Digest& d) { return keep.count(d) > 0; };
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
    for (const auto& c : chunks) REQUIRE_VOID_OK(store->Put(c.ref.object, c.stored));
    REQUIRE_VOID_OK(store->Sync());
  }
  const uint64_t before = PacksOnDisk(dir.path());
  // The child is killed (SIGKILL: no destructor, no flush) when Prune reaches the stage.
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto store = PackChunkStore::Open(dir.path(), small);
    if (!store) ::_exit(2);
    int seen = 0;
    auto r = (*store)->Prune(keep_fn, [&](std::string_view s) {
      if (s == stage && ++seen == occurrence) ::raise(SIGKILL);
    });
    ::_exit(r ? 3 : 4);  // the stage was never reached
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  {
    auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
    for (size_t i = 0; i < chunks.size(); ++i) {
      INFO("chunk " << i);
      if (kept(i)) CHECK(Readable(*store, chunks[i]));
      else if (store->Has(chunks[i].ref.object)) CHECK(Readable(*store, chunks[i]));  // brought back: intact
    }
    auto r = REQUIRE_OK(store->Prune(keep_fn));
    CHECK(r.kept == keep.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      INFO("chunk " << i);
      CHECK(store->Has(chunks[i].ref.object) == kept(i));
      if (kept(i)) CHECK(Readable(*store, chunks[i]));
    }
  }
  CHECK(PacksOnDisk(dir.path()) < before / 2);  // the space is given back in the end
  auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
  for (size_t i = 0; i < chunks.size(); ++i) {
    INFO("chunk " << i);
    CHECK(store->Has(chunks[i].ref.object) == kept(i));
    if (kept(i)) CHECK(Readable(*store, chunks[i]));
  }
}

TEST_CASE("pack store: Prune leaves the packs instances write alone, and deletes a pack without an index", "[store][pack][prune]") {
  test::TempDir dir("parc-pack");
  Chunk a = MakeChunk(30000, 40), b = MakeChunk(30000, 41), c = MakeChunk(30000, 42);
  PackChunkStore::Options small;
  small.max_pack_bytes = 4096;  // one object per pack
  // Pack 1: its index is gone (a crash in the middle of deleting it), only wasted space.
  test::WriteFile(dir.path() / "packs/00000001.pack", std::string(5000, 'x'));
  auto other = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
  REQUIRE_VOID_OK(other->Put(a.ref.object, a.stored));  // pack 2, locked by `other`
  REQUIRE_VOID_OK(other->Sync());
  auto store = REQUIRE_OK(PackChunkStore::Open(dir.path(), small));
  REQUIRE_VOID_OK(store->Put(b.ref.object, b.stored));  // pack 3
  REQUIRE_VOID_OK(store->Put(c.ref.object, c.stored));  // pack 4
  auto r = REQUIRE_OK(store->Prune([&](const Digest& d) { return d == c.ref.object; }));
  CHECK(r.dropped == 2);
  // Pack 1 only: 2 is the other instance's, 3 and 4 this one's (never rewritten while it writes them).
  CHECK(r.packs_deleted == 1);
  CHECK_FALSE(fs::exists(dir.path() / "packs/00000001.pack"));
  CHECK(fs::exists(dir.path() / "packs/00000002.pack"));
  CHECK(Readable(*other, a));  // the other instance still has it
  CHECK_FALSE(store->Has(a.ref.object));
  CHECK_FALSE(store->Has(b.ref.object));
  CHECK(Readable(*store, c));
  other.reset();
  auto later = REQUIRE_OK(PackChunkStore::Open(dir.path()));
  CHECK_FALSE(later->Has(a.ref.object));  // its removal entry is remembered
  CHECK_FALSE(later->Has(b.ref.object));
  CHECK(Readable(*later, c));
}

TEST_CASE("pack store: as a deployment's cache, a second deployment of the image fetches nothing", "[store][pack][deploy]") {
  Env env;
  test::TempDir work("parc-pack");
  BuildRichTree(work.path() / "src");
  auto v1 = env.CaptureTreeSigned(work.path() / "src", "1");
  {
    auto cache = REQUIRE_OK(PackChunkStore::Open(work.path() / "cache"));
    TestFetcher fetcher(env.server());
    auto r = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), work.path() / "a", *cache, &fetcher, env.Options()));
    CHECK(r.fetched == r.chunks);
    CHECK(cache->ObjectCount() == r.chunks + v1.image().manifest.body_chunks.size());
    for (const auto& c : v1.image().UniqueChunks()) {
      auto got = cache->Get(c.object);
      INFO(c.object.Short() << " size " << c.stored_size);
      REQUIRE(got);
      CHECK(got->size() == c.stored_size);
      CHECK(Digest::Of(*got) == c.object);
    }
  }
  auto cache = REQUIRE_OK(PackChunkStore::Open(work.path() / "cache"));
  auto r = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), work.path() / "b", *cache, nullptr, env.Options()));
  CHECK(r.from_cache == r.chunks);
  CHECK(r.fetched == 0);
  CHECK(DiffSnapshots(TakeSnapshot(work.path() / "src"), TakeSnapshot(work.path() / "b")) == "");
}
