#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

const char* kTwoRules = R"(
[[rule]]
id = "a"
title = "t"
anssi = "R9"
level = "minimal"
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"

[[rule]]
id = "b"
title = "t"
anssi = "R9"
level = "intermediary"
kind = "sysctl"
key = "kernel.kptr_restrict"
value = "2"
)";

}  // namespace

TEST_CASE("levels select rules up to the level asked", "[policy]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(kTwoRules);
  policy::SelectOptions s;
  s.level = policy::Level::kMinimal;
  auto rep = policy::CheckBaseline(b, r.root(), s);
  REQUIRE(rep.rules.size() == 1);
  CHECK(rep.rules[0].id == "a");
  s.level = policy::Level::kIntermediary;
  CHECK(policy::CheckBaseline(b, r.root(), s).rules.size() == 2);
  CHECK(rep.Score() == 0.0);
  CHECK(rep.ToJson()["summary"]["fail"] == 1);
}

TEST_CASE("platform, when_package and when_path make a rule not applicable", "[policy]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(R"(
[[rule]]
id = "rhel-only"
title = "t"
anssi = "R9"
level = "minimal"
platforms = ["rhel"]
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"

[[rule]]
id = "needs-ssh"
title = "t"
anssi = "R9"
level = "minimal"
when_package = "openssh-server"
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"

[[rule]]
id = "needs-grub"
title = "t"
anssi = "R9"
level = "minimal"
when_path = "/etc/default/grub"
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"
)");
  policy::SelectOptions s;
  auto rep = policy::CheckBaseline(b, r.root(), s);
  REQUIRE(rep.rules.size() == 3);
  for (const auto& x : rep.rules) CHECK(x.status == policy::Status::kNotApplicable);
  CHECK_THAT(rep.rules[0].message, Catch::Contains("rule for rhel; this root is debian 12"));
  CHECK_THAT(rep.rules[1].message, Catch::Contains("openssh-server is not installed"));
  r.AddDpkgPackage("openssh-server");
  r.Write("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n");
  rep = policy::CheckBaseline(b, r.root(), s);
  CHECK(rep.rules[1].status == policy::Status::kFail);
  CHECK(rep.rules[2].status == policy::Status::kFail);
  // A when_path reached through a link climbing above the root is hostile: an error, not "absent".
  std::filesystem::remove_all(r.Host("/etc/default"));
  std::filesystem::create_symlink("../../../../../../../../etc", r.Host("/etc/default"));
  rep = policy::CheckBaseline(b, r.root(), s);
  CHECK(rep.rules[2].status == policy::Status::kError);
  CHECK_THAT(rep.rules[2].message, Catch::Contains("climbs above the root"));
}

TEST_CASE("a remediation that fails midway is rolled back and names the rule", "[policy]") {
  test::PolicyRoot r;
  // Rule a rewrites /etc/sysctl.conf, then must write /etc/sysctl.d/99-parc-hardening.conf:
  // /etc/sysctl.d is a link that climbs above the root, so that write is refused.
  r.Write("/etc/sysctl.conf", "kernel.dmesg_restrict = 0\n");
  std::filesystem::create_symlink("../../../../../../../../..", r.Host("/etc/sysctl.d"));
  auto before = pkg::testing::Snapshot(r.root());
  auto b = test::MakeBaseline(kTwoRules);
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto res = (*engine)->Apply(b, policy::SelectOptions{});
  REQUIRE_FALSE(res);
  CHECK_THAT(res.error().message(), Catch::Contains("rule a could not be remediated") && Catch::Contains("climbs above the root") &&
                                        Catch::Contains("every change of this apply was undone"));
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
  auto points = (*engine)->ListPoints();
  REQUIRE(points);
  REQUIRE(points->size() == 1);
  CHECK(points->front().state == "restored");
}

TEST_CASE("an apply killed midway is undone by the next engine open", "[policy]") {
  for (std::string where : {"after-first-rule", "before-commit"}) {
    DYNAMIC_SECTION(where) {
      test::PolicyRoot r;
      r.Write("/etc/sysctl.conf", "kernel.dmesg_restrict = 0\n");
      auto before = pkg::testing::Snapshot(r.root());
      auto b = test::MakeBaseline(kTwoRules);
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        auto engine = policy::Engine::Open(r.root(), r.state());
        if (engine) (void)(*engine)->Apply(b, policy::SelectOptions{}, where);
        ::_exit(0);
      }
      int status = 0;
      ::waitpid(pid, &status, 0);
      REQUIRE(WIFSIGNALED(status));
      CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) != "");  // half applied
      auto engine = policy::Engine::Open(r.root(), r.state());
      REQUIRE(engine);
      REQUIRE((*engine)->recovered().size() == 1);
      CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
    }
  }
}

TEST_CASE("rollback refuses unknown ids and points of another root", "[policy]") {
  test::PolicyRoot r;
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto x = (*engine)->Rollback("../etc");
  REQUIRE_FALSE(x);
  CHECK(x.error().Is(Errc::kInvalidArgument));
  auto y = (*engine)->Rollback("0000");
  REQUIRE_FALSE(y);
  CHECK_THAT(y.error().message(), Catch::Contains("no policy rollback point 0000"));
}
