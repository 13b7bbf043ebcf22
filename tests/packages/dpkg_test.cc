// A Parc package carrying a .deb, installed into a prepared root with the
// real dpkg --root, then rolled back, removed and the remove rolled back.
// dpkg only ever runs with --root inside the test's temporary directory.
#include <catch2/catch.hpp>

#include "installer_fixture.h"

using namespace parc;
using namespace parc::pkg;
using namespace parc::pkg::testing;
namespace fs = std::filesystem;

namespace {

const char* kDebName = "parc-test-hello";

// A tiny Debian package built with dpkg-deb; returns its bytes.
std::string BuildDeb(const fs::path& work, const std::string& version, const std::string& extra_control = "") {
  fs::path tree = work / ("deb-" + version);
  parc::test::WriteFile(tree / "DEBIAN/control", std::string("Package: ") + kDebName + "\nVersion: " + version + "\n" + extra_control +
                                                     "Architecture: all\nMaintainer: Parc tests <tests@example.org>\n"
                                                     "Description: Parc dpkg test package\n");
  parc::test::WriteFile(tree / "usr/share/parc-test-hello/hello.txt", "hello from deb " + version + "\n");
  fs::path out = work / ("hello_" + version + ".deb");
  auto r = parc::test::Run({"dpkg-deb", "--root-owner-group", "--build", tree.string(), out.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return parc::test::ReadFileOrEmpty(out);
}

void PrepareDpkgRoot(const fs::path& root) {
  for (const char* d : {"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives",
                        "var/log"})
    fs::create_directories(root / d);
  parc::test::WriteFile(root / "var/lib/dpkg/status", "");
  parc::test::WriteFile(root / "var/lib/dpkg/available", "");
}

std::string DpkgStatus(const fs::path& root) {
  auto r = parc::test::Run({"dpkg", "--root=" + root.string(), "-s", kDebName});
  return r.exit_code == 0 ? r.out : "";
}

TestPackageSpec Wrapper(const fs::path& work, const std::string& version) {
  TestPackageSpec s;
  s.name = "hello-deb";
  s.version = version;
  s.entries = {{"/etc/hello-deb.conf", EntryType::kFile, "wrapped " + version + "\n", 0644, ""}};
  s.native["hello.deb"] = BuildDeb(work, version);
  return s;
}

}  // namespace

TEST_CASE("installer dpkg: a native .deb is installed with dpkg --root and rolled back by purging it", "[installer][dpkg]") {
  InstallerEnv env;
  PrepareDpkgRoot(env.root());
  env.SkipInSnapshot("/var/lib/dpkg");  // dpkg's own bookkeeping (status-old, locks)
  env.SkipInSnapshot("/var/log");
  auto before = env.Tree();

  auto r = env.Install(Wrapper(env.dir(), "1.0"));
  if (!r) FAIL(r.error().message());
  CHECK_THAT(DpkgStatus(env.root()), Catch::Contains("Status: install ok installed") && Catch::Contains("Version: 1.0"));
  CHECK(parc::test::ReadFileOrEmpty(env.root() / "usr/share/parc-test-hello/hello.txt") == "hello from deb 1.0\n");
  REQUIRE(r->steps.size() >= 1);
  CHECK_THAT(r->steps.back().what, Catch::Contains("dpkg -i"));
  CHECK_THAT(r->steps.back().output, Catch::Contains("Setting up parc-test-hello (1.0)"));
  // dpkg logged into the target, not into the host's /var/log/dpkg.log.
  CHECK_THAT(parc::test::ReadFileOrEmpty(env.root() / "var/log/dpkg.log"), Catch::Contains("parc-test-hello"));

  auto rb = env.installer().RollbackTo(r->point.id, {});
  if (!rb) FAIL(rb.error().message());
  CHECK(DpkgStatus(env.root()).empty());
  CHECK_FALSE(fs::exists(env.root() / "usr/share/parc-test-hello/hello.txt"));
  std::string diff = DiffTrees(before, env.Tree());
  INFO(diff);
  CHECK(diff.empty());
}

TEST_CASE("installer dpkg: upgrade, remove and rolling the remove back reinstall the kept .deb", "[installer][dpkg]") {
  InstallerEnv env;
  PrepareDpkgRoot(env.root());
  REQUIRE(env.Install(Wrapper(env.dir(), "1.0")));
  auto up = env.Install(Wrapper(env.dir(), "2.0"));
  if (!up) FAIL(up.error().message());
  CHECK_THAT(DpkgStatus(env.root()), Catch::Contains("Version: 2.0"));

  auto rm = env.installer().Remove("hello-deb", {});
  if (!rm) FAIL(rm.error().message());
  CHECK_THAT(DpkgStatus(env.root()), !Catch::Contains("install ok installed"));
  CHECK_FALSE(fs::exists(env.root() / "usr/share/parc-test-hello/hello.txt"));
  CHECK_FALSE(fs::exists(env.root() / "etc/hello-deb.conf"));

  auto back = env.installer().RollbackTo(rm->point.id, {});
  if (!back) FAIL(back.error().message());
  CHECK_THAT(DpkgStatus(env.root()), Catch::Contains("install ok installed") && Catch::Contains("Version: 2.0"));
  CHECK(parc::test::ReadFileOrEmpty(env.root() / "etc/hello-deb.conf") == "wrapped 2.0\n");

  // Back to before the upgrade: dpkg reinstalls the kept 1.0.
  auto v1 = env.installer().RollbackTo(up->point.id, {});
  if (!v1) FAIL(v1.error().message());
  CHECK_THAT(DpkgStatus(env.root()), Catch::Contains("Version: 1.0"));
  CHECK(parc::test::ReadFileOrEmpty(env.root() / "usr/share/parc-test-hello/hello.txt") == "hello from deb 1.0\n");

  // Without the kept .deb, the rollback says what is missing.
  fs::remove_all(env.state() / "native");
  auto points = env.installer().ListRollbackPoints();
  REQUIRE(points);
  auto lost = env.installer().RollbackTo(points->back().id, {});  // back to 2.0, whose .deb is gone
  REQUIRE_FALSE(lost);
  CHECK_THAT(lost.error().message(), Catch::Contains("no longer available") && Catch::Contains("2.0"));
  CHECK_THAT(DpkgStatus(env.root()), Catch::Contains("Version: 1.0"));
}

TEST_CASE("installer dpkg: dpkg refusing the .deb rolls everything back, dpkg state included", "[installer][dpkg]") {
  InstallerEnv env;
  PrepareDpkgRoot(env.root());
  env.SkipInSnapshot("/var/lib/dpkg");
  env.SkipInSnapshot("/var/log");
  auto before = env.Tree();
  TestPackageSpec s;
  s.name = "hello-deb";
  s.version = "1.0";
  s.entries = {{"/etc/hello-deb.conf", EntryType::kFile, "wrapped\n", 0644, ""}};
  s.native["hello.deb"] = BuildDeb(env.dir(), "1.0", "Depends: parc-test-missing-dependency\n");
  auto r = env.Install(s);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("dpkg -i hello.deb") && Catch::Contains("parc-test-missing-dependency"));
  CHECK(DpkgStatus(env.root()).empty());
  std::string diff = DiffTrees(before, env.Tree());
  INFO(diff);
  CHECK(diff.empty());
  CHECK_FALSE(env.installer().Find("hello-deb").value().has_value());
}
