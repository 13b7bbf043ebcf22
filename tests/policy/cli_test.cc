// `parc-agent policy ...` as a technician runs it: the real binary on a
// prepared offline root, human and JSON output, exit codes, the rollback
// point it prints, and an interrupted apply repaired by the next command.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

const char* kBaseline = R"([baseline]
name = "cli-test"
title = "CLI test"
version = "1"
platforms = ["debian12"]

[[rule]]
id = "dmesg"
title = "Restrict access to the kernel log"
anssi = "R9"
level = "minimal"
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"

[[rule]]
id = "kptr"
title = "Hide kernel pointers"
anssi = "R9"
level = "intermediary"
kind = "sysctl"
key = "kernel.kptr_restrict"
value = "2"
)";

struct Cli {
  test::PolicyRoot r;
  std::filesystem::path baseline = r.state() / "../cli-test.toml";

  Cli() { test::WriteFile(baseline, kBaseline); }

  test::CommandResult Policy(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv;
    if (!env.empty()) {
      argv.push_back("/usr/bin/env");
      argv.insert(argv.end(), env.begin(), env.end());
    }
    argv.push_back(test::BinaryPath("parc-agent").string());
    argv.insert(argv.end(), {"policy"});
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--root", r.root().string(), "--state-dir", r.state().string()});
    return test::Run(argv);
  }
};

}  // namespace

TEST_CASE("parc-agent policy check, apply, rollback-points and rollback on an offline root", "[policy][cli]") {
  Cli c;
  auto before = pkg::testing::Snapshot(c.r.root());

  auto check = c.Policy({"check", "--baseline", c.baseline.string()});
  INFO(check.out << check.err);
  CHECK(check.exit_code == 3);  // failing rules remain
  CHECK_THAT(check.out, Catch::Contains("fail") && Catch::Contains("expected: kernel.kptr_restrict = 2") &&
                            Catch::Contains("Fix with: parc-agent policy apply"));

  auto minimal = c.Policy({"check", "--baseline", c.baseline.string(), "--level", "minimal", "--json"});
  REQUIRE(minimal.exit_code == 3);
  auto j = nlohmann::json::parse(minimal.out);
  CHECK(j["rules"].size() == 1);
  CHECK(j["summary"]["fail"] == 1);
  CHECK(j["rules"][0]["status"] == "fail");

  auto unknown = c.Policy({"check", "--baseline", "no-such-baseline"});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("no baseline named 'no-such-baseline'"));

  auto applied = c.Policy({"apply", "--baseline", c.baseline.string(), "--json"});
  INFO(applied.out << applied.err);
  REQUIRE(applied.exit_code == 0);
  auto a = nlohmann::json::parse(applied.out);
  std::string point = a["point"]["id"];
  CHECK(a["after"]["summary"]["pass"] == 2);
  CHECK(c.Policy({"check", "--baseline", c.baseline.string()}).exit_code == 0);

  auto again = c.Policy({"apply", "--baseline", c.baseline.string()});
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("Nothing to remediate"));

  auto points = c.Policy({"rollback-points", "--json"});
  REQUIRE(points.exit_code == 0);
  auto p = nlohmann::json::parse(points.out);
  REQUIRE(p.size() == 1);
  CHECK(p[0]["id"] == point);
  CHECK(p[0]["state"] == "committed");

  auto rb = c.Policy({"rollback", point});
  INFO(rb.out << rb.err);
  REQUIRE(rb.exit_code == 0);
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(c.r.root())) == "");
  auto twice = c.Policy({"rollback", point});
  CHECK(twice.exit_code == 1);
  CHECK_THAT(twice.err, Catch::Contains("rolled-back"));
  CHECK(c.Policy({"rollback", "nope"}).exit_code == 2);
}

TEST_CASE("parc-agent policy apply killed midway is undone by the next policy command", "[policy][cli]") {
  Cli c;
  auto before = pkg::testing::Snapshot(c.r.root());
  auto killed = c.Policy({"apply", "--baseline", c.baseline.string()}, {"PARC_CRASH_AT=after-first-rule"});
  CHECK(killed.exit_code == -1);  // SIGKILL
  CHECK_FALSE(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(c.r.root())).empty());  // half-applied
  auto next = c.Policy({"rollback-points"});
  INFO(next.out << next.err);
  REQUIRE(next.exit_code == 0);
  CHECK_THAT(next.err, Catch::Contains("was interrupted; its changes were undone"));
  CHECK_THAT(next.out, Catch::Contains("restored"));
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(c.r.root())) == "");
}
