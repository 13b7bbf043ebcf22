// package kind: real .deb files built with dpkg-deb, installed with the real
// dpkg --root into a prepared root, removed by the remediation (dpkg --purge)
// and put back byte for byte by the rollback. dpkg only ever runs with --root
// inside the test's temporary directory.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

const char* kPkg = "parc-test-telnetd";

std::string PkgRule(const std::string& name, const std::string& state, const std::string& extra = "") {
  return "[[rule]]\nid = \"pkg\"\ntitle = \"t\"\nanssi = \"R58\"\nlevel = \"minimal\"\n" + extra + "kind = \"package\"\nname = \"" +
         name + "\"\nstate = \"" + state + "\"\n";
}

struct Deb {
  std::string name, version = "1.0", depends;
  std::string opt_file = "";  // an extra file under /opt (the hostile case)
  std::string postrm = "";    // maintainer script run by the purge (chrooted into the root)
};

fs::path BuildDeb(const fs::path& work, const Deb& d) {
  fs::path tree = work / ("deb-" + d.name);
  test::WriteFile(tree / "DEBIAN/control", "Package: " + d.name + "\nVersion: " + d.version + "\n" +
                                               (d.depends.empty() ? "" : "Depends: " + d.depends + "\n") +
                                               "Architecture: all\nMaintainer: Parc tests <tests@example.org>\n"
                                               "Description: Parc policy test package\n");
  test::WriteFile(tree / ("usr/sbin/" + d.name), "#!/bin/sh\necho " + d.name + "\n");
  ::chmod((tree / ("usr/sbin/" + d.name)).c_str(), 0755);
  test::WriteFile(tree / ("usr/share/doc/" + d.name + "/README"), "about " + d.name + "\n");
  test::WriteFile(tree / ("etc/" + d.name + ".conf"), "port = 23\n");
  test::WriteFile(tree / "DEBIAN/conffiles", "/etc/" + d.name + ".conf\n");
  if (!d.opt_file.empty()) test::WriteFile(tree / ("opt/" + d.opt_file), "packaged\n");
  if (!d.postrm.empty()) {
    test::WriteFile(tree / "DEBIAN/postrm", d.postrm);
    ::chmod((tree / "DEBIAN/postrm").c_str(), 0755);
  }
  fs::path out = work / (d.name + "_" + d.version + "_all.deb");
  auto r = test::Run({"dpkg-deb", "--root-owner-group", "--build", tree.string(), out.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return out;
}

void PrepareDpkg(const test::PolicyRoot& r) {
  for (const char* d : {"/var/lib/dpkg/info", "/var/lib/dpkg/updates", "/var/lib/dpkg/triggers", "/var/lib/dpkg/alternatives", "/var/log"})
    fs::create_directories(r.Host(d));
  r.Write("/var/lib/dpkg/available", "");
}

test::CommandResult Dpkg(const test::PolicyRoot& r, std::vector<std::string> args) {
  std::vector<std::string> argv{"dpkg", "--root=" + r.root().string(), "--log=" + r.Host("/var/log/dpkg.log").string()};
  for (auto& a : args) argv.push_back(std::move(a));
  return test::Run(argv);
}

void Install(const test::PolicyRoot& r, const fs::path& deb) {
  auto res = Dpkg(r, {"-i", deb.string()});
  INFO(res.out + res.err);
  REQUIRE(res.exit_code == 0);
}

std::string StatusOf(const test::PolicyRoot& r, const std::string& name) {
  auto res = test::Run({"dpkg-query", "--admindir=" + r.Host("/var/lib/dpkg").string(), "-W", "-f=${Status}", name});
  return res.exit_code == 0 ? res.out : "";
}

std::string ParseError(const std::string& rule) {
  std::string text = "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n\n" + rule;
  auto b = policy::ParseBaseline(text, "pkg.toml");
  REQUIRE_FALSE(b);
  return b.error().message();
}

Expected<policy::ApplyResult> TryApply(const policy::Baseline& b, const test::PolicyRoot& r) {
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  policy::SelectOptions s;
  s.level = policy::Level::kHigh;
  return (*engine)->Apply(b, s);
}

}  // namespace

TEST_CASE("package absent: dpkg --purge in the root, rollback reinstates it byte for byte", "[policy][package]") {
  test::PolicyRoot r;
  test::TempDir work("parc-debs");
  PrepareDpkg(r);
  Install(r, BuildDeb(work.path(), {kPkg}));
  // A backup dpkg left beside the conffile: the purge removes it too.
  r.Write(std::string("/etc/") + kPkg + ".conf.dpkg-old", "port = 2323\n");
  REQUIRE(StatusOf(r, kPkg) == "install ok installed");
  auto b = test::MakeBaseline(PkgRule(kPkg, "absent"));

  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.expected == std::string("package ") + kPkg + " absent");
  CHECK(res.found == "installed, version 1.0 (dpkg status: install ok installed)");
  CHECK_FALSE(res.manual);

  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(applied.after.rules[0].found == "not installed (no entry in /var/lib/dpkg/status)");
  CHECK(StatusOf(r, kPkg).find(" installed") == std::string::npos);
  CHECK_FALSE(fs::exists(r.Host(std::string("/usr/sbin/") + kPkg)));
  CHECK_FALSE(fs::exists(r.Host(std::string("/etc/") + kPkg + ".conf")));
  CHECK_FALSE(fs::exists(r.Host(std::string("/etc/") + kPkg + ".conf.dpkg-old")));
  CHECK_FALSE(fs::exists(r.Host(std::string("/var/lib/dpkg/info/") + kPkg + ".list")));
  CHECK_THAT(r.Read("/var/log/dpkg.log"), Catch::Contains(std::string("purge ") + kPkg));

  CHECK(test::ApplyAll(b, r).point.id.empty());  // idempotent

  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(applied.point.id);
  if (!rb) FAIL(rb.error().message());
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
  // dpkg agrees: installed, and every file matches its md5sum.
  CHECK(StatusOf(r, kPkg) == "install ok installed");
  auto verify = Dpkg(r, {"--verify", kPkg});
  INFO(verify.out + verify.err);
  CHECK(verify.exit_code == 0);
  CHECK(verify.out.empty());
}

TEST_CASE("package: installed state, removed-with-config and no dpkg database", "[policy][package]") {
  test::PolicyRoot r;
  test::TempDir work("parc-debs");
  PrepareDpkg(r);
  Install(r, BuildDeb(work.path(), {kPkg}));

  SECTION("installed passes for an installed package") {
    auto res = test::CheckOne(test::MakeBaseline(PkgRule(kPkg, "installed")), r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "installed, version 1.0 (dpkg status: install ok installed)");
  }
  SECTION("a missing package that must be installed is manual") {
    auto b = test::MakeBaseline(PkgRule("auditd", "installed"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "not installed (no entry in /var/lib/dpkg/status)");
    CHECK(res.manual);
    CHECK_THAT(res.message, Catch::Contains("install auditd with a Parc package"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("removed with its configuration kept counts as absent, and says so") {
    auto rm = Dpkg(r, {"--remove", kPkg});
    REQUIRE(rm.exit_code == 0);
    REQUIRE(StatusOf(r, kPkg) == "deinstall ok config-files");
    auto res = test::CheckOne(test::MakeBaseline(PkgRule(kPkg, "absent")), r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "removed, its configuration files remain (dpkg status: deinstall ok config-files)");
  }
  SECTION("a root without a dpkg database is not applicable") {
    fs::remove(r.Host("/var/lib/dpkg/status"));
    auto res = test::CheckOne(test::MakeBaseline(PkgRule(kPkg, "absent")), r.root());
    CHECK(res.status == policy::Status::kNotApplicable);
    CHECK(res.message == "this root has no dpkg database (/var/lib/dpkg/status)");
  }
}

TEST_CASE("package absent: dpkg refusing the purge leaves the root as it was", "[policy][package]") {
  test::PolicyRoot r;
  test::TempDir work("parc-debs");
  PrepareDpkg(r);
  Install(r, BuildDeb(work.path(), {kPkg}));
  Install(r, BuildDeb(work.path(), {"parc-test-needs-telnetd", "1.0", kPkg}));
  auto before = pkg::testing::Snapshot(r.root());
  auto res = TryApply(test::MakeBaseline(PkgRule(kPkg, "absent")), r);
  REQUIRE_FALSE(res);
  CHECK_THAT(res.error().message(), Catch::Contains(std::string("dpkg --purge ") + kPkg) &&
                                        Catch::Contains("parc-test-needs-telnetd") && Catch::Contains("undone"));
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
  CHECK(StatusOf(r, kPkg) == "install ok installed");
}

TEST_CASE("package absent: a package path through a link leaving the root is refused", "[policy][package]") {
  test::PolicyRoot r;
  test::TempDir work("parc-debs");
  test::TempDir outside("parc-sentinel");
  PrepareDpkg(r);
  Install(r, BuildDeb(work.path(), {kPkg, "1.0", "", "parc-x/data"}));
  // The host has a file at the same place: dpkg --root following /opt -> <host dir>
  // would delete it.
  test::WriteFile(outside.path() / "parc-x/data", "host data\n");
  auto b = test::MakeBaseline(PkgRule(kPkg, "absent"));

  SECTION("an absolute link") {
    fs::remove_all(r.Host("/opt"));
    fs::create_symlink(outside.path(), r.Host("/opt"));
  }
  SECTION("a relative link climbing above the root") {
    fs::remove_all(r.Host("/opt"));
    std::string climb;
    for (auto p = r.root(); p != p.root_path(); p = p.parent_path()) climb += "../";
    fs::create_symlink(climb + outside.path().relative_path().string(), r.Host("/opt"));
  }
  auto before = pkg::testing::Snapshot(r.root());
  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.manual);
  CHECK_THAT(res.message, Catch::Contains("/opt") && Catch::Contains("refused"));
  CHECK(test::ApplyAll(b, r).point.id.empty());
  CHECK(test::ReadFileOrEmpty(outside.path() / "parc-x/data") == "host data\n");
  CHECK(StatusOf(r, kPkg) == "install ok installed");
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
}

TEST_CASE("package: bad fields are parse errors naming the key", "[policy][package]") {
  CHECK_THAT(ParseError(PkgRule("Telnet_Server", "absent")), Catch::Contains("pkg.toml:12:") && Catch::Contains("key 'name'"));
  CHECK_THAT(ParseError(PkgRule("telnetd", "removed")), Catch::Contains("pkg.toml:13:") && Catch::Contains("key 'state'"));
  CHECK_THAT(ParseError("[[rule]]\nid = \"pkg\"\ntitle = \"t\"\nanssi = \"R58\"\nlevel = \"minimal\"\nkind = \"package\"\nstate = \"absent\"\n"),
             Catch::Contains("key 'name'") && Catch::Contains("required"));
}

// dpkg runs maintainer scripts chrooted into the root: give it a /bin/sh
// (the host's dash and the C library it needs).
void AddShell(const test::PolicyRoot& r) {
  for (const char* d : {"/bin", "/lib/x86_64-linux-gnu", "/lib64"}) fs::create_directories(r.Host(d));
  fs::copy_file("/bin/dash", r.Host("/bin/dash"));
  fs::copy_file("/lib/x86_64-linux-gnu/libc.so.6", r.Host("/lib/x86_64-linux-gnu/libc.so.6"));
  fs::copy_file("/lib64/ld-linux-x86-64.so.2", r.Host("/lib64/ld-linux-x86-64.so.2"));
  fs::create_symlink("dash", r.Host("/bin/sh"));
}

TEST_CASE("package absent: what its maintainer scripts change (alternatives, rc links, accounts) comes back too",
          "[policy][package]") {
  test::PolicyRoot r;
  test::TempDir work("parc-debs");
  PrepareDpkg(r);
  AddShell(r);
  // On purge, as update-alternatives --remove, update-rc.d remove and deluser would (with shell builtins only).
  Install(r, BuildDeb(work.path(), {kPkg, "1.0", "", "",
                                    "#!/bin/sh\nif [ \"$1\" = purge ]; then\n"
                                    "  echo > /var/lib/dpkg/alternatives/telnet\n"
                                    "  echo removed > /etc/rc2.d/K01parc-test-telnetd\n"
                                    "  echo 'telnetd:x:107:65534::/nonexistent:/usr/sbin/nologin' > /etc/passwd\n"
                                    "fi\n"}));
  // What its postinst registered.
  r.Write("/var/lib/dpkg/alternatives/telnet", std::string("auto\n/usr/bin/telnet\n\n/usr/sbin/") + kPkg + "\n100\n\n");
  fs::create_directories(r.Host("/etc/alternatives"));
  fs::create_directories(r.Host("/usr/bin"));
  fs::create_symlink(std::string("/usr/sbin/") + kPkg, r.Host("/etc/alternatives/telnet"));
  fs::create_symlink("/etc/alternatives/telnet", r.Host("/usr/bin/telnet"));
  r.Write("/etc/rc2.d/K01parc-test-telnetd", "rc link\n");
  r.Write("/etc/passwd", r.Read("/etc/passwd") + "telnetd:x:107:65534::/nonexistent:/usr/sbin/nologin\n");
  auto b = test::MakeBaseline(PkgRule(kPkg, "absent"));

  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  REQUIRE(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(r.Read("/etc/rc2.d/K01parc-test-telnetd") == "removed\n");  // the script did run
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(applied.point.id);
  if (!rb) FAIL(rb.error().message());
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
  CHECK(StatusOf(r, kPkg) == "install ok installed");
}
