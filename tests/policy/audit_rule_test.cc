// audit_rule kind: rules in /etc/audit/rules.d matched by what they audit.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

std::string Rule(const std::string& rule) {
  return "\n[[rule]]\nid = \"r\"\ntitle = \"t\"\nanssi = \"R73\"\nlevel = \"minimal\"\nkind = \"audit_rule\"\nrule = \"" + rule + "\"\n";
}

const char* kSudoers = "-w /etc/sudoers -p wa -k scope";
const char* kModules = "-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -F auid>=1000 -F auid!=unset -k modules";

policy::ApplyResult ApplyThenRollBack(const policy::Baseline& b, const test::PolicyRoot& r, const std::function<void()>& inspect) {
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.before.rules[0].status == policy::Status::kFail);
  INFO(applied.after.rules[0].found);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  bool noted = false;
  for (const auto& n : applied.notes) noted |= n.find("augenrules --load") != std::string::npos;
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

TEST_CASE("audit_rule: matching ignores layout, keys and order", "[policy][audit_rule]") {
  test::PolicyRoot r;
  r.AddDpkgPackage("auditd", "1:3.0.9-1");
  auto watch = test::MakeBaseline(Rule(kSudoers));
  auto modules = test::MakeBaseline(Rule(kModules));

  SECTION("a watch with options in another order, another key and wider permissions passes") {
    r.Write("/etc/audit/rules.d/50-scope.rules", "# scope\n-p   rwa  -k  sudoers_changes -w /etc/sudoers/\n");
    auto res = test::CheckOne(watch, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "-p rwa -k sudoers_changes -w /etc/sudoers/ at /etc/audit/rules.d/50-scope.rules:2");
  }
  SECTION("narrower permissions fail, and the closest rule is shown") {
    r.Write("/etc/audit/rules.d/50-scope.rules", "-w /etc/sudoers -p w -k scope\n-w /etc/passwd -p wa\n");
    auto res = test::CheckOne(watch, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == kSudoers);
    CHECK(res.found ==
          "no matching rule among 2 in /etc/audit/rules.d/*.rules; closest: -w /etc/sudoers -p w -k scope at "
          "/etc/audit/rules.d/50-scope.rules:1");
  }
  SECTION("syscall lists compare as sets, fields in any order, -F key= and unset spellings are equivalent") {
    r.Write("/etc/audit/rules.d/30-mod.rules",
            "-a exit,always -S delete_module -F auid!=4294967295 -S finit_module,init_module -F arch=b64 -F auid>=1000 -F key=mods\n");
    CHECK(test::CheckOne(modules, r.root()).status == policy::Status::kPass);
  }
  SECTION("another syscall set or another field fails") {
    r.Write("/etc/audit/rules.d/30-mod.rules", "-a always,exit -F arch=b64 -S init_module,delete_module -F auid>=1000 -F auid!=unset\n");
    auto res = test::CheckOne(modules, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK_THAT(res.found, Catch::StartsWith("no matching rule among 1"));
    r.Write("/etc/audit/rules.d/30-mod.rules",
            "-a always,exit -F arch=b32 -S init_module,finit_module,delete_module -F auid>=1000 -F auid!=unset\n");
    CHECK(test::CheckOne(modules, r.root()).status == policy::Status::kFail);
  }
  SECTION("only rules.d/*.rules counts, not the generated audit.rules nor other names") {
    r.Write("/etc/audit/audit.rules", std::string(kSudoers) + "\n");
    r.Write("/etc/audit/rules.d/scope.rules.disabled", std::string(kSudoers) + "\n");
    r.Write("/etc/audit/rules.d/audit.rules", "-D\n-b 8192\n");
    CHECK(test::CheckOne(watch, r.root()).status == policy::Status::kFail);
  }
  SECTION("control rules: the last one in ls -v order wins") {
    auto immutable = test::MakeBaseline(Rule("-e 2"));
    r.Write("/etc/audit/rules.d/9-final.rules", "-e 2\n");
    r.Write("/etc/audit/rules.d/10-late.rules", "-e 1\n");  // sorts after 9-final with ls -v
    auto res = test::CheckOne(immutable, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "-e 1 at /etc/audit/rules.d/10-late.rules:1 (the last one wins)");
    ApplyThenRollBack(immutable, r, [&] {
      CHECK(r.Read("/etc/audit/rules.d/10-late.rules") == "# parc-agent policy apply: -e 1\n");
      CHECK_THAT(r.Read("/etc/audit/rules.d/99-parc-hardening.rules"), Catch::EndsWith("\n-e 2\n"));
    });
  }
  SECTION("auditd not installed: not applicable") {
    test::PolicyRoot bare;
    auto res = test::CheckOne(watch, bare.root());
    CHECK(res.status == policy::Status::kNotApplicable);
    CHECK(res.message == "auditd is not installed");
  }
}

TEST_CASE("audit_rule: remediation appends to 99-parc-hardening.rules", "[policy][audit_rule]") {
  test::PolicyRoot r;
  r.AddDpkgPackage("auditd");
  auto b = test::MakeBaseline(Rule(kModules));
  r.Write("/etc/audit/rules.d/audit.rules", "-D\n-b 8192\n--backlog_wait_time 60000\n-f 1\n", 0640);
  ApplyThenRollBack(b, r, [&] {
    CHECK(r.Read("/etc/audit/rules.d/99-parc-hardening.rules") ==
          "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.\n" + std::string(kModules) + "\n");
    struct stat st {};
    REQUIRE(::stat(r.Host("/etc/audit/rules.d/99-parc-hardening.rules").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(r.Read("/etc/audit/rules.d/audit.rules") == "-D\n-b 8192\n--backlog_wait_time 60000\n-f 1\n");
  });
}

TEST_CASE("audit_rule: a rules directory linked outside the root", "[policy][audit_rule]") {
  test::PolicyRoot r;
  r.AddDpkgPackage("auditd");
  auto b = test::MakeBaseline(Rule(kSudoers));
  test::TempDir outside("parc-sentinel");
  test::WriteFile(outside / "scope.rules", std::string(kSudoers) + "\n");
  std::filesystem::create_directories(r.Host("/etc/audit"));

  SECTION("climbing above the root is refused") {
    std::string up;
    for (int i = 0; i < 30; ++i) up += "../";
    std::filesystem::create_symlink(up + outside.path().string().substr(1), r.Host("/etc/audit/rules.d"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("an absolute link is the path inside the root: the host's rules are not read, nor written") {
    std::filesystem::create_directories(r.Host(outside.path().string()));
    std::filesystem::create_symlink(outside.path(), r.Host("/etc/audit/rules.d"));
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kFail);
    ApplyThenRollBack(b, r, [&] {
      CHECK(std::filesystem::exists(r.Host(outside.path().string() + "/99-parc-hardening.rules")));
      CHECK_FALSE(std::filesystem::exists(outside / "99-parc-hardening.rules"));
    });
  }
  CHECK(test::ReadFileOrEmpty(outside / "scope.rules") == std::string(kSudoers) + "\n");
  CHECK_FALSE(std::filesystem::exists(outside / "99-parc-hardening.rules"));
}

TEST_CASE("audit_rule: bad rules are parse errors naming the line and the key", "[policy][audit_rule]") {
  for (auto [bad, why] : std::vector<std::pair<const char*, const char*>>{
           {"-w etc/sudoers -p wa", "-w needs an absolute path"},
           {"-w /etc/sudoers -p wz", "-p takes letters among r, w, x, a"},
           {"-a always -S open", "takes list,action"},
           {"-a sometimes,exit -S open", "is not list,action"},
           {"-w /etc/x -a always,exit", "either a watch"},
           {"-D", "-D deletes every rule"},
           {"-e", "-e needs a value"},
           {"-e 2 -k x", "-e stands alone"},
           {"-x /etc", "unsupported auditctl option '-x'"},
           {"-k onlykey", "needs -w PATH or -a"},
           {"-a always,exit -S open -p wa", "-p belongs to -w rules"},
           {"-w /etc/x -p wa # note", "without quotes or comments"},
       }) {
    std::string text = "[baseline]\nname = \"test\"\ntitle = \"test\"\nversion = \"1\"\n\n" + Rule(bad);
    auto parsed = policy::ParseBaseline(text, "test.toml");
    INFO(bad);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message(), Catch::StartsWith("test.toml:13: rule 'r': key 'rule': "));
    CHECK_THAT(parsed.error().message(), Catch::Contains(why));
  }
}
