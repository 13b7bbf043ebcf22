// Tree deployment: identical trees (content and every kind of metadata),
// deltas that move only changed chunks, seeding from the target, the
// atomic swap with its rollback point, refusals that leave the target
// untouched, and resumption after a failure or a kill at any step.
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <sstream>
#include <thread>

#include "imaging_fixture.h"
#include "parc/common/files.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

// v2 of the rich tree: 100 bytes rewritten inside a multi-chunk file, one
// small file added, one removed, one mode changed.
void ChangeALittle(const fs::path& root) {
  std::string big = test::ReadFileOrEmpty(root / "data/big");
  for (size_t i = 0; i < 100; ++i) big[800000 + i] ^= 0x5a;
  test::WriteFile(root / "data/big", big);
  test::WriteFile(root / "data/added", "a new small file\n");
  fs::remove(root / "data/small");
  fs::permissions(root / "bin/tool", fs::perms(0700));
}

size_t ObjectCount(const fs::path& store) {
  size_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(store / "objects"))
    if (e.is_regular_file()) ++n;
  return n;
}

void Corrupt(const fs::path& object) {
  std::string bytes = test::ReadFileOrEmpty(object);
  REQUIRE(!bytes.empty());
  bytes[bytes.size() / 2] ^= 0x01;
  test::WriteFile(object, bytes);
}

struct Fixture {
  Env env;
  test::TempDir work{"parc-tree"};
  fs::path src = work.path() / "src";
  fs::path target = env.dir() / "roots" / "ws1";
  Fixture() {
    BuildRichTree(src);
    fs::create_directories(target.parent_path());
  }
  bool Leftovers() const {
    for (const char* s : {".ws1.parc-new", ".ws1.parc-deploy.json", ".ws1.parc-trash"})
      if (fs::exists(target.parent_path() / s)) return true;
    return false;
  }
};

// Deploys `image` in a child process killed (SIGKILL) once `phase` has done `after_items`.
void DeployKilledAt(Fixture& f, const Env::Captured& image, const std::string& phase, uint64_t after_items,
                    DeployOptions o) {
  pid_t pid = ::fork();
  if (pid == 0) {
    o.threads = 1;
    o.progress = [&](const Progress& p) {
      if (p.phase == phase && p.done_items >= after_items) ::kill(::getpid(), SIGKILL);
      return true;
    };
    TestFetcher child_fetcher(f.env.server());
    (void)DeployTree(image.json(), image.sig(), f.target, f.env.cache(), &child_fetcher, o);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
}

}  // namespace

TEST_CASE("deploy tree: capture then deploy gives an identical tree, metadata included", "[deploy][tree]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  CHECK_THAT(v1.capture.notes.size() == 0 ? std::string() : v1.capture.notes[0], Catch::Equals(""));
  TestFetcher fetcher(f.env.server());
  std::vector<std::string> phases;
  DeployOptions o = f.env.Options();
  o.progress = [&](const Progress& p) {
    if (phases.empty() || phases.back() != p.phase) phases.emplace_back(p.phase);
    return true;
  };
  auto r = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, o));
  CHECK(r.name == "test-tree");
  CHECK(r.version == "1");
  CHECK(r.chunks == v1.image().UniqueChunks().size());
  CHECK(r.fetched == r.chunks);
  CHECK(r.index_fetched == v1.image().manifest.body_chunks.size());
  CHECK(r.previous.empty());
  CHECK(phases == std::vector<std::string>{"fetch", "write", "sync", "swap"});

  INFO(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)));
  CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  // The snapshot really sees what matters.
  auto snap = TakeSnapshot(f.target);
  CHECK_THAT(snap.at("/bin/suid"), Catch::StartsWith("mode=4755"));
  CHECK_THAT(snap.at("/data/acldir"), Catch::Contains("system.posix_acl_default="));
  CHECK_THAT(snap.at("/bin/ping"), Catch::Contains("security.capability="));
  CHECK_THAT(snap.at("/dev/null"), Catch::Contains("char 1,3"));
  CHECK_THAT(snap.at("/srv/other/hard3"), Catch::Contains("inode-of=/data/hard1"));
  CHECK_THAT(snap.at("/data/caf\xe9"), Catch::Contains("file size=24"));
  CHECK_THAT(snap.at("/"), Catch::Contains("mtime="));
  // Sparse source, sparse result.
  struct stat st {};
  REQUIRE(::stat((f.target / "data/sparse").c_str(), &st) == 0);
  CHECK(st.st_blocks * 512 < 1 << 20);

  auto verify = REQUIRE_OK(VerifyTree(v1.image(), f.target));
  CHECK(verify.ok());
  CHECK(verify.checked_entries == v1.image().entries.size());
  auto state = REQUIRE_OK(InspectTree(f.target));
  CHECK(state.state == TreeDeployment::State::kSwapped);
  REQUIRE_VOID_OK(CommitTree(f.target));
  CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kNone);
  CHECK_FALSE(f.Leftovers());

  // verify names what differs
  fs::permissions(f.target / "data/big", fs::perms(0600));
  std::string b = test::ReadFileOrEmpty(f.target / "usr/lib/libx.so");
  b[100] ^= 1;
  test::WriteFile(f.target / "usr/lib/libx.so", b);
  test::WriteFile(f.target / "data/stray", "not in the image");
  fs::remove(f.target / "data/empty");
  auto bad = REQUIRE_OK(VerifyTree(v1.image(), f.target));
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& d : bad.differences)
    if (d.what != "mtime") got.emplace_back(d.path, d.what);
  CHECK(got == std::vector<std::pair<std::string, std::string>>{
                   {"/data/big", "mode"}, {"/data/empty", "missing"}, {"/data/stray", "extra"}, {"/usr/lib/libx.so", "content"}});
}

TEST_CASE("capture tree: files up to inline_max live in the index, larger ones in chunks, deployed and verified alike", "[deploy][tree][inline]") {
  Fixture f;
  fs::path src = f.work.path() / "sizes";
  test::WriteFile(src / "at-limit", RandomData(4096, 1));
  test::WriteFile(src / "over-limit", RandomData(4097, 2));
  test::WriteFile(src / "text", "key = value\n");
  test::WriteFile(src / "empty", "");
  auto entry = [](const Image& img, const std::string& path) {
    for (const auto& e : img.entries)
      if (e.path == path) return e;
    FAIL("no entry " << path);
    return Entry{};
  };
  auto v1 = f.env.CaptureTreeSigned(src, "1");
  CHECK(entry(v1.image(), "/at-limit").data == RandomData(4096, 1));
  CHECK(entry(v1.image(), "/at-limit").chunks.empty());
  CHECK(entry(v1.image(), "/text").data == "key = value\n");
  CHECK(entry(v1.image(), "/over-limit").data.empty());
  CHECK(entry(v1.image(), "/over-limit").chunks.size() == 1);
  CHECK((entry(v1.image(), "/empty").data.empty() && entry(v1.image(), "/empty").chunks.empty()));
  CHECK(v1.image().UniqueChunks().size() == 1);

  TestFetcher fetcher(f.env.server());
  auto r = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  CHECK(r.fetched == 1);
  CHECK(DiffSnapshots(TakeSnapshot(src), TakeSnapshot(f.target)) == "");
  // An inline file changed in the target is a content difference.
  test::WriteFile(f.target / "text", "key = other\n");
  auto bad = REQUIRE_OK(VerifyTree(v1.image(), f.target));
  std::set<std::string> found;
  for (const auto& d : bad.differences) found.insert(d.path + ":" + d.what);
  CHECK(found == std::set<std::string>{"/text:content", "/text:mtime"});
  REQUIRE_VOID_OK(CommitTree(f.target));

  // A diff sees a changed inline file, and its bytes travel in the body.
  test::WriteFile(src / "text", "key = third\n");
  auto v2 = f.env.CaptureTreeSigned(src, "2", &v1.image());
  ImageDiff diff = DiffImages(v1.image(), v2.image());
  REQUIRE(diff.changed.size() == 1);
  CHECK(diff.changed[0].path == "/text");
  CHECK_THAT(diff.changed[0].what, Catch::Contains("content"));
  CHECK(diff.chunks_to_transfer == v2.image().manifest.body_chunks.size());

  // inline_max 0: every non-empty file in chunks.
  CaptureOptions o;
  o.name = "test-tree";
  o.version = "3";
  o.inline_max = 0;
  auto chunked = REQUIRE_OK(CaptureTree(src, f.env.server(), o));
  CHECK(chunked.image.UniqueChunks().size() == 3);
  CHECK(entry(chunked.image, "/text").data.empty());
  o.inline_max = 70000;
  CHECK_THAT(CaptureTree(src, f.env.server(), o).error().message(), Catch::Contains("at most 65536 bytes"));
}

TEST_CASE("deploy tree: the previous tree is the rollback point until commit", "[deploy][tree]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  auto snap1 = TakeSnapshot(f.src);
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  REQUIRE_VOID_OK(CommitTree(f.target));
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());
  auto snap2 = TakeSnapshot(f.src);

  auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  CHECK(r.previous == f.target.parent_path() / ".ws1.parc-previous");
  CHECK(DiffSnapshots(snap2, TakeSnapshot(f.target)) == "");
  CHECK(DiffSnapshots(snap1, TakeSnapshot(r.previous)) == "");

  SECTION("another image waits for commit or rollback; the same one is already there") {
    auto again = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
    CHECK(again.already_deployed);
    auto other = DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options());
    REQUIRE_FALSE(other);
    CHECK(other.error().Is(Errc::kFailedPrecondition));
    CHECK_THAT(other.error().message(), Catch::Contains("neither committed nor rolled back"));
  }
  SECTION("rollback swaps the previous tree back") {
    REQUIRE_VOID_OK(RollbackTree(f.target));
    CHECK(DiffSnapshots(snap1, TakeSnapshot(f.target)) == "");
    CHECK_FALSE(fs::exists(r.previous));
    CHECK_FALSE(f.Leftovers());
    CHECK(RollbackTree(f.target).error().Is(Errc::kFailedPrecondition));
  }
  SECTION("commit drops it") {
    REQUIRE_VOID_OK(CommitTree(f.target));
    CHECK_FALSE(fs::exists(r.previous));
    CHECK(DiffSnapshots(snap2, TakeSnapshot(f.target)) == "");
    CHECK_FALSE(f.Leftovers());
    REQUIRE_VOID_OK(CommitTree(f.target));  // nothing left to commit: fine
  }
  SECTION("rolling back a first deployment removes the target") {
    fs::path fresh = f.target.parent_path() / "ws2";
    REQUIRE_OK(DeployTree(v2.json(), v2.sig(), fresh, f.env.cache(), &fetcher, f.env.Options()));
    REQUIRE_VOID_OK(RollbackTree(fresh));
    CHECK_FALSE(fs::exists(fresh));
  }
}

TEST_CASE("deploy tree: with commit_previous, the deployment in place is committed only when the next one is swapped in", "[deploy][tree][keep]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  auto snap1 = TakeSnapshot(f.src);
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  REQUIRE_VOID_OK(CommitTree(f.target));
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());
  auto snap2 = TakeSnapshot(f.src);
  DeployOptions keep = f.env.Options();
  keep.commit_previous = true;
  // v2 in place, not committed: v1 is its rollback point.
  REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, keep));
  test::WriteFile(f.src / "data/v3", "third version\n");
  auto v3 = f.env.CaptureTreeSigned(f.src, "3", &v2.image());
  auto snap3 = TakeSnapshot(f.src);
  auto in_place = [&](const std::string& version, const Snapshot& tree, const Snapshot& previous) {
    auto d = REQUIRE_OK(InspectTree(f.target));
    CHECK(d.state == TreeDeployment::State::kSwapped);
    CHECK(d.version == version);
    CHECK(DiffSnapshots(tree, TakeSnapshot(f.target)) == "");
    REQUIRE(!d.previous.empty());
    CHECK(DiffSnapshots(previous, TakeSnapshot(d.previous)) == "");
  };

  SECTION("swapped in: v2 becomes the rollback point, v1 is gone") {
    auto r = REQUIRE_OK(DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, keep));
    CHECK_FALSE(r.already_deployed);
    in_place("3", snap3, snap2);
    CHECK_FALSE(fs::exists(f.target.parent_path() / ".ws1.parc-trash"));  // v1 is gone for good
    REQUIRE_VOID_OK(RollbackTree(f.target));
    CHECK(DiffSnapshots(snap2, TakeSnapshot(f.target)) == "");
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kNone);
  }
  SECTION("a deployment that fails leaves v2 in place with v1 as its rollback point") {
    DeployOptions cancel = keep;
    cancel.progress = [](const Progress& p) { return p.phase != "write"; };
    auto r = DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, cancel);
    REQUIRE_FALSE(r);
    in_place("2", snap2, snap1);
    REQUIRE_VOID_OK(RollbackTree(f.target));
    CHECK(DiffSnapshots(snap1, TakeSnapshot(f.target)) == "");
    CHECK_FALSE(f.Leftovers());
  }
  SECTION("killed mid-write: rolling back discards it and v2 is in place again; deploying again finishes it") {
    DeployKilledAt(f, v3, "write", 5, keep);
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kWriting);
    CHECK(DiffSnapshots(snap2, TakeSnapshot(f.target)) == "");
    SECTION("rolled back") {
      REQUIRE_VOID_OK(RollbackTree(f.target));
      in_place("2", snap2, snap1);
    }
    SECTION("deployed again") {
      REQUIRE_OK(DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, keep));
      in_place("3", snap3, snap2);
    }
  }
  SECTION("killed before the swap: deploying again swaps it in, v2 the rollback point") {
    DeployKilledAt(f, v3, "swap", 0, keep);
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kStaged);
    CHECK(DiffSnapshots(snap2, TakeSnapshot(f.target)) == "");
    auto r = REQUIRE_OK(DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), nullptr, keep));
    CHECK(r.written_bytes == 0);
    in_place("3", snap3, snap2);
    CHECK_FALSE(fs::exists(f.target.parent_path() / ".ws1.parc-trash"));
  }
  SECTION("killed once v1 was moved aside for the swap: v2 is committed, rolling back v3 leaves it in place") {
    DeployKilledAt(f, v3, "swap", 0, keep);
    // What the swap does first, as a crash right after it leaves it.
    fs::rename(f.target.parent_path() / ".ws1.parc-previous", f.target.parent_path() / ".ws1.parc-trash");
    REQUIRE_VOID_OK(RollbackTree(f.target));
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kNone);
    CHECK(DiffSnapshots(snap2, TakeSnapshot(f.target)) == "");
    REQUIRE_OK(DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, keep));
    in_place("3", snap3, snap2);
    CHECK_FALSE(fs::exists(f.target.parent_path() / ".ws1.parc-trash"));
  }
  SECTION("a capture of the directory holding the target leaves the rollback point and the journal out") {
    auto c = f.env.CaptureTreeSigned(f.target.parent_path(), "parent");
    std::set<std::string> paths;
    for (const auto& e : c.image().entries) paths.insert(e.path);
    CHECK(paths.count("/ws1/data/big") == 1);
    CHECK(paths.count("/.ws1.parc-previous") == 0);
    CHECK(paths.count("/.ws1.parc-deploy.json") == 0);
    std::string notes;
    for (const auto& n : c.capture.notes) notes += n + "\n";
    CHECK_THAT(notes, Catch::Contains("/.ws1.parc-previous: a Parc tree deployment") &&
                          Catch::Contains("/.ws1.parc-deploy.json: a Parc tree deployment"));
  }
  SECTION("without commit_previous it is refused and nothing changes") {
    auto r = DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains("neither committed nor rolled back"));
    in_place("2", snap2, snap1);
  }
}

TEST_CASE("deploy tree: a small change transfers only the changed chunks", "[deploy][tree][delta]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher first(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &first, f.env.Options()));
  REQUIRE_VOID_OK(CommitTree(f.target));
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());
  // Only the changed chunk(s) of data/big were compressed again (the added file is inline).
  CHECK(v2.capture.chunks_compressed <= 2 + v2.image().manifest.body_chunks.size());

  ImageDiff diff = DiffImages(v1.image(), v2.image());
  CHECK(diff.added == std::vector<std::string>{"/data/added"});
  CHECK(diff.removed == std::vector<std::string>{"/data/small"});
  std::vector<std::string> changed;
  for (const auto& c : diff.changed) changed.push_back(c.path + ":" + c.what);
  CHECK(std::find(changed.begin(), changed.end(), "/data/big:content,mtime") != changed.end());
  CHECK(std::find(changed.begin(), changed.end(), "/bin/tool:mode") != changed.end());
  // One 100-byte edit touches one chunk (two if it straddles a boundary), the
  // body (a few KiB here) one; the new file is small, so it travels inside
  // the body (CaptureOptions::inline_max) instead of in a chunk of its own.
  for (const auto& e : v2.image().entries)
    if (e.path == "/data/added") CHECK((e.chunks.empty() && e.data == "a new small file\n"));
  CHECK(diff.chunks_to_transfer >= 2);
  CHECK(diff.chunks_to_transfer <= 3);

  SECTION("from the agent's cache") {
    TestFetcher fetcher(f.env.server());
    auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
    CHECK(r.fetched + r.index_fetched == diff.chunks_to_transfer);
    CHECK(fetcher.chunks == diff.chunks_to_transfer);
    CHECK(r.fetched_bytes == diff.bytes_to_transfer);
    CHECK(r.fetched_bytes * 50 < diff.bytes_total);
    CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  }
  SECTION("with an empty cache, seeded from the target's current files") {
    auto empty = REQUIRE_OK(DirChunkStore::Open(f.env.dir() / "empty-cache"));
    TestFetcher fetcher(f.env.server());
    auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, *empty, &fetcher, f.env.Options()));
    CHECK(r.from_cache == 0);
    CHECK(r.seeded == r.chunks - r.fetched);
    CHECK(r.fetched + r.index_fetched == diff.chunks_to_transfer);
    CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  }
  SECTION("seeding never follows a symlink out of the target") {
    // data/big replaced by a symlink to an outside copy of its old content:
    // reading through it would seed; the deploy must fetch instead.
    fs::path outside = f.work.path() / "outside-big";
    fs::copy_file(f.target / "data/big", outside);
    auto empty = REQUIRE_OK(DirChunkStore::Open(f.env.dir() / "empty-cache"));
    fs::remove(f.target / "data/big");
    fs::create_symlink(outside, f.target / "data/big");
    TestFetcher fetcher(f.env.server());
    auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, *empty, &fetcher, f.env.Options()));
    size_t big_chunks = 0;
    for (const auto& e : v2.image().entries)
      if (e.path == "/data/big") big_chunks = e.chunks.size();
    CHECK(r.fetched >= big_chunks);
    CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  }
}

TEST_CASE("deploy tree: a tampered chunk is refused and the target left untouched", "[deploy][tree][tamper]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  REQUIRE_VOID_OK(CommitTree(f.target));
  auto before = TakeSnapshot(f.target);
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());
  ImageDiff diff = DiffImages(v1.image(), v2.image());
  REQUIRE(diff.chunks_to_transfer > 0);

  SECTION("on the server") {
    // The new chunk of data/big, altered where the publisher stored it.
    const Entry* big = nullptr;
    for (const auto& e : v2.image().entries)
      if (e.path == "/data/big") big = &e;
    REQUIRE(big);
    const ChunkRef* changed = nullptr;
    for (const auto& c : big->chunks)
      if (!f.env.cache().Has(c.object)) changed = &c;
    REQUIRE(changed);
    Corrupt(f.env.server().ObjectPath(changed->object));
    auto r = DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
    CHECK_THAT(r.error().message(), Catch::Contains("does not match its digest"));
    CHECK_FALSE(f.env.cache().Has(changed->object));
  }
  SECTION("in transit") {
    TestFetcher evil(f.env.server());
    evil.tamper = true;
    auto r = DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &evil, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
  }
  CHECK(DiffSnapshots(before, TakeSnapshot(f.target)) == "");
  CHECK_FALSE(f.Leftovers());
  CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kNone);
}

TEST_CASE("deploy tree: a corrupt chunk in the local cache is fetched again", "[deploy][tree][tamper]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.env.dir() / "roots/a", f.env.cache(), &fetcher, f.env.Options()));
  auto chunk = v1.image().UniqueChunks()[3];
  Corrupt(f.env.cache().ObjectPath(chunk.object));
  TestFetcher again(f.env.server());
  auto r = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &again, f.env.Options()));
  CHECK(again.chunks == 1);
  CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  CHECK(REQUIRE_OK(f.env.cache().Get(chunk.object)) == REQUIRE_OK(f.env.server().Get(chunk.object)));
}

TEST_CASE("deploy tree: a tampered or untrusted index is refused and the target left untouched", "[deploy][tree][tamper]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  REQUIRE_VOID_OK(CommitTree(f.target));
  auto before = TakeSnapshot(f.target);
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());
  auto cache = REQUIRE_OK(DirChunkStore::Open(f.env.dir() / "cache2"));

  SECTION("a changed manifest byte") {
    std::string json = v2.json();
    json.replace(json.find("\"version\":\"2\""), 13, "\"version\":\"3\"");
    auto r = DeployTree(json, v2.sig(), f.target, *cache, &fetcher, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
    CHECK_THAT(r.error().message(), Catch::Contains("signature does not match"));
    // A change that breaks the manifest's own consistency is caught even earlier.
    std::string sized = v2.json();
    size_t at = sized.find("\"size\":");
    sized[at + 7] = sized[at + 7] == '9' ? '8' : '9';
    auto p = DeployTree(sized, v2.sig(), f.target, *cache, &fetcher, f.env.Options());
    REQUIRE_FALSE(p);
    CHECK(p.error().Is(Errc::kParse));
  }
  SECTION("a changed body") {
    Corrupt(f.env.server().ObjectPath(v2.image().manifest.body_chunks[0].object));
    auto r = DeployTree(v2.json(), v2.sig(), f.target, *cache, &fetcher, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
    CHECK_THAT(r.error().message(), Catch::Contains("image body"));
  }
  SECTION("a key this machine does not trust") {
    DeployOptions o = f.env.Options();
    o.trusted = {REQUIRE_OK(pkg::GenerateKey("stranger")).public_key};
    auto r = DeployTree(v2.json(), v2.sig(), f.target, *cache, &fetcher, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kUnauthenticated));
  }
  SECTION("an expired signature") {
    DeployOptions o = f.env.Options();
    o.now = v2.signed_manifest.manifest.expires_at + 1;
    auto r = DeployTree(v2.json(), v2.sig(), f.target, *cache, &fetcher, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kExpired));
  }
  SECTION("a block image offered as a tree") {
    test::WriteFile(f.work.path() / "disk.img", RandomData(100000, 9));
    auto disk = f.env.CaptureBlockSigned(f.work.path() / "disk.img", "1");
    auto r = DeployTree(disk.json(), disk.sig(), f.target, *cache, &fetcher, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains("is a block image, not a tree image"));
  }
  CHECK(DiffSnapshots(before, TakeSnapshot(f.target)) == "");
  CHECK_FALSE(f.Leftovers());
}

TEST_CASE("deploy tree: hostile entries in a signed index are refused before anything is written", "[deploy][tree][hostile]") {
  Fixture f;
  auto publish = [&](std::vector<Entry> entries) {
    Image img;
    img.manifest.kind = ImageKind::kTree;
    img.manifest.name = "evil";
    img.manifest.version = "1";
    img.entries = std::move(entries);
    for (const auto& e : img.entries) img.manifest.size += e.size;
    img.manifest.entries = img.entries.size();
    auto unique = img.UniqueChunks();
    img.manifest.chunks = unique.size();
    for (const auto& c : unique) img.manifest.stored_size += c.stored_size;
    std::string body = SerializeBody(img);
    ChunkRef ref;
    std::string stored = REQUIRE_OK(EncodeChunk(body, 3, ref));
    REQUIRE_VOID_OK(f.env.server().Put(ref.object, stored));
    img.manifest.body_size = body.size();
    img.manifest.body_sha256 = Digest::Of(body);
    img.manifest.body_chunks = {ref};
    CaptureResult r;
    r.image = img;
    return f.env.Sign(r);
  };
  Entry root;
  root.path = "/";
  root.type = EntryType::kDirectory;
  root.mode = 0755;
  ChunkRef payload;
  REQUIRE_VOID_OK(f.env.server().Put(
      payload.object, REQUIRE_OK(EncodeChunk("owned\n", 3, payload))));
  Entry escape = root;
  escape.type = EntryType::kFile;
  escape.mode = 0644;
  escape.chunks = {payload};
  escape.size = payload.size;
  escape.path = "/../escape";
  Entry link = root;
  link.type = EntryType::kSymlink;
  link.path = "/etc";
  link.target = "/etc";  // absolute targets are data...
  Entry through = escape;
  through.path = "/etc/passwd";  // ...never a way in

  TestFetcher fetcher(f.env.server());
  for (auto entries : {std::vector<Entry>{root, escape}, std::vector<Entry>{root, link, through}}) {
    auto evil = publish(entries);
    auto r = DeployTree(evil.json(), evil.sig(), f.target, f.env.cache(), &fetcher, f.env.Options());
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kParse));
    INFO(r.error().message());
    CHECK((r.error().message().find("'..' component") != std::string::npos ||
           r.error().message().find("its parent is not a directory") != std::string::npos));
  }
  CHECK_FALSE(fs::exists(f.target));
  CHECK_FALSE(fs::exists(f.target.parent_path() / "escape"));
  CHECK_FALSE(fs::exists(f.env.dir() / "escape"));
  CHECK_FALSE(f.Leftovers());
}

TEST_CASE("deploy tree: an interrupted fetch resumes with the chunks already cached", "[deploy][tree][resume]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  size_t total = v1.image().UniqueChunks().size();
  REQUIRE(total > 20);
  TestFetcher failing(f.env.server());
  failing.fail_after = 12;  // body chunk(s) plus some content, then the server goes away
  DeployOptions o = f.env.Options();
  o.fetch_parallelism = 1;
  auto r = DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &failing, o);
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kUnavailable));
  CHECK_THAT(r.error().message(), Catch::Contains("the server went away"));
  CHECK_FALSE(fs::exists(f.target));
  CHECK_FALSE(f.Leftovers());
  size_t kept = ObjectCount(f.env.dir() / "cache");
  CHECK(kept == 12);

  TestFetcher working(f.env.server());
  auto done = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &working, f.env.Options()));
  CHECK(done.from_cache + v1.image().manifest.body_chunks.size() == kept);
  CHECK(done.fetched == total - done.from_cache);
  CHECK(done.index_fetched == 0);
  CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
}

TEST_CASE("deploy tree: a chunk cut off mid-transfer resumes from its offset", "[deploy][tree][resume]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher flaky(f.env.server());
  flaky.interrupt_each_once = true;
  auto r = REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &flaky, f.env.Options()));
  size_t n = v1.image().UniqueChunks().size() + v1.image().manifest.body_chunks.size();
  CHECK(flaky.resumed == n);
  CHECK(flaky.calls == 2 * n);
  // Half of each chunk came twice? No: the second call starts where the first stopped.
  uint64_t stored = 0;
  for (const auto& c : v1.image().UniqueChunks()) stored += c.stored_size;
  for (const auto& c : v1.image().manifest.body_chunks) stored += c.stored_size;
  CHECK(r.fetched_bytes == stored);
  CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
}

TEST_CASE("deploy tree: a deploy killed while writing or before the swap completes on the next run", "[deploy][tree][resume]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options()));
  REQUIRE_VOID_OK(CommitTree(f.target));
  auto before = TakeSnapshot(f.target);
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());

  auto killed_at = [&](const std::string& phase, uint64_t after_items) {
    DeployKilledAt(f, v2, phase, after_items, f.env.Options());
  };

  SECTION("killed mid-write: the half-written tree is discarded, the target was never touched") {
    killed_at("write", 5);
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kWriting);
    CHECK(fs::exists(f.target.parent_path() / ".ws1.parc-new"));
    CHECK(DiffSnapshots(before, TakeSnapshot(f.target)) == "");
    TestFetcher again(f.env.server());
    auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &again, f.env.Options()));
    CHECK(r.fetched == 0);  // the killed run had fetched everything into the cache
    CHECK(again.chunks == 0);
    CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  }
  SECTION("killed after the new tree was synced: only the swap is left") {
    killed_at("swap", 0);
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kStaged);
    CHECK(DiffSnapshots(before, TakeSnapshot(f.target)) == "");
    auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), nullptr, f.env.Options()));
    CHECK(r.written_bytes == 0);
    CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
    CHECK(DiffSnapshots(before, TakeSnapshot(r.previous)) == "");
  }
  SECTION("killed mid-write, then rolled back instead") {
    killed_at("write", 5);
    REQUIRE_VOID_OK(RollbackTree(f.target));
    CHECK(DiffSnapshots(before, TakeSnapshot(f.target)) == "");
  }
  CHECK_FALSE(fs::exists(f.target.parent_path() / ".ws1.parc-new"));
}

namespace {

// A fetcher as slow as a network: the writers run ahead of it.
class SlowFetcher : public TestFetcher {
 public:
  using TestFetcher::TestFetcher;
  ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset, const std::function<ExpectedVoid(std::string_view)>& sink) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    return TestFetcher::Fetch(ref, offset, sink);
  }
};

}  // namespace

TEST_CASE("deploy tree: a disk too small, or filling up while chunks are fetched: the error says why, the fetch stops, the old tree stays", "[deploy][tree][full]") {
  // The small disk is a 20 MiB tmpfs mounted over the targets' directory in
  // a private mount namespace of a child process: the test machine's mount
  // table never sees it. The cache stays on the real disk: what fills up is
  // the tree being written. First the disk is too full from the start (the
  // deployment refuses before writing), then something else fills it while
  // the chunks are still being fetched.
  Fixture f;
  fs::path src = f.work.path() / "plain";
  test::WriteFile(src / "etc/hostname", "ws1\n");
  test::WriteFile(src / "usr/share/doc/readme", "version 1\n");
  auto v1 = f.env.CaptureTreeSigned(src, "1");
  test::WriteFile(src / "usr/share/doc/readme", "version 2\n");
  test::WriteFile(src / "var/lib/big.bin", RandomData(12u << 20, 77));
  auto v2 = f.env.CaptureTreeSigned(src, "2", &v1.image());
  const size_t v2_chunks = v2.image().UniqueChunks().size();

  std::string out = test::InPrivateMountNamespace([&]() -> std::string {
    std::ostringstream out;
    auto say = [&](const std::string& s) {
      out << s << "\n";
      return out.str();
    };
    const fs::path small = f.target.parent_path();
    if (::mount("parc-test", small.c_str(), "tmpfs", 0, "size=20m") != 0) return say(std::string("ERROR mount: ") + std::strerror(errno));
    TestFetcher first(f.env.server());
    auto d1 = DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &first, f.env.Options());
    if (!d1) return say("ERROR v1: " + d1.error().message());
    if (auto c = CommitTree(f.target); !c) return say("ERROR commit: " + c.error().message());
    auto before = TakeSnapshot(f.target);
    const fs::path filler = small / "filler";
    test::WriteFile(filler, std::string(16u << 20, 'x'));
    TestFetcher early(f.env.server());
    auto d0 = DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &early, f.env.Options());
    out << "early=" << (d0 ? "deployed" : d0.error().message()) << "\n";
    out << "early_fetched=" << early.chunks.load() << "\n";
    fs::remove(filler);

    SlowFetcher slow(f.env.server());
    DeployOptions o = f.env.Options();
    o.fetch_parallelism = 1;
    bool filled = false;
    o.progress = [&](const Progress& p) {
      if (p.phase == "fetch" && !filled) {  // the free-space check has passed
        test::WriteFile(filler, std::string(16u << 20, 'x'));
        filled = true;
      }
      return true;
    };
    auto d2 = DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &slow, o);
    fs::remove(filler);
    out << "deployed=" << (d2 ? "yes" : "no") << "\n";
    if (!d2) out << "error=" << d2.error().message() << "\n";
    out << "fetched=" << slow.chunks.load() << "\n";
    out << "diff=" << DiffSnapshots(before, TakeSnapshot(f.target)) << "\n";
    out << "leftovers=" << (f.Leftovers() ? "yes" : "no") << "\n";
    size_t entries = 0;
    for (auto it = fs::directory_iterator(small); it != fs::directory_iterator(); ++it) ++entries;
    return say("entries=" + std::to_string(entries));
  });
  INFO("this test needs to create a mount namespace (root or CAP_SYS_ADMIN)");
  INFO(out);
  REQUIRE_THAT(out, !Catch::Contains("ERROR"));
  CHECK_THAT(out, Catch::Contains("early=deploy of test-tree 2 to") && Catch::Contains("needs about 12 MiB, 3 MiB are free"));
  // Only the index was fetched before the refusal.
  CHECK_THAT(out, Catch::Contains("early_fetched=" + std::to_string(v2.image().manifest.body_chunks.size()) + "\n"));
  CHECK_THAT(out, Catch::Contains("deployed=no"));
  // The writer's own error, not the cancelled fetch's.
  CHECK_THAT(out, Catch::Contains("big.bin: no space left on the target") && !Catch::Contains("cancelled"));
  CHECK_THAT(out, Catch::Contains("diff=\n"));
  CHECK_THAT(out, Catch::Contains("leftovers=no"));
  CHECK_THAT(out, Catch::Contains("entries=1"));  // ws1 alone
  // The fetch stopped when the writer failed instead of fetching the rest.
  INFO(v2_chunks << " chunks in v2");
  auto at = out.find("\nfetched=");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoul(out.substr(at + 9)) < v2_chunks * 3 / 4);
}

TEST_CASE("deploy tree: cancelling from the progress callback leaves the target untouched", "[deploy][tree]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  DeployOptions o = f.env.Options();
  o.progress = [](const Progress& p) { return p.phase != "write"; };
  TestFetcher fetcher(f.env.server());
  auto r = DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, o);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("cancelled"));
  CHECK_FALSE(fs::exists(f.target));
  CHECK_FALSE(f.Leftovers());
}

TEST_CASE("deploy tree: with verify, the new tree is checked before the swap, a difference keeps the old tree", "[deploy][tree][verify]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  TestFetcher fetcher(f.env.server());
  DeployOptions o = f.env.Options();
  o.verify = true;
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, o));
  REQUIRE_VOID_OK(CommitTree(f.target));
  auto before = TakeSnapshot(f.target);
  ChangeALittle(f.src);
  auto v2 = f.env.CaptureTreeSigned(f.src, "2", &v1.image());
  fs::path staged_big = f.target.parent_path() / ".ws1.parc-new" / "data/big";

  SECTION("a byte changed in the new tree after it was written is found, the target keeps v1") {
    bool altered = false;
    o.progress = [&](const Progress& p) {
      // The check's first callback: the new tree is complete, not swapped in.
      if ((p.phase == "scan" || p.phase == "verify") && !altered) {
        std::string big = test::ReadFileOrEmpty(staged_big);
        REQUIRE(big.size() > 1000);
        big[1000] ^= 0x01;
        test::WriteFile(staged_big, big);
        altered = true;
      }
      return true;
    };
    auto r = DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, o);
    REQUIRE(altered);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
    CHECK_THAT(r.error().message(), Catch::Contains("not swapped in") && Catch::Contains("/data/big: content"));
    CHECK(DiffSnapshots(before, TakeSnapshot(f.target)) == "");
    CHECK_FALSE(f.Leftovers());
    CHECK_FALSE(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kSwapped);
  }
  SECTION("an unaltered tree passes and is swapped in") {
    auto r = REQUIRE_OK(DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, o));
    CHECK(r.previous == f.target.parent_path() / ".ws1.parc-previous");
    CHECK(DiffSnapshots(TakeSnapshot(f.src), TakeSnapshot(f.target)) == "");
  }
  SECTION("not with owners by name") {
    o.owners_by_name = true;
    auto r = DeployTree(v2.json(), v2.sig(), f.target, f.env.cache(), &fetcher, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kInvalidArgument));
  }
}

TEST_CASE("deploy tree: owners by name through another root's accounts", "[deploy][tree]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  fs::path host = f.work.path() / "host";
  test::WriteFile(host / "etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1500:1500::/home/alice:/bin/sh\n");
  test::WriteFile(host / "etc/group", "root:x:0:\nalice:x:1500:\nstaff:x:60:\n");
  DeployOptions o = f.env.Options();
  o.owners_by_name = true;
  o.accounts_root = host;
  TestFetcher fetcher(f.env.server());
  REQUIRE_OK(DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, o));
  struct stat st {};
  REQUIRE(::lstat((f.target / "home/alice/notes").c_str(), &st) == 0);
  CHECK(st.st_uid == 1500);
  CHECK(st.st_gid == 1500);
  REQUIRE(::lstat((f.target / "srv/shared").c_str(), &st) == 0);
  CHECK(st.st_gid == 60);
  REQUIRE(::lstat((f.target / "home/bob/file").c_str(), &st) == 0);  // no name: numeric kept
  CHECK(st.st_uid == 2000);
}

TEST_CASE("deploy tree: targets that are not plain directories are refused", "[deploy][tree]") {
  Fixture f;
  auto v1 = f.env.CaptureTreeSigned(f.src, "1");
  fs::create_directories(f.work.path() / "real");
  fs::create_symlink(f.work.path() / "real", f.target);
  TestFetcher fetcher(f.env.server());
  auto r = DeployTree(v1.json(), v1.sig(), f.target, f.env.cache(), &fetcher, f.env.Options());
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("symlinks are not followed"));
  CHECK(fs::is_empty(f.work.path() / "real"));
}
