// Faults: the server killed with SIGKILL while agents report, and an agent
// kept offline. Agents reconnect by themselves; nothing acknowledged is lost.
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "harness.h"
#include "inventory_fixture.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
std::set<std::string> SoftwareNames(const Server& server, const std::string& host) {
  std::set<std::string> out;
  const auto doc_item = server.CtlJson({"inventory", host, "--section", "software"});  // keep the document alive for the loop
  for (const auto& item : doc_item["items"])
    out.insert(item["fields"]["name"].get<std::string>());
  return out;
}

bool Delivered(const Server& server, Agent& agent) {
  auto status = agent.Status();
  if (!status.is_object() || status.value("pending_reports", 1) != 0) return false;
  auto host = server.Ctl({"host", "show", agent.host_id(), "--json"});
  if (host.exit_code != 0) return false;
  auto j = nlohmann::json::parse(host.out, nullptr, false);
  return j.is_object() && j["inventory_digest"] == status["acked_inventory_digest"];
}
}  // namespace

TEST_CASE("kill -9 of the server while agents report: they reconnect by themselves and no report is lost") {
  TempDir dir("parc-kill");
  Server server(dir / "server", FreePort());
  server.Start();
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < 3; ++i) {
    fs::path root = dir / ("root" + std::to_string(i));
    BuildWorkstationRoot(root);
    WriteFile(root / "etc/hostname", "pc-kill-" + std::to_string(i) + "\n");
    auto [token, fp] = server.Token();
    agents.push_back(std::make_unique<Agent>(dir / ("agent" + std::to_string(i)), root));
    REQUIRE(agents.back()->Enroll(server, token, fp).exit_code == 0);
    agents.back()->Start(1);  // an inventory every second: reports are in flight all the time
  }
  for (auto& a : agents) REQUIRE(WaitFor([&] { return Delivered(server, *a); }));

  for (int round = 0; round < 6; ++round) {
    for (auto& a : agents) AddDpkgPackage(a->root(), "kill-test-" + std::to_string(round), "1.0");
    std::this_thread::sleep_for(600ms);
    if (round == 2) {
      server.Kill();
      std::this_thread::sleep_for(1500ms);  // agents keep collecting into their outboxes
      server.Start();
    }
  }
  for (auto& a : agents) {
    INFO(a->Log());
    REQUIRE(WaitFor([&] { return SoftwareNames(server, a->host_id()).count("kill-test-5") == 1; }, 60s));
    REQUIRE(WaitFor([&] { return Delivered(server, *a); }, 30s));
    auto names = SoftwareNames(server, a->host_id());
    for (int round = 0; round < 6; ++round) CHECK(names.count("kill-test-" + std::to_string(round)) == 1);
    CHECK(a->Running());
  }
  // Every package appears exactly once as "added" in each host's history: no
  // report was applied twice, none was lost.
  for (auto& a : agents) {
    std::map<std::string, int> added;
    const auto doc_e = server.CtlJson({"history", a->host_id(), "--section", "software"});  // keep the document alive for the loop
    for (const auto& e : doc_e["entries"])
      if (e["change"] == "added") added[e["key"].get<std::string>()]++;
    for (int round = 0; round < 6; ++round) CHECK(added["kill-test-" + std::to_string(round) + "|amd64"] == 1);
  }
}

TEST_CASE("an agent kept offline delivers its outbox, in order, after reconnecting") {
  TempDir dir("parc-offline");
  Server server(dir / "server", FreePort());
  server.Start();
  fs::path root = dir / "root";
  BuildWorkstationRoot(root);
  auto [token, fp] = server.Token();
  Agent agent(dir / "agent", root);
  REQUIRE(agent.Enroll(server, token, fp).exit_code == 0);
  agent.Start(1);
  // Generous bounds (not timings): under a parallel ctest on two cores the
  // first inventory and each report while offline took over 20 s at times.
  REQUIRE(WaitFor([&] { return Delivered(server, agent); }, 60s));

  server.Stop();
  AddDpkgPackage(root, "offline-one", "1.0");
  REQUIRE(WaitFor([&] { return agent.Status().value("pending_reports", 0) >= 1; }, 60s));
  AddDpkgPackage(root, "offline-two", "1.0");
  REQUIRE(WaitFor([&] { return agent.Status().value("pending_reports", 0) >= 2; }, 60s));
  // An agent restart while offline keeps the outbox.
  agent.Stop();
  agent.Start(1);
  server.Start();
  INFO(agent.Log());
  REQUIRE(WaitFor([&] {
    return SoftwareNames(server, agent.host_id()).count("offline-two") == 1; }, 60s));
  REQUIRE(WaitFor([&] { return Delivered(server, agent); }, 30s));
  auto names = SoftwareNames(server, agent.host_id());
  CHECK(names.count("offline-one") == 1);
  CHECK(names.count("offline-two") == 1);
  // In order: offline-one was recorded no later than offline-two.
  int64_t at_one = -1, at_two = -1;
  const auto doc_e = server.CtlJson({"history", agent.host_id(), "--section", "software"});  // keep the document alive for the loop
  for (const auto& e : doc_e["entries"]) {
    int64_t at = std::stoll(e["at"].get<std::string>());
    if (e["key"] == "offline-one|amd64") at_one = at;
    if (e["key"] == "offline-two|amd64") at_two = at;
  }
  CHECK(at_one >= 0);
  CHECK(at_two >= at_one);
}
