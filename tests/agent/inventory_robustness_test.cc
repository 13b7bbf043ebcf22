// Missing, unreadable and garbage files: the collector reports what it could
// not read and carries on; it never fails or crashes because of the contents.
#include <algorithm>
#include <random>

#include <catch2/catch.hpp>

#include "inventory_fixture.h"
#include "parc/agent/inventory.h"
#include "test_support.h"

namespace {

using parc::agent::CollectInventory;

bool HasWarningContaining(const std::vector<std::string>& warnings, const std::string& needle) {
  return std::any_of(warnings.begin(), warnings.end(),
                     [&](const std::string& w) { return w.find(needle) != std::string::npos; });
}

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

}  // namespace

TEST_CASE("no DMI table: empty hardware section and a warning, not an error", "[inventory]") {
  parc::test::TempDir root("parc-inv-nodmi");
  parc::test::BuildWorkstationRoot(root.path());
  std::filesystem::remove_all(root / "sys/class/dmi");
  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  CHECK(result->inventory.hardware().ByteSizeLong() == 0);
  CHECK(HasWarningContaining(result->warnings, "no DMI table"));
  // The rest is still there.
  CHECK(result->inventory.software_size() == 5);
}

TEST_CASE("garbage files do not crash the collector", "[inventory]") {
  parc::test::TempDir root("parc-inv-garbage");
  parc::test::BuildWorkstationRoot(root.path());
  const auto& r = root.path();
  // Binary noise where text is expected.
  unsigned seed = 1;
  for (const char* rel : {"proc/cpuinfo", "proc/meminfo", "proc/mounts", "proc/net/route", "proc/net/if_inet6",
                          "proc/net/fib_trie", "proc/stat", "etc/passwd", "etc/group", "etc/shadow",
                          "etc/os-release", "etc/resolv.conf", "sys/class/net/eth0/mtu",
                          "sys/block/sda/size", "lib/systemd/system/ssh.service", "etc/crypttab"}) {
    parc::test::WriteFile(r / rel, RandomBytes(4096, seed++));
  }
  // Plausible but wrong text.
  parc::test::WriteFile(r / "sys/class/dmi/id/chassis_type", "not-a-number\n");
  parc::test::WriteFile(r / "sys/class/net/eth0/speed", "-1\n");
  parc::test::WriteFile(r / "sys/class/drm/card0-HDMI-A-1/edid", parc::test::MakeEdid({}).substr(0, 100));
  std::string bad_checksum = parc::test::MakeEdid({});
  bad_checksum[127] = static_cast<char>(bad_checksum[127] + 1);
  parc::test::WriteFile(r / "sys/class/drm/card1-DP-2/edid", bad_checksum);
  parc::test::WriteFile(r / "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c", "\x06");
  parc::test::WriteFile(r / "var/lib/dpkg/status",
                        "Package: noversion\nStatus: install ok installed\nArchitecture: amd64\n\n"
                        "Package: bad-size\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"
                        "Installed-Size: lots\n\n"
                        "Status: install ok installed\nVersion: 2\n\n"
                        "Package: weird-status\nStatus: installed\nVersion: 3\n\n"
                        ": no key\n   \n\nPackage: last\nStatus: install ok installed\nVersion: 4");

  auto result = CollectInventory({r});
  REQUIRE(result.has_value());
  const auto& inv = result->inventory;
  CHECK(inv.monitors_size() == 1);  // only the good eDP-1 remains
  CHECK(HasWarningContaining(result->warnings, "card0-HDMI-A-1"));
  CHECK(HasWarningContaining(result->warnings, "card1-DP-2"));
  CHECK(inv.security().secure_boot() == "unknown");
  CHECK(inv.hardware().chassis_type() == "not-a-number");
  // A stanza without a version is still an installed package (version unknown);
  // one without a name is not a package at all.
  REQUIRE(inv.software_size() == 3);
  CHECK(inv.software(0).name() == "bad-size");
  CHECK(inv.software(0).installed_size_bytes() == 0);
  CHECK(inv.software(1).name() == "last");
  CHECK(inv.software(1).version() == "4");
  CHECK(inv.software(2).name() == "noversion");
  CHECK(inv.software(2).version().empty());
}

TEST_CASE("unreadable files read as unknown", "[inventory]") {
  parc::test::TempDir root("parc-inv-unreadable");
  parc::test::BuildWorkstationRoot(root.path());
  // A directory where a file is expected fails every read, even for root.
  std::filesystem::remove(root / "etc/shadow");
  std::filesystem::create_directories(root / "etc/shadow");
  std::filesystem::remove(root / "sys/class/dmi/id/product_serial");
  std::filesystem::create_directories(root / "sys/class/dmi/id/product_serial");
  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  CHECK(result->inventory.hardware().serial_number().empty());
  CHECK(result->inventory.hardware().system_vendor() == "LENOVO");
  for (const auto& u : result->inventory.users()) {
    INFO(u.name());
    CHECK_FALSE(u.locked());  // unknown without shadow
  }
}

TEST_CASE("a root that is not a directory is an error", "[inventory]") {
  parc::test::TempDir root("parc-inv-bad");
  auto result = CollectInventory({root / "does-not-exist"});
  REQUIRE_FALSE(result.has_value());
  parc::test::WriteFile(root / "file", "x");
  CHECK_FALSE(CollectInventory({root / "file"}).has_value());
}

TEST_CASE("collecting twice on an unchanged root gives identical bytes", "[inventory]") {
  parc::test::TempDir root("parc-inv-determinism");
  parc::test::BuildWorkstationRoot(root.path());
  auto first = CollectInventory({root.path()});
  auto second = CollectInventory({root.path()});
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  std::string a, b;
  REQUIRE(first->inventory.SerializeToString(&a));
  REQUIRE(second->inventory.SerializeToString(&b));
  CHECK(a.size() > 1000);
  CHECK(a == b);
  CHECK(first->warnings == second->warnings);

}
