// Installed packages from the dpkg status database and, when present, rpm.
#include <algorithm>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

struct Stanza {
  std::string_view package, status, architecture, version, installed_size, maintainer, description;
};

// The dpkg status file holds every package ever seen (thousands of stanzas): it is
// read once and sliced with string_views, no per-line allocation.
void ParseDpkgStatus(std::string_view text, v1::Inventory& inv) {
  Stanza st;
  auto flush = [&] {
    // Only the third word of Status matters: "install ok installed" and
    // "hold ok installed" are on disk; "deinstall ok config-files" is not.
    auto words = SplitWords(st.status);
    if (!st.package.empty() && words.size() == 3 && words[2] == "installed") {
      auto* p = inv.add_software();
      p->set_name(std::string(st.package));
      p->set_architecture(std::string(st.architecture));
      p->set_version(std::string(st.version));
      p->set_source("dpkg");
      p->set_summary(std::string(st.description));
      if (auto kib = ParseU64(st.installed_size)) p->set_installed_size_bytes(*kib * 1024);
      p->set_vendor(std::string(st.maintainer));
    }
    st = Stanza{};
  };
  ForEachLine(text, [&](std::string_view line) {
    if (Trim(line).empty()) {
      flush();
      return;
    }
    if (line.front() == ' ' || line.front() == '\t') return;  // continuation (long description, conffiles)
    std::string_view key, value;
    if (!SplitKeyValue(line, ':', key, value)) return;
    if (key == "Package") st.package = value;
    else if (key == "Status") st.status = value;
    else if (key == "Architecture") st.architecture = value;
    else if (key == "Version") st.version = value;
    else if (key == "Installed-Size") st.installed_size = value;
    else if (key == "Maintainer") st.maintainer = value;
    else if (key == "Description") st.description = value;
  });
  flush();
}

void CollectRpm(Context& ctx, v1::Inventory& inv) {
  if (!ctx.IsDirectory("/var/lib/rpm")) return;
  std::string rpm = FindProgram("rpm");
  if (rpm.empty()) {
    ctx.Warn("an rpm database exists in /var/lib/rpm but the rpm program is not installed: rpm packages not listed");
    return;
  }
  // Fields separated by tabs; a summary never holds one, a vendor never does either.
  const std::string format =
      "%{NAME}\\t%{ARCH}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{SIZE}\\t%{VENDOR}\\t%{SUMMARY}\\n";
  auto out = RunProgram({rpm, "--root", ctx.root.string(), "-qa", "--qf", format});
  if (!out || out->exit_code != 0) {
    ctx.Warn("rpm -qa failed: rpm packages not listed");
    return;
  }
  ForEachLine(out->out, [&](std::string_view line) {
    auto f = Split(line, '\t');
    if (f.size() < 6 || f[0].empty()) return;
    auto* p = inv.add_software();
    p->set_name(std::string(f[0]));
    p->set_architecture(f[1] == "(none)" ? "" : std::string(f[1]));
    p->set_version(std::string(f[2]));
    p->set_source("rpm");
    if (auto size = ParseU64(f[3])) p->set_installed_size_bytes(*size);
    p->set_vendor(f[4] == "(none)" ? "" : std::string(f[4]));
    p->set_summary(std::string(f[5]));
  });
}

}  // namespace

void CollectSoftware(Context& ctx, v1::Inventory& inv) {
  if (ctx.Exists("/var/lib/dpkg/status")) {
    auto status = ctx.Read("/var/lib/dpkg/status", size_t{1} << 30);
    if (status) {
      ParseDpkgStatus(*status, inv);
    } else {
      ctx.Warn("cannot read /var/lib/dpkg/status: dpkg packages not listed");
    }
  }
  CollectRpm(ctx, inv);
  auto* sw = inv.mutable_software();
  std::sort(sw->begin(), sw->end(), [](const v1::SoftwarePackage& a, const v1::SoftwarePackage& b) {
    return std::tie(a.name(), a.architecture(), a.source()) < std::tie(b.name(), b.architecture(), b.source());
  });
  // (name, architecture) is the item key: a corrupt status file listing a package
  // twice, or rpm on a dpkg system knowing the same name, keeps the first (dpkg).
  auto last = std::unique(sw->begin(), sw->end(), [](const v1::SoftwarePackage& a, const v1::SoftwarePackage& b) {
    return a.name() == b.name() && a.architecture() == b.architecture();
  });
  sw->erase(last, sw->end());
}

}  // namespace parc::agent::linux_inventory
