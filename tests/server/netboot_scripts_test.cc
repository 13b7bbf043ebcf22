// iPXE scripts and the site dnsmasq configuration (server/src/netboot_scripts.cc).
// The dnsmasq text is also read by the real dnsmasq (--test), so that a
// directive it does not know fails here rather than on a technician's site.
#include <catch2/catch.hpp>

#include "netboot_render.h"
#include "test_support.h"

using namespace parc::netboot;
using parc::test::Run;
using parc::test::TempDir;
using parc::test::WriteFile;

namespace {

IpxeInstall Install(const std::string& os) {
  HostSpec spec{"52:54:00:ab:cd:ef", "pc-042", "lab", os, "/dev/sda", "fr_FR.UTF-8", "", "Europe/Paris", "", ""};
  auto h = NormalizeHostSpec(spec);
  REQUIRE(h);
  IpxeInstall in;
  in.host = *h;
  in.answer_url = "https://boot.lan:8443/answer/52:54:00:ab:cd:ef/";
  return in;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("netboot: the Debian iPXE script boots the installer with the preseed URL over HTTPS", "[netboot]") {
  auto in = Install("debian12");
  in.files = {{"linux", "kernel", "http://boot.lan:8080/boot/files/debian12/linux"},
              {"initrd.gz", "initrd", "http://boot.lan:8080/boot/files/debian12/initrd.gz"}};
  in.cmdline = "vga=788 quiet";
  auto script = IpxeInstallScript(in);
  REQUIRE(script);
  auto lines = Lines(*script);
  REQUIRE(lines.size() > 4);
  CHECK(lines[0] == "#!ipxe");
  std::string kernel;
  int initrds = 0;
  for (const auto& l : lines) {
    if (l.rfind("kernel ", 0) == 0) kernel = l;
    if (l.rfind("initrd ", 0) == 0) {
      ++initrds;
      CHECK(l == "initrd http://boot.lan:8080/boot/files/debian12/initrd.gz || goto failed");
    }
  }
  CHECK(initrds == 1);
  CHECK(kernel.rfind("kernel http://boot.lan:8080/boot/files/debian12/linux auto=true priority=critical "
                     "url=https://boot.lan:8443/answer/52:54:00:ab:cd:ef/preseed.cfg ",
                     0) == 0);
  CHECK_THAT(kernel, Catch::Contains(" hostname=pc-042 ") && Catch::Contains(" locale=fr_FR.UTF-8 ") &&
                         Catch::Contains(" keymap=fr ") && Catch::EndsWith(" vga=788 quiet || goto failed"));
  CHECK_THAT(*script, Catch::Contains("\nboot || goto failed\n:failed\n"));
  CHECK_THAT(*script, Catch::EndsWith("exit\n"));
}

TEST_CASE("netboot: the Windows iPXE script names the WinPE files for wimboot and adds autounattend.xml",
          "[netboot]") {
  auto in = Install("windows11");
  in.files = {{"wimboot", "kernel", "https://b/boot/files/windows11/wimboot"},
              {"BCD", "initrd", "https://b/boot/files/windows11/BCD"},
              {"boot.sdi", "initrd", "https://b/boot/files/windows11/boot.sdi"},
              {"boot.wim", "initrd", "https://b/boot/files/windows11/boot.wim"},
              {"readme.txt", "file", "https://b/boot/files/windows11/readme.txt"}};
  auto script = IpxeInstallScript(in);
  REQUIRE(script);
  CHECK_THAT(*script, Catch::Contains("\nkernel https://b/boot/files/windows11/wimboot || goto failed\n"
                                      "initrd https://b/boot/files/windows11/BCD BCD || goto failed\n"
                                      "initrd https://b/boot/files/windows11/boot.sdi boot.sdi || goto failed\n"
                                      "initrd https://b/boot/files/windows11/boot.wim boot.wim || goto failed\n"
                                      "initrd https://boot.lan:8443/answer/52:54:00:ab:cd:ef/autounattend.xml "
                                      "autounattend.xml || goto failed\nboot"));
  CHECK(script->find("readme.txt") == std::string::npos);
}

TEST_CASE("netboot: iPXE scripts refuse what iPXE would expand or split", "[netboot]") {
  auto in = Install("ubuntu-cloud");
  in.files = {{"vmlinuz", "kernel", "https://b/boot/files/u/vmlinuz"}};
  auto ok = IpxeInstallScript(in);
  REQUIRE(ok);
  CHECK_THAT(*ok, Catch::Contains("kernel https://b/boot/files/u/vmlinuz ip=dhcp autoinstall "
                                  "ds=nocloud-net;s=https://boot.lan:8443/answer/52:54:00:ab:cd:ef/ || goto failed"));

  auto no_kernel = in;
  no_kernel.files = {{"initrd", "initrd", "https://b/i"}};
  auto nk = IpxeInstallScript(no_kernel);
  REQUIRE_FALSE(nk);
  CHECK_THAT(nk.error().message(), Catch::Contains("has no kernel"));

  auto bad_cmdline = in;
  bad_cmdline.cmdline = "quiet ${net0/ip}";
  CHECK_FALSE(IpxeInstallScript(bad_cmdline));
  bad_cmdline.cmdline = "quiet\nshell";
  CHECK_FALSE(IpxeInstallScript(bad_cmdline));
  auto bad_url = in;
  bad_url.files = {{"vmlinuz", "kernel", "https://b/${root-path}"}};
  CHECK_FALSE(IpxeInstallScript(bad_url));

  // Scripts for unknown and disarmed machines drop anything iPXE would expand.
  std::string unknown = IpxeUnknownScript("52:54:00:00:00:01${x}");
  CHECK(unknown.find("${") == std::string::npos);
  CHECK_THAT(unknown, Catch::Contains("parcctl netboot add --mac 52:54:00:00:00:01"));
  CHECK_THAT(unknown, Catch::EndsWith("exit\n"));
  std::string local = IpxeLocalBootScript("52:54:00:00:00:01", "pc-1", "installed\n${evil}");
  CHECK(local.find("${") == std::string::npos);
  CHECK(Lines(local).size() == 6);
}

TEST_CASE("netboot: the dnsmasq configuration is proxy-DHCP + TFTP only and dnsmasq accepts it", "[netboot]") {
  DnsmasqSpec spec;
  spec.interface = "eth0";
  spec.subnet = "192.168.10.0";
  spec.tftp_root = "/srv/parc/tftp";
  spec.chain_url = "http://boot.lan:8080/boot/${net0/mac}.ipxe";
  auto config = DnsmasqConfig(spec);
  REQUIRE(config);
  auto lines = Lines(*config);
  auto has = [&](const std::string& line) { return std::find(lines.begin(), lines.end(), line) != lines.end(); };
  CHECK(has("port=0"));  // no DNS server
  CHECK(has("dhcp-range=192.168.10.0,proxy,255.255.255.0"));
  CHECK(has("interface=eth0"));
  CHECK(has("enable-tftp"));
  CHECK(has("tftp-root=/srv/parc/tftp"));
  CHECK(has("pxe-service=tag:!ipxe,x86PC,\"Parc network install (BIOS)\",undionly.kpxe"));
  CHECK(has("pxe-service=tag:ipxe,x86PC,\"Parc network install (iPXE)\",http://boot.lan:8080/boot/${net0/mac}.ipxe"));
  for (const auto& l : lines) {
    // Addresses stay the site DHCP server's job.
    if (l.rfind("dhcp-range=", 0) == 0) CHECK_THAT(l, Catch::Contains(",proxy,"));
    CHECK(l.find("dhcp-host") == std::string::npos);
  }

  TempDir dir("parc-dnsmasq-conf");
  WriteFile(dir / "dnsmasq.conf", *config);
  auto test = Run({"/usr/sbin/dnsmasq", "--test", "--conf-file=" + (dir / "dnsmasq.conf").string()});
  INFO("dnsmasq --test: " << test.out << test.err << "\n" << *config);
  CHECK(test.exit_code == 0);
  // And it is a real check: an unknown directive fails.
  WriteFile(dir / "bad.conf", *config + "pxe-servce=x86PC,\"x\",y\n");
  auto bad = Run({"/usr/sbin/dnsmasq", "--test", "--conf-file=" + (dir / "bad.conf").string()});
  CHECK(bad.exit_code != 0);

  auto with = [&](auto change) {
    DnsmasqSpec s = spec;
    change(s);
    return DnsmasqConfig(s);
  };
  // Every field is checked, so that no value can add a line to the file.
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.interface = "eth0\ndhcp-script=/tmp/x"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.interface = ""; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.subnet = "192.168.10"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.subnet = "192.168.10.256"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.netmask = "255.255.255.0\nport=53"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.tftp_root = "srv/tftp"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.tftp_root = "/srv/../etc"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.chain_url = "tftp://x/y"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.chain_url = "http://x/${root-path}"; }));
  CHECK_FALSE(with([](DnsmasqSpec& s) { s.chain_url = "http://x/a b"; }));
  CHECK(ValidateIpv4("subnet", "10.0.0.0"));
  CHECK_FALSE(ValidateIpv4("subnet", "10.0.0.0.0"));
  CHECK_FALSE(ValidateIpv4("subnet", "10.0..0"));

  auto files = TftpFiles();
  REQUIRE(files.size() == 2);
  for (const auto& f : files) {
    INFO(f.source);
    CHECK(std::filesystem::exists(f.source));  // Debian package ipxe, in installer/install-deps.sh
  }
}
