// The transactional installer against prepared roots: install, upgrade,
// remove, refusals, automatic rollback on a failing step, config and service
// actions, and rollback points restoring byte-identical trees.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "installer_fixture.h"
#include "parc/common/files.h"

using namespace parc;
using namespace parc::pkg;
using namespace parc::pkg::testing;
namespace fs = std::filesystem;

namespace {

TestPackageSpec App(const std::string& version) {
  TestPackageSpec s;
  s.name = "app";
  s.version = version;
  s.entries = {
      {"/opt/app", EntryType::kDirectory, "", 0755, ""},
      {"/opt/app/bin/app", EntryType::kFile, "#!/bin/sh\necho app " + version + "\n", 0755, ""},
      {"/opt/app/lib/common.so", EntryType::kFile, "common " + version, 0644, ""},
      {"/opt/app/data/secret", EntryType::kFile, "secret " + version, 0640, ""},
      {"/usr/bin/app", EntryType::kSymlink, "", 0777, "../../opt/app/bin/app"},
  };
  s.extra_json = R"j({"overrides": {"/opt/app/data/secret": {"owner": "hello", "group": "staff"}}})j";
  return s;
}

std::string Text(const fs::path& p) { return parc::test::ReadFileOrEmpty(p); }

#define REQUIRE_OK(expr)                                                     \
  [&]() {                                                                    \
    auto _r = (expr);                                                        \
    if (!_r) FAIL("unexpected error: " << _r.error().message());            \
    return std::move(*_r);                                                   \
  }()

#define REQUIRE_SAME_TREE(expected, actual)          \
  do {                                               \
    std::string _d = DiffTrees((expected), (actual)); \
    INFO(_d);                                        \
    REQUIRE(_d.empty());                             \
  } while (0)

}  // namespace

TEST_CASE("installer: install places files with owners and modes from the root's account files", "[installer]") {
  InstallerEnv env;
  auto r = REQUIRE_OK(env.Install(App("1.0-1")));
  CHECK(r.message == "installed app 1.0-1");
  CHECK(r.point.state == "committed");
  CHECK(r.point.action == "install");
  CHECK(r.point.from_version.empty());
  CHECK(r.point.to_version == "1.0-1");

  CHECK(Text(env.root() / "opt/app/bin/app") == "#!/bin/sh\necho app 1.0-1\n");
  auto secret = LStat(env.root() / "opt/app/data/secret");
  CHECK(secret.uid == kHelloUid);
  CHECK(secret.gid == kStaffGid);
  CHECK(secret.mode == 0640);
  CHECK(LStat(env.root() / "opt/app/bin/app").mode == 0755);
  CHECK(fs::read_symlink(env.root() / "usr/bin/app") == "../../opt/app/bin/app");
  CHECK_FALSE(fs::exists(env.root() / ".parc-staging"));

  auto installed = REQUIRE_OK(env.installer().ListInstalled());
  REQUIRE(installed.size() == 1);
  CHECK(installed[0].name == "app");
  CHECK(installed[0].version == "1.0-1");
  auto points = REQUIRE_OK(env.installer().ListRollbackPoints());
  REQUIRE(points.size() == 1);
  CHECK(points[0].id == r.point.id);
}

TEST_CASE("installer: an owner unknown to the target root is refused before anything changes", "[installer]") {
  InstallerEnv env;
  auto spec = App("1.0-1");
  spec.extra_json = R"j({"overrides": {"/opt/app/data/secret": {"owner": "nobody-here"}}})j";
  auto before = env.Tree();
  auto r = env.Install(spec);
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(r.error().message(), Catch::Contains("nobody-here") && Catch::Contains("etc/passwd"));
  REQUIRE_SAME_TREE(before, env.Tree());
}

TEST_CASE("installer: upgrade changes, adds and removes files", "[installer]") {
  InstallerEnv env;
  REQUIRE_OK(env.Install(App("1.0-1")));
  auto v2 = App("2.0-1");
  v2.entries.erase(v2.entries.begin() + 2);  // common.so goes away
  v2.entries.push_back({"/opt/app/lib/new.so", EntryType::kFile, "new in 2", 0644, ""});
  auto r = REQUIRE_OK(env.Install(v2));
  CHECK(r.message == "upgraded app 2.0-1 (was 1.0-1)");
  CHECK(r.point.action == "upgrade");
  CHECK(r.point.from_version == "1.0-1");
  CHECK(Text(env.root() / "opt/app/bin/app") == "#!/bin/sh\necho app 2.0-1\n");
  CHECK(Text(env.root() / "opt/app/lib/new.so") == "new in 2");
  CHECK_FALSE(fs::exists(env.root() / "opt/app/lib/common.so"));
  CHECK(REQUIRE_OK(env.installer().Find("app"))->version == "2.0-1");
}

TEST_CASE("installer: the same version again is a successful no-op", "[installer]") {
  InstallerEnv env;
  REQUIRE_OK(env.Install(App("1.0-1")));
  parc::test::WriteFile(env.root() / "opt/app/lib/common.so", "locally changed");
  auto r = REQUIRE_OK(env.Install(App("1.0-1")));
  CHECK_THAT(r.message, Catch::Contains("already installed"));
  CHECK(r.point.id.empty());
  CHECK(Text(env.root() / "opt/app/lib/common.so") == "locally changed");
  CHECK(REQUIRE_OK(env.installer().ListRollbackPoints()).size() == 1);
  CHECK_FALSE(fs::exists(env.root() / ".parc-staging"));
}

TEST_CASE("installer: remove deletes the files, keeps shared directories and runs the kept remove scripts", "[installer]") {
  InstallerEnv env;
  parc::test::WriteFile(env.root() / "usr/bin/other-tool", "not ours");
  auto before = env.Tree();
  auto spec = App("1.0-1");
  spec.scripts["pre_remove"] = "#!/bin/sh\necho \"pre $PARC_ACTION $PARC_PACKAGE $PARC_VERSION\" > \"$PARC_ROOT/pre_remove.log\"\n";
  spec.scripts["post_remove"] = "#!/bin/sh\ntest -e opt/app/bin/app && echo still-there\necho post > post_remove.log\n";
  REQUIRE_OK(env.Install(spec));
  CHECK(fs::exists(env.state() / "scripts/app/post_remove"));
  auto r = REQUIRE_OK(env.installer().Remove("app", {}));
  CHECK(r.message == "removed app=1.0-1");
  CHECK(r.point.action == "remove");
  CHECK(r.point.to_version.empty());
  CHECK(Text(env.root() / "pre_remove.log") == "pre remove app 1.0-1\n");
  CHECK(Text(env.root() / "post_remove.log") == "post\n");  // cwd = root, files already gone
  fs::remove(env.root() / "pre_remove.log");
  fs::remove(env.root() / "post_remove.log");
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK_FALSE(fs::exists(env.state() / "scripts/app"));
  CHECK_FALSE(REQUIRE_OK(env.installer().Find("app")).has_value());
  auto again = env.installer().Remove("app", {});
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kNotFound));
}

TEST_CASE("installer: a missing dependency is refused and nothing changes", "[installer]") {
  InstallerEnv env;
  auto spec = App("1.0-1");
  spec.extra_json = R"j({"depends": ["libfoo (>= 2.0)"]})j";
  auto before = env.Tree();
  auto r = env.Install(spec);
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(r.error().message(), Catch::Contains("libfoo (>= 2.0)"));
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK(REQUIRE_OK(env.installer().ListRollbackPoints()).empty());

  // Satisfied through another package's provides.
  TestPackageSpec foo;
  foo.name = "foo-impl";
  foo.version = "1.0";
  foo.entries = {{"/opt/foo", EntryType::kFile, "foo", 0644, ""}};
  foo.extra_json = R"j({"provides": ["libfoo (= 2.1)"]})j";
  REQUIRE_OK(env.Install(foo));
  REQUIRE_OK(env.Install(spec));

  // An upgrade of foo-impl that stops providing libfoo would break app.
  auto foo2 = foo;
  foo2.version = "2.0";
  foo2.extra_json = "{}";
  auto broken = env.Install(foo2);
  REQUIRE_FALSE(broken);
  CHECK(broken.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(broken.error().message(), Catch::Contains("app=1.0-1 depends on libfoo (>= 2.0)"));
  CHECK(REQUIRE_OK(env.installer().Find("foo-impl"))->version == "1.0");

  // ... and foo-impl cannot go while app needs it.
  auto rm = env.installer().Remove("foo-impl", {});
  REQUIRE_FALSE(rm);
  CHECK(rm.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(rm.error().message(), Catch::Contains("app=1.0-1"));
  REQUIRE_OK(env.installer().Remove("app", {}));
  REQUIRE_OK(env.installer().Remove("foo-impl", {}));
}

TEST_CASE("installer: conflicts are refused in both directions", "[installer]") {
  InstallerEnv env;
  TestPackageSpec a;
  a.name = "alpha";
  a.version = "1.0";
  a.entries = {{"/opt/alpha", EntryType::kFile, "a", 0644, ""}};
  a.extra_json = R"j({"conflicts": ["beta"]})j";
  TestPackageSpec b;
  b.name = "beta";
  b.version = "1.0";
  b.entries = {{"/opt/beta", EntryType::kFile, "b", 0644, ""}};

  REQUIRE_OK(env.Install(a));
  auto r1 = env.Install(b);  // the installed package declares the conflict
  REQUIRE_FALSE(r1);
  CHECK(r1.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(r1.error().message(), Catch::Contains("alpha=1.0") && Catch::Contains("conflicts"));
  CHECK_FALSE(fs::exists(env.root() / "opt/beta"));

  REQUIRE_OK(env.installer().Remove("alpha", {}));
  REQUIRE_OK(env.Install(b));
  auto r2 = env.Install(a);  // the new package declares it
  REQUIRE_FALSE(r2);
  CHECK_THAT(r2.error().message(), Catch::Contains("conflicts with installed beta=1.0"));
  CHECK_FALSE(fs::exists(env.root() / "opt/alpha"));
}

TEST_CASE("installer: a downgrade is refused unless allowed", "[installer]") {
  InstallerEnv env;
  REQUIRE_OK(env.Install(App("2.0-1")));
  auto snap = env.Tree();
  auto r = env.Install(App("1.9-1"));
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(r.error().message(), Catch::Contains("downgrade"));
  REQUIRE_SAME_TREE(snap, env.Tree());

  InstallOptions o;
  o.allow_downgrade = true;
  auto ok = REQUIRE_OK(env.Install(App("1.9-1"), o));
  CHECK(ok.point.from_version == "2.0-1");
  CHECK(REQUIRE_OK(env.installer().Find("app"))->version == "1.9-1");
  CHECK(Text(env.root() / "opt/app/bin/app") == "#!/bin/sh\necho app 1.9-1\n");
}

TEST_CASE("installer: a failing post_install rolls the upgrade back to an identical tree", "[installer]") {
  InstallerEnv env;
  REQUIRE_OK(env.Install(App("1.0-1")));
  auto before = env.Tree();
  auto v2 = App("2.0-1");
  v2.entries.erase(v2.entries.begin() + 2);
  v2.entries.push_back({"/opt/app/lib/new.so", EntryType::kFile, "new", 0600, ""});
  v2.entries.push_back({"/var/lib/app/cache/x", EntryType::kFile, "deep new dirs", 0644, ""});
  v2.scripts["post_install"] = "#!/bin/sh\necho line one\necho 'database migration failed: disk quota'\nexit 3\n";
  auto r = env.Install(v2);
  REQUIRE_FALSE(r);
  const std::string msg = r.error().message();
  CHECK_THAT(msg, Catch::Contains("post_install") && Catch::Contains("status 3") &&
                      Catch::Contains("database migration failed: disk quota") && Catch::Contains("restored"));
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK(REQUIRE_OK(env.installer().Find("app"))->version == "1.0-1");
  auto points = REQUIRE_OK(env.installer().ListRollbackPoints());
  REQUIRE(points.size() == 2);
  CHECK(points[1].state == "rolled-back");
  CHECK(points[1].to_version == "2.0-1");
  // The kept scripts are still those of 1.0-1 (none).
  CHECK_FALSE(fs::exists(env.state() / "scripts/app/post_install"));
}

TEST_CASE("installer: a script past its timeout is killed with its children and the install rolled back", "[installer]") {
  InstallerEnv env;
  auto before = env.Tree();
  auto spec = App("1.0-1");
  // The background child's pid goes next to the root (outside the tree compared).
  spec.scripts["pre_install"] = "#!/bin/sh\necho starting\nsleep 60 &\necho $! > \"$PARC_ROOT/../bg.pid\"\nsleep 60\n";
  spec.extra_json = R"j({"script_timeout_seconds": 1})j";
  auto start = std::chrono::steady_clock::now();
  auto r = env.Install(spec);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("pre_install timed out") && Catch::Contains("starting"));
  CHECK(took < std::chrono::seconds(20));
  REQUIRE_SAME_TREE(before, env.Tree());
  // The script's background child did not survive: the process group was killed.
  const std::string pid = Text(env.dir() / "bg.pid");
  REQUIRE_FALSE(pid.empty());
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::string stat = Text("/proc/" + pid.substr(0, pid.find('\n')) + "/stat");
    gone = stat.empty() || stat.find(") Z ") != std::string::npos;
    if (!gone) ::usleep(20'000);
  }
  CHECK(gone);
}

TEST_CASE("installer: config key=value edits keep mode and owner and are undone by rolling back", "[installer]") {
  InstallerEnv env;
  parc::test::WriteFile(env.root() / "etc/app/app.conf", "# app settings\n#port=1\nport = 80\nname=demo\n");
  REQUIRE(::chown((env.root() / "etc/app/app.conf").c_str(), kHelloUid, kStaffGid) == 0);
  fs::permissions(env.root() / "etc/app/app.conf", fs::perms(0600));
  auto before = env.Tree();
  auto spec = App("1.0-1");
  spec.extra_json = R"({"config": [{"file": "/etc/app/app.conf", "set": [{"key": "port", "value": "8080"}, {"key": "tls", "value": "on"}]},
                                   {"file": "/etc/app/new.conf", "separator": " ", "set": [{"key": "Listen", "value": "0.0.0.0"}]}]})";
  auto r = REQUIRE_OK(env.Install(spec));
  CHECK(Text(env.root() / "etc/app/app.conf") == "# app settings\n#port=1\nport=8080\nname=demo\ntls=on\n");
  auto st = LStat(env.root() / "etc/app/app.conf");
  CHECK(st.mode == 0600);
  CHECK(st.uid == kHelloUid);
  CHECK(st.gid == kStaffGid);
  CHECK(Text(env.root() / "etc/app/new.conf") == "Listen 0.0.0.0\n");

  REQUIRE_OK(env.installer().RollbackTo(r.point.id, {}));
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK_FALSE(REQUIRE_OK(env.installer().Find("app")).has_value());
}

TEST_CASE("installer: enabling a service creates its wants link and rolling back removes it", "[installer]") {
  InstallerEnv env;
  fs::create_directories(env.root() / "etc/systemd/system");
  auto before = env.Tree();
  auto spec = App("1.0-1");
  spec.entries.push_back({"/usr/lib/systemd/system/app.service", EntryType::kFile,
                          "[Unit]\nDescription=App\n[Service]\nExecStart=/opt/app/bin/app\n[Install]\nWantedBy=multi-user.target\n",
                          0644, ""});
  spec.extra_json = R"j({"services": [{"unit": "app.service", "enable": true}]})j";
  auto r = REQUIRE_OK(env.Install(spec));
  fs::path link = env.root() / "etc/systemd/system/multi-user.target.wants/app.service";
  REQUIRE(fs::is_symlink(link));
  CHECK(fs::read_symlink(link) == "/usr/lib/systemd/system/app.service");

  REQUIRE_OK(env.installer().RollbackTo(r.point.id, {}));
  REQUIRE_SAME_TREE(before, env.Tree());

  // Installing again and removing disables it too.
  REQUIRE_OK(env.Install(spec));
  REQUIRE(fs::is_symlink(link));
  REQUIRE_OK(env.installer().Remove("app", {}));
  CHECK_FALSE(fs::exists(fs::symlink_status(link)));
}

TEST_CASE("installer: rolling back restores bytes, modes and owners and a rollback can itself be rolled back", "[installer]") {
  InstallerEnv env;
  // Pre-existing content the package overwrites, with an unusual owner and mode.
  parc::test::WriteFile(env.root() / "opt/app/data/secret", "the admin's own secret\n");
  REQUIRE(::chown((env.root() / "opt/app/data/secret").c_str(), kHelloUid, kStaffGid) == 0);
  fs::permissions(env.root() / "opt/app/data/secret", fs::perms(0400));
  fs::create_directories(env.root() / "usr/bin");
  fs::create_symlink("/usr/local/bin/legacy-app", env.root() / "usr/bin/app");
  REQUIRE(::lchown((env.root() / "usr/bin/app").c_str(), kHelloUid, kHelloUid) == 0);
  fs::permissions(env.root() / "opt/app", fs::perms(0700));
  auto before = env.Tree();

  auto installed = REQUIRE_OK(env.Install(App("1.0-1")));
  auto after_v1 = env.Tree();
  CHECK(Text(env.root() / "opt/app/data/secret") == "secret 1.0-1");
  CHECK(fs::read_symlink(env.root() / "usr/bin/app") == "../../opt/app/bin/app");
  REQUIRE_OK(env.Install(App("2.0-1")));
  auto after_v2 = env.Tree();

  // Back to before 2.0-1.
  auto rb1 = REQUIRE_OK(env.installer().RollbackTo(REQUIRE_OK(env.installer().ListRollbackPoints())[1].id, {}));
  REQUIRE_SAME_TREE(after_v1, env.Tree());
  CHECK(REQUIRE_OK(env.installer().Find("app"))->version == "1.0-1");
  CHECK(rb1.point.action == "rollback");
  CHECK(rb1.point.from_version == "2.0-1");
  CHECK(rb1.point.to_version == "1.0-1");

  // Back to before anything.
  REQUIRE_OK(env.installer().RollbackTo(installed.point.id, {}));
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK_FALSE(REQUIRE_OK(env.installer().Find("app")).has_value());

  // The rollback of the rollback: that last rollback point puts 1.0-1 back.
  auto points = REQUIRE_OK(env.installer().ListRollbackPoints());
  REQUIRE(points.size() == 4);
  CHECK(points[0].state == "restored");
  CHECK(points[3].action == "rollback");
  REQUIRE_OK(env.installer().RollbackTo(points[3].id, {}));
  REQUIRE_SAME_TREE(after_v1, env.Tree());
  CHECK(REQUIRE_OK(env.installer().Find("app"))->version == "1.0-1");

  // A point that was rolled back automatically cannot be "restored".
  auto v3 = App("3.0-1");
  v3.scripts["post_install"] = "exit 1\n";
  REQUIRE_FALSE(env.Install(v3));
  auto failed = REQUIRE_OK(env.installer().ListRollbackPoints()).back();
  CHECK(failed.state == "rolled-back");
  auto bad = env.installer().RollbackTo(failed.id, {});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().Is(Errc::kFailedPrecondition));
  (void)after_v2;
}

TEST_CASE("installer: recover restores a transaction interrupted while recording or applying and is idempotent", "[installer]") {
  const std::string crash_at = GENERATE(std::string("recording"), std::string("mid-apply"), std::string("before-commit"));
  INFO("crash_at=" << crash_at);
  InstallerEnv env;
  REQUIRE_OK(env.Install(App("1.0-1")));
  auto before = env.Tree();
  // A crash in the middle of an upgrade: a forked child installs with
  // crash_at and SIGKILLs itself; the parent recovers.
  auto file = env.Build(App("2.0-1"));
  env.Close();
  pid_t pid = ::fork();
  if (pid == 0) {
    InstallOptions o;
    o.crash_at = crash_at;
    auto r = env.InstallFile(file, o);
    _exit(r ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  if (crash_at == "recording") {
    CHECK(Text(env.root() / "opt/app/bin/app") == "#!/bin/sh\necho app 1.0-1\n");
  } else if (crash_at == "mid-apply") {
    // Half applied: the new launcher is in place, the new library not yet.
    CHECK(Text(env.root() / "opt/app/bin/app") == "#!/bin/sh\necho app 2.0-1\n");
    CHECK(Text(env.root() / "opt/app/lib/common.so") == "common 1.0-1");
  } else {
    CHECK(Text(env.root() / "opt/app/lib/common.so") == "common 2.0-1");
  }

  auto restored = REQUIRE_OK(env.Open().Recover());
  REQUIRE(restored.size() == 1);
  CHECK(restored[0].state == "rolled-back");
  CHECK(restored[0].to_version == "2.0-1");
  CHECK_FALSE(fs::exists(env.state() / "rollback" / restored[0].id));
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK(REQUIRE_OK(env.Open().Recover()).empty());
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK(REQUIRE_OK(env.installer().Find("app"))->version == "1.0-1");
}

TEST_CASE("installer: script output is captured up to the last 64 KiB", "[installer]") {
  InstallerEnv env;
  auto spec = App("1.0-1");
  spec.scripts["post_install"] = "#!/bin/sh\ni=0\nwhile [ $i -lt 3000 ]; do echo \"line $i of a chatty script with some padding text\"; i=$((i+1)); done\necho last-line >&2\n";
  auto r = REQUIRE_OK(env.Install(spec));
  REQUIRE(r.steps.size() == 1);
  CHECK(r.steps[0].what == "post_install");
  CHECK(r.steps[0].exit_code == 0);
  CHECK(r.steps[0].output.size() <= 64 * 1024 + 64);
  CHECK(r.steps[0].output.size() >= 64 * 1024);
  CHECK_THAT(r.steps[0].output, Catch::StartsWith("[output truncated") && Catch::EndsWith("last-line\n") &&
                                    Catch::Contains("line 2999 of"));
  CHECK_THAT(r.steps[0].output, !Catch::Contains("line 0 of"));
}

TEST_CASE("installer: packages for another platform or architecture are refused", "[installer]") {
  InstallerEnv env;
  auto before = env.Tree();
  auto win = App("1.0-1");
  win.extra_json = R"j({"platforms": ["windows"]})j";
  auto r1 = env.Install(win);
  REQUIRE_FALSE(r1);
  CHECK(r1.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(r1.error().message(), Catch::Contains("not for Linux"));
  auto arch = App("1.0-1");
  arch.extra_json = R"j({"architectures": ["riscv64", "s390x"]})j";
  auto r2 = env.Install(arch);
  REQUIRE_FALSE(r2);
  CHECK_THAT(r2.error().message(), Catch::Contains("is not built for"));
  REQUIRE_SAME_TREE(before, env.Tree());
  CHECK(REQUIRE_OK(env.installer().ListRollbackPoints()).empty());
}
