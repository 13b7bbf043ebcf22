// Chunk stores: the content store layout, verification on put and on
// decode, and the real server ContentStore holding and serving chunks
// unchanged (uploads verified by its own digest check, reads from any
// offset), as the agent will fetch them over AgentService.GetContent.
#include <catch2/catch.hpp>

#include "content_store.h"
#include "imaging_fixture.h"
#include "parc/common/files.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

// What the agent integration does over GetContent(digest, offset), here
// straight over the server's ContentStore::Read.
class ContentStoreFetcher : public ChunkFetcher {
 public:
  explicit ContentStoreFetcher(const server::ContentStore& cs) : cs_(cs) {}
  ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset, const std::function<ExpectedVoid(std::string_view)>& sink) override {
    ExpectedVoid inner;
    auto r = cs_.Read(ref.object.Hex(), offset, [&](uint64_t, std::string_view data, uint64_t) {
      inner = sink(data);
      return static_cast<bool>(inner);
    });
    if (!r) return r;
    return inner;
  }

 private:
  const server::ContentStore& cs_;
};

}  // namespace

TEST_CASE("chunk store: objects live at objects/ab/<sha256 of the stored bytes>", "[store]") {
  test::TempDir dir("parc-store");
  auto store = REQUIRE_OK(DirChunkStore::Open(dir.path()));
  ChunkRef ref;
  std::string plain = RandomData(100000, 1);
  std::string stored = REQUIRE_OK(EncodeChunk(plain, 3, ref));
  CHECK(ref.object == Digest::Of(stored));
  CHECK(ref.sha256 == Digest::Of(plain));
  CHECK(ref.size == plain.size());
  CHECK(ref.stored_size == stored.size());
  CHECK_FALSE(store->Has(ref.object));
  REQUIRE_VOID_OK(store->Put(ref.object, stored));
  CHECK(store->Has(ref.object));
  std::string hex = ref.object.Hex();
  CHECK(fs::exists(dir.path() / "objects" / hex.substr(0, 2) / hex));
  CHECK(ReadFile(dir.path() / "objects" / hex.substr(0, 2) / hex).value() == stored);
  CHECK(REQUIRE_OK(store->Get(ref.object)) == stored);
  CHECK(REQUIRE_OK(DecodeChunk(ref, stored)) == plain);
  REQUIRE_VOID_OK(store->Put(ref.object, stored));  // again: nothing happens
  REQUIRE_VOID_OK(store->Sync());
  // The stored form is a plain zstd frame: the zstd command reads it.
  auto out = test::Run({"/usr/bin/zstd", "-dc", store->ObjectPath(ref.object).string()});
  CHECK(out.exit_code == 0);
  CHECK(out.out == plain);

  SECTION("bytes that do not hash to the name are refused") {
    std::string other = stored;
    other[5] ^= 1;
    auto r = store->Put(Digest::Of("something else"), other);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
  }
  SECTION("decoding refuses altered, truncated or mislabelled chunks") {
    std::string bad = stored;
    bad[bad.size() / 2] ^= 1;
    CHECK(DecodeChunk(ref, bad).error().Is(Errc::kCrypto));
    CHECK(DecodeChunk(ref, stored.substr(0, stored.size() - 1)).error().Is(Errc::kCrypto));
    ChunkRef lie = ref;
    lie.sha256 = Digest::Of("not this");
    CHECK_THAT(DecodeChunk(lie, stored).error().message(), Catch::Contains("other bytes than its index says"));
    ChunkRef shorter = ref;
    shorter.size -= 1;
    CHECK_THAT(DecodeChunk(shorter, stored).error().message(), Catch::Contains("is not one zstd frame"));
  }
  SECTION("absent objects") {
    CHECK(store->Get(Digest::Of("absent")).error().Is(Errc::kNotFound));
    REQUIRE_VOID_OK(store->Remove(ref.object));
    CHECK_FALSE(store->Has(ref.object));
    REQUIRE_VOID_OK(store->Remove(ref.object));
  }
}

TEST_CASE("chunk store: the server's content store takes chunk uploads and serves a deploy", "[store][interop]") {
  Env env;
  test::TempDir tree("parc-tree");
  BuildRichTree(tree.path() / "root");
  auto img = env.CaptureTreeSigned(tree.path() / "root", "1");

  // Upload every object exactly as parcctl uploads content: digest, size, bytes.
  server::ContentStore cs(env.dir() / "server-content");
  REQUIRE_VOID_OK(cs.Init());
  auto objects = img.image().UniqueChunks();
  for (const auto& c : img.image().manifest.body_chunks) objects.push_back(c);
  for (const auto& c : objects) {
    std::string stored = REQUIRE_OK(env.server().Get(c.object));
    auto up = REQUIRE_OK(cs.BeginUpload(c.object.Hex(), stored.size(), 0));
    REQUIRE_VOID_OK(up.Append(stored.substr(0, stored.size() / 2)));
    REQUIRE_VOID_OK(up.Append(stored.substr(stored.size() / 2)));
    CHECK(REQUIRE_OK(up.Finish()) == c.stored_size);
  }
  // A wrong digest is what the content store itself refuses.
  {
    std::string stored = REQUIRE_OK(env.server().Get(objects[0].object));
    auto up = REQUIRE_OK(cs.BeginUpload(Digest::Of("x").Hex(), stored.size(), 0));
    REQUIRE_VOID_OK(up.Append(stored));
    CHECK_FALSE(up.Finish());
  }
  // Same layout: a DirChunkStore over the content store's directory reads them.
  auto view = REQUIRE_OK(DirChunkStore::Open(env.dir() / "server-content"));
  for (const auto& c : objects) CHECK(view->Has(c.object));

  ContentStoreFetcher fetcher(cs);
  auto report = REQUIRE_OK(DeployTree(img.json(), img.sig(), env.dir() / "target", env.cache(), &fetcher, env.Options()));
  CHECK(report.fetched == img.image().UniqueChunks().size());
  CHECK(DiffSnapshots(TakeSnapshot(tree.path() / "root"), TakeSnapshot(env.dir() / "target")) == "");
}
