// Operating system identity: os-release, kernel, host name, time zone, boot time.
#include <netdb.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <memory>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

void ReadOsRelease(Context& ctx, v1::OsInfo& os) {
  auto text = ctx.Read("/etc/os-release");
  if (!text) text = ctx.Read("/usr/lib/os-release");
  if (!text) {
    ctx.Warn("no os-release: /etc/os-release and /usr/lib/os-release are absent");
    return;
  }
  ForEachLine(*text, [&](std::string_view line) {
    std::string_view key, value;
    if (Trim(line).starts_with('#') || !SplitKeyValue(line, '=', key, value)) return;
    if (key == "ID") os.set_id(Unquote(value));
    else if (key == "NAME") os.set_name(Unquote(value));
    else if (key == "VERSION_ID") os.set_version_id(Unquote(value));
    else if (key == "PRETTY_NAME") os.set_pretty_name(Unquote(value));
    else if (key == "VERSION_CODENAME") os.set_version_codename(Unquote(value));
  });
}

// An offline root has no running kernel: its architecture is the one dpkg
// installs natively, i.e. the architecture of dpkg itself or of base packages.
std::string ArchitectureOfRoot(Context& ctx, const v1::Inventory& inv) {
  for (std::string_view name : {"dpkg", "base-files", "libc6"}) {
    for (const auto& p : inv.software()) {
      if (p.name() == name && !p.architecture().empty() && p.architecture() != "all") {
        return DebianArchToMachine(p.architecture());
      }
    }
  }
  std::string first = ctx.ReadValue("/var/lib/dpkg/arch");
  return first.empty() ? std::string() : DebianArchToMachine(first);
}

std::string HostName(Context& ctx) {
  // A live kernel knows its name; an offline image only has the configured one.
  std::string name = ctx.live ? ctx.ReadValue("/proc/sys/kernel/hostname") : ctx.ReadValue("/etc/hostname");
  if (name.empty()) name = ctx.live ? ctx.ReadValue("/etc/hostname") : ctx.ReadValue("/proc/sys/kernel/hostname");
  if (name.empty() && ctx.live) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) name = buf;
  }
  return name;
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};

std::string LiveFqdn(const std::string& host) {
  addrinfo hints = {};
  hints.ai_flags = AI_CANONNAME;
  hints.ai_family = AF_UNSPEC;
  addrinfo* raw = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &raw) != 0 || !raw) return host;
  std::unique_ptr<addrinfo, AddrInfoDeleter> result(raw);
  // A resolver answering "localhost" or another alias says nothing about our domain.
  std::string canon = result->ai_canonname ? result->ai_canonname : "";
  return canon.starts_with(host + ".") ? canon : host;
}

// Offline: /etc/hosts is the only resolver we can consult ("127.0.1.1 pc12.lab.example pc12").
std::string RootFqdn(Context& ctx, const std::string& host) {
  std::string fqdn = host;
  auto hosts = ctx.Read("/etc/hosts");
  if (!hosts) return fqdn;
  ForEachLine(*hosts, [&](std::string_view line) {
    line = line.substr(0, line.find('#'));
    auto words = SplitWords(line);
    if (words.size() < 2 || fqdn != host) return;
    bool mentions_host = false;
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i] == host) mentions_host = true;
    }
    if (!mentions_host) return;
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i].starts_with(host + ".")) {
        fqdn = std::string(words[i]);
        return;
      }
    }
  });
  return fqdn;
}

std::string TimeZone(Context& ctx) {
  std::string tz = ctx.ReadValue("/etc/timezone");
  if (!tz.empty()) return tz;
  std::string target = ctx.LinkTarget("/etc/localtime");
  size_t pos = target.find("zoneinfo/");
  if (pos != std::string::npos) return target.substr(pos + 9);
  return {};
}

}  // namespace

void CollectOs(Context& ctx, v1::Inventory& inv) {
  auto& os = *inv.mutable_os();
  ReadOsRelease(ctx, os);

  os.set_kernel_name(ctx.ReadValue("/proc/sys/kernel/ostype"));
  os.set_kernel_release(ctx.ReadValue("/proc/sys/kernel/osrelease"));
  os.set_kernel_version(ctx.ReadValue("/proc/sys/kernel/version"));
  if (ctx.live) {
    utsname uts = {};
    if (::uname(&uts) == 0) {
      if (os.kernel_name().empty()) os.set_kernel_name(uts.sysname);
      if (os.kernel_release().empty()) os.set_kernel_release(uts.release);
      if (os.kernel_version().empty()) os.set_kernel_version(uts.version);
      os.set_architecture(uts.machine);
    }
  } else {
    // What we inventory is a Linux tree even when its /proc was not captured.
    if (os.kernel_name().empty()) os.set_kernel_name("Linux");
    os.set_architecture(ArchitectureOfRoot(ctx, inv));
  }

  std::string host = HostName(ctx);
  std::string shortname = host.substr(0, host.find('.'));
  os.set_hostname(shortname);
  std::string fqdn = host.find('.') != std::string::npos ? host
                     : ctx.live                         ? LiveFqdn(host)
                                                        : RootFqdn(ctx, host);
  os.set_fqdn(fqdn);
  os.set_timezone(TimeZone(ctx));

  if (auto stat = ctx.Read("/proc/stat")) {
    ForEachLine(*stat, [&](std::string_view line) {
      if (!line.starts_with("btime ")) return;
      if (auto t = ParseI64(line.substr(6))) os.set_boot_time(*t);
    });
  }
  std::string machine_id = ctx.ReadValue("/etc/machine-id");
  if (machine_id.empty()) machine_id = ctx.ReadValue("/var/lib/dbus/machine-id");
  os.set_machine_id(machine_id);
}

}  // namespace parc::agent::linux_inventory
