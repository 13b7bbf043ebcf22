// Images end to end: parcctl captures a prepared tree into a local chunk
// store, signs it with a publisher key and pushes it (only the chunks the
// server lacks); the server deploys it as a job to a real parc-agent (mutual
// TLS on loopback), which fetches only the chunks it lacks, verifies them
// and swaps the tree in. Then a small change (only its chunks travel), a
// tampered chunk on the server (refused, target untouched), and offline
// servicing of a captured tree with parc-agent --root (docs/images.md).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <sstream>
#include <random>
#include <set>

#include "harness.h"
#include "inventory_fixture.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "tree_snapshot.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

void SetMtime(const fs::path& p, int64_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 123456789}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

// A small master: directories with their own modes, a setuid program, a
// config file owned by a user, a symlink, a hardlink and a 3 MiB file of
// random bytes (about 48 chunks at the default 64 KiB average).
void BuildMaster(const fs::path& m) {
  WriteFile(m / "etc/motd", "Welcome to the lab workstation\n");
  WriteFile(m / "etc/hostname", "master\n");
  WriteFile(m / "etc/app/app.conf", "mode=kiosk\n");
  REQUIRE(::chown((m / "etc/app/app.conf").c_str(), 1000, 1000) == 0);
  REQUIRE(::chmod((m / "etc/app").c_str(), 0750) == 0);
  WriteFile(m / "usr/bin/tool", "#!/bin/sh\necho tool\n");
  REQUIRE(::chmod((m / "usr/bin/tool").c_str(), 04755) == 0);
  WriteFile(m / "usr/share/big.bin", RandomBytes(3u << 20, 42));
  fs::create_symlink("../share/big.bin", m / "usr/bin/big-link");
  fs::create_hard_link(m / "etc/motd", m / "etc/motd.hardlink");
  fs::create_directories(m / "var/empty");
  REQUIRE(::chmod((m / "var/empty").c_str(), 0700) == 0);
  SetMtime(m / "etc/motd", 1700000000);
  SetMtime(m / "usr/share/big.bin", 1700000100);
}

// Overwrites `data` at `offset` of an existing file, keeping its mtime-less identity.
void Patch(const fs::path& file, uint64_t offset, const std::string& data) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

struct ImageLab {
  TempDir dir{"parc-image-e2e"};
  Server server{dir / "server"};
  std::unique_ptr<Agent> agent;
  std::string id;
  fs::path store = dir / "store";
  fs::path key = dir / "acme-it.key";

  ImageLab() {
    server.Start();
    fs::path root = dir / "root";
    BuildWorkstationRoot(root);
    agent = std::make_unique<Agent>(dir / "agent", root);
    auto [token, fp] = server.Token();
    REQUIRE(agent->Enroll(server, token, fp).exit_code == 0);
    id = agent->host_id();
    agent->Start();
    REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", id})["summary"]["online"] == true; }));
    REQUIRE(server.Ctl({"key", "create", "--name", "acme-it", "--dir", dir.path().string()}).exit_code == 0);
    REQUIRE(server.Ctl({"key", "add", (dir / "acme-it.pub").string(), "--name", "acme-it"}).exit_code == 0);
  }

  fs::path Target() const { return agent->root() / "srv/ws"; }

  nlohmann::json Capture(const fs::path& from, const std::string& version, bool push = true) {
    std::vector<std::string> args{"image", "capture", "--from", from.string(), "--name", "ws", "--version", version,
                                  "--key", key.string(), "-o", store.string(), "--json"};
    if (push) args.push_back("--push");
    auto r = server.Ctl(args);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
  }

  // Starts deploying ws=version to the agent's /srv/ws: the deployment id.
  std::string StartDeploy(const std::string& version, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"image", "deploy", "ws=" + version, "--to", "host:" + id, "--target", "/srv/ws"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = server.CtlJson(args);
    return d["deployment_id"];
  }

  // Deploys ws=version to the agent's /srv/ws and waits for the job's end.
  nlohmann::json Deploy(const std::string& version, const std::vector<std::string>& extra = {}) {
    return WaitJob(StartDeploy(version, extra));
  }

  // The image rollback points (action deploy) the parc database holds for the host, once `ready` holds for them.
  nlohmann::json ImagePoints(const std::function<bool(const nlohmann::json&)>& ready) {
    nlohmann::json points = nlohmann::json::array();
    bool ok = WaitFor([&] {
      auto all = server.CtlJson({"rollback-points", id});
      points = nlohmann::json::array();
      for (const auto& p : all.value("points", nlohmann::json::array()))
        if (p.value("action", "") == "deploy") points.push_back(p);
      return ready(points);
    });
    INFO(points.dump(2));
    REQUIRE(ok);
    return points;
  }

  // The deployment's (only) job once it has succeeded or failed.
  nlohmann::json WaitJob(const std::string& dep, std::chrono::seconds timeout = 60s) {
    nlohmann::json job;
    REQUIRE(WaitFor(
        [&] {
          auto r = server.Ctl({"deploy", "status", dep, "--json"});
          if (r.exit_code != 0 && r.exit_code != 1) return false;
          auto s = nlohmann::json::parse(r.out);
          if (!s.contains("jobs") || s["jobs"].empty()) return false;
          job = s["jobs"][0];
          return job["state"] == "succeeded" || job["state"] == "failed";
        },
        timeout));
    return job;
  }

  CommandResult Verify(const std::string& version) {
    return server.Ctl({"image", "verify", "ws=" + version, "--store", store.string(), "--target", Target().string(),
                       "--trust", (dir / "acme-it.pub").string()});
  }
};

// The server's objects directory moved aside for the scope's lifetime: every
// image index is then unreadable, as with a disk that lost them.
struct ObjectsAside {
  fs::path objects, aside;
  explicit ObjectsAside(fs::path o) : objects(std::move(o)), aside(objects.string() + ".aside") { fs::rename(objects, aside); }
  ~ObjectsAside() { fs::rename(aside, objects); }
  ObjectsAside(const ObjectsAside&) = delete;
  ObjectsAside& operator=(const ObjectsAside&) = delete;
};

std::set<std::string> Objects(const fs::path& store) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(store / "objects"))
    if (e.is_regular_file()) out.insert(e.path().filename().string());
  return out;
}

}  // namespace

TEST_CASE("images: capture, push, deploy to an agent, a small change travels alone, a tampered chunk is refused",
          "[integration][image]") {
  ImageLab lab;
  fs::path master = lab.dir / "master";
  BuildMaster(master);

  auto v1 = lab.Capture(master, "1");
  uint64_t chunks1 = U64(v1, "chunks");
  CHECK(chunks1 >= 40);
  // Everything was new to the server (content chunks + at least one body chunk).
  CHECK(U64(v1["pushed"], "uploaded") > chunks1);
  CHECK(U64(v1["pushed"], "already_present") == 0);
  auto listed = lab.server.CtlJson({"image", "list"});
  REQUIRE(listed["images"].size() == 1);
  CHECK(listed["images"][0]["name"] == "ws");
  CHECK(listed["images"][0]["kind"] == "tree");

  auto job1 = lab.Deploy("1");
  INFO(job1.dump(2) << lab.agent->Log());
  REQUIRE(job1["state"] == "succeeded");
  auto stats1 = nlohmann::json::parse(job1["output"].get<std::string>());
  CHECK(U64(stats1, "chunks") == chunks1);
  CHECK(U64(stats1, "fetched") == chunks1);  // an empty cache and no target: every chunk travels
  // Identical content and metadata: the image's own check (modes, owners,
  // mtimes, xattrs, links) and an independent snapshot of the two trees.
  auto verified = lab.Verify("1");
  INFO(verified.out << verified.err);
  CHECK(verified.exit_code == 0);
  CHECK(parc::pkg::testing::DiffTrees(parc::pkg::testing::Snapshot(master), parc::pkg::testing::Snapshot(lab.Target())) == "");
  struct stat a {}, b {};
  REQUIRE(::stat((lab.Target() / "etc/motd").c_str(), &a) == 0);
  REQUIRE(::stat((lab.Target() / "etc/motd.hardlink").c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
  CHECK(a.st_mtim.tv_sec == 1700000000);

  // Version 2: one small file and 16 bytes in the middle of the big one.
  WriteFile(master / "etc/motd", "Welcome to the lab workstation, version 2\n");
  Patch(master / "usr/share/big.bin", 1500000, "sixteen bytes!!!");
  auto v2 = lab.Capture(master, "2");
  CHECK(U64(v2["pushed"], "uploaded") < 8);  // the unchanged chunks were on the server already
  CHECK(U64(v2["pushed"], "already_present") >= chunks1 - 4);
  auto diff = lab.server.CtlJson({"image", "diff", "ws=1", "ws=2"});
  INFO(diff.dump(2));
  std::set<std::string> changed;
  for (const auto& c : diff["changed"]) changed.insert(c["path"].get<std::string>());
  CHECK(changed == std::set<std::string>{"/etc/motd", "/usr/share/big.bin"});
  CHECK(diff.value("added", nlohmann::json::array()).empty());
  CHECK(diff.value("removed", nlohmann::json::array()).empty());

  auto job2 = lab.Deploy("2");
  INFO(job2.dump(2) << lab.agent->Log());
  REQUIRE(job2["state"] == "succeeded");
  auto stats2 = nlohmann::json::parse(job2["output"].get<std::string>());
  uint64_t fetched = U64(stats2, "fetched");
  // The one to three chunks around the patched bytes (motd is small: it
  // travels inside the index); the rest come from the agent's cache or the
  // target's current content.
  CHECK(fetched >= 1);
  CHECK(fetched <= 3);
  CHECK(fetched + U64(stats2, "from_cache") + U64(stats2, "seeded") == U64(stats2, "chunks"));
  // What the server said would travel is what travelled (content + index).
  CHECK(fetched + U64(stats2, "index_fetched") == U64(diff, "chunks_to_transfer"));
  auto verified2 = lab.Verify("2");
  INFO(verified2.out << verified2.err);
  CHECK(verified2.exit_code == 0);
  CHECK(lab.Verify("1").exit_code == 1);  // and it is not version 1 any more

  // Version 3, whose new content chunk is altered on the server after push
  // (the file is larger than what the index keeps inline).
  WriteFile(master / "etc/app/app.conf", "mode=kiosk\nscreensaver=off\n" + std::string(8000, '#') + "\n");
  auto before = Objects(lab.store);
  lab.Capture(master, "3");
  auto manifest3 = nlohmann::json::parse(ReadFileOrEmpty(lab.store / "images/ws_3.manifest.json"));
  std::set<std::string> body;
  for (const auto& c : manifest3["body"]["chunks"]) body.insert(c["object"].get<std::string>());
  int tampered = 0;
  for (const auto& o : Objects(lab.store)) {
    if (before.count(o) || body.count(o)) continue;
    fs::path on_server = lab.server.state_dir() / "content/objects" / o.substr(0, 2) / o;
    REQUIRE(fs::exists(on_server));
    std::string bytes = ReadFileOrEmpty(on_server);
    bytes[bytes.size() / 2] ^= 0x55;
    WriteFile(on_server, bytes);
    ++tampered;
  }
  REQUIRE(tampered == 1);
  auto job3 = lab.Deploy("3");
  INFO(job3.dump(2));
  CHECK(job3["state"] == "failed");
  CHECK_THAT(job3["message"].get<std::string>(), Catch::Contains("refused"));
  // The target is still exactly version 2.
  auto still = lab.Verify("2");
  INFO(still.out << still.err);
  CHECK(still.exit_code == 0);
  CHECK(ReadFileOrEmpty(lab.Target() / "etc/app/app.conf") == "mode=kiosk\n");
}

TEST_CASE("images: the tree a deployment replaced is the host's rollback point in the parc database until the next one, parcctl rollback puts it back",
          "[integration][image][rollback]") {
  ImageLab lab;
  fs::path master = lab.dir / "master";
  BuildMaster(master);
  lab.Capture(master, "1");
  auto snap1 = parc::pkg::testing::Snapshot(master);
  WriteFile(master / "etc/motd", "Welcome, version 2\n");
  lab.Capture(master, "2");
  auto snap2 = parc::pkg::testing::Snapshot(master);
  WriteFile(master / "etc/hostname", "master-3\n");
  lab.Capture(master, "3");
  auto snap3 = parc::pkg::testing::Snapshot(master);
  fs::path previous = lab.Target().parent_path() / ".ws.parc-previous";
  auto stats = [](const nlohmann::json& job) { return nlohmann::json::parse(job["output"].get<std::string>()); };
  auto tree = [&] { return parc::pkg::testing::Snapshot(lab.Target()); };

  // A first deployment replaces nothing: no rollback point.
  auto job1 = lab.Deploy("1");
  INFO(job1.dump(2) << lab.agent->Log());
  REQUIRE(job1["state"] == "succeeded");
  CHECK(stats(job1)["rollback_point"] == "");
  CHECK_FALSE(fs::exists(previous));

  // Version 2 replaces version 1, which stays as the rollback point.
  auto job2 = lab.Deploy("2");
  INFO(job2.dump(2) << lab.agent->Log());
  REQUIRE(job2["state"] == "succeeded");
  std::string p2 = stats(job2)["rollback_point"];
  REQUIRE(!p2.empty());
  CHECK(parc::pkg::testing::DiffTrees(snap2, tree()) == "");
  CHECK(parc::pkg::testing::DiffTrees(snap1, parc::pkg::testing::Snapshot(previous)) == "");
  auto points = lab.ImagePoints([&](const nlohmann::json& ps) { return ps.size() == 1 && ps[0]["point_id"] == p2; });
  CHECK(points[0]["package"] == "image:ws");
  CHECK(points[0]["from_version"] == "1");
  CHECK(points[0]["to_version"] == "2");
  CHECK(points[0]["state"] == "committed");
  CHECK(points[0]["target"] == "/srv/ws");
  auto table = lab.server.Ctl({"rollback-points", lab.id});
  CHECK_THAT(table.out, Catch::Contains("image:ws") && Catch::Contains("/srv/ws") && Catch::Contains("TARGET"));

  // A deployment that fails (version 3 refused: its index altered on the
  // server) commits nothing: version 2 and its rollback point stay.
  fs::path index3;
  {
    auto m3 = nlohmann::json::parse(ReadFileOrEmpty(lab.store / "images/ws_3.manifest.json"));
    std::string o = m3["body"]["chunks"][0]["object"];
    index3 = lab.server.state_dir() / "content/objects" / o.substr(0, 2) / o;
  }
  std::string good_index = ReadFileOrEmpty(index3);
  std::string bad_index = good_index;
  bad_index[bad_index.size() / 2] ^= 0x55;
  WriteFile(index3, bad_index);
  auto refused = lab.Deploy("3");
  INFO(refused.dump(2));
  CHECK(refused["state"] == "failed");
  CHECK(parc::pkg::testing::DiffTrees(snap2, tree()) == "");
  CHECK(parc::pkg::testing::DiffTrees(snap1, parc::pkg::testing::Snapshot(previous)) == "");
  WriteFile(index3, good_index);

  // Version 3 swapped in commits version 2's deployment: version 2 is now the rollback point, version 1 gone.
  auto job3 = lab.Deploy("3");
  INFO(job3.dump(2) << lab.agent->Log());
  REQUIRE(job3["state"] == "succeeded");
  std::string p3 = stats(job3)["rollback_point"];
  REQUIRE(!p3.empty());
  CHECK(p3 != p2);
  CHECK(parc::pkg::testing::DiffTrees(snap3, tree()) == "");
  CHECK(parc::pkg::testing::DiffTrees(snap2, parc::pkg::testing::Snapshot(previous)) == "");
  points = lab.ImagePoints([&](const nlohmann::json& ps) { return ps.size() == 1 && ps[0]["point_id"] == p3; });
  CHECK(points[0]["from_version"] == "2");
  CHECK(points[0]["to_version"] == "3");
  // The chunk cache keeps the image in place: version 2's index chunks are
  // dropped once the deployment has been reported.
  CHECK(WaitFor([&] { return lab.agent->Log().find("chunk cache: kept") != std::string::npos; }));

  // parcctl rollback swaps version 2 back in, exactly.
  auto rb = lab.server.Ctl({"rollback", lab.id, p3.substr(0, 8)});
  INFO(rb.out << rb.err << lab.agent->Log());
  REQUIRE(rb.exit_code == 0);
  lab.ImagePoints([&](const nlohmann::json& ps) { return ps.size() == 1 && ps[0]["state"] == "rolled-back"; });
  CHECK(parc::pkg::testing::DiffTrees(snap2, tree()) == "");
  CHECK_FALSE(fs::exists(previous));
  CHECK(lab.Verify("2").exit_code == 0);
  // A point once restored cannot be restored again.
  auto again = lab.server.Ctl({"rollback", lab.id, p3.substr(0, 8)});
  CHECK(again.exit_code != 0);

  // Version 3 again, with --commit: no rollback point, no previous tree kept.
  auto job4 = lab.Deploy("3", {"--commit"});
  INFO(job4.dump(2) << lab.agent->Log());
  REQUIRE(job4["state"] == "succeeded");
  CHECK(stats(job4)["rollback_point"] == "");
  CHECK(U64(stats(job4), "fetched") == 0);  // version 3's chunks are in the agent's cache
  CHECK(parc::pkg::testing::DiffTrees(snap3, tree()) == "");
  CHECK_FALSE(fs::exists(previous));
  lab.ImagePoints([&](const nlohmann::json& ps) { return ps.empty(); });
}

TEST_CASE("images: removing a version deletes the chunks no other image uses, never during its deployment",
          "[integration][image][remove]") {
  ImageLab lab;
  fs::path master = lab.dir / "master";
  BuildMaster(master);
  lab.Capture(master, "1");
  Patch(master / "usr/share/big.bin", 1000000, RandomBytes(600000, 7));  // about ten chunks of its own
  auto v2 = lab.Capture(master, "2");
  fs::path objects = lab.server.state_dir() / "content/objects";
  auto count = [&] { return Objects(objects.parent_path()).size(); };  // the server's content store
  size_t before = count();

  {  // Version 2's index cannot be read: which objects it needs is unknown, so nothing is removed.
    ObjectsAside aside(objects);
    auto refused = lab.server.Ctl({"image", "remove", "ws=1"});
    CHECK(refused.exit_code != 0);
    CHECK_THAT(refused.err, Catch::Contains("cannot be read") && Catch::Contains("nothing removed"));
  }
  CHECK(lab.server.CtlJson({"image", "list"})["images"].size() == 2);
  CHECK(count() == before);

  auto removed = lab.server.CtlJson({"image", "remove", "ws=1"});
  INFO(removed.dump(2));
  uint64_t deleted = U64(removed, "objects_deleted");
  CHECK(deleted >= 5);                         // v1's own chunks of big.bin and its index chunks
  CHECK(U64(removed, "objects_kept") >= 40);   // shared with v2
  CHECK(U64(removed, "bytes_freed") > 0);
  CHECK(count() == before - deleted);
  CHECK(lab.server.Ctl({"image", "show", "ws=1"}).exit_code != 0);
  CHECK(lab.server.Ctl({"image", "remove", "ws=1"}).exit_code != 0);  // not registered any more
  // Version 2 has everything it needs: deployed and identical.
  auto job = lab.Deploy("2");
  INFO(job.dump(2) << lab.agent->Log());
  REQUIRE(job["state"] == "succeeded");
  CHECK(lab.Verify("2").exit_code == 0);

  // While a deployment of version 2 is not finished, it stays.
  lab.agent->Stop();
  std::string dep = lab.StartDeploy("2");
  auto refused = lab.server.Ctl({"image", "remove", "ws=2"});
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.err, Catch::Contains("deploy cancel"));
  REQUIRE(lab.server.Ctl({"deploy", "halt", dep}).exit_code == 0);
  CHECK(lab.server.Ctl({"image", "remove", "ws=2"}).exit_code != 0);  // halted: it may be resumed
  CHECK(lab.server.CtlJson({"image", "list"})["images"].size() == 1);
  REQUIRE(lab.server.Ctl({"deploy", "cancel", dep}).exit_code == 0);
  auto last = lab.server.CtlJson({"image", "remove", "ws=2"});
  CHECK(U64(last, "objects_kept") == 0);
  CHECK(count() == 0);  // no image left, no package: the content store is empty
  (void)v2;
}

TEST_CASE("images: gc deletes the objects nothing uses once older than the grace period, keeps used and recent ones",
          "[integration][image][gc]") {
  ImageLab lab;
  fs::path master = lab.dir / "master";
  BuildMaster(master);
  lab.Capture(master, "1");
  fs::path objects = lab.server.state_dir() / "content/objects";
  auto count = [&] { return Objects(objects.parent_path()).size(); };  // the server's content store
  size_t used = count();
  // Two objects of a push that never registered its image: one two days old, one just written.
  auto orphan = [&](const std::string& bytes) {
    std::string hex = parc::Sha256Hex(bytes);
    fs::path p = objects / hex.substr(0, 2) / hex;
    WriteFile(p, bytes);
    return p;
  };
  fs::path old_orphan = orphan("abandoned upload, old"), new_orphan = orphan("upload in progress");
  fs::last_write_time(old_orphan, fs::file_time_type::clock::now() - std::chrono::hours(48));
  {  // The image's index cannot be read: nothing is deleted, not even the old orphan.
    ObjectsAside aside(objects);
    auto refused = lab.server.Ctl({"image", "gc"});
    CHECK(refused.exit_code != 0);
    CHECK_THAT(refused.err, Catch::Contains("cannot be read") && Catch::Contains("nothing deleted"));
  }
  CHECK(fs::exists(old_orphan));

  auto dry = lab.server.CtlJson({"image", "gc", "--dry-run"});
  INFO(dry.dump(2));
  CHECK(U64(dry, "objects_deleted") == 1);
  CHECK(dry.value("dry_run", false));
  CHECK(fs::exists(old_orphan));

  auto gc = lab.server.CtlJson({"image", "gc"});
  INFO(gc.dump(2));
  CHECK(U64(gc, "objects_scanned") == used + 2);
  CHECK(U64(gc, "objects_used") == used);
  CHECK(U64(gc, "objects_recent") == 1);
  CHECK(U64(gc, "objects_deleted") == 1);
  CHECK_FALSE(fs::exists(old_orphan));
  CHECK(fs::exists(new_orphan));
  CHECK(count() == used + 1);
  CHECK(lab.server.Ctl({"image", "gc", "--older-than", "soon"}).exit_code != 0);  // a clear usage error
  // The image still has everything: deployed and identical.
  auto job = lab.Deploy("1");
  INFO(job.dump(2) << lab.agent->Log());
  REQUIRE(job["state"] == "succeeded");
  CHECK(lab.Verify("1").exit_code == 0);
}

TEST_CASE("images: a master captured as a job on its agent, signed by parcctl, deployed back identical",
          "[integration][image]") {
  ImageLab lab;
  fs::path master = lab.agent->root() / "srv/master";
  BuildMaster(master);
  auto capture = [&](const std::string& from, const std::string& version) {
    return lab.server.Ctl({"image", "capture", "--on", "host:" + lab.id, "--from", from, "--name", "ws", "--version",
                           version, "--key", lab.key.string(), "--json"});
  };

  auto r = capture("/srv/master", "1");
  INFO(r.out << r.err << lab.agent->Log());
  REQUIRE(r.exit_code == 0);
  auto v1 = nlohmann::json::parse(r.out);
  CHECK(v1["name"] == "ws");
  CHECK(v1["kind"] == "tree");
  uint64_t chunks = U64(v1, "chunks");
  CHECK(chunks >= 40);
  CHECK(U64(v1, "uploaded") > chunks);  // content chunks and the index: all new to the server
  auto shown = lab.server.CtlJson({"image", "show", "ws=1"});
  CHECK(shown["publisher"] == "acme-it");  // signed here, with the admin's key

  // Deployed to the same host: the capture left every chunk in its cache.
  auto job = lab.Deploy("1");
  INFO(job.dump(2));
  REQUIRE(job["state"] == "succeeded");
  auto stats = nlohmann::json::parse(job["output"].get<std::string>());
  CHECK(U64(stats, "fetched") == 0);
  CHECK(U64(stats, "from_cache") == chunks);
  CHECK(parc::pkg::testing::DiffTrees(parc::pkg::testing::Snapshot(master), parc::pkg::testing::Snapshot(lab.Target())) == "");

  // A small change: only its chunks are uploaded.
  WriteFile(master / "etc/motd", "Welcome to the lab workstation, version 2\n");
  auto r2 = capture("/srv/master", "2");
  INFO(r2.out << r2.err);
  REQUIRE(r2.exit_code == 0);
  auto v2 = nlohmann::json::parse(r2.out);
  CHECK(U64(v2, "uploaded") >= 1);
  CHECK(U64(v2, "uploaded") < 6);

  // The same version again, and a path the host does not have: clear refusals, nothing registered.
  auto again = capture("/srv/master", "2");
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.err, Catch::Contains("registered already"));
  auto missing = capture("/srv/nothing-here", "3");
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.err, Catch::Contains("does not exist"));
  CHECK(lab.server.CtlJson({"image", "list"})["images"].size() == 2);
  // The capture deployments are listed as such.
  auto list = lab.server.Ctl({"deploy", "list"});
  CHECK_THAT(list.out, Catch::Contains("capture") && Catch::Contains("image:ws"));
}

TEST_CASE("images: offline servicing with parc-agent --root, captured as a new version, differs only where serviced",
          "[integration][image]") {
  TempDir dir("parc-image-servicing");
  fs::path tree = dir / "tree";
  BuildWorkstationRoot(tree);
  WriteFile(tree / "usr/share/big.bin", RandomBytes(2u << 20, 7));
  fs::path store = dir / "store";
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), BinaryPath("parcctl").string());
    return Run(args);
  };
  REQUIRE(ctl({"key", "create", "--name", "acme-it", "--dir", dir.path().string()}).exit_code == 0);
  auto capture = [&](const std::string& version) {
    auto r = ctl({"image", "capture", "--from", tree.string(), "--name", "master", "--version", version, "--key",
                  (dir / "acme-it.key").string(), "-o", store.string(), "--json"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
  };
  auto v1 = capture("1");

  // Servicing without booting: a hardening baseline applied into the tree by
  // the agent's own engine (its rollback state kept outside the image).
  WriteFile(dir / "site.toml",
            "[baseline]\nname = \"site\"\ntitle = \"Site\"\nversion = \"1\"\nplatforms = [\"debian12\"]\n\n"
            "[[rule]]\nid = \"dmesg\"\ntitle = \"Restrict the kernel log\"\nanssi = \"R9\"\nlevel = \"minimal\"\n"
            "kind = \"sysctl\"\nkey = \"kernel.dmesg_restrict\"\nvalue = \"1\"\n");
  auto before = parc::pkg::testing::Snapshot(tree);
  auto applied = Run({BinaryPath("parc-agent").string(), "policy", "apply", "--root", tree.string(), "--state-dir",
                      (dir / "agent-state").string(), "--baseline", (dir / "site.toml").string(), "--level", "minimal"});
  INFO(applied.out << applied.err);
  REQUIRE(applied.exit_code == 0);
  auto after = parc::pkg::testing::Snapshot(tree);
  std::set<std::string> serviced;  // what the apply changed, seen from outside
  for (const auto& [p, n] : after)
    if (!before.count(p) || !(before.at(p) == n)) serviced.insert(p);
  for (const auto& [p, n] : before)
    if (!after.count(p)) serviced.insert(p);
  REQUIRE(!serviced.empty());

  auto v2 = capture("2");
  CHECK(U64(v2, "chunks_reused") >= U64(v1, "chunks") - 2);
  auto r = ctl({"image", "diff", "master=1", "master=2", "--store", store.string(), "--json"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  auto diff = nlohmann::json::parse(r.out);
  std::set<std::string> in_diff;
  for (const auto& k : {"added", "removed"})
    if (diff.contains(k))
      for (const auto& p : diff[k]) in_diff.insert(p.get<std::string>());
  std::set<std::string> content_changed;
  if (diff.contains("changed"))
    for (const auto& c : diff["changed"]) {
      std::string what = c["what"];
      // A directory that gained a file changes only its mtime: not a serviced file.
      if (what != "mtime") in_diff.insert(c["path"].get<std::string>());
    }
  CHECK(in_diff == serviced);
  // The delta is small: a few chunks of the serviced files and the index,
  // nothing of the 2 MiB of unchanged content.
  CHECK(U64(diff, "chunks_to_transfer") <= serviced.size() + 3);
  CHECK(U64(diff, "bytes_to_transfer") < 64u << 10);
  CHECK(U64(diff, "chunks_total") > 20);
}

TEST_CASE("images: a deployment cut off by an agent crash resumes with the chunks it already fetched",
          "[integration][image]") {
  ImageLab lab;
  fs::path master = lab.dir / "master";
  BuildMaster(master);
  auto v1 = lab.Capture(master, "1");
  uint64_t chunks = U64(v1, "chunks");

  lab.agent->Stop();
  // Test-only fault injection: the agent SIGKILLs itself after ten chunks.
  ::setenv("PARC_CRASH_AT", "image-mid-fetch", 1);
  lab.agent->Start();
  ::unsetenv("PARC_CRASH_AT");
  std::string dep = lab.StartDeploy("1");
  REQUIRE(WaitFor([&] { return !lab.agent->Running(); }, 60s));
  CHECK(!fs::exists(lab.Target()));  // nothing swapped in
  lab.agent->Start();
  nlohmann::json job = lab.WaitJob(dep);
  INFO(job.dump(2) << lab.agent->Log());
  REQUIRE(job["state"] == "succeeded");
  auto stats = nlohmann::json::parse(job["output"].get<std::string>());
  CHECK(U64(stats, "from_cache") >= 1);  // fetched before the crash, not again
  CHECK(U64(stats, "fetched") < chunks);
  CHECK(U64(stats, "fetched") + U64(stats, "from_cache") == chunks);
  auto verified = lab.Verify("1");
  INFO(verified.out << verified.err);
  CHECK(verified.exit_code == 0);
}

TEST_CASE("images: a server killed in the middle of sending chunks is waited for, the deployment completes after its restart",
          "[integration][image]") {
  ImageLab lab;
  fs::path master = lab.dir / "master";
  BuildMaster(master);
  auto v1 = lab.Capture(master, "1");
  uint64_t chunks = U64(v1, "chunks");
  REQUIRE(chunks > 10);

  lab.server.Stop();
  // Test-only fault injection: the server SIGKILLs itself after sending ten chunks.
  ::setenv("PARC_CRASH_AT", "server-mid-objects", 1);
  lab.server.Start();
  ::unsetenv("PARC_CRASH_AT");
  REQUIRE(WaitFor([&] { return lab.server.CtlJson({"host", "show", lab.id})["summary"]["online"] == true; }, 60s));
  std::string dep = lab.StartDeploy("1");
  REQUIRE(WaitFor([&] { return !lab.server.Running(); }, 60s));
  CHECK(!fs::exists(lab.Target()));  // nothing swapped in
  lab.server.Start();  // the agent's fetch retries meanwhile (1 s, 2 s, ... apart)
  nlohmann::json job = lab.WaitJob(dep, 90s);
  INFO(job.dump(2) << lab.agent->Log());
  REQUIRE(job["state"] == "succeeded");
  auto stats = nlohmann::json::parse(job["output"].get<std::string>());
  CHECK(U64(stats, "fetched") + U64(stats, "from_cache") + U64(stats, "seeded") == chunks);
  auto verified = lab.Verify("1");
  INFO(verified.out << verified.err);
  CHECK(verified.exit_code == 0);
}

TEST_CASE("images: a block image (a disk image file) deployed to a file target, then a small change",
          "[integration][image]") {
  ImageLab lab;
  fs::path disk = lab.dir / "disk.img";
  std::string bytes = RandomBytes(2u << 20, 99);
  WriteFile(disk, bytes);
  auto capture = [&](const std::string& version) {
    auto r = lab.server.Ctl({"image", "capture", "--from", disk.string(), "--name", "disk", "--version", version, "--key",
                             lab.key.string(), "-o", lab.store.string(), "--push", "--json"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
  };
  auto deploy = [&](const std::string& version) {
    auto d = lab.server.CtlJson({"image", "deploy", "disk=" + version, "--to", "host:" + lab.id, "--target", "/srv/disk.img"});
    std::string dep = d["deployment_id"];
    nlohmann::json job;
    REQUIRE(WaitFor(
        [&] {
          auto r = lab.server.Ctl({"deploy", "status", dep, "--json"});
          if (r.exit_code != 0 && r.exit_code != 1) return false;
          job = nlohmann::json::parse(r.out)["jobs"][0];
          return job["state"] == "succeeded" || job["state"] == "failed";
        },
        60s));
    INFO(job.dump(2));
    REQUIRE(job["state"] == "succeeded");
    return nlohmann::json::parse(job["output"].get<std::string>());
  };
  fs::create_directories(lab.agent->root() / "srv");
  auto v1 = capture("1");
  CHECK(v1["kind"] == "block");
  // --watch follows the deployment to its end, as deploy status --watch does.
  auto watched = lab.server.Ctl({"image", "deploy", "disk=1", "--to", "host:" + lab.id, "--target", "/srv/watched.img",
                                 "--watch"});
  INFO(watched.out << watched.err);
  CHECK(watched.exit_code == 0);
  CHECK_THAT(watched.out, Catch::Contains("finished: completed"));
  CHECK(ReadFileOrEmpty(lab.agent->root() / "srv/watched.img") == bytes);
  auto watched_json = lab.server.Ctl({"image", "deploy", "disk=1", "--to", "host:" + lab.id, "--target",
                                      "/srv/watched2.img", "--watch", "--json"});
  INFO(watched_json.out << watched_json.err);
  CHECK(watched_json.exit_code == 0);  // every job succeeded
  CHECK(!watched_json.out.empty());
  // The same image to another target of the host: every chunk is in the agent's cache now.
  auto s1 = deploy("1");
  CHECK(U64(s1, "fetched") == 0);
  CHECK(U64(s1, "from_cache") == U64(v1, "chunks"));
  CHECK(ReadFileOrEmpty(lab.agent->root() / "srv/disk.img") == bytes);

  bytes.replace(1000000, 12, "twelve bytes");
  WriteFile(disk, bytes);
  capture("2");
  auto s2 = deploy("2");
  CHECK(U64(s2, "fetched") >= 1);
  CHECK(U64(s2, "fetched") <= 3);
  CHECK(U64(s2, "written_bytes") < 1u << 20);  // only the regions that differ were rewritten
  CHECK(ReadFileOrEmpty(lab.agent->root() / "srv/disk.img") == bytes);
}

TEST_CASE("images: a push that would fill the server's disk is refused before the parc database loses its room",
          "[integration][image][full]") {
  // The server's state directory is a 96 MiB tmpfs in a private mount
  // namespace of a child process (the test machine never sees it); the image
  // pushed holds 48 MiB of incompressible data, which would fit, but only by
  // leaving the database less than the 64 MiB the content store keeps free.
  TempDir dir("parc-image-full");
  const fs::path master = dir / "master";
  WriteFile(master / "etc/hostname", "big\n");
  WriteFile(master / "var/big.bin", RandomBytes(48u << 20, 11));
  const fs::path disk = dir / "disk";
  fs::create_directories(disk);
  std::string out = InPrivateMountNamespace([&]() -> std::string {
    std::ostringstream o;
    if (::mount("parc-test", disk.c_str(), "tmpfs", 0, "size=96m") != 0)
      return std::string("ERROR mount: ") + std::strerror(errno);
    Server server(disk / "server");
    server.Start();
    auto key = server.Ctl({"key", "create", "--name", "acme-it", "--dir", dir.path().string()});
    if (key.exit_code != 0) return "ERROR key create: " + key.err;
    auto push = server.Ctl({"image", "capture", "--from", master.string(), "--name", "big", "--version", "1", "--key",
                            (dir / "acme-it.key").string(), "-o", (dir / "store").string(), "--push"});
    o << "push_exit=" << push.exit_code << "\npush_err=" << push.err << "\n";
    // The server keeps serving, and its database still takes writes.
    auto token = server.Ctl({"token", "create"});
    o << "token_exit=" << token.exit_code << "\n";
    auto images = server.Ctl({"image", "list", "--json"});
    o << "images=" << images.out << "\n";
    struct statvfs vfs {};
    ::statvfs(disk.c_str(), &vfs);
    o << "free_mib=" << (static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >> 20) << "\n";
    o << "running=" << (server.Running() ? "yes" : "no") << "\n";
    return o.str();
  });
  INFO("this test needs to create a mount namespace (root or CAP_SYS_ADMIN)");
  INFO(out);
  REQUIRE_THAT(out, !Catch::Contains("ERROR"));
  CHECK_THAT(out, !Catch::Contains("push_exit=0\n"));
  CHECK_THAT(out, Catch::Contains("disk is nearly full") && Catch::Contains("parcctl image gc"));
  CHECK_THAT(out, Catch::Contains("token_exit=0\n"));
  CHECK_THAT(out, !Catch::Contains("\"big\""));  // not registered
  CHECK_THAT(out, Catch::Contains("running=yes"));
  auto at = out.find("free_mib=");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoul(out.substr(at + 9)) >= 60);  // the reserve, less the log and database growth
}
