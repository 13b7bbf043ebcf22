// Are we a container, a virtual machine guest, or bare metal?
#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

std::string ContainerKind(Context& ctx) {
  // Written by systemd-nspawn, lxc, podman ... for exactly this question.
  if (std::string c = ctx.ReadValue("/run/systemd/container"); !c.empty()) return c;
  if (ctx.Exists("/run/.containerenv")) return "podman";
  if (ctx.Exists("/.dockerenv")) return "docker";
  if (ctx.live) {
    // PID 1's environment is root-only; unreadable simply means no answer here.
    if (auto env = ctx.Read("/proc/1/environ")) {
      for (auto var : Split(*env, '\0')) {
        if (var.starts_with("container=")) return std::string(var.substr(10));
      }
    }
  }
  if (auto cgroup = ctx.Read("/proc/1/cgroup")) {
    std::string_view c = *cgroup;
    if (c.find("/kubepods") != std::string_view::npos) return "kubernetes";
    if (c.find("/docker") != std::string_view::npos) return "docker";
    if (c.find("/lxc") != std::string_view::npos) return "lxc";
    if (c.find("/libpod") != std::string_view::npos) return "podman";
  }
  return {};
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return ToLower(haystack).find(ToLower(needle)) != std::string::npos;
}

// Names as systemd-detect-virt spells them.
std::string HypervisorFromDmi(const v1::Hardware& hw) {
  const std::string& vendor = hw.system_vendor();
  const std::string& product = hw.product_name();
  if (Contains(product, "KVM") || Contains(vendor, "KVM")) return "kvm";
  if (Contains(vendor, "QEMU") || Contains(product, "QEMU")) return "qemu";
  if (Contains(vendor, "VMware")) return "vmware";
  if (Contains(vendor, "innotek") || Contains(product, "VirtualBox")) return "oracle";
  if (Contains(vendor, "Microsoft") && Contains(product, "Virtual")) return "microsoft";
  if (Contains(vendor, "Xen") || Contains(product, "HVM domU")) return "xen";
  if (Contains(vendor, "Bochs") || Contains(hw.bios_vendor(), "Bochs")) return "bochs";
  if (Contains(vendor, "Parallels")) return "parallels";
  if (Contains(vendor, "Amazon EC2")) return "amazon";
  if (Contains(vendor, "Google") && Contains(product, "Compute Engine")) return "google";
  return {};
}

bool CpuSaysHypervisor(Context& ctx) {
  auto cpuinfo = ctx.Read("/proc/cpuinfo");
  if (!cpuinfo) return false;
  bool found = false;
  ForEachLine(*cpuinfo, [&](std::string_view line) {
    std::string_view key, value;
    if (found || !SplitKeyValue(line, ':', key, value) || key != "flags") return;
    for (auto f : SplitWords(value)) {
      if (f == "hypervisor") found = true;
    }
  });
  return found;
}

}  // namespace

void CollectVirtualization(Context& ctx, v1::Inventory& inv) {
  auto& v = *inv.mutable_virtualization();
  v.set_container(ContainerKind(ctx));
  std::string hypervisor = HypervisorFromDmi(inv.hardware());
  if (hypervisor.empty()) hypervisor = ctx.ReadValue("/sys/hypervisor/type");  // "xen" for PV guests
  bool guest = !hypervisor.empty() || CpuSaysHypervisor(ctx);
  v.set_hypervisor(hypervisor);
  // A container is what the technician deals with first, even inside a VM.
  v.set_role(!v.container().empty() ? "container" : guest ? "guest" : "none");
}

}  // namespace parc::agent::linux_inventory
