// Software distribution end to end: real parc-server and parc-agents on
// loopback (mutual TLS), real signed packages built by the tests, parcctl
// pushing them into the content store and deploying them to groups. Checks
// what lands in the agents' prepared roots, the rollback points in the parc
// database, a canary halt, and a deployment surviving a server restart.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <thread>

#include "harness.h"
#include "inventory_fixture.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "pkg_fixture.h"

using namespace parc::test;
using namespace parc::pkg::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct Fleet {
  TempDir dir{"parc-deploy"};
  Server server{dir / "server"};
  std::vector<std::unique_ptr<Agent>> agents;
  // Host ids, read right after enrollment: `parc-agent status` may not open the
  // outbox while the agent itself starts, so it is not asked afterwards.
  std::vector<std::string> ids;
  parc::pkg::KeyPair key = TestKey("acme-it");

  explicit Fleet(int n, const std::string& group = "lab") {
    server.Start();
    REQUIRE(server.Ctl({"group", "create", group}).exit_code == 0);
    for (int i = 0; i < n; ++i) {
      fs::path root = dir / ("root" + std::to_string(i));
      BuildWorkstationRoot(root);
      MakeDistinctMachine(root, i);
      auto agent = std::make_unique<Agent>(dir / ("agent" + std::to_string(i)), root);
      auto [token, fp] = server.Token(group);
      auto r = agent->Enroll(server, token, fp);
      REQUIRE(r.exit_code == 0);
      ids.push_back(agent->host_id());
      REQUIRE(!ids.back().empty());
      agent->Start();
      agents.push_back(std::move(agent));
    }
    for (const auto& id : ids)
      REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", id})["summary"]["online"] == true; }));
    WriteFile(dir / "acme-it.pub", key.public_key.Pem());
    auto added = server.Ctl({"key", "add", (dir / "acme-it.pub").string(), "--name", "acme-it"});
    REQUIRE(added.exit_code == 0);
  }

  // Builds, signs (now) and pushes a package; returns its path.
  fs::path Push(const TestPackageSpec& spec) {
    fs::path out = dir / (spec.name + "_" + spec.version + ".parc");
    auto m = BuildTestPackage(dir / ("src-" + spec.name + spec.version), spec, out, &key, parc::NowUnix() - 60,
                              parc::NowUnix() + 86400);
    REQUIRE(m);
    auto r = server.Ctl({"package", "push", out.string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return out;
  }

  // Creates a deployment and returns its id.
  std::string Deploy(std::vector<std::string> args) {
    args.insert(args.begin(), {"deploy", "create"});
    auto j = server.CtlJson(args);
    std::string id = j["deployment_id"];
    REQUIRE(!id.empty());
    return id;
  }

  // parcctl deploy status exits 1 once a deployment finished with failures: parse either way.
  nlohmann::json Status(const std::string& id) const {
    auto r = server.Ctl({"deploy", "status", id, "--json"});
    INFO(r.out << r.err);
    REQUIRE((r.exit_code == 0 || r.exit_code == 1));
    return nlohmann::json::parse(r.out);
  }

  bool Finished(const std::string& id) const {
    auto j = Status(id);
    std::string state = j["state"];
    if (state != "completed") return false;
    for (const auto& job : j["jobs"])
      if (job["state"] != "succeeded" && job["state"] != "failed" && job["state"] != "canceled") return false;
    return true;
  }
};

TestPackageSpec Hello(const std::string& version, const std::string& greeting) {
  TestPackageSpec s;
  s.name = "hello";
  s.version = version;
  s.entries.push_back({"/opt/hello", parc::pkg::EntryType::kDirectory, "", 0755, ""});
  s.entries.push_back({"/opt/hello/greeting.txt", parc::pkg::EntryType::kFile, greeting, 0644, ""});
  s.entries.push_back({"/opt/hello/hello.sh", parc::pkg::EntryType::kFile, "#!/bin/sh\necho " + greeting + "\n", 0755, ""});
  return s;
}

}  // namespace

TEST_CASE("a signed package deployed to a group installs on every agent, upgrades, and rolls back exactly",
          "[integration][deploy]") {
  Fleet fleet(2);
  fleet.Push(Hello("1.0-1", "hello one"));
  // Identical bytes pushed again are stored once and accepted.
  auto again = fleet.server.Ctl({"package", "push", (fleet.dir / "hello_1.0-1.parc").string()});
  CHECK(again.exit_code == 0);

  std::string d1 = fleet.Deploy({"hello=1.0-1", "--to", "group:lab"});
  REQUIRE(WaitFor([&] { return fleet.Finished(d1); }, 60s));
  auto st = fleet.Status(d1);
  INFO(st.dump(2));
  for (const auto& job : st["jobs"]) CHECK(job["state"] == "succeeded");
  for (auto& a : fleet.agents) {
    CHECK(ReadFileOrEmpty(a->root() / "opt/hello/greeting.txt") == "hello one");
    struct stat sb {};
    REQUIRE(::stat((a->root() / "opt/hello/hello.sh").c_str(), &sb) == 0);
    CHECK((sb.st_mode & 07777) == 0755);
  }

  // Upgrade one host at a time.
  fleet.Push(Hello("2.0-1", "hello two"));
  std::string d2 = fleet.Deploy({"hello", "--to", "group:lab", "--max-parallel", "1"});
  REQUIRE(WaitFor([&] { return fleet.Finished(d2); }, 60s));
  for (auto& a : fleet.agents) CHECK(ReadFileOrEmpty(a->root() / "opt/hello/greeting.txt") == "hello two");

  // The rollback points are in the parc database; restoring the upgrade's
  // point brings version 1 back on that host only.
  const auto& a0 = *fleet.agents[0];
  nlohmann::json points;
  REQUIRE(WaitFor([&] {
    points = fleet.server.CtlJson({"rollback-points", fleet.ids[0]});
    return points["points"].size() >= 2;
  }));
  std::string upgrade_point;
  for (const auto& p : points["points"])
    if (p["to_version"] == "2.0-1" && p["state"] == "committed") upgrade_point = p["point_id"];
  INFO(points.dump(2));
  REQUIRE(!upgrade_point.empty());
  auto rb = fleet.server.Ctl({"rollback", fleet.ids[0], upgrade_point});
  INFO(rb.out << rb.err);
  REQUIRE(rb.exit_code == 0);
  CHECK(WaitFor([&] { return ReadFileOrEmpty(a0.root() / "opt/hello/greeting.txt") == "hello one"; }, 30s));
  CHECK(ReadFileOrEmpty(fleet.agents[1]->root() / "opt/hello/greeting.txt") == "hello two");

  // Remove from the whole group.
  std::string d3 = fleet.Deploy({"hello", "--to", "group:lab", "--remove"});
  REQUIRE(WaitFor([&] { return fleet.Finished(d3); }, 60s));
  for (auto& a : fleet.agents) CHECK_FALSE(fs::exists(a->root() / "opt/hello/greeting.txt"));
}

TEST_CASE("a failing package halts the rollout after the canary host, leaving the other hosts untouched",
          "[integration][deploy]") {
  Fleet fleet(3);
  TestPackageSpec bad = Hello("1.0-1", "broken");
  bad.name = "broken";
  bad.scripts["post_install"] = "echo 'cannot configure the service' >&2\nexit 3\n";
  fleet.Push(bad);
  std::string id = fleet.Deploy({"broken", "--to", "group:lab", "--max-parallel", "1", "--halt-on-failure", "50%"});
  nlohmann::json st;
  REQUIRE(WaitFor([&] {
    st = fleet.Status(id);
    return st["state"] == "halted";
  }, 60s));
  INFO(st.dump(2));
  int failed = 0, pending = 0;
  for (const auto& job : st["jobs"]) {
    if (job["state"] == "failed") {
      ++failed;
      CHECK(job["message"].get<std::string>().find("post_install") != std::string::npos);
    }
    if (job["state"] == "pending") ++pending;
  }
  CHECK(failed == 1);
  CHECK(pending == 2);
  // The failed install was rolled back automatically: nothing of it remains anywhere.
  for (auto& a : fleet.agents) CHECK_FALSE(fs::exists(a->root() / "opt/hello/greeting.txt"));
  std::this_thread::sleep_for(2s);
  CHECK(fleet.Status(id)["state"] == "halted");

  auto cancel = fleet.server.Ctl({"deploy", "cancel", id});
  CHECK(cancel.exit_code == 0);
  CHECK(fleet.Status(id)["state"] == "canceled");
}

TEST_CASE("a deployment to an offline host survives a server restart and completes when the host returns",
          "[integration][deploy]") {
  Fleet fleet(1);
  fleet.Push(Hello("1.0-1", "after restart"));
  auto& agent = *fleet.agents[0];
  agent.Stop();
  REQUIRE(WaitFor([&] { return fleet.server.CtlJson({"host", "show", fleet.ids[0]})["summary"]["online"] == false; }));
  std::string id = fleet.Deploy({"hello", "--to", "host:" + fleet.ids[0]});
  CHECK(fleet.Status(id)["jobs"][0]["state"] == "pending");

  fleet.server.Kill();
  fleet.server.Start();
  agent.Start();
  REQUIRE(WaitFor([&] { return fleet.Finished(id); }, 60s));
  CHECK(fleet.Status(id)["jobs"][0]["state"] == "succeeded");
  CHECK(ReadFileOrEmpty(agent.root() / "opt/hello/greeting.txt") == "after restart");
}

TEST_CASE("an agent killed after the download and in the middle of applying finishes the job after its restart",
          "[integration][deploy]") {
  Fleet fleet(1);
  auto& agent = *fleet.agents[0];
  fleet.Push(Hello("1.0-1", "version one"));
  std::string d1 = fleet.Deploy({"hello=1.0-1", "--to", "group:lab"});
  REQUIRE(WaitFor([&] { return fleet.Finished(d1); }, 60s));
  fleet.Push(Hello("2.0-1", "version two"));

  for (const char* crash_at : {"after-fetch", "mid-apply"}) {
    INFO(crash_at);
    agent.Stop();
    // Test-only fault injection: the agent SIGKILLs itself at that instant.
    ::setenv("PARC_CRASH_AT", crash_at, 1);
    agent.Start();
    ::unsetenv("PARC_CRASH_AT");
    std::string id = fleet.Deploy({"hello=2.0-1", "--to", "group:lab"});
    REQUIRE(WaitFor([&] { return !agent.Running(); }, 60s));
    // Killed: the root holds the old version, whole (the journal restores it at the next start at the latest).
    agent.Start();
    REQUIRE(WaitFor([&] { return fleet.Finished(id); }, 60s));
    CHECK(fleet.Status(id)["jobs"][0]["state"] == "succeeded");
    CHECK(ReadFileOrEmpty(agent.root() / "opt/hello/greeting.txt") == "version two");
    CHECK(ReadFileOrEmpty(agent.root() / "opt/hello/hello.sh") == "#!/bin/sh\necho version two\n");
    // Back to version one for the next round (an ordered downgrade through a rollback point).
    if (std::string(crash_at) == "after-fetch") {
      auto points = fleet.server.CtlJson({"rollback-points", fleet.ids[0]});
      std::string point;
      for (const auto& p : points["points"])
        if (p["to_version"] == "2.0-1" && p["state"] == "committed") point = p["point_id"];
      REQUIRE(!point.empty());
      REQUIRE(fleet.server.Ctl({"rollback", fleet.ids[0], point}).exit_code == 0);
      REQUIRE(WaitFor([&] { return ReadFileOrEmpty(agent.root() / "opt/hello/greeting.txt") == "version one"; }, 30s));
    }
  }
}

TEST_CASE("a partial download resumes from its offset and a corrupted one is refused", "[integration][deploy]") {
  Fleet fleet(1);
  auto& agent = *fleet.agents[0];
  TestPackageSpec big = Hello("1.0-1", "big");
  std::string blob;
  for (int64_t i = 0; i < 300000; ++i) blob += std::to_string(i * 7919 % 100003) + ",";  // ~2 MB
  big.entries.push_back({"/opt/hello/data.csv", parc::pkg::EntryType::kFile, blob, 0644, ""});
  fs::path file = fleet.Push(big);
  std::string bytes = ReadFileOrEmpty(file);
  std::string sha = parc::Sha256Hex(bytes);
  fs::path cache = agent.state_dir() / "cache";

  // A corrupted partial download: the agent completes it, finds the digest wrong, refuses and discards it.
  agent.Stop();
  std::string corrupt = bytes.substr(0, bytes.size() / 2);
  corrupt[corrupt.size() / 2] ^= 0x01;
  WriteFile(cache / (sha + ".part"), corrupt);
  agent.Start();
  std::string d1 = fleet.Deploy({"hello", "--to", "group:lab"});
  REQUIRE(WaitFor([&] { return fleet.Finished(d1); }, 60s));
  auto st = fleet.Status(d1);
  CHECK(st["jobs"][0]["state"] == "failed");
  CHECK(st["jobs"][0]["message"].get<std::string>().find("does not match its digest") != std::string::npos);
  CHECK_FALSE(fs::exists(agent.root() / "opt/hello/data.csv"));
  CHECK_FALSE(fs::exists(cache / (sha + ".part")));

  // A clean partial download resumes where it stopped.
  agent.Stop();
  WriteFile(cache / (sha + ".part"), bytes.substr(0, bytes.size() / 2));
  agent.Start();
  std::string d2 = fleet.Deploy({"hello", "--to", "group:lab"});
  REQUIRE(WaitFor([&] { return fleet.Finished(d2); }, 60s));
  CHECK(fleet.Status(d2)["jobs"][0]["state"] == "succeeded");
  CHECK(agent.Log().find("resuming the download of " + sha.substr(0, 12) + " at byte " +
                         std::to_string(bytes.size() / 2)) != std::string::npos);
  CHECK(ReadFileOrEmpty(agent.root() / "opt/hello/data.csv") == blob);
}

TEST_CASE("removing a package version deletes its file, never during its deployment, and hosts keep what they installed",
          "[integration][deploy][remove]") {
  Fleet fleet(1);
  fleet.Push(Hello("1.0-1", "one"));
  fleet.Push(Hello("2.0-1", "two"));
  auto& agent = *fleet.agents[0];
  auto file_of = [&](const std::string& version) {
    auto list = fleet.server.CtlJson({"package", "list", "hello"});  // kept: the loop below reads into it
    for (const auto& p : list["packages"])
      if (p["version"] == version) {
        std::string sha = p["sha256"];
        return fleet.server.state_dir() / "content/objects" / sha.substr(0, 2) / sha;
      }
    FAIL("hello " << version << " is not listed: " << list.dump());
    return fs::path();
  };
  const fs::path one = file_of("1.0-1"), two = file_of("2.0-1");
  REQUIRE(fs::exists(one));

  // While a deployment of 2.0-1 is not finished, it stays.
  agent.Stop();
  REQUIRE(WaitFor([&] { return fleet.server.CtlJson({"host", "show", fleet.ids[0]})["summary"]["online"] == false; }));
  std::string pending = fleet.Deploy({"hello=2.0-1", "--to", "host:" + fleet.ids[0]});
  auto refused = fleet.server.Ctl({"package", "remove", "hello=2.0-1"});
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.err, Catch::Contains("deploy cancel"));
  CHECK(fs::exists(two));
  REQUIRE(fleet.server.Ctl({"deploy", "cancel", pending}).exit_code == 0);
  agent.Start();

  std::string id = fleet.Deploy({"hello=1.0-1", "--to", "host:" + fleet.ids[0]});
  REQUIRE(WaitFor([&] { return fleet.Finished(id); }, 60s));
  REQUIRE(fleet.Status(id)["jobs"][0]["state"] == "succeeded");

  const uint64_t one_size = fs::file_size(one);
  auto removed = fleet.server.CtlJson({"package", "remove", "hello=1.0-1"});
  INFO(removed.dump(2));
  CHECK(removed.value("content_deleted", false));
  CHECK(U64(removed, "bytes_freed") == one_size);
  CHECK_FALSE(fs::exists(one));
  CHECK(fs::exists(two));
  CHECK(ReadFileOrEmpty(agent.root() / "opt/hello/greeting.txt") == "one");  // the host keeps it
  CHECK(fleet.server.Ctl({"package", "show", "hello=1.0-1"}).exit_code != 0);
  CHECK(fleet.server.Ctl({"deploy", "create", "hello=1.0-1", "--to", "host:" + fleet.ids[0]}).exit_code != 0);
  CHECK(fleet.server.Ctl({"package", "remove", "hello=1.0-1"}).exit_code != 0);  // not registered any more
  CHECK(fleet.server.Ctl({"package", "remove", "hello"}).exit_code != 0);        // a version is required
  CHECK(fleet.server.CtlJson({"package", "list", "hello"})["packages"].size() == 1);
}

TEST_CASE("gc deletes package files pushed but never registered and uploads nobody resumed, after the grace period",
          "[integration][deploy][gc]") {
  Fleet fleet(0);
  fleet.Push(Hello("1.0-1", "one"));
  const fs::path content = fleet.server.state_dir() / "content";
  auto object_of = [&](const fs::path& file) {
    std::string sha = parc::Sha256Hex(ReadFileOrEmpty(file));
    return content / "objects" / sha.substr(0, 2) / sha;
  };
  const fs::path registered = object_of(fleet.dir / "hello_1.0-1.parc");
  REQUIRE(fs::exists(registered));

  // Signed by a key the server does not trust: stored, then its registration refused.
  auto mallory = TestKey("mallory");
  const fs::path rogue_file = fleet.dir / "rogue.parc";
  REQUIRE(BuildTestPackage(fleet.dir / "src-rogue", Hello("6.6-6", "rogue"), rogue_file, &mallory, parc::NowUnix() - 60,
                           parc::NowUnix() + 86400));
  auto refused = fleet.server.Ctl({"package", "push", rogue_file.string()});
  REQUIRE(refused.exit_code != 0);
  const fs::path rogue = object_of(rogue_file);
  REQUIRE(fs::exists(rogue));
  // Two unfinished uploads kept for a resume: one abandoned two days ago, one recent.
  const fs::path stale_part = content / "incoming" / (std::string(64, 'a') + ".part");
  const fs::path fresh_part = content / "incoming" / (std::string(64, 'b') + ".part");
  WriteFile(stale_part, std::string(1000, 'x'));
  WriteFile(fresh_part, std::string(500, 'y'));
  const auto two_days_ago = fs::file_time_type::clock::now() - std::chrono::hours(48);
  fs::last_write_time(stale_part, two_days_ago);

  // The same bytes pushed again start a new grace period: nothing of them goes.
  fs::last_write_time(rogue, two_days_ago);
  REQUIRE(fleet.server.Ctl({"package", "push", rogue_file.string()}).exit_code != 0);
  auto kept = fleet.server.CtlJson({"package", "gc"});
  INFO(kept.dump(2));
  CHECK(U64(kept, "objects_deleted") == 0);
  CHECK(U64(kept, "objects_recent") == 1);
  CHECK(U64(kept, "partial_uploads_deleted") == 1);
  CHECK(U64(kept, "partial_bytes_freed") == 1000);
  CHECK(fs::exists(rogue));
  CHECK_FALSE(fs::exists(stale_part));
  CHECK(fs::exists(fresh_part));

  fs::last_write_time(rogue, two_days_ago);
  auto dry = fleet.server.CtlJson({"image", "gc", "--dry-run"});
  INFO(dry.dump(2));
  CHECK(U64(dry, "unregistered_deleted") == 1);
  CHECK(fs::exists(rogue));
  auto gc = fleet.server.Ctl({"package", "gc"});
  INFO(gc.out << gc.err);
  REQUIRE(gc.exit_code == 0);
  CHECK_THAT(gc.out, Catch::Contains("1 of them package or policy files never registered"));
  CHECK_FALSE(fs::exists(rogue));
  CHECK(fs::exists(registered));
  CHECK(fs::exists(fresh_part));
  // Its record went with it: once its key is trusted, a push uploads it anew and registers it.
  WriteFile(fleet.dir / "mallory.pub", mallory.public_key.Pem());
  REQUIRE(fleet.server.Ctl({"key", "add", (fleet.dir / "mallory.pub").string(), "--name", "mallory"}).exit_code == 0);
  auto again = fleet.server.Ctl({"package", "push", rogue_file.string()});
  INFO(again.out << again.err);
  REQUIRE(again.exit_code == 0);
  CHECK(fs::exists(rogue));
  CHECK(fleet.server.CtlJson({"package", "list", "hello"})["packages"].size() == 2);
}
