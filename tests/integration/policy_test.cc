// Hardening policies end to end: a real parc-server, real parc-agents on
// prepared roots (mutual TLS on loopback), parcctl signing a baseline with a
// publisher key made by `parcctl key create`, assigning it to a group in audit
// then enforce mode, and reading compliance, drift and rollback points back
// from the parc database.
#include <catch2/catch.hpp>

#include "harness.h"
#include "inventory_fixture.h"
#include "parc/common/files.h"
#include "tree_snapshot.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Two sysctl rules: persisted values are judged on an offline root.
std::string BaselineText(const std::string& version) {
  return "[baseline]\nname = \"lab-hardening\"\ntitle = \"Lab hardening\"\nversion = \"" + version +
         "\"\nplatforms = [\"debian12\"]\n\n"
         "[[rule]]\nid = \"dmesg\"\ntitle = \"Restrict access to the kernel log\"\nanssi = \"R9\"\nlevel = \"minimal\"\n"
         "kind = \"sysctl\"\nkey = \"kernel.dmesg_restrict\"\nvalue = \"1\"\n\n"
         "[[rule]]\nid = \"kptr\"\ntitle = \"Hide kernel pointers\"\nanssi = \"R9\"\nlevel = \"minimal\"\n"
         "kind = \"sysctl\"\nkey = \"kernel.kptr_restrict\"\nvalue = \"2\"\n";
}

struct Lab {
  TempDir dir{"parc-policy-e2e"};
  Server server{dir / "server"};
  std::vector<std::unique_ptr<Agent>> agents;
  std::vector<std::string> ids;

  explicit Lab(int n) {
    server.Start();
    REQUIRE(server.Ctl({"group", "create", "lab"}).exit_code == 0);
    for (int i = 0; i < n; ++i) {
      fs::path root = dir / ("root" + std::to_string(i));
      BuildWorkstationRoot(root);
      MakeDistinctMachine(root, i);
      auto agent = std::make_unique<Agent>(dir / ("agent" + std::to_string(i)), root);
      auto [token, fp] = server.Token("lab");
      REQUIRE(agent->Enroll(server, token, fp).exit_code == 0);
      ids.push_back(agent->host_id());
      agent->Start();
      agents.push_back(std::move(agent));
    }
    for (const auto& id : ids)
      REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", id})["summary"]["online"] == true; }));
    auto key = server.Ctl({"key", "create", "--name", "acme-it", "--dir", dir.path().string()});
    REQUIRE(key.exit_code == 0);
    REQUIRE(server.Ctl({"key", "add", (dir / "acme-it.pub").string(), "--name", "acme-it"}).exit_code == 0);
  }

  fs::path Root(int i) const { return agents[static_cast<size_t>(i)]->root(); }

  // Writes and pushes the baseline; returns parcctl's answer.
  CommandResult Push(const std::string& text, const std::string& key = "acme-it.key") {
    WriteFile(dir / "lab-hardening.toml", text);
    return server.Ctl({"policy", "push", (dir / "lab-hardening.toml").string(), "--key", (dir / key).string()});
  }

  nlohmann::json Compliance(std::vector<std::string> args = {}) {
    args.insert(args.begin(), "compliance");
    return server.CtlJson(args);
  }

  // Waits until every host of the scope has a result newer than `after` (agent clock).
  bool AllCheckedAfter(int64_t after, const std::string& mode) {
    return WaitFor(
        [&] {
          auto c = Compliance({"--group", "lab"});
          if (!c.contains("hosts") || c["hosts"].size() < ids.size()) return false;
          size_t done = 0;
          for (const auto& h : c["hosts"])
            if (h.value("mode", "") == mode && h.value("state", "") == "checked" && std::stoll(h.value("checked_at", "0")) >= after)
              ++done;
          return done >= ids.size();
        },
        60s);
  }

  nlohmann::json HostRow(const nlohmann::json& c, const std::string& id) {
    for (const auto& h : c["hosts"])
      if (h["host_id"] == id) return h;
    FAIL("no compliance row for " << id << " in " << c.dump());
    return {};
  }
};

int64_t Now() { return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

TEST_CASE("policies: push, audit a group, drift, enforce, compliance export and rollback", "[integration][policy]") {
  Lab lab(2);
  // pc0 already restricts dmesg; pc1 has nothing.
  WriteFile(lab.Root(0) / "etc/sysctl.d/10-site.conf", "kernel.dmesg_restrict = 1\n");

  {  // A policy signed by an unknown key, or malformed, is refused with its reason.
    auto stranger = lab.server.Ctl({"key", "create", "--name", "stranger", "--dir", lab.dir.path().string()});
    REQUIRE(stranger.exit_code == 0);
    auto r = lab.Push(BaselineText("1.0"), "stranger.key");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.err, Catch::Contains("does not trust"));
    auto bad = lab.Push(BaselineText("1.0") + "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nanssi = \"R9\"\nlevel = \"minimal\"\n"
                                              "kind = \"sysctl\"\nkey = \"kernel.x\"\nvalue = \"1\"\nvlaue = \"2\"\n");
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("lab-hardening.toml:33") && Catch::Contains("vlaue"));
    CHECK(lab.server.CtlJson({"policy", "list"})["policies"].empty());
  }

  auto pushed = lab.Push(BaselineText("1.0"));
  INFO(pushed.out << pushed.err);
  REQUIRE(pushed.exit_code == 0);
  auto shown = lab.server.CtlJson({"policy", "show", "lab-hardening"});
  CHECK(shown["rule_count"] == 2);
  CHECK(shown["rules"][0]["anssi"] == "R9");

  auto snapshot0 = parc::pkg::testing::Snapshot(lab.Root(0));
  auto snapshot1 = parc::pkg::testing::Snapshot(lab.Root(1));
  int64_t t0 = Now() - 1;
  auto audit = lab.server.CtlJson({"policy", "assign", "lab-hardening", "--to", "group:lab", "--mode", "audit", "--level",
                                   "minimal", "--every", "1h", "--comment", "first look"});
  std::string audit_id = audit["assignment_id"];
  CHECK(audit["hosts"] == 2);
  REQUIRE(lab.AllCheckedAfter(t0, "audit"));

  auto c = lab.Compliance({"--group", "lab"});
  auto h0 = lab.HostRow(c, lab.ids[0]), h1 = lab.HostRow(c, lab.ids[1]);
  CHECK(h0["pass"] == 1);
  CHECK(h0["fail"] == 1);
  CHECK(h1.value("pass", 0) == 0);
  CHECK(h1["fail"] == 2);
  CHECK(h0["score"] == 50.0);
  // Audit changes nothing on the machines.
  CHECK(parc::pkg::testing::DiffTrees(snapshot0, parc::pkg::testing::Snapshot(lab.Root(0))) == "");
  CHECK(parc::pkg::testing::DiffTrees(snapshot1, parc::pkg::testing::Snapshot(lab.Root(1))) == "");

  // One host, every rule with expected vs found.
  auto one = lab.Compliance({"--host", "pc1"});
  REQUIRE(one["details"].size() == 2);
  for (const auto& d : one["details"]) {
    CHECK(d["status"] == "fail");
    CHECK_THAT(d["found"].get<std::string>(), Catch::Contains("not set"));
  }
  // One rule across the group.
  auto rule = lab.Compliance({"--rule", "dmesg"});
  CHECK(rule["details"].size() == 2);
  REQUIRE(rule["rules"].size() == 1);
  CHECK(rule["rules"][0]["pass"] == 1);
  CHECK(rule["rules"][0]["fail"] == 1);
  // CSV for the asset register: a header and one row per host and rule.
  auto csv = lab.server.Ctl({"compliance", "--group", "lab", "--format", "csv"});
  REQUIRE(csv.exit_code == 0);
  CHECK(csv.out.rfind("host_id,hostname,policy,rule_id,anssi,level,status", 0) == 0);
  CHECK(std::count(csv.out.begin(), csv.out.end(), '\n') == 5);
  CHECK(lab.server.Ctl({"compliance", "--group", "lab", "--fail-under", "80%"}).exit_code == 1);
  // The human table names hosts and scores.
  auto table = lab.server.Ctl({"compliance", "--group", "lab"});
  CHECK_THAT(table.out, Catch::Contains("pc0") && Catch::Contains("50.0%") && Catch::Contains("Score: 25.0%"));

  // Drift: pc0 loses its setting; "check now" shows the regression.
  WriteFile(lab.Root(0) / "etc/sysctl.d/60-override.conf", "kernel.dmesg_restrict = 0\n");
  int64_t t1 = Now();
  auto run = lab.server.CtlJson({"policy", "run", audit_id.substr(0, 8)});
  CHECK(run["jobs_created"] == 2);
  REQUIRE(lab.AllCheckedAfter(t1, "audit"));
  c = lab.Compliance({"--group", "lab"});
  h0 = lab.HostRow(c, lab.ids[0]);
  CHECK(h0.value("pass", 0) == 0);
  CHECK(h0["regressed"] == 1);
  CHECK(lab.HostRow(c, lab.ids[1]).value("regressed", 0) == 0);  // same result again: no drift
  auto pc0 = lab.Compliance({"--host", "pc0", "--rule", "dmesg"});
  REQUIRE(pc0["details"].size() == 1);
  CHECK(pc0["details"][0]["previous_status"] == "pass");
  CHECK_THAT(pc0["details"][0]["found"].get<std::string>(), Catch::Contains("60-override.conf"));

  // Enforce instead of audit.
  auto before_enforce = parc::pkg::testing::Snapshot(lab.Root(0));
  REQUIRE(lab.server.Ctl({"policy", "unassign", audit_id}).exit_code == 0);
  int64_t t2 = Now();
  auto enforce = lab.server.CtlJson({"policy", "assign", "lab-hardening", "--to", "group:lab", "--mode", "enforce",
                                     "--level", "minimal"});
  CHECK(enforce["hosts"] == 2);
  REQUIRE(lab.AllCheckedAfter(t2, "enforce"));
  c = lab.Compliance({"--group", "lab", "--policy", "lab-hardening"});
  REQUIRE(c["hosts"].size() == 2);  // the removed audit assignment is no longer shown
  for (const auto& h : c["hosts"]) {
    CHECK(h["mode"] == "enforce");
    CHECK(h["score"] == 100.0);
    CHECK(h["remediated"].get<int>() >= 1);
    CHECK_FALSE(h.value("point_id", "").empty());
  }
  CHECK_THAT(ReadFileOrEmpty(lab.Root(0) / "etc/sysctl.d/60-override.conf"), Catch::Contains("kernel.dmesg_restrict = 1"));
  CHECK_THAT(ReadFileOrEmpty(lab.Root(1) / "etc/sysctl.d/99-parc-hardening.conf"), Catch::Contains("kernel.kptr_restrict = 2"));

  // The rollback point is in the parc database; restoring it puts pc0 back exactly.
  std::string point;
  REQUIRE(WaitFor([&] {
    auto pts = lab.server.CtlJson({"rollback-points", "pc0"});
    for (const auto& p : pts["points"])
      if (p["action"] == "policy" && p["package"] == "lab-hardening" && p["state"] == "committed") point = p["point_id"];
    return !point.empty();
  }));
  auto rb = lab.server.Ctl({"rollback", "pc0", point.substr(0, 8)});
  INFO(rb.out << rb.err);
  REQUIRE(rb.exit_code == 0);
  REQUIRE(WaitFor([&] {
    return parc::pkg::testing::DiffTrees(before_enforce, parc::pkg::testing::Snapshot(lab.Root(0))).empty();
  }));
  REQUIRE(WaitFor([&] {
    auto pts = lab.server.CtlJson({"rollback-points", "pc0"});  // bound: a ranged-for over a temporary's member dangles
    for (const auto& p : pts["points"])
      if (p["point_id"] == point) return p["state"] == "rolled-back";
    return false;
  }));

  // The audit log has every change.
  auto log = lab.server.Ctl({"audit"});
  CHECK_THAT(log.out, Catch::Contains("policy.register") && Catch::Contains("policy.assign") &&
                          Catch::Contains("policy.unassign") && Catch::Contains("policy.run"));
}

TEST_CASE("policies: an offline host is checked when it comes back, and results survive a server restart",
          "[integration][policy]") {
  Lab lab(1);
  REQUIRE(lab.Push(BaselineText("1.0")).exit_code == 0);
  lab.agents[0]->Stop();
  REQUIRE(WaitFor([&] { return lab.server.CtlJson({"host", "show", lab.ids[0]})["summary"].value("online", false) == false; }));
  int64_t t0 = Now() - 1;
  lab.server.CtlJson({"policy", "assign", "lab-hardening", "--to", "group:lab", "--mode", "audit"});
  // Queued for the offline host, not lost.
  REQUIRE(WaitFor([&] {
    auto c = lab.Compliance({"--group", "lab"});
    return c.contains("hosts") && c["hosts"].size() == 1 && c["hosts"][0]["state"] == "pending";
  }));
  lab.agents[0]->Start();
  REQUIRE(lab.AllCheckedAfter(t0, "audit"));

  lab.server.Kill();
  lab.server.Start();
  auto c = lab.Compliance({"--group", "lab"});
  REQUIRE(c["hosts"].size() == 1);
  CHECK(c["hosts"][0]["state"] == "checked");
  CHECK(c["hosts"][0]["fail"] == 2);
  // A newer version replaces the older on the next check; the agent keeps it.
  REQUIRE(lab.Push(BaselineText("1.1")).exit_code == 0);
  REQUIRE(WaitFor([&] { return lab.server.CtlJson({"host", "show", lab.ids[0]})["summary"].value("online", false); }));
  int64_t t1 = Now();
  auto list = lab.server.CtlJson({"policy", "list"});
  REQUIRE(list["assignments"].size() == 1);
  lab.server.CtlJson({"policy", "run", list["assignments"][0]["assignment_id"].get<std::string>()});
  REQUIRE(lab.AllCheckedAfter(t1, "audit"));
  CHECK(lab.Compliance({"--group", "lab"})["hosts"][0]["version"] == "1.1");
  CHECK_THAT(ReadFileOrEmpty(lab.agents[0]->state_dir() / "policies/lab-hardening.toml"), Catch::Contains("version = \"1.1\""));
}
