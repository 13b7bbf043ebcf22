#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

const char* kRule = R"(
[[rule]]
id = "dmesg"
title = "t"
anssi = "R9"
level = "minimal"
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"
)";

}  // namespace

TEST_CASE("sysctl: pass, fail, remediate, rollback on an offline root", "[policy][sysctl]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(kRule);

  SECTION("not set anywhere fails") {
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "not set in any sysctl configuration file");
  }
  SECTION("set in a sysctl.d file passes, with where") {
    r.Write("/etc/sysctl.d/50-x.conf", "# c\nkernel.dmesg_restrict=1\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "1 in /etc/sysctl.d/50-x.conf:2");
  }
  SECTION("a later file overriding with another value fails") {
    r.Write("/usr/lib/sysctl.d/50-default.conf", "kernel.dmesg_restrict = 1\n");
    r.Write("/etc/sysctl.d/60-bad.conf", "kernel/dmesg_restrict = 0\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "0 in /etc/sysctl.d/60-bad.conf:1");
  }
  SECTION("/etc hides the same file name in /usr/lib") {
    r.Write("/usr/lib/sysctl.d/50-x.conf", "kernel.dmesg_restrict = 0\n");
    r.Write("/etc/sysctl.d/50-x.conf", "kernel.dmesg_restrict = 1\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
  }
  SECTION("apply fixes conflicting lines and rollback restores the exact tree") {
    r.Write("/etc/sysctl.conf", "kernel.dmesg_restrict = 0\nnet.ipv4.ip_forward = 0\n", 0640);
    auto before = pkg::testing::Snapshot(r.root());
    auto applied = test::ApplyAll(b, r);
    REQUIRE_FALSE(applied.point.id.empty());
    CHECK(applied.before.rules[0].status == policy::Status::kFail);
    CHECK(applied.after.rules[0].status == policy::Status::kPass);
    CHECK(applied.after.rules[0].remediated);
    CHECK(r.Read("/etc/sysctl.conf") == "kernel.dmesg_restrict = 1\nnet.ipv4.ip_forward = 0\n");
    CHECK_THAT(r.Read("/etc/sysctl.d/99-parc-hardening.conf"), Catch::Contains("kernel.dmesg_restrict = 1"));

    // Idempotent: a second apply finds nothing to do and makes no point.
    auto again = test::ApplyAll(b, r);
    CHECK(again.point.id.empty());

    auto engine = policy::Engine::Open(r.root(), r.state());
    REQUIRE(engine);
    auto rb = (*engine)->Rollback(applied.point.id);
    REQUIRE(rb);
    CHECK(rb->state == "rolled-back");
    CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
    auto twice = (*engine)->Rollback(applied.point.id);
    REQUIRE_FALSE(twice);
    CHECK_THAT(twice.error().message(), Catch::Contains("rolled-back"));
  }
}

TEST_CASE("sysctl: a package's file under /usr/lib is masked from /etc, never edited", "[policy][sysctl]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(kRule);
  // As procps ships it: sorts after 99-parc-hardening.conf, so it would win.
  const std::string vendor = "# procps\nfs.protected_regular = 1\nkernel.dmesg_restrict = 0\n";
  r.Write("/usr/lib/sysctl.d/99-zz-vendor.conf", vendor);
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(r.Read("/usr/lib/sysctl.d/99-zz-vendor.conf") == vendor);
  auto mask = r.Read("/etc/sysctl.d/99-zz-vendor.conf");
  CHECK_THAT(mask, Catch::Contains("fs.protected_regular = 1") && Catch::Contains("kernel.dmesg_restrict = 1") &&
                       Catch::Contains("Masks /usr/lib/sysctl.d/99-zz-vendor.conf"));
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  REQUIRE((*engine)->Rollback(applied.point.id));
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
}

TEST_CASE("sysctl on the live system reads the running kernel", "[policy][sysctl]") {
  // Read-only: check only, never apply on the test machine.
  auto b = test::MakeBaseline(R"(
[[rule]]
id = "nope"
title = "t"
anssi = "R9"
level = "minimal"
platforms = ["linux"]
kind = "sysctl"
key = "kernel.parc_no_such_key"
value = "1"
)");
  CHECK(test::CheckOne(b, "/").status == policy::Status::kNotApplicable);
}
