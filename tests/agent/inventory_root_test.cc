// The collector against a prepared root: every section must come out exactly
// as the files under the root describe it.
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <map>
#include <sstream>

#include <catch2/catch.hpp>

#include "inventory_fixture.h"
#include "parc/agent/inventory.h"
#include "parc/common/hash.h"
#include "test_support.h"

namespace {

using parc::agent::CollectInventory;
using parc::v1::Inventory;

Inventory Parse(const std::string& text) {
  Inventory inv;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &inv));
  return inv;
}

// Compares one section; on mismatch prints both sides in text form.
void CheckSection(const Inventory& actual, const Inventory& expected, const std::string& section) {
  const auto* field = Inventory::descriptor()->FindFieldByName(section);
  REQUIRE(field);
  Inventory a, e;
  a.CopyFrom(actual);
  e.CopyFrom(expected);
  for (int i = 0; i < Inventory::descriptor()->field_count(); ++i) {
    const auto* f = Inventory::descriptor()->field(i);
    if (f == field) continue;
    a.GetReflection()->ClearField(&a, f);
    e.GetReflection()->ClearField(&e, f);
  }
  INFO("section " << section << "\nactual:\n" << a.DebugString() << "expected:\n" << e.DebugString());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(a, e));
}

}  // namespace

TEST_CASE("inventory of a prepared root matches its files section by section", "[inventory]") {
  parc::test::TempDir root("parc-inv-root");
  parc::test::BuildWorkstationRoot(root.path());

  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  const Inventory& inv = result->inventory;
  for (const auto& w : result->warnings) UNSCOPED_INFO("warning: " << w);
  CHECK(result->warnings.empty());

  const std::string flags_digest = parc::Sha256Hex("fpu sse2 vme");
  Inventory expected = Parse(R"pb(
    os {
      id: "debian" name: "Debian GNU/Linux" version_id: "12"
      pretty_name: "Debian GNU/Linux 12 (bookworm)" version_codename: "bookworm"
      kernel_name: "Linux" kernel_release: "6.1.0-21-amd64"
      kernel_version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)"
      architecture: "x86_64" hostname: "pc12" fqdn: "pc12.lab.example"
      timezone: "Europe/Paris" boot_time: 1717000000
      machine_id: "0123456789abcdef0123456789abcdef"
    }
    hardware {
      system_vendor: "LENOVO" product_name: "20L5S0ME00" product_version: "ThinkPad T480"
      serial_number: "PF1ABCDE" system_uuid: "4c4c4544-0042-3510-8052-b2c04f4e3332"
      bios_vendor: "LENOVO" bios_version: "N24ET76W (1.51 )" bios_date: "02/27/2023"
      board_vendor: "LENOVO" board_name: "20L5S0ME00" board_serial: ""
      chassis_type: "Notebook" chassis_serial: "PF1ABCDE" asset_tag: "PARC-00042"
    }
    cpu {
      model: "Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz" vendor: "GenuineIntel"
      sockets: 2 cores: 4 threads: 4 flags_digest: "FLAGS" max_mhz: 3600
    }
    memory {
      total_bytes: 16694738944 swap_total_bytes: 1023406080
      available_bytes: 12288000000 swap_free_bytes: 1022976000
    }
    disks {
      name: "nvme0n1" model: "Samsung SSD 970 EVO Plus 500GB" serial: "S4EVNX0N123456"
      size_bytes: 512110190592 rotational: false removable: false transport: "nvme"
      wwn: "eui.0025385b91b12345"
    }
    disks {
      name: "sda" model: "WDC WD5000LPLX-0" serial: "WD-WX11A" vendor: "ATA"
      size_bytes: 512110190592 rotational: true transport: "sata" wwn: "naa.50014ee2b5d6c7e8"
    }
    filesystems { mount_point: "/" device: "/dev/mapper/cryptroot" type: "ext4"
                  uuid: "1b2c3d4e-0000-4000-8000-00000000cafe" }
    filesystems { mount_point: "/boot/efi" device: "/dev/sda1" type: "vfat" uuid: "7e2c-11ab" }
    filesystems { mount_point: "/media/My Disk" device: "/dev/sda2" type: "vfat" read_only: true }
    filesystems { mount_point: "/media/usb" device: "/dev/sdb2" type: "xfs" read_only: true }
    interfaces {
      name: "eth0" mac: "3c:52:82:aa:bb:cc"
      addresses: "192.168.10.42/24" addresses: "2001:db8::42/64" addresses: "fe80::3e52:82ff:feaa:bbcc/64"
      state: "up" speed_mbps: 1000 mtu: 1500 type: "ether" driver: "e1000e"
    }
    interfaces {
      name: "lo" addresses: "127.0.0.1/8" addresses: "::1/128"
      state: "unknown" speed_mbps: -1 mtu: 65536 type: "loopback"
    }
    interfaces {
      name: "wlan0" mac: "a0:b1:c2:d3:e4:f5" state: "down" speed_mbps: -1 mtu: 1500
      type: "wireless" driver: "iwlwifi"
    }
    network {
      default_gateway: "192.168.10.1" default_interface: "eth0"
      dns_servers: "192.168.10.53" dns_servers: "9.9.9.9" dns_servers: "1.1.1.1"
      search_domains: "lab.example" search_domains: "example.org"
    }
    software { name: "base-files" architecture: "amd64" version: "12.4+deb12u5" source: "dpkg"
               summary: "Debian base system miscellaneous files" installed_size_bytes: 349184
               vendor: "Santiago Vila <sanvila@debian.org>" }
    software { name: "firefox-esr" architecture: "amd64" version: "115.12.0esr-1~deb12u1" source: "dpkg"
               summary: "Mozilla Firefox web browser - Extended Support Release (ESR)"
               installed_size_bytes: 256000000
               vendor: "Mozilla Team <team+pkg-mozilla@tracker.debian.org>" }
    software { name: "libc6" architecture: "amd64" version: "2.36-9+deb12u7" source: "dpkg"
               summary: "GNU C Library: Shared libraries" installed_size_bytes: 13297664
               vendor: "GNU Libc Maintainers <debian-glibc@lists.debian.org>" }
    software { name: "libc6" architecture: "i386" version: "2.36-9+deb12u7" source: "dpkg"
               summary: "GNU C Library: Shared libraries" installed_size_bytes: 12288000
               vendor: "GNU Libc Maintainers <debian-glibc@lists.debian.org>" }
    software { name: "tzdata" architecture: "all" version: "2024a-0+deb12u1" source: "dpkg"
               summary: "time zone and daylight-saving time data" installed_size_bytes: 3072000
               vendor: "GNU Libc Maintainers <debian-glibc@lists.debian.org>" }
    services { name: "bluetooth.service" enabled: "masked" description: "Bluetooth service" }
    services { name: "cups.service" enabled: "disabled" description: "CUPS Scheduler" }
    services { name: "getty@tty1.service" enabled: "enabled" description: "Getty on %I" }
    services { name: "ssh.service" enabled: "enabled" description: "OpenBSD Secure Shell server" }
    services { name: "systemd-journald.service" enabled: "static" description: "Journal Service" }
    services { name: "ufw.service" enabled: "enabled" description: "Uncomplicated firewall" }
    users { name: "alice" uid: 1000 gid: 1000 home: "/home/alice" shell: "/bin/bash"
            gecos: "Alice Martin,,," system: false locked: false }
    users { name: "bob" uid: 1001 gid: 1001 home: "/home/bob" shell: "/bin/zsh" gecos: "Bob" locked: true }
    users { name: "carol" uid: 1002 gid: 1002 home: "/home/carol" shell: "/bin/bash" locked: true }
    users { name: "daemon" uid: 1 gid: 1 home: "/usr/sbin" shell: "/usr/sbin/nologin" gecos: "daemon"
            system: true locked: true }
    users { name: "nobody" uid: 65534 gid: 65534 home: "/nonexistent" shell: "/usr/sbin/nologin"
            gecos: "nobody" system: true locked: true }
    users { name: "root" uid: 0 gid: 0 home: "/root" shell: "/bin/bash" gecos: "root" system: true locked: true }
    groups { name: "alice" gid: 1000 }
    groups { name: "root" gid: 0 }
    groups { name: "sudo" gid: 27 members: "alice" members: "bob" }
    groups { name: "users" gid: 100 members: "alice" members: "bob" members: "carol" }
    monitors { connector: "card0-eDP-1" manufacturer: "DEL" model: "DELL U2423" serial: "ABC123"
               product_code: 41137 year: 2023 width_cm: 53 height_cm: 30 }
    virtualization { role: "none" }
    security { firewall_present: true firewall_active: true firewall_kind: "ufw" secure_boot: "enabled"
               encrypted_devices: "cryptroot" encrypted_devices: "cryptswap" }
  )pb");
  expected.mutable_cpu()->set_flags_digest(flags_digest);

  for (int i = 0; i < Inventory::descriptor()->field_count(); ++i) {
    CheckSection(inv, expected, Inventory::descriptor()->field(i)->name());
  }
}

TEST_CASE("a prepared root is read from its files only, never from the host", "[inventory]") {
  parc::test::TempDir root("parc-inv-empty");
  // An almost empty tree: whatever the host has (DMI, interfaces, mounts, packages)
  // must not leak into the inventory of the root.
  parc::test::WriteFile(root / "etc/os-release", "ID=debian\n");
  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  const Inventory& inv = result->inventory;
  CHECK(inv.os().id() == "debian");
  CHECK(inv.os().kernel_release().empty());
  CHECK(inv.os().architecture().empty());
  CHECK(inv.os().hostname().empty());
  CHECK(inv.memory().total_bytes() == 0);
  CHECK(inv.interfaces_size() == 0);
  CHECK(inv.disks_size() == 0);
  CHECK(inv.filesystems_size() == 0);
  CHECK(inv.software_size() == 0);
  CHECK(inv.services_size() == 0);
  CHECK(inv.users_size() == 0);
  CHECK(inv.network().dns_servers_size() == 0);
  CHECK(inv.virtualization().role() == "none");
  CHECK(inv.security().secure_boot() == "unknown");
}

TEST_CASE("a prepared root without /proc takes its filesystems from fstab", "[inventory]") {
  parc::test::TempDir root("parc-inv-fstab");
  parc::test::WriteFile(root / "etc/fstab",
                        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
                        "UUID=0A1B2C3D-aaaa-bbbb-cccc-0123456789ab / ext4 errors=remount-ro 0 1\n"
                        "UUID=7E2C-11AB /boot/efi vfat umask=0077 0 1\n"
                        "UUID=5555-6666 none swap sw 0 0\n"
                        "/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n"
                        "tmpfs /tmp tmpfs defaults 0 0\n");
  parc::test::WriteFile(root / "var/lib/dpkg/arch", "arm64\narmhf\n");
  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  const auto& fs = result->inventory.filesystems();
  REQUIRE(fs.size() == 3);
  CHECK(fs[0].mount_point() == "/");
  CHECK(fs[0].uuid() == "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab");
  CHECK(fs[0].type() == "ext4");
  CHECK_FALSE(fs[0].read_only());
  CHECK(fs[1].mount_point() == "/boot/efi");
  CHECK(fs[1].uuid() == "7e2c-11ab");
  CHECK(fs[2].mount_point() == "/media/cdrom0");
  CHECK(result->inventory.os().architecture() == "aarch64");
}

TEST_CASE("virtualization: containers and hypervisors are recognised from the root", "[inventory]") {
  SECTION("docker") {
    parc::test::TempDir root("parc-inv-docker");
    parc::test::WriteFile(root / ".dockerenv", "");
    auto result = CollectInventory({root.path()});
    REQUIRE(result.has_value());
    CHECK(result->inventory.virtualization().role() == "container");
    CHECK(result->inventory.virtualization().container() == "docker");
  }
  SECTION("systemd-nspawn says so itself") {
    parc::test::TempDir root("parc-inv-nspawn");
    parc::test::WriteFile(root / "run/systemd/container", "systemd-nspawn\n");
    auto result = CollectInventory({root.path()});
    REQUIRE(result.has_value());
    CHECK(result->inventory.virtualization().container() == "systemd-nspawn");
  }
  SECTION("a KVM guest") {
    parc::test::TempDir root("parc-inv-kvm");
    parc::test::WriteFile(root / "sys/class/dmi/id/sys_vendor", "QEMU\n");
    parc::test::WriteFile(root / "sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n");
    parc::test::WriteFile(root / "sys/class/dmi/id/chassis_type", "1\n");
    parc::test::WriteFile(root / "proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu hypervisor\n");
    auto result = CollectInventory({root.path()});
    REQUIRE(result.has_value());
    CHECK(result->inventory.virtualization().role() == "guest");
    CHECK(result->inventory.virtualization().hypervisor() == "qemu");
    CHECK(result->inventory.hardware().chassis_type() == "Other");
  }
  SECTION("a hypervisor flag alone still makes a guest") {
    parc::test::TempDir root("parc-inv-hv");
    parc::test::WriteFile(root / "proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu hypervisor\n");
    auto result = CollectInventory({root.path()});
    REQUIRE(result.has_value());
    CHECK(result->inventory.virtualization().role() == "guest");
    CHECK(result->inventory.virtualization().hypervisor().empty());
  }
}

TEST_CASE("aarch64 cpuinfo names the core by implementer and part", "[inventory]") {
  parc::test::TempDir root("parc-inv-arm");
  std::string cpuinfo;
  for (int i = 0; i < 4; ++i) {
    cpuinfo += "processor\t: " + std::to_string(i) +
               "\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
               "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n";
  }
  parc::test::WriteFile(root / "proc/cpuinfo", cpuinfo);
  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  const auto& cpu = result->inventory.cpu();
  CHECK(cpu.vendor() == "ARM");
  CHECK(cpu.model() == "ARM part 0xd08");
  CHECK(cpu.threads() == 4);
  CHECK(cpu.cores() == 4);
  CHECK(cpu.sockets() == 1);
  CHECK(cpu.flags_digest() == parc::Sha256Hex("asimd cpuid crc32 evtstrm fp"));

  parc::test::WriteFile(root / "proc/cpuinfo", cpuinfo + "Hardware\t: BCM2835\n");
  result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  CHECK(result->inventory.cpu().model() == "BCM2835");
}

namespace {

// Unit file states as `systemctl --root` computes them, without templates and
// aliases (which the inventory does not list as services of their own).
std::map<std::string, std::string> SystemctlUnitFileStates(const std::filesystem::path& root) {
  auto out = parc::test::Run({"systemctl", "--root=" + root.string(), "list-unit-files", "--type=service",
                              "--no-legend", "--no-pager"});
  std::map<std::string, std::string> states;
  if (out.exit_code != 0) return states;
  std::istringstream lines(out.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name, state;
    if (!(words >> name >> state) || state == "alias" || name.find('@') != std::string::npos) continue;
    states[name] = state;
  }
  return states;
}

}  // namespace

TEST_CASE("service states of a prepared root agree with systemctl --root", "[inventory]") {
  parc::test::TempDir root("parc-inv-systemctl");
  parc::test::BuildWorkstationRoot(root.path());
  auto expected = SystemctlUnitFileStates(root.path());
  if (expected.empty()) {
    WARN("systemctl --root is not usable here; skipped");
    return;
  }
  auto result = CollectInventory({root.path()});
  REQUIRE(result.has_value());
  std::map<std::string, std::string> actual;
  for (const auto& s : result->inventory.services()) {
    if (s.name().find('@') == std::string::npos) actual[s.name()] = s.enabled();
  }
  CHECK(actual == expected);
}
