// The collector on this machine (root "/"), checked against the system's own
// tools. The test machine is a small VM or container: no hardware facts assumed.
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "parc/agent/inventory.h"
#include "test_support.h"

namespace {

using parc::agent::CollectInventory;

parc::agent::CollectResult CollectLive() {
  auto start = std::chrono::steady_clock::now();
  auto result = CollectInventory({"/"});
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(result.has_value());
  WARN("live inventory collected in " << ms << " ms (" << result->inventory.software_size() << " packages, "
                                      << result->warnings.size() << " warnings)");
  return std::move(*result);
}

// Fields that change by themselves from one moment to the next.
void ClearVolatile(parc::v1::Inventory& inv) {
  inv.mutable_os()->clear_boot_time();
  inv.mutable_memory()->clear_available_bytes();
  inv.mutable_memory()->clear_swap_free_bytes();
  for (auto& fs : *inv.mutable_filesystems()) fs.clear_free_bytes();
  for (auto& nic : *inv.mutable_interfaces()) nic.clear_speed_mbps();
}

}  // namespace

TEST_CASE("live: software equals what dpkg-query lists as installed", "[inventory][live]") {
  auto dpkg = parc::test::Run({"dpkg-query", "-W", "-f",
                               "${binary:Package} ${Architecture} ${Version} ${db:Status-Status}\n"});
  if (dpkg.exit_code != 0) {
    WARN("dpkg-query is not usable here: " << dpkg.err);
    return;
  }
  std::set<std::tuple<std::string, std::string, std::string>> expected;
  std::istringstream lines(dpkg.out);
  std::string package, arch, version, status;
  while (lines >> package >> arch >> version >> status) {
    if (status != "installed") continue;
    // binary:Package says "libc6:i386" for foreign and multi-arch packages.
    expected.emplace(package.substr(0, package.find(':')), arch, version);
  }
  REQUIRE_FALSE(expected.empty());

  auto result = CollectLive();
  std::set<std::tuple<std::string, std::string, std::string>> actual;
  for (const auto& p : result.inventory.software()) {
    if (p.source() == "dpkg") actual.emplace(p.name(), p.architecture(), p.version());
  }
  CHECK(actual.size() == expected.size());
  for (const auto& e : expected) {
    if (!actual.contains(e)) FAIL_CHECK("missing " << std::get<0>(e) << ":" << std::get<1>(e) << " " << std::get<2>(e));
  }
  for (const auto& a : actual) {
    if (!expected.contains(a)) FAIL_CHECK("extra " << std::get<0>(a) << ":" << std::get<1>(a) << " " << std::get<2>(a));
  }
}

TEST_CASE("live: memory total equals /proc/meminfo", "[inventory][live]") {
  std::string meminfo = parc::test::ReadFileOrEmpty("/proc/meminfo");
  REQUIRE(meminfo.starts_with("MemTotal:"));
  uint64_t kib = std::stoull(meminfo.substr(9));
  auto result = CollectLive();
  CHECK(result.inventory.memory().total_bytes() == kib * 1024);
  CHECK(result.inventory.cpu().threads() > 0);
  CHECK_FALSE(result.inventory.os().kernel_release().empty());
  CHECK_FALSE(result.inventory.os().architecture().empty());
}

TEST_CASE("live: interface names and MACs equal `ip -j link`", "[inventory][live]") {
  auto ip = parc::test::Run({"ip", "-j", "link"});
  if (ip.exit_code != 0) {
    WARN("ip is not usable here: " << ip.err);
    return;
  }
  std::map<std::string, std::string> expected;  // name -> mac
  auto links = nlohmann::json::parse(ip.out);
  for (const auto& link : links) {
    std::string mac = link.value("address", "");
    // No hardware address (loopback, layer-3 tunnels) is reported as "".
    if (mac.find_first_not_of("0:") == std::string::npos) mac.clear();
    if (link.value("link_type", "") != "ether" && link.value("link_type", "") != "loopback" &&
        mac.size() != 17) {
      mac.clear();
    }
    expected[link.at("ifname").get<std::string>()] = mac;
  }
  auto result = CollectLive();
  std::map<std::string, std::string> actual;
  for (const auto& nic : result.inventory.interfaces()) actual[nic.name()] = nic.mac();
  CHECK(actual == expected);
}

TEST_CASE("live: two collections agree except for volatile fields", "[inventory][live]") {
  auto first = CollectLive();
  auto second = CollectLive();
  ClearVolatile(first.inventory);
  ClearVolatile(second.inventory);
  CHECK(first.inventory.SerializeAsString() == second.inventory.SerializeAsString());
}

TEST_CASE("live: service unit file states agree with systemctl", "[inventory][live]") {
  auto out = parc::test::Run({"systemctl", "--root=/", "list-unit-files", "--type=service", "--no-legend",
                              "--no-pager"});
  if (out.exit_code != 0) {
    WARN("systemctl is not usable here: " << out.err);
    return;
  }
  std::map<std::string, std::string> expected;
  std::istringstream lines(out.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name, state;
    // Templates and aliases are not services of their own in the inventory.
    if (!(words >> name >> state) || state == "alias" || name.find('@') != std::string::npos) continue;
    expected[name] = state;
  }
  auto result = CollectLive();
  std::map<std::string, std::string> actual;
  for (const auto& s : result.inventory.services()) {
    if (s.name().find('@') == std::string::npos) actual[s.name()] = s.enabled();
  }
  CHECK(actual == expected);
}
