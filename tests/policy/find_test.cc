// find kind: searches of a prepared root (world-writable files and
// directories, unowned files, setuid/setgid programs).
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

std::string FindRule(const std::string& fields) {
  return "[[rule]]\nid = \"find\"\ntitle = \"t\"\nanssi = \"R54\"\nlevel = \"minimal\"\nkind = \"find\"\n" + fields;
}

unsigned ModeOf(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

void Mode(const fs::path& p, unsigned mode) { REQUIRE(::chmod(p.c_str(), mode) == 0); }

void RollBack(const test::PolicyRoot& r, const std::string& point, const pkg::testing::TreeSnapshot& before) {
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(point);
  if (!rb) FAIL(rb.error().message());
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
}

std::string ParseError(const std::string& rule) {
  std::string text = "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n\n" + rule;
  auto b = policy::ParseBaseline(text, "find.toml");
  REQUIRE_FALSE(b);
  return b.error().message();
}

// A root with something of each kind, and the same things under always- or
// rule-excluded places where they must not be reported.
void Populate(const test::PolicyRoot& r) {
  r.Write("/etc/hosts", "127.0.0.1 localhost\n", 0644);
  r.Write("/var/tmp/shared.txt", "x\n", 0666);
  r.Write("/opt/app/cache/state", "x\n", 0646);
  fs::create_directories(r.Host("/tmp"));
  Mode(r.Host("/tmp"), 01777);
  fs::create_directories(r.Host("/srv/drop"));
  Mode(r.Host("/srv/drop"), 0777);
  for (const char* p : {"/proc/1/ww", "/sys/x/ww", "/dev/shm/ww", "/run/lock/ww", "/home/u/ww"}) {
    r.Write(p, "x\n", 0666);
    Mode(r.Host(p).parent_path(), 0777);
  }
}

}  // namespace

TEST_CASE("find: world-writable files are found, fixed, and the fix rolled back", "[policy][find]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(FindRule("search = \"world_writable_files\"\nexclude = [\"/home\"]\n"));

  SECTION("a clean root passes") {
    r.Write("/etc/hosts", "h\n", 0644);
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK_THAT(res.found, Catch::StartsWith("none found in ") && Catch::EndsWith(" entries"));
    CHECK(res.expected == "no world-writable files (excluded: /proc, /sys, /dev, /run, /home)");
  }
  SECTION("findings are listed with their count; excluded places are not searched") {
    Populate(r);
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "2 found: /opt/app/cache/state, /var/tmp/shared.txt");
    CHECK_FALSE(res.manual);
  }
  SECTION("remediation removes o+w only, a second apply does nothing, rollback restores the tree") {
    Populate(r);
    auto before = pkg::testing::Snapshot(r.root());
    auto applied = test::ApplyAll(b, r);
    REQUIRE_FALSE(applied.point.id.empty());
    CHECK(applied.after.rules[0].status == policy::Status::kPass);
    CHECK(ModeOf(r.Host("/var/tmp/shared.txt")) == 0664);
    CHECK(ModeOf(r.Host("/opt/app/cache/state")) == 0644);
    CHECK(ModeOf(r.Host("/home/u/ww")) == 0666);   // excluded by the rule
    CHECK(ModeOf(r.Host("/proc/1/ww")) == 0666);   // always excluded
    CHECK(r.Read("/var/tmp/shared.txt") == "x\n");
    CHECK(test::ApplyAll(b, r).point.id.empty());
    RollBack(r, applied.point.id, before);
  }
}

TEST_CASE("find: at most 20 paths are listed, the smallest first, with the total", "[policy][find]") {
  test::PolicyRoot r;
  for (int i = 0; i < 25; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/data/f%02d", i);
    r.Write(name, "x", 0666);
  }
  auto res = test::CheckOne(test::MakeBaseline(FindRule("search = \"world_writable_files\"\n")), r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK_THAT(res.found, Catch::StartsWith("25 found: /data/f00, /data/f01,") &&
                            Catch::Contains("/data/f19, ... (5 more)") && !Catch::Contains("/data/f20"));
}

TEST_CASE("find: world-writable directories get the sticky bit", "[policy][find]") {
  test::PolicyRoot r;
  Populate(r);
  auto b = test::MakeBaseline(FindRule("search = \"world_writable_dirs_without_sticky\"\nexclude = [\"/home/\"]\n"));
  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.found == "1 found: /srv/drop");
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(ModeOf(r.Host("/srv/drop")) == 01777);
  CHECK(ModeOf(r.Host("/tmp")) == 01777);
  CHECK(ModeOf(r.Host("/home/u")) == 0777);
  CHECK(test::ApplyAll(b, r).point.id.empty());
  RollBack(r, applied.point.id, before);
}

TEST_CASE("find: unowned files and setuid programs are manual", "[policy][find]") {
  test::PolicyRoot r;
  r.Write("/srv/orphan", "x\n", 0644);
  REQUIRE(::lchown(r.Host("/srv/orphan").c_str(), 4242, 0) == 0);
  r.Write("/srv/badgroup", "x\n", 0644);
  REQUIRE(::lchown(r.Host("/srv/badgroup").c_str(), 1, 4343) == 0);
  fs::create_symlink("orphan", r.Host("/srv/orphan-link"));
  REQUIRE(::lchown(r.Host("/srv/orphan-link").c_str(), 4242, 4242) == 0);
  r.Write("/usr/bin/passwd", "bin", 0755);
  Mode(r.Host("/usr/bin/passwd"), 04755);
  r.Write("/usr/bin/wall", "bin", 0755);
  Mode(r.Host("/usr/bin/wall"), 02755);
  r.Write("/usr/local/bin/evil", "bin", 0755);
  Mode(r.Host("/usr/local/bin/evil"), 04755);

  auto unowned = test::MakeBaseline(FindRule("search = \"unowned\"\n"));
  auto u = test::CheckOne(unowned, r.root());
  CHECK(u.status == policy::Status::kFail);
  CHECK(u.found == "3 found: /srv/badgroup, /srv/orphan, /srv/orphan-link");
  CHECK(u.manual);
  CHECK_THAT(u.message, Catch::Contains("chown"));

  auto setuid = test::MakeBaseline(FindRule("search = \"setuid_setgid\"\nallowed = [\"/usr/bin/passwd\", \"/usr/bin/w*\"]\n"));
  auto s = test::CheckOne(setuid, r.root());
  CHECK(s.status == policy::Status::kFail);
  CHECK(s.found == "1 found: /usr/local/bin/evil");
  CHECK(s.manual);

  // Manual findings are not touched by an apply: no rollback point.
  auto before = pkg::testing::Snapshot(r.root());
  CHECK(test::ApplyAll(unowned, r).point.id.empty());
  CHECK(test::ApplyAll(setuid, r).point.id.empty());
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
}

TEST_CASE("find: not applicable on another platform", "[policy][find]") {
  // find has no "thing checked" that can be missing: only the platform makes it na.
  test::PolicyRoot r;
  auto b = test::MakeBaseline(FindRule("platforms = [\"rhel\"]\nsearch = \"world_writable_files\"\n"));
  CHECK(test::CheckOne(b, r.root()).status == policy::Status::kNotApplicable);
}

TEST_CASE("find: links are not followed out of the root, nothing outside is changed", "[policy][find]") {
  test::PolicyRoot r;
  test::TempDir outside("parc-sentinel");
  fs::path sentinel = outside.path() / "dir" / "open";
  test::WriteFile(sentinel, "host\n");
  Mode(sentinel, 0666);
  Mode(sentinel.parent_path(), 0777);
  fs::create_directories(r.Host("/srv"));
  fs::create_symlink(sentinel.parent_path(), r.Host("/srv/hostdir"));  // absolute, to the host
  fs::create_symlink(sentinel, r.Host("/srv/hostfile"));
  r.Write("/srv/mine", "x\n", 0666);

  auto files = test::MakeBaseline(FindRule("search = \"world_writable_files\"\n"));
  auto dirs = test::MakeBaseline(FindRule("search = \"world_writable_dirs_without_sticky\"\n"));
  auto f = test::CheckOne(files, r.root());
  CHECK(f.found == "1 found: /srv/mine");
  CHECK(test::CheckOne(dirs, r.root()).status == policy::Status::kPass);
  test::ApplyAll(files, r);
  test::ApplyAll(dirs, r);
  CHECK(ModeOf(r.Host("/srv/mine")) == 0664);
  CHECK(ModeOf(sentinel) == 0666);
  CHECK(ModeOf(sentinel.parent_path()) == 0777);
  CHECK(test::ReadFileOrEmpty(sentinel) == "host\n");
}

TEST_CASE("find: another filesystem mounted inside the root is not entered", "[policy][find]") {
  // The mount lives in a private mount namespace of a child process: the
  // test machine's mount table never sees it.
  test::PolicyRoot r;
  r.Write("/var/tmp/mine", "x\n", 0666);
  fs::create_directories(r.Host("/mnt/other"));
  auto b = test::MakeBaseline(FindRule("search = \"world_writable_files\"\n"));
  std::string out = test::InPrivateMountNamespace([&]() -> std::string {
    if (::mount("parc-test", r.Host("/mnt/other").c_str(), "tmpfs", 0, nullptr) != 0) return std::string("ERROR mount: ") + std::strerror(errno);
    test::WriteFile(r.Host("/mnt/other/theirs"), "x\n");
    ::chmod(r.Host("/mnt/other/theirs").c_str(), 0666);
    policy::SelectOptions s;
    s.level = policy::Level::kHigh;
    auto rep = policy::CheckBaseline(b, r.root(), s);
    return rep.rules.empty() ? "ERROR no result" : rep.rules[0].found;
  });
  INFO("this test needs to create a mount namespace (root or CAP_SYS_ADMIN)");
  CHECK(out == "1 found: /var/tmp/mine");
  CHECK_FALSE(fs::exists(r.Host("/mnt/other/theirs")));  // it was on the tmpfs, gone with the namespace
}

TEST_CASE("find: bad fields are parse errors naming the key", "[policy][find]") {
  CHECK_THAT(ParseError(FindRule("search = \"everything\"\n")), Catch::Contains("find.toml:12:") && Catch::Contains("key 'search'"));
  CHECK_THAT(ParseError(FindRule("search = \"unowned\"\nexclude = [\"home\"]\n")), Catch::Contains("key 'exclude'"));
  CHECK_THAT(ParseError(FindRule("search = \"unowned\"\nexclude = [\"/\"]\n")), Catch::Contains("key 'exclude'"));
  CHECK_THAT(ParseError(FindRule("search = \"unowned\"\nallowed = [\"/usr/bin/su\"]\n")),
             Catch::Contains("key 'allowed'") && Catch::Contains("setuid_setgid"));
  CHECK_THAT(ParseError(FindRule("search = \"setuid_setgid\"\nallowed = \"/usr/bin/su\"\n")), Catch::Contains("key 'allowed'"));
}
