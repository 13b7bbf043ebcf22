// Firewall, Secure Boot and disk encryption.
#include <set>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

const v1::Service* FindService(const v1::Inventory& inv, std::string_view name) {
  for (const auto& s : inv.services()) {
    if (s.name() == name) return &s;
  }
  return nullptr;
}

bool ServiceOn(const v1::Inventory& inv, std::string_view name) {
  const auto* s = FindService(inv, name);
  return s && (s->active() || s->enabled() == "enabled");
}

bool UfwEnabled(Context& ctx) {
  auto conf = ctx.Read("/etc/ufw/ufw.conf");
  if (!conf) return false;
  bool enabled = false;
  ForEachLine(*conf, [&](std::string_view line) {
    std::string_view key, value;
    if (SplitKeyValue(line, '=', key, value) && key == "ENABLED") enabled = ToLower(Unquote(value)) == "yes";
  });
  return enabled;
}

void Firewall(Context& ctx, const v1::Inventory& inv, v1::SecurityState& sec) {
  struct Kind {
    std::string_view name, binary, package;
  };
  // Front-ends first: ufw and firewalld drive nftables/iptables underneath.
  static constexpr Kind kKinds[] = {
      {"ufw", "/usr/sbin/ufw", "ufw"},
      {"firewalld", "/usr/sbin/firewalld", "firewalld"},
      {"nftables", "/usr/sbin/nft", "nftables"},
      {"iptables", "/usr/sbin/iptables", "iptables"},
  };
  auto package_installed = [&](std::string_view name) {
    for (const auto& p : inv.software()) {
      if (p.name() == name) return true;
    }
    return false;
  };
  std::string present;
  for (const auto& k : kKinds) {
    bool installed = ctx.Exists(k.binary) || ctx.Exists("/sbin/" + Basename(k.binary)) || package_installed(k.package);
    if (installed && present.empty()) present = k.name;
  }
  sec.set_firewall_present(!present.empty());

  std::string active;
  if (UfwEnabled(ctx)) active = "ufw";
  else if (ServiceOn(inv, "firewalld.service")) active = "firewalld";
  else if (ServiceOn(inv, "nftables.service")) active = "nftables";
  else if (!Trim(ctx.Read("/proc/net/ip_tables_names").value_or("")).empty()) active = "iptables";
  sec.set_firewall_active(!active.empty());
  sec.set_firewall_kind(!active.empty() ? active : present);
}

std::string SecureBoot(Context& ctx) {
  if (!ctx.IsDirectory("/sys/firmware/efi")) return "unknown";  // legacy BIOS or not exposed
  constexpr std::string_view kVar =
      "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
  if (!ctx.Exists(kVar)) {
    // UEFI firmware without the variable has no Secure Boot to enable.
    return ctx.IsDirectory("/sys/firmware/efi/efivars") ? "disabled" : "unknown";
  }
  // 4 bytes of attributes, then the one-byte value.
  auto data = ctx.Read(kVar, 64);
  if (!data || data->size() < 5) return "unknown";
  unsigned char value = static_cast<unsigned char>(data->back());
  return value == 1 ? "enabled" : value == 0 ? "disabled" : "unknown";
}

std::set<std::string> EncryptedDevices(Context& ctx) {
  std::set<std::string> names;
  for (const std::string& dev : ctx.List("/sys/block")) {
    if (!dev.starts_with("dm-")) continue;
    if (!ctx.ReadValue("/sys/block/" + dev + "/dm/uuid").starts_with("CRYPT-")) continue;
    std::string name = ctx.ReadValue("/sys/block/" + dev + "/dm/name");
    names.insert(name.empty() ? dev : name);
  }
  // crypttab names what is set up at boot, including devices not open right now.
  if (auto crypttab = ctx.Read("/etc/crypttab")) {
    ForEachLine(*crypttab, [&](std::string_view line) {
      auto words = SplitWords(line);
      if (words.size() >= 2 && !words[0].starts_with('#')) names.insert(std::string(words[0]));
    });
  }
  return names;
}

}  // namespace

void CollectSecurity(Context& ctx, v1::Inventory& inv) {
  auto& sec = *inv.mutable_security();
  Firewall(ctx, inv, sec);
  sec.set_secure_boot(SecureBoot(ctx));
  for (const auto& name : EncryptedDevices(ctx)) sec.add_encrypted_devices(name);
}

}  // namespace parc::agent::linux_inventory
