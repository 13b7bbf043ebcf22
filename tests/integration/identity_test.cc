// Hardware identity: two hosts claiming the same identity are flagged, not
// merged; a reinstalled machine is recognised as the same machine.
#include <catch2/catch.hpp>

#include "harness.h"
#include "inventory_fixture.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST_CASE("cloned machines are flagged as duplicates and a reinstalled machine is linked to its old record") {
  TempDir dir("parc-ident");
  Server server(dir / "server");
  server.Start();
  // Two roots with the same firmware UUID and serial: a cloned VM or a vendor bug.
  BuildWorkstationRoot(dir / "root-a");
  BuildWorkstationRoot(dir / "root-b");
  WriteFile(dir / "root-b/etc/hostname", "pc13\n");
  WriteFile(dir / "root-b/sys/class/net/eth0/address", "3c:52:82:aa:bb:dd\n");

  Agent a(dir / "a", dir / "root-a");
  Agent b(dir / "b", dir / "root-b");
  auto [t1, fp] = server.Token();
  REQUIRE(a.Enroll(server, t1, fp).exit_code == 0);
  std::string ida = a.host_id();
  a.Start();
  // A is live when its clone B enrolls: that is a clone, not a reinstall.
  REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", ida})["summary"]["online"] == true; }));
  auto [t2, fp2] = server.Token();
  REQUIRE(b.Enroll(server, t2, fp2).exit_code == 0);
  std::string idb = b.host_id();
  b.Start();
  REQUIRE(ida != idb);  // not merged
  REQUIRE(WaitFor([&] {
    auto d = server.CtlJson({"duplicates"})["duplicates"];
    for (const auto& set : d)
      if (set["identity"].get<std::string>().rfind("uuid:", 0) == 0 && set["host_ids"].size() == 2) return true;
    return false;
  }));
  auto show = server.CtlJson({"host", "show", ida});
  CHECK(show["duplicate_of"] == nlohmann::json::array({idb}));

  // Machine A is reinstalled: new state (new key, new machine), same hardware.
  a.Stop();
  REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", ida})["summary"]["online"] == false; }));
  Agent a2(dir / "a2", dir / "root-a");
  auto [t3, fp3] = server.Token();
  REQUIRE(a2.Enroll(server, t3, fp3).exit_code == 0);
  std::string ida2 = a2.host_id();
  auto show2 = server.CtlJson({"host", "show", ida2});
  CHECK(show2["previous_host_id"] == ida);
  // The old record is superseded, so only the real clone pair remains flagged.
  a2.Start();
  REQUIRE(WaitFor([&] {
    const auto doc_set = server.CtlJson({"duplicates"});  // keep the document alive for the loop
    for (const auto& set : doc_set["duplicates"]) {
      auto ids = set["host_ids"];
      bool has_old = std::find(ids.begin(), ids.end(), ida) != ids.end();
      if (has_old) return false;
    }
    return true;
  }));
  bool pair_flagged = false;
  const auto doc_set = server.CtlJson({"duplicates"});  // keep the document alive for the loop
  for (const auto& set : doc_set["duplicates"]) {
    auto ids = set["host_ids"];
    if (std::find(ids.begin(), ids.end(), ida2) != ids.end() && std::find(ids.begin(), ids.end(), idb) != ids.end())
      pair_flagged = true;
  }
  CHECK(pair_flagged);
}
