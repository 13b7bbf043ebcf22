// Network interfaces, their addresses, the default route and DNS settings.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <map>
#include <memory>
#include <set>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

using AddressMap = std::map<std::string, std::set<std::string>>;  // interface -> "addr/prefix"

std::string FormatV4(uint32_t network_order) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a = {network_order};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string FormatV6(const unsigned char bytes[16]) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, bytes, buf, sizeof buf);
  return buf;
}

// /proc/net/{if_inet6,ipv6_route} write addresses as 32 hex digits.
bool ParseV6Hex(std::string_view hex, unsigned char out[16]) {
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    auto byte = ParseU64(hex.substr(i * 2, 2), 16);
    if (!byte) return false;
    out[i] = static_cast<unsigned char>(*byte);
  }
  return true;
}

int PrefixLength(const sockaddr* mask) {
  if (!mask) return 0;
  const unsigned char* bytes = nullptr;
  size_t len = 0;
  if (mask->sa_family == AF_INET) {
    bytes = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(mask)->sin_addr);
    len = 4;
  } else if (mask->sa_family == AF_INET6) {
    bytes = reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr.s6_addr;
    len = 16;
  }
  int bits = 0;
  for (size_t i = 0; i < len; ++i) bits += std::popcount(static_cast<unsigned>(bytes[i]));
  return bits;
}

struct IfAddrsDeleter {
  void operator()(ifaddrs* p) const { ::freeifaddrs(p); }
};

void LiveAddresses(AddressMap& out) {
  ifaddrs* raw = nullptr;
  if (::getifaddrs(&raw) != 0) return;
  std::unique_ptr<ifaddrs, IfAddrsDeleter> list(raw);
  for (ifaddrs* ifa = raw; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || !ifa->ifa_name) continue;
    std::string text;
    if (ifa->ifa_addr->sa_family == AF_INET) {
      text = FormatV4(reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr)->sin_addr.s_addr);
    } else if (ifa->ifa_addr->sa_family == AF_INET6) {
      text = FormatV6(reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr)->sin6_addr.s6_addr);
    } else {
      continue;
    }
    out[ifa->ifa_name].insert(text + "/" + std::to_string(PrefixLength(ifa->ifa_netmask)));
  }
}

struct Route {
  std::string iface;
  uint32_t destination = 0;  // network byte order, as /proc/net/route prints it
  uint32_t gateway = 0;
  uint32_t mask = 0;
  uint32_t flags = 0;
  uint64_t metric = 0;
};

std::vector<Route> ReadRoutes(Context& ctx) {
  std::vector<Route> routes;
  auto text = ctx.Read("/proc/net/route");
  if (!text) return routes;
  ForEachLine(*text, [&](std::string_view line) {
    auto f = SplitWords(line);
    if (f.size() < 8 || f[0] == "Iface") return;
    auto dest = ParseU64(f[1], 16), gw = ParseU64(f[2], 16), flags = ParseU64(f[3], 16);
    auto metric = ParseU64(f[6]), mask = ParseU64(f[7], 16);
    if (!dest || !gw || !flags || !metric || !mask) return;
    routes.push_back({std::string(f[0]), static_cast<uint32_t>(*dest), static_cast<uint32_t>(*gw),
                      static_cast<uint32_t>(*mask), static_cast<uint32_t>(*flags), *metric});
  });
  return routes;
}

constexpr uint32_t kRouteUp = 0x1, kRouteGateway = 0x2;

// An offline root has no getifaddrs. A captured /proc still tells the story:
// if_inet6 lists IPv6 addresses per interface; IPv4 addresses are the "host LOCAL"
// leaves of fib_trie, attached to the interface of the most specific on-link route.
void RootAddresses(Context& ctx, const std::vector<Route>& routes, AddressMap& out) {
  if (auto text = ctx.Read("/proc/net/if_inet6")) {
    ForEachLine(*text, [&](std::string_view line) {
      auto f = SplitWords(line);
      unsigned char bytes[16];
      if (f.size() < 6 || !ParseV6Hex(f[0], bytes)) return;
      auto prefix = ParseU64(f[2], 16);
      if (!prefix) return;
      out[std::string(f[5])].insert(FormatV6(bytes) + "/" + std::to_string(*prefix));
    });
  }
  auto trie = ctx.Read("/proc/net/fib_trie");
  if (!trie) return;
  std::set<uint32_t> local;
  uint32_t last_leaf = 0;
  bool have_leaf = false;
  ForEachLine(*trie, [&](std::string_view line) {
    std::string_view t = Trim(line);
    if (t.starts_with("|-- ")) {
      in_addr a = {};
      have_leaf = ::inet_pton(AF_INET, std::string(t.substr(4)).c_str(), &a) == 1;
      last_leaf = a.s_addr;
    } else if (have_leaf && t == "/32 host LOCAL") {
      local.insert(last_leaf);
    }
  });
  for (uint32_t addr : local) {
    const Route* best = nullptr;
    for (const auto& r : routes) {
      if ((r.flags & kRouteGateway) || (addr & r.mask) != r.destination || r.mask == 0) continue;
      if (!best || std::popcount(r.mask) > std::popcount(best->mask)) best = &r;
    }
    std::string text = FormatV4(addr);
    if (best) {
      out[best->iface].insert(text + "/" + std::to_string(std::popcount(best->mask)));
    } else if ((addr & 0xff) == 127) {
      // Loopback routes live in the local table, which /proc/net/route omits.
      out["lo"].insert(text + "/8");
    }
  }
}

std::string InterfaceType(Context& ctx, const std::string& base, const std::string& name) {
  if (ctx.Exists(base + "/wireless") || ctx.Exists(base + "/phy80211")) return "wireless";
  if (ctx.Exists(base + "/bridge")) return "bridge";
  if (ctx.Exists(base + "/bonding")) return "bond";
  auto type = ParseU64(ctx.ReadValue(base + "/type"));
  if (!type) return {};
  switch (*type) {
    case 1:
      // veth, ifb, dummy ... have an Ethernet link layer but no device behind them.
      if (ctx.LinkTarget(base).find("/virtual/") != std::string::npos ||
          ctx.Exists("/sys/devices/virtual/net/" + name)) {
        return "virtual";
      }
      return "ether";
    case 32: return "infiniband";
    case 512: return "ppp";
    case 772: return "loopback";
    case 768: case 769: case 776: case 778: case 823: return "tunnel";
    case 65534: return "virtual";  // tun, wireguard: no link layer at all
    default: return std::to_string(*type);
  }
}

std::string NormalizeMac(std::string_view mac) {
  std::string lower = ToLower(Trim(mac));
  // Loopback and layer-3 tunnels report zeros: they have no hardware address.
  if (lower.find_first_not_of("0:") == std::string::npos) return {};
  return lower;
}

void ReadResolvConf(Context& ctx, v1::Network& net) {
  auto parse = [&](const std::string& text) {
    net.clear_dns_servers();
    net.clear_search_domains();
    ForEachLine(text, [&](std::string_view line) {
      auto f = SplitWords(line.substr(0, line.find_first_of("#;")));
      if (f.size() < 2) return;
      if (f[0] == "nameserver") {
        net.add_dns_servers(std::string(f[1]));
      } else if (f[0] == "search" || f[0] == "domain") {
        // The resolver honours only the last search/domain line.
        net.clear_search_domains();
        for (size_t i = 1; i < f.size(); ++i) net.add_search_domains(std::string(f[i]));
      }
    });
  };
  auto text = ctx.Read("/etc/resolv.conf");
  if (!text) return;
  parse(*text);
  // Behind systemd-resolved's stub the real servers are in its own file.
  if (net.dns_servers_size() == 1 && net.dns_servers(0) == "127.0.0.53") {
    if (auto upstream = ctx.Read("/run/systemd/resolve/resolv.conf")) parse(*upstream);
  }
}

void DefaultRoute(Context& ctx, const std::vector<Route>& routes, v1::Network& net) {
  const Route* best = nullptr;
  for (const auto& r : routes) {
    if (r.destination != 0 || r.mask != 0 || !(r.flags & kRouteUp) || !(r.flags & kRouteGateway)) continue;
    if (!best || r.metric < best->metric) best = &r;
  }
  if (best) {
    net.set_default_gateway(FormatV4(best->gateway));
    net.set_default_interface(best->iface);
    return;
  }
  auto text = ctx.Read("/proc/net/ipv6_route");
  if (!text) return;
  uint64_t best_metric = UINT64_MAX;
  ForEachLine(*text, [&](std::string_view line) {
    auto f = SplitWords(line);
    unsigned char dest[16], hop[16];
    if (f.size() < 10 || f[1] != "00" || !ParseV6Hex(f[0], dest) || !ParseV6Hex(f[4], hop)) return;
    if (std::any_of(dest, dest + 16, [](unsigned char b) { return b != 0; })) return;
    if (std::all_of(hop, hop + 16, [](unsigned char b) { return b == 0; }) || f[9] == "lo") return;
    auto metric = ParseU64(f[5], 16);
    if (!metric || *metric >= best_metric) return;
    best_metric = *metric;
    net.set_default_gateway(FormatV6(hop));
    net.set_default_interface(std::string(f[9]));
  });
}

}  // namespace

void CollectNetwork(Context& ctx, v1::Inventory& inv) {
  auto routes = ReadRoutes(ctx);
  AddressMap addresses;
  if (ctx.live) LiveAddresses(addresses);
  else RootAddresses(ctx, routes, addresses);

  for (const std::string& name : ctx.List("/sys/class/net")) {
    std::string base = "/sys/class/net/" + name;
    if (!ctx.IsDirectory(base)) continue;  // bonding_masters is a file
    auto* nic = inv.add_interfaces();
    nic->set_name(name);
    nic->set_mac(NormalizeMac(ctx.ReadValue(base + "/address")));
    for (const auto& a : addresses[name]) nic->add_addresses(a);
    nic->set_state(ctx.ReadValue(base + "/operstate"));
    // Reading speed fails (EINVAL) on links that are down or have no notion of it.
    auto speed = ParseI64(ctx.ReadValue(base + "/speed"));
    nic->set_speed_mbps(speed ? *speed : -1);
    if (auto mtu = ParseU64(ctx.ReadValue(base + "/mtu"))) nic->set_mtu(static_cast<uint32_t>(*mtu));
    nic->set_type(InterfaceType(ctx, base, name));
    std::string driver = ctx.LinkTarget(base + "/device/driver");
    nic->set_driver(driver.empty() ? "" : Basename(driver));
  }

  auto& net = *inv.mutable_network();
  DefaultRoute(ctx, routes, net);
  ReadResolvConf(ctx, net);
}

}  // namespace parc::agent::linux_inventory
