// permissions kind: owner, group and maximum mode of paths in a prepared root.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

std::string PermRule(const std::string& fields) {
  return "[[rule]]\nid = \"perm\"\ntitle = \"t\"\nanssi = \"R50\"\nlevel = \"minimal\"\nkind = \"permissions\"\n" + fields;
}

struct Meta {
  unsigned mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

Meta MetaOf(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return {static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
}

void Own(const fs::path& p, uid_t uid, gid_t gid) { REQUIRE(::lchown(p.c_str(), uid, gid) == 0); }

void RollBack(const test::PolicyRoot& r, const std::string& point, const pkg::testing::TreeSnapshot& before) {
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(point);
  if (!rb) FAIL(rb.error().message());
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
}

// Line (1-based) of the first line of text starting with prefix.
int LineOf(const std::string& text, const std::string& prefix) {
  int n = 1;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text.compare(pos, prefix.size(), prefix) == 0) return n;
    pos = text.find('\n', pos);
    if (pos == std::string::npos) break;
    ++pos;
    ++n;
  }
  return -1;
}

std::string ParseError(const std::string& rule) {
  std::string text = "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n\n" + rule;
  auto b = policy::ParseBaseline(text, "perm.toml");
  REQUIRE_FALSE(b);
  return b.error().message();
}

}  // namespace

TEST_CASE("permissions: pass, fail with what is wrong, remediate, idempotent, rollback", "[policy][permissions]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(PermRule("paths = [\"/etc/shadow\", \"/etc/gshadow\"]\nowner = \"root\"\ngroup = \"shadow\"\nmode = \"0640\"\n"));
  r.Write("/etc/shadow", "root:*:19000::::::\n", 0640);
  r.Write("/etc/gshadow", "root:*::\n", 0640);
  Own(r.Host("/etc/shadow"), 0, 42);
  Own(r.Host("/etc/gshadow"), 0, 42);

  SECTION("compliant files pass, with what was seen") {
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "2 paths checked, all compliant");
    CHECK(res.expected == "/etc/shadow, /etc/gshadow: owner root, group shadow, mode 0640 or stricter");
  }
  SECTION("a stricter mode passes (mode is a maximum)") {
    ::chmod(r.Host("/etc/shadow").c_str(), 0600);
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
  }
  SECTION("wrong owner, group and extra bits fail, each named") {
    ::chmod(r.Host("/etc/shadow").c_str(), 0644);
    Own(r.Host("/etc/shadow"), 1, 0);
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "/etc/shadow: owner daemon, group root, mode 0644 (0004 not allowed) (1 of 2 paths not compliant)");
    CHECK_FALSE(res.manual);
  }
  SECTION("apply fixes owner, group and mode only; rollback restores them exactly") {
    ::chmod(r.Host("/etc/shadow").c_str(), 0664);
    Own(r.Host("/etc/shadow"), 1, 1);
    ::chmod(r.Host("/etc/gshadow").c_str(), 0400);  // stricter: must stay 0400
    auto before = pkg::testing::Snapshot(r.root());
    auto applied = test::ApplyAll(b, r);
    REQUIRE_FALSE(applied.point.id.empty());
    CHECK(applied.before.rules[0].status == policy::Status::kFail);
    CHECK(applied.after.rules[0].status == policy::Status::kPass);
    CHECK(applied.after.rules[0].remediated);
    Meta m = MetaOf(r.Host("/etc/shadow"));
    CHECK(m.mode == 0640);
    CHECK(m.uid == 0);
    CHECK(m.gid == 42);
    CHECK(MetaOf(r.Host("/etc/gshadow")).mode == 0400);
    CHECK(r.Read("/etc/shadow") == "root:*:19000::::::\n");

    auto again = test::ApplyAll(b, r);
    CHECK(again.point.id.empty());
    RollBack(r, applied.point.id, before);
    CHECK(MetaOf(r.Host("/etc/shadow")).mode == 0664);
    CHECK(MetaOf(r.Host("/etc/shadow")).uid == 1);
  }
}

TEST_CASE("permissions: chown keeps a setuid bit the rule allows", "[policy][permissions]") {
  // chown(2) clears setuid/setgid even for root; the remediation must set the mode after it.
  test::PolicyRoot r;
  r.Write("/usr/bin/passwd", "#!binary\n", 04755);
  Own(r.Host("/usr/bin/passwd"), 1, 1);
  ::chmod(r.Host("/usr/bin/passwd").c_str(), 04755);
  REQUIRE(MetaOf(r.Host("/usr/bin/passwd")).mode == 04755);
  auto b = test::MakeBaseline(PermRule("paths = [\"/usr/bin/passwd\"]\nowner = \"root\"\ngroup = \"root\"\nmode = \"4755\"\n"));
  auto applied = test::ApplyAll(b, r);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  Meta m = MetaOf(r.Host("/usr/bin/passwd"));
  CHECK(m.mode == 04755);
  CHECK(m.uid == 0);
}

TEST_CASE("permissions: globs, recursive walks and the type filter", "[policy][permissions]") {
  test::PolicyRoot r;
  r.Write("/etc/cron.d/a", "a\n", 0644);
  r.Write("/etc/cron.d/b", "b\n", 0600);
  r.Write("/etc/cron.d/.placeholder", "p\n", 0644);  // * does not match dot files, as in a shell
  r.Write("/var/log/app/x.log", "x\n", 0666);
  r.Write("/var/log/app/sub/y.log", "y\n", 0644);
  ::chmod(r.Host("/var/log/app/sub").c_str(), 0777);

  SECTION("a glob in the last component checks every match") {
    auto b = test::MakeBaseline(PermRule("paths = [\"/etc/cron.d/*\"]\nmode = \"0600\"\n"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "/etc/cron.d/a: mode 0644 (0044 not allowed) (1 of 2 paths not compliant)");
    test::ApplyAll(b, r);
    CHECK(MetaOf(r.Host("/etc/cron.d/a")).mode == 0600);
    CHECK(MetaOf(r.Host("/etc/cron.d/.placeholder")).mode == 0644);
  }
  SECTION("recursive with type = file leaves directories alone") {
    auto b = test::MakeBaseline(PermRule("paths = [\"/var/log/app\"]\nrecursive = true\ntype = \"file\"\nmode = \"0640\"\n"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK_THAT(res.found, Catch::Contains("/var/log/app/x.log: mode 0666 (0026 not allowed)") &&
                              Catch::Contains("/var/log/app/sub/y.log: mode 0644 (0004 not allowed)") &&
                              Catch::Contains("(2 of 2 paths not compliant)"));
    auto before = pkg::testing::Snapshot(r.root());
    auto applied = test::ApplyAll(b, r);
    CHECK(applied.after.rules[0].status == policy::Status::kPass);
    CHECK(MetaOf(r.Host("/var/log/app/x.log")).mode == 0640);
    CHECK(MetaOf(r.Host("/var/log/app/sub/y.log")).mode == 0640);
    CHECK(MetaOf(r.Host("/var/log/app/sub")).mode == 0777);
    RollBack(r, applied.point.id, before);
  }
  SECTION("type = dir checks directories only") {
    auto b = test::MakeBaseline(PermRule("paths = [\"/var/log/app\"]\nrecursive = true\ntype = \"dir\"\nmode = \"0755\"\n"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "/var/log/app/sub: mode 0777 (0022 not allowed) (1 of 2 paths not compliant)");
  }
}

TEST_CASE("permissions: not applicable when nothing matches, unknown owner is an error", "[policy][permissions]") {
  test::PolicyRoot r;
  auto na = test::MakeBaseline(PermRule("paths = [\"/etc/nothing-here\", \"/etc/none.d/*\"]\nmode = \"0600\"\n"));
  auto res = test::CheckOne(na, r.root());
  CHECK(res.status == policy::Status::kNotApplicable);
  CHECK(res.message == "nothing matches /etc/nothing-here, /etc/none.d/*");

  r.Write("/etc/x", "x\n", 0600);
  // "nobody" exists on the test machine but not in this root's passwd.
  auto unknown = test::MakeBaseline(PermRule("paths = [\"/etc/x\"]\nowner = \"nobody\"\n"));
  auto e = test::CheckOne(unknown, r.root());
  CHECK(e.status == policy::Status::kError);
  CHECK_THAT(e.message, Catch::Contains("user 'nobody' does not exist") && Catch::Contains(r.root().string() + "/etc/passwd"));
  auto numeric = test::MakeBaseline(PermRule("paths = [\"/etc/x\"]\nowner = \"0\"\ngroup = \"42\"\n"));
  auto n = test::CheckOne(numeric, r.root());
  CHECK(n.status == policy::Status::kFail);
  CHECK(n.found == "/etc/x: group root (1 of 1 paths not compliant)");
}

TEST_CASE("permissions: links leading out of the root are refused or stay inside it", "[policy][permissions]") {
  test::PolicyRoot r;
  test::TempDir outside("parc-sentinel");
  fs::path sentinel_dir = outside.path() / "dir";
  fs::path sentinel = sentinel_dir / "secret";
  test::WriteFile(sentinel, "host secret\n");
  ::chmod(sentinel.c_str(), 0666);
  ::chmod(sentinel_dir.c_str(), 0777);
  Meta file_before = MetaOf(sentinel), dir_before = MetaOf(sentinel_dir);

  // A relative link climbing above the root: refused, the check reports it.
  int ups = 0;
  for (auto p = r.root(); p != p.root_path(); p = p.parent_path()) ++ups;
  std::string climb;
  for (int i = 0; i < ups + 2; ++i) climb += "../";
  fs::create_directories(r.Host("/etc"));
  fs::create_symlink(climb + sentinel.relative_path().string(), r.Host("/etc/climb"));
  // An absolute link to the host's directory: read inside the root (absent there).
  fs::create_symlink(sentinel_dir, r.Host("/etc/abs"));
  // A link met during a recursive walk: never followed.
  r.Write("/srv/data/ok", "ok\n", 0644);
  fs::create_symlink(sentinel_dir, r.Host("/srv/data/link"));

  auto climb_rule = test::MakeBaseline(PermRule("paths = [\"/etc/climb\"]\nmode = \"0600\"\n"));
  auto res = test::CheckOne(climb_rule, r.root());
  CHECK(res.status == policy::Status::kError);
  CHECK_THAT(res.message, Catch::Contains("climbs above the root") && Catch::Contains("refused"));

  fs::create_symlink(climb + sentinel_dir.relative_path().string(), r.Host("/etc/climbdir"));
  auto climb_glob = test::CheckOne(test::MakeBaseline(PermRule("paths = [\"/etc/climbdir/*\"]\nmode = \"0600\"\n")), r.root());
  CHECK(climb_glob.status == policy::Status::kError);
  CHECK_THAT(climb_glob.message, Catch::Contains("climbs above the root"));

  auto abs_rule = test::MakeBaseline(PermRule("paths = [\"/etc/abs/*\", \"/etc/abs\"]\nmode = \"0600\"\n"));
  CHECK(test::CheckOne(abs_rule, r.root()).status == policy::Status::kNotApplicable);

  auto walk_rule = test::MakeBaseline(PermRule("paths = [\"/srv/data\"]\nrecursive = true\nmode = \"0600\"\n"));
  auto walk = test::CheckOne(walk_rule, r.root());
  CHECK(walk.status == policy::Status::kFail);
  CHECK_THAT(walk.found, !Catch::Contains("secret") && Catch::Contains("(2 of 2 paths not compliant)"));

  for (const auto* b : {&climb_rule, &abs_rule, &walk_rule}) {
    policy::SelectOptions s;
    s.level = policy::Level::kHigh;
    auto engine = policy::Engine::Open(r.root(), r.state());
    REQUIRE(engine);
    (void)(*engine)->Apply(*b, s);
  }
  CHECK(MetaOf(r.Host("/srv/data/ok")).mode == 0600);
  CHECK(test::ReadFileOrEmpty(sentinel) == "host secret\n");
  Meta file_after = MetaOf(sentinel), dir_after = MetaOf(sentinel_dir);
  CHECK(file_after.mode == file_before.mode);
  CHECK(dir_after.mode == dir_before.mode);
  CHECK(file_after.uid == file_before.uid);
}

TEST_CASE("permissions: bad fields are parse errors naming the line and key", "[policy][permissions]") {
  std::string bad_mode = PermRule("paths = [\"/etc/shadow\"]\nmode = \"0999\"\n");
  auto m = ParseError(bad_mode);
  std::string full = "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n\n" + bad_mode;
  CHECK_THAT(m, Catch::Contains("perm.toml:" + std::to_string(LineOf(full, "mode =")) + ":") && Catch::Contains("key 'mode'"));

  CHECK_THAT(ParseError(PermRule("paths = [\"/etc/shadow\"]\n")), Catch::Contains("key 'paths'") && Catch::Contains("at least one of owner, group, mode"));
  CHECK_THAT(ParseError(PermRule("paths = [\"etc/shadow\"]\nmode = \"0600\"\n")), Catch::Contains("key 'paths'") && Catch::Contains("not an absolute path"));
  CHECK_THAT(ParseError(PermRule("paths = [\"/etc/../shadow\"]\nmode = \"0600\"\n")), Catch::Contains("key 'paths'") && Catch::Contains(".."));
  CHECK_THAT(ParseError(PermRule("paths = [\"/etc/shadow\"]\nmode = \"0600\"\ntype = \"socket\"\n")), Catch::Contains("key 'type'"));
  CHECK_THAT(ParseError(PermRule("paths = [\"/etc/shadow\"]\nowner = \"root:root\"\n")), Catch::Contains("key 'owner'"));
  CHECK_THAT(ParseError(PermRule("paths = [\"/etc/shadow\"]\nmode = \"0600\"\nrecursive = \"yes\"\n")), Catch::Contains("key 'recursive'"));
}
