// The site dnsmasq configuration parcctl generates, run by the real dnsmasq
// (Debian package dnsmasq-base) in network namespaces made by the test: one
// for the boot server side, one for a machine on the same cable (a veth
// pair that never exists in the machine's own namespace). The "machine"
// fetches iPXE over TFTP as its PXE firmware would (curl tftp://). Nothing of
// the host is touched: no /etc file, no host interface; the namespaces end
// with the processes that hold them.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "harness.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A network namespace held by `unshare --net sleep`; gone when it is killed.
class NetNamespace {
 public:
  explicit NetNamespace(const fs::path& log) : holder_({"/usr/bin/unshare", "--net", "--", "/bin/sleep", "600"}, log) {
    std::string own = Link("/proc/self/ns/net");
    bool ready = WaitFor(
        [&] {
          std::string ns = Link(path());
          return !holder_.Running() || (!ns.empty() && ns != own);
        },
        10s);
    INFO("unshare --net: " << holder_.Log());
    if (!ready || !holder_.Running())
      FAIL("cannot create a network namespace with unshare --net (needs CAP_SYS_ADMIN and CAP_NET_ADMIN; run the "
           "tests as root or in a container that grants them): "
           << holder_.Log());
  }
  std::string path() const { return "/proc/" + std::to_string(holder_.pid()) + "/ns/net"; }
  pid_t pid() const { return holder_.pid(); }
  // argv run inside the namespace.
  CommandResult Exec(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"/usr/bin/nsenter", "--net=" + path(), "--"});
    return Run(argv);
  }
  void Sh(const std::string& script) const {
    auto r = Exec({"/bin/sh", "-ec", script});
    INFO("in namespace: " << script << "\n" << r.out << r.err);
    REQUIRE(r.exit_code == 0);
  }

 private:
  static std::string Link(const std::string& p) {
    std::error_code ec;
    auto target = fs::read_symlink(p, ec);
    return ec ? std::string() : target.string();
  }
  Process holder_;
};

void RequireTool(const std::string& path, const std::string& package) {
  if (!fs::exists(path))
    FAIL(path << " is missing: install the Debian package " << package << " (installer/install-deps.sh)");
}

}  // namespace

TEST_CASE("netboot: the real dnsmasq runs the generated configuration and serves iPXE over TFTP in a namespace") {
  RequireTool("/usr/sbin/dnsmasq", "dnsmasq-base");
  RequireTool("/usr/lib/ipxe/undionly.kpxe", "ipxe");
  RequireTool("/usr/bin/nsenter", "util-linux");
  auto protocols = Run({"curl", "--version"});
  if (protocols.out.find("tftp") == std::string::npos) FAIL("this curl has no tftp:// support: " << protocols.out);

  TempDir dir("parc-dnsmasq");
  // dnsmasq reads TFTP files as its own unprivileged user.
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  Server server(dir / "server");
  server.SetExtraArgs({"--boot-listen", "127.0.0.1:0", "--boot-http-listen", "127.0.0.1:0"});
  server.Start();

  NetNamespace site(dir / "ns-site.log");
  NetNamespace machine(dir / "ns-machine.log");
  // The cable: created inside the site namespace, one end moved to the machine's.
  site.Sh("ip link set lo up; ip link add parc-boot0 type veth peer name parc-pc0; ip link set parc-pc0 netns " +
          std::to_string(machine.pid()) + "; ip addr add 10.77.0.1/24 dev parc-boot0; ip link set parc-boot0 up");
  machine.Sh("ip link set lo up; ip addr add 10.77.0.2/24 dev parc-pc0; ip link set parc-pc0 up");
  // Not on the host: its own namespace has no such interface.
  CHECK(Run({"ip", "link", "show", "parc-boot0"}).exit_code != 0);

  fs::path tftp = dir / "tftp";
  fs::path conf = dir / "dnsmasq.conf";
  auto gen = server.Ctl({"netboot", "dnsmasq-config", "--interface", "parc-boot0", "--subnet", "10.77.0.0",
                         "--tftp-root", tftp.string(), "--tftp-copy", "--chain", "http", "--output", conf.string()});
  INFO(gen.out << gen.err);
  REQUIRE(gen.exit_code == 0);
  std::string config = ReadFileOrEmpty(conf);
  std::string http = ReadFileOrEmpty(server.state_dir() / "boot.addr");
  http = http.substr(http.find('\n') + 1);
  http.pop_back();
  CHECK_THAT(config, Catch::Contains("interface=parc-boot0\n") && Catch::Contains("tftp-root=" + tftp.string() + "\n") &&
                         Catch::Contains(http + "/boot/${net0/mac}.ipxe\n"));
  // A file beside the TFTP root that must stay out of reach.
  WriteFile(dir / "secret.txt", "not for TFTP clients\n");
  fs::permissions(dir / "secret.txt", fs::perms::owner_read | fs::perms::others_read);

  Process dnsmasq({"/usr/bin/nsenter", "--net=" + site.path(), "--", "/usr/sbin/dnsmasq", "--keep-in-foreground",
                   "--conf-file=" + conf.string(), "--pid-file=" + (dir / "dnsmasq.pid").string(),
                   "--dhcp-leasefile=" + (dir / "dnsmasq.leases").string(), "--log-facility=-"},
                  dir / "dnsmasq.log");
  auto fetch = [&](const std::string& name, const fs::path& out) {
    return machine.Exec({"curl", "-sS", "--path-as-is", "--max-time", "10", "-o", out.string(),
                         "tftp://10.77.0.1/" + name});
  };
  bool up = WaitFor(
      [&] { return !dnsmasq.Running() || ReadFileOrEmpty(dir / "dnsmasq.log").find("TFTP root is") != std::string::npos; },
      15s);
  INFO("dnsmasq log:\n" << dnsmasq.Log());
  REQUIRE(up);
  REQUIRE(dnsmasq.Running());

  // What the machine is told, asked as its firmware and then iPXE would ask
  // (DHCP discover, then the PXE boot server request on port 4011).
  auto probe = [&](const std::string& kind) {
    auto r = machine.Exec({"/usr/bin/python3", SourcePath("tests/integration/pxe_dhcp_probe.py").string(), "parc-pc0",
                           "52:54:00:ab:cd:ef", kind, "10.77.0.2"});
    INFO(kind << ": " << r.out << r.err << "\ndnsmasq log:\n" << dnsmasq.Log());
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE((j.is_array() && !j.empty()));
    return j[0];
  };
  auto bios = probe("firmware");
  CHECK(bios["from"] == "10.77.0.1");
  CHECK(bios["yiaddr"] == "0.0.0.0");  // proxy-DHCP: the address stays the site DHCP server's job
  CHECK(bios["vendor_class"] == "PXEClient");
  CHECK(bios["boot_server_file"] == "undionly.kpxe");
  CHECK(bios["boot_server_siaddr"] == "10.77.0.1");
  auto efi = probe("firmware-efi");
  CHECK(efi["boot_server_file"] == "ipxe.efi");
  auto ipxe = probe("ipxe");
  CHECK(ipxe["file"] == http + "/boot/${net0/mac}.ipxe");

  std::vector<std::string> told{bios.value("boot_server_file", ""), efi.value("boot_server_file", "")};
  for (const std::string& name : told) {
    auto r = fetch(name, dir / ("got-" + name));
    INFO(name << ": " << r.err);
    CHECK(r.exit_code == 0);
    std::string got = ReadFileOrEmpty(dir / ("got-" + name));
    CHECK(got.size() > 10000);
    CHECK(got == ReadFileOrEmpty("/usr/lib/ipxe/" + name));
  }
  auto missing = fetch("pxelinux.0", dir / "got-missing");
  CHECK(missing.exit_code != 0);
  auto escape = fetch("../secret.txt", dir / "got-secret");
  CHECK(escape.exit_code != 0);
  CHECK(ReadFileOrEmpty(dir / "got-secret").find("not for TFTP") == std::string::npos);
  CHECK(dnsmasq.Running());
  // The transfers really went through dnsmasq.
  CHECK_THAT(dnsmasq.Log(), Catch::Contains("sent " + (tftp / "undionly.kpxe").string() + " to 10.77.0.2"));
  dnsmasq.Stop();
}
