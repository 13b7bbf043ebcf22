// Block deployment: identical images on a file and on a real block device
// (a loop device), writes limited to the regions that differ, moved content
// found in the target, read-back verification, refusals that leave the
// target untouched, and resumption.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <thread>

#include "imaging_fixture.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

// Something like a disk: random regions, repeated regions, zeros.
std::string DiskBytes(uint64_t seed) {
  std::string d;
  d += RandomData(3 << 20, seed);
  d += std::string(2 << 20, '\0');
  std::string block = RandomData(300000, seed + 1);
  for (int i = 0; i < 4; ++i) d += block;
  d += RandomData(1 << 20, seed + 2);
  return d;
}

class LoopDevice {
 public:
  explicit LoopDevice(const fs::path& backing) {
    auto r = test::Run({"/usr/sbin/losetup", "-f", "--show", backing.string()});
    if (r.exit_code != 0) FAIL("losetup failed (the test needs loop devices): " << r.err);
    path_ = r.out.substr(0, r.out.find('\n'));
  }
  ~LoopDevice() { test::Run({"/usr/sbin/losetup", "-d", path_}); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST_CASE("deploy block: capture then deploy gives an identical image file", "[deploy][block]") {
  Env env;
  test::TempDir work("parc-block");
  std::string disk = DiskBytes(1);
  test::WriteFile(work.path() / "disk.img", disk);
  auto v1 = env.CaptureBlockSigned(work.path() / "disk.img", "1");
  CHECK(v1.image().manifest.size == disk.size());
  CHECK(v1.capture.chunks_reused >= 3);  // the repeated region and the zeros
  TestFetcher fetcher(env.server());
  fs::path target = work.path() / "out.img";
  auto r = REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &fetcher, env.Options()));
  CHECK(test::ReadFileOrEmpty(target) == disk);
  CHECK(r.verified_bytes == disk.size());
  CHECK(r.fetched == v1.image().UniqueChunks().size());
  CHECK(REQUIRE_OK(VerifyBlock(v1.image(), target)).ok());

  SECTION("written and read back in many small windows, over a target holding other bytes") {
    test::WriteFile(target, RandomData(disk.size() + 12345, 99));  // zeros must be written, the tail cut
    auto o = env.Options();
    o.readback_window = 300000;  // about 30 windows, most shorter than a chunk run
    auto again = REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), nullptr, o));
    CHECK(test::ReadFileOrEmpty(target) == disk);
    CHECK(again.verified_bytes == disk.size());
    CHECK(again.written_bytes == disk.size());  // nothing was right: every byte, zeros included
  }
  SECTION("verify names the chunks that differ") {
    std::string changed = disk;
    changed[4000000] ^= 1;
    test::WriteFile(target, changed);
    auto v = REQUIRE_OK(VerifyBlock(v1.image(), target));
    REQUIRE(v.differences.size() == 1);
    CHECK(v.differences[0].what == "content");
    CHECK_THAT(v.differences[0].detail, Catch::StartsWith("bytes "));
  }
}

TEST_CASE("deploy block: only the regions that differ are written, and moved content is reused", "[deploy][block][delta]") {
  Env env;
  test::TempDir work("parc-block");
  std::string disk = DiskBytes(2);
  test::WriteFile(work.path() / "disk.img", disk);
  auto v1 = env.CaptureBlockSigned(work.path() / "disk.img", "1");
  fs::path target = work.path() / "target.img";
  TestFetcher first(env.server());
  REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &first, env.Options()));

  SECTION("three small edits in place") {
    std::string v2d = disk;
    for (size_t at : {size_t(100000), size_t(4u << 20), disk.size() - 5000}) v2d[at] ^= 0x42;
    test::WriteFile(work.path() / "disk.img", v2d);
    auto v2 = env.CaptureBlockSigned(work.path() / "disk.img", "2", &v1.image());
    ImageDiff diff = DiffImages(v1.image(), v2.image());
    CHECK(diff.changed_blocks == 3);
    auto empty = REQUIRE_OK(DirChunkStore::Open(work.path() / "empty-cache"));  // seeding alone
    TestFetcher fetcher(env.server());
    auto r = REQUIRE_OK(DeployBlock(v2.json(), v2.sig(), target, *empty, &fetcher, env.Options()));
    CHECK(r.fetched == 3);
    CHECK(r.written_bytes == diff.changed_bytes);
    CHECK(r.unchanged_bytes == v2d.size() - diff.changed_bytes);
    CHECK(test::ReadFileOrEmpty(target) == v2d);
  }
  SECTION("one byte inserted at the start shifts everything") {
    std::string v2d = "X" + disk;
    test::WriteFile(work.path() / "disk.img", v2d);
    auto v2 = env.CaptureBlockSigned(work.path() / "disk.img", "2", &v1.image());
    auto empty = REQUIRE_OK(DirChunkStore::Open(work.path() / "empty-cache"));
    TestFetcher fetcher(env.server());
    auto r = REQUIRE_OK(DeployBlock(v2.json(), v2.sig(), target, *empty, &fetcher, env.Options()));
    CHECK(r.seeded + r.fetched == r.chunks);
    CHECK(r.fetched <= 2);  // the first chunk, perhaps its neighbour
    CHECK(test::ReadFileOrEmpty(target) == v2d);
  }
  SECTION("a shorter image truncates a file target") {
    std::string v2d = disk.substr(0, 5 << 20);
    test::WriteFile(work.path() / "disk.img", v2d);
    auto v2 = env.CaptureBlockSigned(work.path() / "disk.img", "2", &v1.image());
    TestFetcher fetcher(env.server());
    REQUIRE_OK(DeployBlock(v2.json(), v2.sig(), target, env.cache(), &fetcher, env.Options()));
    CHECK(test::ReadFileOrEmpty(target) == v2d);
  }
}

TEST_CASE("deploy block: a real block device, sized with BLKGETSIZE64", "[deploy][block][device]") {
  Env env;
  test::TempDir work("parc-block");
  std::string disk = DiskBytes(3);
  disk.resize(8 << 20);  // loop devices come in 512-byte sectors
  test::WriteFile(work.path() / "disk.img", disk);
  auto img = env.CaptureBlockSigned(work.path() / "disk.img", "1");
  // Capture from the device gives the same image.
  {
    LoopDevice src(work.path() / "disk.img");
    CaptureOptions o;
    o.name = "test-disk";
    o.version = "1";
    auto again = REQUIRE_OK(CaptureBlock(src.path(), env.server(), o));
    CHECK(again.image.blocks == img.image().blocks);
  }
  test::WriteFile(work.path() / "device.img", RandomData(10 << 20, 99));
  LoopDevice dev(work.path() / "device.img");
  TestFetcher fetcher(env.server());
  auto r = REQUIRE_OK(DeployBlock(img.json(), img.sig(), dev.path(), env.cache(), &fetcher, env.Options()));
  CHECK(r.verified_bytes == disk.size());
  CHECK(REQUIRE_OK(VerifyBlock(img.image(), dev.path())).ok());
  std::string back = test::ReadFileOrEmpty(work.path() / "device.img");
  CHECK(back.substr(0, disk.size()) == disk);
  CHECK(back.size() == 10u << 20);  // the rest of the device is left alone

  LoopDevice small([&] {
    test::WriteFile(work.path() / "small.img", std::string(1 << 20, 'z'));
    return work.path() / "small.img";
  }());
  auto too_small = DeployBlock(img.json(), img.sig(), small.path(), env.cache(), &fetcher, env.Options());
  REQUIRE_FALSE(too_small);
  CHECK(too_small.error().Is(Errc::kResourceExhausted));
}

TEST_CASE("deploy block: a tampered chunk is refused before anything is written, an interrupted deploy resumes", "[deploy][block][tamper][resume]") {
  Env env;
  test::TempDir work("parc-block");
  std::string disk = DiskBytes(4);
  test::WriteFile(work.path() / "disk.img", disk);
  auto v1 = env.CaptureBlockSigned(work.path() / "disk.img", "1");
  fs::path target = work.path() / "target.img";
  std::string old = RandomData(disk.size(), 77);
  test::WriteFile(target, old);

  TestFetcher evil(env.server());
  evil.tamper = true;
  auto bad = DeployBlock(v1.json(), v1.sig(), target, env.cache(), &evil, env.Options());
  REQUIRE_FALSE(bad);
  CHECK(bad.error().Is(Errc::kCrypto));
  CHECK(test::ReadFileOrEmpty(target) == old);

  TestFetcher failing(env.server());
  failing.fail_after = 40;
  DeployOptions o = env.Options();
  o.fetch_parallelism = 1;
  auto cut = DeployBlock(v1.json(), v1.sig(), target, env.cache(), &failing, o);
  REQUIRE_FALSE(cut);
  CHECK(cut.error().Is(Errc::kUnavailable));
  CHECK(test::ReadFileOrEmpty(target) == old);

  TestFetcher working(env.server());
  auto r = REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &working, env.Options()));
  CHECK(r.from_cache == 40 - v1.image().manifest.body_chunks.size());
  CHECK(r.fetched == r.chunks - r.from_cache);
  CHECK(test::ReadFileOrEmpty(target) == disk);
}

TEST_CASE("deploy block: chunks fetched in batches, the ones a batch left out alone, a tampered batch is refused", "[deploy][block][batch]") {
  Env env;
  test::TempDir work("parc-block");
  std::string disk = DiskBytes(5);
  test::WriteFile(work.path() / "disk.img", disk);
  auto v1 = env.CaptureBlockSigned(work.path() / "disk.img", "1");
  fs::path target = work.path() / "target.img";

  BatchFetcher evil(env.server());
  evil.tamper_batch = true;  // content chunks only: the index arrives intact
  for (const auto& c : v1.image().manifest.body_chunks) evil.spare.insert(c.object);
  auto bad = DeployBlock(v1.json(), v1.sig(), target, env.cache(), &evil, env.Options());
  REQUIRE_FALSE(bad);
  CHECK(bad.error().Is(Errc::kCrypto));
  CHECK_THAT(bad.error().message(), !Catch::Contains("image body"));
  CHECK_FALSE(fs::exists(target));

  BatchFetcher fetcher(env.server());
  auto r = REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &fetcher, env.Options()));
  CHECK(test::ReadFileOrEmpty(target) == disk);
  CHECK(fetcher.batches >= 1);
  CHECK(fetcher.batched >= 1);
  CHECK(fetcher.chunks >= 1);  // the others, one by one
  CHECK(r.fetched == v1.image().UniqueChunks().size());
  CHECK(r.index_fetched == 0);  // the refused run had already cached the (intact) index
  CHECK(r.fetched + r.index_fetched == fetcher.batched + fetcher.chunks);
}

namespace {

// Holds the last chunk of a deployment until `ready` holds (or 20 s pass):
// whether the rest was already being written is then visible on disk.
class HoldLastFetcher : public TestFetcher {
 public:
  HoldLastFetcher(const ChunkStore& source, uint64_t total, std::function<bool()> ready)
      : TestFetcher(source), total_(total), ready_(std::move(ready)) {}
  ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset, const std::function<ExpectedVoid(std::string_view)>& sink) override {
    if (started_.fetch_add(1) + 1 == total_) {
      for (int i = 0; i < 2000 && !ready_(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      held_ready = ready_();
    }
    return TestFetcher::Fetch(ref, offset, sink);
  }
  std::atomic<bool> held_ready{false};

 private:
  uint64_t total_;
  std::function<bool()> ready_;
  std::atomic<uint64_t> started_{0};
};

uint64_t AllocatedBytes(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace

TEST_CASE("deploy block: a new file is written while the chunks arrive, under a temporary name until it is complete", "[deploy][block][stream]") {
  Env env;
  test::TempDir work("parc-block");
  std::string disk = DiskBytes(9);
  test::WriteFile(work.path() / "disk.img", disk);
  auto v1 = env.CaptureBlockSigned(work.path() / "disk.img", "1");
  fs::path target = work.path() / "new.img", temp = work.path() / ".new.img.parc-new";
  DeployOptions o = env.Options();
  o.fetch_parallelism = 1;

  SECTION("written while fetched: the last chunk is held until earlier ones are on disk") {
    uint64_t content = v1.image().UniqueChunks().size();
    HoldLastFetcher fetcher(env.server(), content, [&] { return AllocatedBytes(temp) >= (1u << 20); });
    auto r = REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &fetcher, o));
    CHECK(fetcher.held_ready);  // fails when nothing is written before every chunk is fetched
    CHECK(r.fetched == content);
    CHECK(test::ReadFileOrEmpty(target) == disk);
    CHECK_FALSE(fs::exists(temp));
  }
  SECTION("the server gone mid-fetch: no file and no temporary one; the next run fetches only the rest") {
    TestFetcher failing(env.server());
    failing.fail_after = 30;
    auto cut = DeployBlock(v1.json(), v1.sig(), target, env.cache(), &failing, o);
    REQUIRE_FALSE(cut);
    CHECK(cut.error().Is(Errc::kUnavailable));
    CHECK_FALSE(fs::exists(target));
    CHECK_FALSE(fs::exists(temp));
    TestFetcher working(env.server());
    auto r = REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &working, o));
    CHECK(r.from_cache >= 1);
    CHECK(r.fetched + r.from_cache == r.chunks);
    CHECK(test::ReadFileOrEmpty(target) == disk);
  }
  SECTION("a tampered chunk: refused, no file and no temporary one") {
    TestFetcher evil(env.server());
    evil.tamper = true;
    auto bad = DeployBlock(v1.json(), v1.sig(), target, env.cache(), &evil, o);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().Is(Errc::kCrypto));
    CHECK_FALSE(fs::exists(target));
    CHECK_FALSE(fs::exists(temp));
  }
  SECTION("a temporary file left by a crash is replaced") {
    test::WriteFile(temp, "left over");
    TestFetcher fetcher(env.server());
    REQUIRE_OK(DeployBlock(v1.json(), v1.sig(), target, env.cache(), &fetcher, o));
    CHECK(test::ReadFileOrEmpty(target) == disk);
    CHECK_FALSE(fs::exists(temp));
  }
}
