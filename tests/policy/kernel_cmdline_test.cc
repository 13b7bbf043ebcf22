// kernel_cmdline kind: GRUB_CMDLINE_LINUX(_DEFAULT) evaluated from
// /etc/default/grub and grub.d without a shell; remediation appends to
// GRUB_CMDLINE_LINUX.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

std::string Rule(const std::string& arg) {
  return "\n[[rule]]\nid = \"r\"\ntitle = \"t\"\nanssi = \"R8\"\nlevel = \"minimal\"\nkind = \"kernel_cmdline\"\narg = \"" + arg + "\"\n";
}

// Debian 12's /etc/default/grub (comments shortened).
const char* kDebianGrub =
    "# If you change this file, run 'update-grub' afterwards to update\n"
    "# /boot/grub/grub.cfg.\n"
    "\n"
    "GRUB_DEFAULT=0\n"
    "GRUB_TIMEOUT=5\n"
    "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
    "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
    "GRUB_CMDLINE_LINUX=\"\"\n"
    "\n"
    "#GRUB_TERMINAL=console\n";

policy::ApplyResult ApplyThenRollBack(const policy::Baseline& b, const test::PolicyRoot& r, const std::function<void()>& inspect) {
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.before.rules[0].status == policy::Status::kFail);
  INFO(applied.after.rules[0].found << " / " << applied.after.rules[0].message);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  bool noted = false;
  for (const auto& n : applied.notes) noted |= n.find("update-grub and a reboot") != std::string::npos;
  CHECK(noted);
  inspect();
  CHECK(test::ApplyAll(b, r).point.id.empty());
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  REQUIRE((*engine)->Rollback(applied.point.id));
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
  return applied;
}

}  // namespace

TEST_CASE("kernel_cmdline: evaluation of the GRUB defaults", "[policy][kernel_cmdline]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Rule("slub_debug=FZP"));

  SECTION("Debian's default file: fail, with both variables and where they are set") {
    r.Write("/etc/default/grub", kDebianGrub);
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "slub_debug=FZP on the kernel command line (GRUB_CMDLINE_LINUX or GRUB_CMDLINE_LINUX_DEFAULT)");
    CHECK(res.found ==
          "GRUB_CMDLINE_LINUX=\"\" (/etc/default/grub:8); GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\" (/etc/default/grub:7)");
  }
  SECTION("single quotes, _DEFAULT, and a later grub.d file overriding") {
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX='slub_debug=FZP'\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet slub_debug=FZP\"\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
    r.Write("/etc/default/grub.d/50-cloud.cfg", "GRUB_CMDLINE_LINUX_DEFAULT=\"console=ttyS0\"\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK_THAT(res.found, Catch::Contains("GRUB_CMDLINE_LINUX_DEFAULT=\"console=ttyS0\" (/etc/default/grub.d/50-cloud.cfg:1)"));
  }
  SECTION("self-references append, and the last value of a parameter is the kernel's") {
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"slub_debug=P\"\n");
    r.Write("/etc/default/grub.d/10-a.cfg", "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX slub_debug=FZP\"\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
    r.Write("/etc/default/grub.d/20-b.cfg", "export GRUB_CMDLINE_LINUX=\"${GRUB_CMDLINE_LINUX} \\\n  slub_debug=-\"  # off\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK_THAT(res.found, Catch::EndsWith("; the kernel would get slub_debug=-"));
  }
  SECTION("a bare argument") {
    auto pti = test::MakeBaseline(Rule("pti=on"));
    auto nosmt = test::MakeBaseline(Rule("nosmt"));
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"nosmt pti=on\"\n");
    CHECK(test::CheckOne(pti, r.root()).status == policy::Status::kPass);
    CHECK(test::CheckOne(nosmt, r.root()).status == policy::Status::kPass);
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"nosmt=force\"\n");
    CHECK(test::CheckOne(nosmt, r.root()).status == policy::Status::kFail);
  }
  SECTION("what needs a shell to evaluate is an error, not a guess") {
    r.Write("/etc/default/grub", "if [ -e /x ]; then\n  GRUB_CMDLINE_LINUX=\"slub_debug=FZP\"\nfi\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("/etc/default/grub:2: GRUB_CMDLINE_LINUX is set inside a shell condition"));
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"$(cat /proc/cmdline)\"\n");
    res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("needs a shell"));
    r.Write("/etc/default/grub", "[ -e /x ] && GRUB_CMDLINE_LINUX=\"a\"\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kError);
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"unterminated\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kError);
  }
  SECTION("no /etc/default/grub: not applicable") {
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kNotApplicable);
    CHECK(res.message == "/etc/default/grub does not exist");
  }
}

TEST_CASE("kernel_cmdline: remediation appends to GRUB_CMDLINE_LINUX, replacing other values", "[policy][kernel_cmdline]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Rule("slub_debug=FZP"));
  SECTION("Debian's file") {
    r.Write("/etc/default/grub", kDebianGrub);
    ApplyThenRollBack(b, r, [&] {
      std::string text = r.Read("/etc/default/grub");
      CHECK_THAT(text, Catch::Contains("\nGRUB_CMDLINE_LINUX=\"slub_debug=FZP\"\n"));
      CHECK_THAT(text, Catch::Contains("\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"));
      CHECK_THAT(text, Catch::Contains("GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"));
    });
  }
  SECTION("another value of the same parameter goes, wherever it is written literally") {
    r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT='quiet slub_debug=P'\nexport GRUB_CMDLINE_LINUX=\"audit=1\" # keep\n");
    r.Write("/etc/default/grub.d/10-a.cfg", "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX slub_debug=-\"\n");
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read("/etc/default/grub") == "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nexport GRUB_CMDLINE_LINUX=\"audit=1\" # keep\n");
      CHECK(r.Read("/etc/default/grub.d/10-a.cfg") == "GRUB_CMDLINE_LINUX=\"${GRUB_CMDLINE_LINUX} slub_debug=FZP\"\n");
    });
  }
  SECTION("no GRUB_CMDLINE_LINUX anywhere: one is added") {
    r.Write("/etc/default/grub", "GRUB_TIMEOUT=5");
    ApplyThenRollBack(b, r, [&] { CHECK(r.Read("/etc/default/grub") == "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"slub_debug=FZP\"\n"); });
  }
}

TEST_CASE("kernel_cmdline: grub.d links pointing outside the root", "[policy][kernel_cmdline]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Rule("slub_debug=FZP"));
  test::TempDir outside("parc-sentinel");
  auto sentinel = outside / "evil.cfg";
  test::WriteFile(sentinel, "GRUB_CMDLINE_LINUX=\"slub_debug=FZP\"\n");
  r.Write("/etc/default/grub", kDebianGrub);
  std::filesystem::create_directories(r.Host("/etc/default/grub.d"));

  SECTION("a link climbing above the root is refused") {
    std::string up;
    for (int i = 0; i < 30; ++i) up += "../";
    std::filesystem::create_symlink(up + sentinel.string().substr(1), r.Host("/etc/default/grub.d/evil.cfg"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("/etc/default/grub itself linked above the root is refused, not taken for absent") {
    std::string up;
    for (int i = 0; i < 30; ++i) up += "../";
    std::filesystem::remove(r.Host("/etc/default/grub"));
    std::filesystem::create_symlink(up + sentinel.string().substr(1), r.Host("/etc/default/grub"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::StartsWith("/etc/default/grub: "));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("an absolute link means the path inside the root; dangling there, it is skipped as grub-mkconfig does") {
    std::filesystem::create_symlink(sentinel, r.Host("/etc/default/grub.d/evil.cfg"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);  // the host's file would have made it pass
    ApplyThenRollBack(b, r, [] {});
  }
  CHECK(test::ReadFileOrEmpty(sentinel) == "GRUB_CMDLINE_LINUX=\"slub_debug=FZP\"\n");
}

TEST_CASE("kernel_cmdline: bad arg values are parse errors naming the line and the key", "[policy][kernel_cmdline]") {
  for (const char* bad : {"", "a b", "=x", "x;reboot", "$(id)", "a\\\"b"}) {
    std::string text = "[baseline]\nname = \"test\"\ntitle = \"test\"\nversion = \"1\"\n\n" + Rule(bad);
    auto parsed = policy::ParseBaseline(text, "test.toml");
    INFO(bad);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message(), Catch::StartsWith("test.toml:13: rule 'r': key 'arg': must be one kernel argument"));
  }
}
