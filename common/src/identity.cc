// Identity claims: the facts about a machine that survive a reinstall (firmware
// UUID and serials, burned-in MACs, disk serials), used to recognise the same
// machine under a new host id and to find duplicates in the parc.
#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

#include "parc/common/identity.h"

namespace parc {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Values that firmware vendors and hypervisors ship instead of a real serial:
// if two machines claim them, that says nothing about being the same machine.
bool IsPlaceholder(const std::string& trimmed) {
  static constexpr std::array<std::string_view, 13> kKnown = {
      "none", "n/a", "not specified", "not applicable", "to be filled by o.e.m.", "default string",
      "system serial number", "chassis serial number", "0", "0123456789", "123456789",
      "03000200-0400-0500-0006-000700080009", "not available"};
  const std::string lower = Lower(trimmed);
  if (lower.empty()) return true;
  if (std::find(kKnown.begin(), kKnown.end(), lower) != kKnown.end()) return true;
  // Separators do not count, so that all-zero / all-F UUIDs and MACs and
  // "XXXXXXXX" style fillers are caught by the same rule.
  std::string bare;
  for (char c : lower)
    if (c != '-' && c != ':' && c != ' ') bare += c;
  if (bare.empty()) return true;
  return std::all_of(bare.begin(), bare.end(), [&](char c) { return c == bare[0]; });
}

// A MAC the vendor burned in, as opposed to one made up by software (random
// Wi-Fi MACs, VPN and container interfaces set the locally administered bit).
bool IsUniversalMac(const std::string& mac) {
  if (mac.size() < 2) return false;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(mac[0]), lo = hex(mac[1]);
  if (hi < 0 || lo < 0) return false;
  int first_octet = hi * 16 + lo;
  return (first_octet & 0x02) == 0;
}

const std::string* FieldOf(const inventory::Fields& fields, const char* name) {
  auto it = fields.find(name);
  return it == fields.end() ? nullptr : &it->second;
}

}  // namespace

std::vector<std::string> IdentityClaims(const inventory::ItemMap& items) {
  std::vector<std::string> claims;
  auto add = [&](const char* prefix, const std::string* raw, bool lower) {
    if (!raw) return;
    std::string value = Trim(*raw);
    if (IsPlaceholder(value)) return;
    claims.push_back(prefix + (lower ? Lower(value) : value));
  };

  if (auto hw = items.find({"hardware", ""}); hw != items.end()) {
    add("uuid:", FieldOf(hw->second, "system_uuid"), true);
    add("serial:", FieldOf(hw->second, "serial_number"), false);
    add("board:", FieldOf(hw->second, "board_serial"), false);
  }
  for (auto it = items.lower_bound({"interfaces", ""}); it != items.end() && it->first.first == "interfaces"; ++it) {
    const std::string* type = FieldOf(it->second, "type");
    if (!type || (*type != "ether" && *type != "wireless")) continue;
    const std::string* mac = FieldOf(it->second, "mac");
    if (!mac) continue;
    std::string value = Lower(Trim(*mac));
    if (IsPlaceholder(value) || !IsUniversalMac(value)) continue;
    claims.push_back("mac:" + value);
  }
  for (auto it = items.lower_bound({"disks", ""}); it != items.end() && it->first.first == "disks"; ++it)
    add("disk:", FieldOf(it->second, "serial"), false);

  std::sort(claims.begin(), claims.end());
  claims.erase(std::unique(claims.begin(), claims.end()), claims.end());
  return claims;
}

}  // namespace parc
