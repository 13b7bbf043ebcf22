// iPXE scripts and the site dnsmasq configuration (netboot_render.h).
#include <algorithm>

#include "netboot_render.h"

namespace parc::netboot {
namespace {

// Text we write into a script ourselves (reasons, names already validated):
// nothing iPXE would expand or split on.
std::string Plain(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '$' || c == '{' || c == '}' || c == '\\' || c == '"' || c == '\'') continue;
    out += c;
  }
  return out;
}

}  // namespace

Expected<std::string> IpxeInstallScript(const IpxeInstall& in) {
  const OsInfo* os = FindOs(in.host.os);
  if (!os) return Fail(Errc::kInvalidArgument, "unknown os '" + Plain(in.host.os) + "'");
  auto safe = [](std::string_view name, std::string_view value) { return Escape(name, value, Format::kIpxe); };
  auto mac = safe("mac", in.host.mac);
  auto host = safe("hostname", in.host.hostname);
  auto answer = safe("answer_url", in.answer_url);
  if (!mac || !host || !answer) return Fail(Errc::kInvalidArgument, "host record holds a value iPXE cannot take");
  if (auto r = ValidateCmdline(in.cmdline); !r) return Fail(r.error());

  const BootFile* kernel = nullptr;
  for (const auto& f : in.files)
    if (f.role == "kernel") kernel = &f;
  if (!kernel)
    return Fail(Errc::kFailedPrecondition, "asset '" + Plain(in.host.asset) + "' has no kernel (role kernel)");

  std::string s = "#!ipxe\n";
  s += "# Parc: unattended install of " + *host + " (" + *mac + "), " + os->title + "\n";
  s += "echo Parc: installing " + in.host.os + " on " + *host + " (" + *mac + ")\n";
  std::string args;
  if (in.host.os == "debian12") {
    auto locale = safe("locale", in.host.locale);
    auto keyboard = safe("keyboard", in.host.keyboard);
    if (!locale || !keyboard) return Fail(Errc::kInvalidArgument, "locale or keyboard iPXE cannot take");
    // auto=true delays the locale questions until the preseed file is read.
    // The installer's wget knows only the public CAs, not the parc CA: it
    // must fetch the preseed file without verifying the certificate
    // (docs/netboot.md, security model: what that costs and what limits it).
    args = "auto=true priority=critical url=" + *answer + os->answer_file +
           " debian-installer/allow_unauthenticated_ssl=true hostname=" + *host + " domain= locale=" + *locale +
           " keymap=" + *keyboard + " interface=auto";
  } else if (in.host.os == "ubuntu-cloud") {
    args = "ip=dhcp autoinstall ds=nocloud-net;s=" + *answer;
  }
  if (!in.cmdline.empty()) args += (args.empty() ? "" : " ") + in.cmdline;
  auto kernel_url = safe("kernel", kernel->url);
  if (!kernel_url) return Fail(kernel_url.error());
  s += "kernel " + *kernel_url + (args.empty() ? "" : " " + args) + " || goto failed\n";
  for (const auto& f : in.files) {
    if (f.role != "initrd") continue;
    auto url = safe("initrd", f.url);
    auto name = safe("name", f.name);
    if (!url || !name) return Fail(Errc::kInvalidArgument, "boot file URL iPXE cannot take");
    // wimboot finds BCD, boot.sdi and boot.wim by the name iPXE gives them.
    s += "initrd " + *url + (in.host.os == "windows11" ? " " + *name : "") + " || goto failed\n";
  }
  if (in.host.os == "windows11") s += "initrd " + *answer + os->answer_file + " " + os->answer_file + " || goto failed\n";
  s += "boot || goto failed\n";
  s += ":failed\n";
  s += "echo Parc: the install of " + *host + " could not start (see the messages above).\n";
  s += "echo Check 'parcctl netboot show " + *mac + "' and 'parcctl netboot assets list' on the server.\n";
  s += "echo Booting from the local disk in 30 seconds.\n";
  s += "sleep 30\n";
  s += "exit\n";
  return s;
}

std::string IpxeUnknownScript(const std::string& mac) {
  std::string m = Plain(mac);
  std::string s = "#!ipxe\n";
  s += "echo Parc: this machine (" + m + ") is not registered for network installation.\n";
  s += "echo To install it, run on the Parc server, for example:\n";
  s += "echo   parcctl netboot add --mac " + m +
       " --hostname NAME --group GROUP --os debian12 --disk /dev/sda --locale fr_FR.UTF-8\n";
  s += "echo then boot it from the network again.\n";
  s += "echo Booting from the local disk in 10 seconds.\n";
  s += "sleep 10\n";
  s += "exit\n";
  return s;
}

std::string IpxeLocalBootScript(const std::string& mac, const std::string& hostname, const std::string& reason) {
  std::string s = "#!ipxe\n";
  s += "echo Parc: " + Plain(hostname) + " (" + Plain(mac) + "): " + Plain(reason) + "\n";
  s += "echo To install it again: parcctl netboot arm " + Plain(mac) + "\n";
  s += "echo Booting from the local disk.\n";
  s += "sleep 3\n";
  s += "exit\n";
  return s;
}

Expected<std::string> DnsmasqConfig(const DnsmasqSpec& spec) {
  if (auto r = ValidateInterface(spec.interface); !r) return Fail(r.error());
  if (auto r = ValidateIpv4("subnet", spec.subnet); !r) return Fail(r.error());
  if (auto r = ValidateIpv4("netmask", spec.netmask); !r) return Fail(r.error());
  bool root_ok = spec.tftp_root.size() > 1 && spec.tftp_root.size() < 256 && spec.tftp_root.front() == '/' &&
                 std::all_of(spec.tftp_root.begin(), spec.tftp_root.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-';
                 }) &&
                 spec.tftp_root.find("..") == std::string::npos;
  if (!root_ok) return Fail(Errc::kInvalidArgument, "TFTP root '" + Plain(spec.tftp_root) + "' is not an absolute path");
  // The chain URL keeps ${net0/mac} for iPXE: check the rest.
  std::string url = spec.chain_url;
  auto var = url.find("${net0/mac}");
  std::string checked = var == std::string::npos ? url : url.substr(0, var) + url.substr(var + 11);
  if (!(url.starts_with("https://") || url.starts_with("http://")) ||
      !Escape("chain_url", checked, Format::kIpxe))
    return Fail(Errc::kInvalidArgument, "chain URL '" + Plain(url) + "' is not an http(s) URL iPXE can take");

  std::string c;
  c += "# Parc network installation: proxy-DHCP + TFTP (generated by parcctl netboot dnsmasq-config).\n";
  c += "# The site's DHCP server keeps handing out addresses; dnsmasq only adds the boot\n";
  c += "# information, so both can run on the same network. DNS is off (port=0).\n";
  c += "# Run: dnsmasq --conf-file=THIS-FILE   (or drop it into /etc/dnsmasq.d/)\n";
  c += "port=0\n";
  c += "interface=" + spec.interface + "\n";
  c += "bind-interfaces\n";
  c += "no-resolv\n";
  c += "no-hosts\n";
  c += "log-dhcp\n";
  c += "dhcp-range=" + spec.subnet + ",proxy," + spec.netmask + "\n";
  c += "enable-tftp\n";
  c += "tftp-root=" + spec.tftp_root + "\n";
  c += "# iPXE says so in its DHCP requests (user class iPXE, option 175).\n";
  c += "dhcp-userclass=set:ipxe,iPXE\n";
  c += "dhcp-match=set:ipxe,175\n";
  c += "pxe-prompt=\"Parc network install\",0\n";
  c += "# Firmware PXE (no iPXE yet): load iPXE from the TFTP root.\n";
  c += "pxe-service=tag:!ipxe,x86PC,\"Parc network install (BIOS)\",undionly.kpxe\n";
  c += "pxe-service=tag:!ipxe,x86-64_EFI,\"Parc network install (UEFI)\",ipxe.efi\n";
  c += "pxe-service=tag:!ipxe,BC_EFI,\"Parc network install (UEFI)\",ipxe.efi\n";
  c += "# iPXE: chain to this machine's script on the Parc boot server; iPXE fills in ${net0/mac}.\n";
  c += "pxe-service=tag:ipxe,x86PC,\"Parc network install (iPXE)\"," + url + "\n";
  c += "pxe-service=tag:ipxe,x86-64_EFI,\"Parc network install (iPXE)\"," + url + "\n";
  c += "pxe-service=tag:ipxe,BC_EFI,\"Parc network install (iPXE)\"," + url + "\n";
  c += "dhcp-boot=tag:ipxe," + url + "\n";
  return c;
}

std::vector<TftpFileSpec> TftpFiles() {
  return {
      {"undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe", "iPXE for BIOS PXE firmware (Debian package ipxe)"},
      {"ipxe.efi", "/usr/lib/ipxe/ipxe.efi", "iPXE for x86-64 UEFI firmware (Debian package ipxe)"},
  };
}

}  // namespace parc::netboot
