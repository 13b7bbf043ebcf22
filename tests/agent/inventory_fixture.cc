#include "inventory_fixture.h"

#include <vector>

#include "test_support.h"

namespace parc::test {

namespace fs = std::filesystem;

std::string MakeEdid(const EdidSpec& spec) {
  std::vector<unsigned char> b(128, 0);
  const unsigned char header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
  std::copy(header, header + 8, b.begin());
  unsigned id = 0;
  for (char c : spec.manufacturer) id = (id << 5) | static_cast<unsigned>(c - 'A' + 1);
  b[8] = static_cast<unsigned char>(id >> 8);
  b[9] = static_cast<unsigned char>(id & 0xff);
  b[10] = static_cast<unsigned char>(spec.product_code & 0xff);
  b[11] = static_cast<unsigned char>(spec.product_code >> 8);
  for (int i = 0; i < 4; ++i) b[12 + i] = static_cast<unsigned char>(spec.numeric_serial >> (8 * i));
  b[16] = 12;  // week
  b[17] = static_cast<unsigned char>(spec.year - 1990);
  b[18] = 1;
  b[19] = 4;
  b[21] = spec.width_cm;
  b[22] = spec.height_cm;
  // First descriptor: a detailed timing (non-zero pixel clock) the parser must skip.
  b[54] = 0x02;
  b[55] = 0x3a;
  auto descriptor = [&](size_t off, unsigned char tag, const std::string& text) {
    b[off + 3] = tag;
    size_t i = 0;
    for (; i < text.size() && i < 13; ++i) b[off + 5 + i] = static_cast<unsigned char>(text[i]);
    if (i < 13) b[off + 5 + i++] = 0x0a;
    for (; i < 13; ++i) b[off + 5 + i] = 0x20;
  };
  if (!spec.name.empty()) descriptor(72, 0xfc, spec.name);
  if (!spec.serial.empty()) descriptor(90, 0xff, spec.serial);
  descriptor(108, 0xfd, "");  // range limits: neither name nor serial
  unsigned sum = 0;
  for (size_t i = 0; i < 127; ++i) sum += b[i];
  b[127] = static_cast<unsigned char>((256 - sum % 256) % 256);
  return std::string(b.begin(), b.end());
}

namespace {

void Link(const fs::path& link, const std::string& target) {
  fs::create_directories(link.parent_path());
  fs::create_symlink(target, link);
}

const char* kDpkgStatus = R"(Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files.

Package: libc6
Status: install ok installed
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u7
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d09e2d4a3d3da8fd37d5fcc9b9aa6b6b
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: libc6
Status: install ok installed
Installed-Size: 12000
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u7
Description: GNU C Library: Shared libraries

Package: oldtool
Status: deinstall ok config-files
Priority: optional
Installed-Size: 10
Maintainer: Nobody <nobody@example.org>
Architecture: amd64
Version: 1.0-1
Description: removed but its configuration is still there

Package: firefox-esr
Status: hold ok installed
Installed-Size: 250000
Maintainer: Mozilla Team <team+pkg-mozilla@tracker.debian.org>
Architecture: amd64
Version: 115.12.0esr-1~deb12u1
Description: Mozilla Firefox web browser - Extended Support Release (ESR)

Package: halfway
Status: install reinstreq half-installed
Architecture: amd64
Version: 0.1
Description: broken install

Package: tzdata
Status: install ok installed
Installed-Size: 3000
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: all
Version: 2024a-0+deb12u1
Description: time zone and daylight-saving time data
)";

const char* kCpuinfo = R"(processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz
physical id	: 0
cpu cores	: 2
flags		: sse2 fpu vme

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz
physical id	: 0
cpu cores	: 2
flags		: fpu vme sse2

processor	: 2
vendor_id	: GenuineIntel
model name	: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz
physical id	: 1
cpu cores	: 2
flags		: fpu vme sse2

processor	: 3
vendor_id	: GenuineIntel
model name	: Intel(R) Core(TM) i5-8350U CPU @ 1.70GHz
physical id	: 1
cpu cores	: 2
flags		: fpu vme sse2
)";

const char* kFibTrie = R"(Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.168.10.0/24 2 0 2
        |-- 192.168.10.0
           /24 link UNICAST
        |-- 192.168.10.42
           /32 host LOCAL
        |-- 192.168.10.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.168.10.42
        /32 host LOCAL
)";

}  // namespace

void BuildWorkstationRoot(const fs::path& r) {
  WriteFile(r / "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n"
            "VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n");
  WriteFile(r / "etc/hostname", "pc12\n");
  WriteFile(r / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 pc12.lab.example pc12\n");
  Link(r / "etc/localtime", "/usr/share/zoneinfo/Europe/Paris");
  WriteFile(r / "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
  WriteFile(r / "proc/sys/kernel/ostype", "Linux\n");
  WriteFile(r / "proc/sys/kernel/osrelease", "6.1.0-21-amd64\n");
  WriteFile(r / "proc/sys/kernel/version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)\n");
  WriteFile(r / "proc/stat", "cpu  1 2 3 4\nintr 0\nbtime 1717000000\nprocesses 42\n");
  WriteFile(r / "proc/meminfo",
            "MemTotal:       16303456 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\n"
            "SwapTotal:       999420 kB\nSwapFree:         999000 kB\n");
  WriteFile(r / "proc/cpuinfo", kCpuinfo);
  WriteFile(r / "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3600000\n");

  const fs::path dmi = r / "sys/class/dmi/id";
  WriteFile(dmi / "sys_vendor", "LENOVO\n");
  WriteFile(dmi / "product_name", "20L5S0ME00\n");
  WriteFile(dmi / "product_version", "ThinkPad T480 \n");
  WriteFile(dmi / "product_serial", "PF1ABCDE\n");
  WriteFile(dmi / "product_uuid", "4C4C4544-0042-3510-8052-B2C04F4E3332\n");
  WriteFile(dmi / "bios_vendor", "LENOVO\n");
  WriteFile(dmi / "bios_version", "N24ET76W (1.51 )\n");
  WriteFile(dmi / "bios_date", "02/27/2023\n");
  WriteFile(dmi / "board_vendor", "LENOVO\n");
  WriteFile(dmi / "board_name", "20L5S0ME00\n");
  WriteFile(dmi / "board_serial", "Default string\n");
  WriteFile(dmi / "chassis_type", "10\n");
  WriteFile(dmi / "chassis_serial", "PF1ABCDE\n");
  WriteFile(dmi / "chassis_asset_tag", "PARC-00042\n");

  // As in sysfs, /sys/block entries link into the device tree, which names the bus.
  const std::string sda_dev = "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda";
  fs::create_directories(r / "sys" / sda_dev);
  Link(r / "sys/block/sda", "../" + sda_dev);
  WriteFile(r / "sys/block/sda/size", "1000215216\n");
  WriteFile(r / "sys/block/sda/dev", "8:0\n");
  WriteFile(r / "sys/block/sda/removable", "0\n");
  WriteFile(r / "sys/block/sda/queue/rotational", "1\n");
  WriteFile(r / "sys/block/sda/device/model", "WDC WD5000LPLX-0\n");
  WriteFile(r / "sys/block/sda/device/vendor", "ATA     \n");
  WriteFile(r / "sys/block/sda/device/wwid", "naa.50014ee2b5d6c7e8\n");
  WriteFile(r / "run/udev/data/b8:0", "S:disk/by-id/ata-WDC\nE:ID_SERIAL=WDC_WD5000LPLX-0_WD-WX11A\nE:ID_SERIAL_SHORT=WD-WX11A\n");
  WriteFile(r / "sys/block/nvme0n1/size", "1000215216\n");
  WriteFile(r / "sys/block/nvme0n1/removable", "0\n");
  WriteFile(r / "sys/block/nvme0n1/queue/rotational", "0\n");
  WriteFile(r / "sys/block/nvme0n1/device/model", "Samsung SSD 970 EVO Plus 500GB\n");
  WriteFile(r / "sys/block/nvme0n1/device/serial", "S4EVNX0N123456\n");
  WriteFile(r / "sys/block/nvme0n1/wwid", "eui.0025385b91b12345\n");
  WriteFile(r / "sys/block/loop0/size", "100\n");
  WriteFile(r / "sys/block/zram0/size", "100\n");
  WriteFile(r / "sys/block/dm-0/size", "999000000\n");
  WriteFile(r / "sys/block/dm-0/dm/uuid", "CRYPT-LUKS2-0a1b2c3d-cryptroot\n");
  WriteFile(r / "sys/block/dm-0/dm/name", "cryptroot\n");
  WriteFile(r / "sys/block/dm-1/dm/uuid", "LVM-abcdef\n");
  WriteFile(r / "sys/block/dm-1/dm/name", "vg-home\n");
  WriteFile(r / "etc/crypttab", "# <target> <source> <key> <options>\ncryptroot UUID=0a1b none luks\ncryptswap /dev/sda3 /dev/urandom swap\n");

  WriteFile(r / "proc/mounts",
            "sysfs /sys sysfs rw,nosuid 0 0\nproc /proc proc rw 0 0\n"
            "/dev/mapper/cryptroot / ext4 rw,relatime 0 0\n"
            "tmpfs /run tmpfs rw,nosuid 0 0\n"
            "/dev/sda1 /boot/efi vfat rw,relatime 0 0\n"
            "/dev/sda2 /media/My\\040Disk vfat ro,nosuid 0 0\n"
            "/dev/sdb1 /media/usb ext4 rw 0 0\n"
            "/dev/sdb2 /media/usb xfs ro 0 0\n"
            "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n");
  Link(r / "dev/disk/by-uuid/7e2c-11ab", "../../sda1");
  Link(r / "dev/disk/by-uuid/1b2c3d4e-0000-4000-8000-00000000cafe", "../../dm-0");
  Link(r / "dev/mapper/cryptroot", "../dm-0");

  const fs::path eth0 = r / "sys/class/net/eth0";
  WriteFile(eth0 / "address", "3C:52:82:AA:BB:CC\n");
  WriteFile(eth0 / "operstate", "up\n");
  WriteFile(eth0 / "mtu", "1500\n");
  WriteFile(eth0 / "type", "1\n");
  WriteFile(eth0 / "speed", "1000\n");
  Link(eth0 / "device/driver", "../../../../bus/pci/drivers/e1000e");
  const fs::path wlan = r / "sys/class/net/wlan0";
  WriteFile(wlan / "address", "a0:b1:c2:d3:e4:f5\n");
  WriteFile(wlan / "operstate", "down\n");
  WriteFile(wlan / "mtu", "1500\n");
  WriteFile(wlan / "type", "1\n");
  WriteFile(wlan / "speed", "not a number\n");
  fs::create_directories(wlan / "phy80211");
  Link(wlan / "device/driver", "../../../../bus/pci/drivers/iwlwifi");
  const fs::path lo = r / "sys/class/net/lo";
  WriteFile(lo / "address", "00:00:00:00:00:00\n");
  WriteFile(lo / "operstate", "unknown\n");
  WriteFile(lo / "mtu", "65536\n");
  WriteFile(lo / "type", "772\n");
  WriteFile(r / "sys/class/net/bonding_masters", "\n");
  WriteFile(r / "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
            "eth0\t00000000\t010AA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
            "eth0\t000AA8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n");
  WriteFile(r / "proc/net/if_inet6",
            "00000000000000000000000000000001 01 80 10 80       lo\n"
            "fe800000000000003e5282fffeaabbcc 02 40 20 80     eth0\n"
            "20010db8000000000000000000000042 02 40 00 00     eth0\n");
  WriteFile(r / "proc/net/fib_trie", kFibTrie);
  WriteFile(r / "etc/resolv.conf",
            "# generated\nnameserver 192.168.10.53\nnameserver 9.9.9.9\nsearch old.example\n"
            "nameserver 1.1.1.1\nsearch lab.example example.org\n");

  WriteFile(r / "var/lib/dpkg/status", kDpkgStatus);

  const fs::path lib = r / "lib/systemd/system";
  WriteFile(lib / "ssh.service",
            "[Unit]\nDescription=OpenBSD Secure Shell server\n\n[Service]\nExecStart=/usr/sbin/sshd -D\n\n"
            "[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n");
  WriteFile(lib / "systemd-journald.service", "[Unit]\nDescription=Journal Service\n[Service]\nType=notify\n");
  WriteFile(lib / "cups.service", "[Unit]\nDescription=CUPS Scheduler\n[Install]\nWantedBy=printer.target\n");
  WriteFile(lib / "bluetooth.service", "[Unit]\nDescription=Bluetooth service\n[Install]\nWantedBy=bluetooth.target\n");
  WriteFile(lib / "getty@.service", "[Unit]\nDescription=Getty on %I\n[Install]\nWantedBy=getty.target\n");
  WriteFile(lib / "ufw.service", "[Unit]\nDescription=Uncomplicated firewall\n[Install]\nWantedBy=multi-user.target\n");
  WriteFile(lib / "multi-user.target", "[Unit]\nDescription=Multi-User System\n");
  Link(r / "etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service");
  Link(r / "etc/systemd/system/multi-user.target.wants/ufw.service", "/lib/systemd/system/ufw.service");
  Link(r / "etc/systemd/system/sshd.service", "/lib/systemd/system/ssh.service");
  Link(r / "etc/systemd/system/getty.target.wants/getty@tty1.service", "/lib/systemd/system/getty@.service");
  Link(r / "etc/systemd/system/bluetooth.service", "/dev/null");

  WriteFile(r / "etc/login.defs", "# defaults\nUID_MIN\t\t\t 1000\nUID_MAX 60000\n");
  WriteFile(r / "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n"
            "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            "alice:x:1000:1000:Alice Martin,,,:/home/alice:/bin/bash\n"
            "bob:x:1001:1001:Bob:/home/bob:/bin/zsh\n"
            "carol:x:1002:1002::/home/carol:/bin/bash\n"
            "broken line without fields\n");
  WriteFile(r / "etc/shadow",
            "root:!:19000:0:99999:7:::\n"
            "daemon:*:19000:0:99999:7:::\n"
            "nobody:*:19000:0:99999:7:::\n"
            "alice:$y$j9T$abc$def:19000:0:99999:7:::\n"
            "bob:!$y$j9T$abc$def:19000:0:99999:7:::\n");
  WriteFile(r / "etc/group",
            "root:x:0:\nsudo:x:27:bob,alice\nusers:x:100:carol,alice,bob,alice\nalice:x:1000:\n");

  WriteFile(r / "sys/class/drm/card0-eDP-1/edid", MakeEdid({}));
  WriteFile(r / "sys/class/drm/card0-DP-1/edid", "");
  WriteFile(r / "sys/class/drm/card0/dev", "226:0\n");

  WriteFile(r / "usr/sbin/nft", "");
  WriteFile(r / "usr/sbin/ufw", "");
  WriteFile(r / "etc/ufw/ufw.conf", "# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n");
  WriteFile(r / "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
            std::string("\x06\x00\x00\x00\x01", 5));
}

void MakeDistinctMachine(const fs::path& r, int n) {
  const std::string two = (n < 10 ? "0" : "") + std::to_string(n % 100);
  WriteFile(r / "etc/hostname", "pc" + std::to_string(n) + "\n");
  const fs::path dmi = r / "sys/class/dmi/id";
  WriteFile(dmi / "product_uuid", "4C4C4544-0042-3510-8052-B2C04F4E33" + two + "\n");
  WriteFile(dmi / "product_serial", "PF1AB" + two + "\n");
  WriteFile(dmi / "chassis_serial", "PF1AB" + two + "\n");
  WriteFile(r / "sys/class/net/eth0/address", "3c:52:82:aa:bb:" + two + "\n");
  WriteFile(r / "sys/class/net/wlan0/address", "a0:b1:c2:d3:e4:" + two + "\n");
  WriteFile(r / "run/udev/data/b8:0", "S:disk/by-id/ata-WDC\nE:ID_SERIAL=WDC_WD5000LPLX-0_WD-WX" + two +
                                          "\nE:ID_SERIAL_SHORT=WD-WX" + two + "\n");
  WriteFile(r / "sys/block/nvme0n1/device/serial", "S4EVNX0N1234" + two + "\n");
}

}  // namespace parc::test
