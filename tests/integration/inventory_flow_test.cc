// Inventory end to end: what the agent reads on a prepared root arrives in the
// parc database, matches an independent source (dpkg-query) on the same root,
// and changes to the root yield exactly the matching history rows.
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>
#include <set>
#include <sstream>

#include "harness.h"
#include "inventory_fixture.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::set<std::string> DpkgQuery(const fs::path& root) {
  auto r = Run({"dpkg-query", "--admindir=" + (root / "var/lib/dpkg").string(), "-W", "-f",
                "${Package}|${Architecture}|${Version}|${db:Status-Status}\n"});
  REQUIRE(r.exit_code == 0);
  std::set<std::string> out;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    auto last = line.rfind('|');
    if (line.substr(last + 1) == "installed") out.insert(line.substr(0, last));
  }
  return out;
}

std::set<std::string> ParcSoftware(const Server& server, const std::string& host) {
  auto j = server.CtlJson({"inventory", host, "--section", "software"});
  std::set<std::string> out;
  for (const auto& item : j["items"]) {
    const auto& f = item["fields"];
    out.insert(f["name"].get<std::string>() + "|" + f["architecture"].get<std::string>() + "|" +
               f["version"].get<std::string>());
  }
  return out;
}

size_t HistoryCount(const Server& server, const std::string& host) {
  return server.CtlJson({"history", host})["entries"].size();
}

}  // namespace

TEST_CASE("inventory reaches the parc, matches dpkg-query, and history records exactly what changed") {
  TempDir dir("parc-inv");
  Server server(dir / "server");
  server.Start();
  fs::path root = dir / "root";
  BuildWorkstationRoot(root);
  auto [token, fp] = server.Token();
  Agent agent(dir / "agent", root);
  REQUIRE(agent.Enroll(server, token, fp).exit_code == 0);
  std::string id = agent.host_id();
  agent.Start();

  REQUIRE(WaitFor([&] { return !server.CtlJson({"host", "show", id})["inventory_digest"].get<std::string>().empty(); }));
  INFO(agent.Log());
  auto expected = DpkgQuery(root);
  REQUIRE(expected.size() >= 3);
  CHECK(ParcSoftware(server, id) == expected);

  auto mem = server.CtlJson({"inventory", id, "--section", "memory"});
  REQUIRE(mem["items"].size() == 1);
  CHECK(mem["items"][0]["fields"]["total_bytes"] == std::to_string(16303456ull * 1024));  // MemTotal of the fixture

  const size_t initial = HistoryCount(server, id);
  CHECK(initial > 0);  // the first report records what was found

  // Change the machine: one package installed, one interface address changed.
  AddDpkgPackage(root, "parc-test-tool", "1.0-1");
  std::string inet6 = ReadFileOrEmpty(root / "proc/net/if_inet6");
  auto pos = inet6.find("20010db8000000000000000000000042");
  REQUIRE(pos != std::string::npos);
  inet6.replace(pos, 32, "20010db8000000000000000000000099");
  WriteFile(root / "proc/net/if_inet6", inet6);

  // Push "collect inventory now" to the connected agent.
  auto sent = server.CtlJson({"collect", id});
  REQUIRE(sent["sent_to"] == nlohmann::json::array({id}));
  REQUIRE(WaitFor([&] { return HistoryCount(server, id) > initial; }));
  std::this_thread::sleep_for(500ms);
  auto history = server.CtlJson({"history", id})["entries"];
  REQUIRE(history.size() == initial + 2);
  std::set<std::string> rows;
  for (size_t i = initial; i < history.size(); ++i) {
    const auto& e = history[i];
    rows.insert(e["section"].get<std::string>() + " " + e["key"].get<std::string>() + " " +
                e["change"].get<std::string>() + " " + e["field"].get<std::string>());
    if (e["section"] == "interfaces") {
      CHECK_THAT(e["old_value"].get<std::string>(), Catch::Contains("2001:db8::42"));
      CHECK_THAT(e["new_value"].get<std::string>(), Catch::Contains("2001:db8::99"));
    }
  }
  CHECK(rows == std::set<std::string>{"software parc-test-tool|amd64 added ", "interfaces eth0 changed addresses"});
  CHECK(ParcSoftware(server, id) == DpkgQuery(root));

  // Volatile values only (free memory): the current value changes, history does not.
  std::string meminfo = ReadFileOrEmpty(root / "proc/meminfo");
  auto avail = meminfo.find("MemAvailable:");
  REQUIRE(avail != std::string::npos);
  auto eol = meminfo.find('\n', avail);
  meminfo.replace(avail, eol - avail, "MemAvailable:     1234 kB");
  WriteFile(root / "proc/meminfo", meminfo);
  REQUIRE(server.CtlJson({"collect", id})["sent_to"].size() == 1);
  REQUIRE(WaitFor([&] {
    auto m = server.CtlJson({"inventory", id, "--section", "memory"});
    return m["items"][0]["fields"].value("available_bytes", "") == std::to_string(1234 * 1024);
  }));
  // And an unchanged machine re-collected adds nothing.
  auto fulls = [&] {
    std::string log = agent.Log();
    size_t n = 0;
    for (size_t p = log.find("queued full inventory report"); p != std::string::npos;
         p = log.find("queued full inventory report", p + 1))
      ++n;
    return n;
  };
  const size_t fulls_before = fulls();
  REQUIRE(server.CtlJson({"collect", id, "--full"})["sent_to"].size() == 1);
  REQUIRE(WaitFor([&] { return fulls() > fulls_before; }));
  std::this_thread::sleep_for(1s);
  CHECK(HistoryCount(server, id) == initial + 2);

  // What parcctl exports agrees with the inventory view.
  auto csv = server.Ctl({"inventory", "export", "--format", "csv", "--section", "software"});
  REQUIRE(csv.exit_code == 0);
  CHECK_THAT(csv.out, Catch::Contains("parc-test-tool"));
}
