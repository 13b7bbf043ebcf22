// Firmware (DMI), processor and memory.
#include <algorithm>
#include <map>
#include <set>

#include "collect.h"
#include "parc/common/hash.h"

namespace parc::agent::linux_inventory {

namespace {

// SMBIOS 3.x, table 7.4.1 "System Enclosure or Chassis Types".
std::string ChassisTypeName(std::string_view code) {
  static constexpr std::string_view kNames[] = {
      "",  // 0 is not assigned
      "Other", "Unknown", "Desktop", "Low Profile Desktop", "Pizza Box",                       // 1-5
      "Mini Tower", "Tower", "Portable", "Laptop", "Notebook",                                // 6-10
      "Hand Held", "Docking Station", "All in One", "Sub Notebook", "Space-saving",           // 11-15
      "Lunch Box", "Main Server Chassis", "Expansion Chassis", "SubChassis",                  // 16-19
      "Bus Expansion Chassis", "Peripheral Chassis", "RAID Chassis", "Rack Mount Chassis",    // 20-23
      "Sealed-case PC", "Multi-system chassis", "Compact PCI", "Advanced TCA", "Blade",       // 24-28
      "Blade Enclosure", "Tablet", "Convertible", "Detachable", "IoT Gateway",                // 29-33
      "Embedded PC", "Mini PC", "Stick PC",                                                   // 34-36
  };
  auto n = ParseU64(code);
  if (!n) return std::string(code);
  // Bit 7 is the "chassis lock present" flag, not part of the type.
  uint64_t type = *n & 0x7f;
  if (type == 0 || type >= std::size(kNames)) return "Unknown";
  return std::string(kNames[type]);
}

// Vendors ship boards with template strings; reporting them would make unrelated
// machines look like duplicates of each other in the parc.
bool IsPlaceholder(std::string_view value) {
  static constexpr std::string_view kPlaceholders[] = {
      "to be filled by o.e.m.", "default string", "not specified", "not applicable",
      "system serial number",   "chassis serial number", "base board serial number",
      "0123456789",             "none",           "n/a",
      "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
  };
  std::string lower = ToLower(value);
  return std::find(std::begin(kPlaceholders), std::end(kPlaceholders), lower) != std::end(kPlaceholders);
}

}  // namespace

void CollectHardware(Context& ctx, v1::Inventory& inv) {
  constexpr std::string_view kDmi = "/sys/class/dmi/id";
  if (!ctx.IsDirectory(kDmi)) {
    ctx.Warn("no DMI table: /sys/class/dmi/id is absent (virtual machine, container or non-PC firmware)");
    return;
  }
  auto dmi = [&](std::string_view attribute) {
    // product_serial and friends are root-only: unreadable reads as unknown.
    std::string value = ctx.ReadValue(std::string(kDmi) + "/" + std::string(attribute));
    return IsPlaceholder(value) ? std::string() : value;
  };
  auto& hw = *inv.mutable_hardware();
  hw.set_system_vendor(dmi("sys_vendor"));
  hw.set_product_name(dmi("product_name"));
  hw.set_product_version(dmi("product_version"));
  hw.set_serial_number(dmi("product_serial"));
  hw.set_system_uuid(ToLower(dmi("product_uuid")));
  hw.set_bios_vendor(dmi("bios_vendor"));
  hw.set_bios_version(dmi("bios_version"));
  hw.set_bios_date(dmi("bios_date"));
  hw.set_board_vendor(dmi("board_vendor"));
  hw.set_board_name(dmi("board_name"));
  hw.set_board_serial(dmi("board_serial"));
  std::string chassis = dmi("chassis_type");
  hw.set_chassis_type(chassis.empty() ? "" : ChassisTypeName(chassis));
  hw.set_chassis_serial(dmi("chassis_serial"));
  hw.set_asset_tag(dmi("chassis_asset_tag"));
}

namespace {

// ARM cores name their designer by a JEDEC-like code, not a string.
std::string ArmImplementerName(std::string_view code) {
  static const std::map<uint64_t, std::string_view> kNames = {
      {0x41, "ARM"},      {0x42, "Broadcom"}, {0x43, "Cavium"},  {0x46, "Fujitsu"},
      {0x48, "HiSilicon"}, {0x4e, "NVIDIA"},  {0x50, "APM"},     {0x51, "Qualcomm"},
      {0x53, "Samsung"},  {0x56, "Marvell"},  {0x61, "Apple"},   {0x69, "Intel"},
      {0xc0, "Ampere"},
  };
  auto n = ParseU64(code, 16);
  if (!n) return std::string(code);
  auto it = kNames.find(*n);
  return it != kNames.end() ? std::string(it->second) : std::string(code);
}

}  // namespace

void CollectCpu(Context& ctx, v1::Inventory& inv) {
  auto text = ctx.Read("/proc/cpuinfo");
  if (!text) {
    ctx.Warn("cannot read /proc/cpuinfo: processor unknown");
    return;
  }
  std::string model, vendor, hardware, implementer, part;
  uint32_t threads = 0;
  std::map<std::string, uint32_t> cores_per_socket;  // physical id -> cpu cores
  std::string_view current_socket;
  bool have_socket = false;
  std::set<std::string_view> flags;
  ForEachLine(*text, [&](std::string_view line) {
    std::string_view key, value;
    if (!SplitKeyValue(line, ':', key, value)) return;
    if (key == "processor") {
      // "processor : 0" starts an entry; 32-bit ARM also has "Processor : ARMv7 ...".
      if (ParseU64(value)) ++threads;
      else if (model.empty()) model = value;
    } else if (key == "model name" && model.empty()) {
      model = value;
    } else if (key == "vendor_id" && vendor.empty()) {
      vendor = value;
    } else if (key == "physical id") {
      current_socket = value;
      have_socket = true;
      cores_per_socket.try_emplace(std::string(value), 0);
    } else if (key == "cpu cores" && have_socket) {
      if (auto n = ParseU64(value)) cores_per_socket[std::string(current_socket)] = static_cast<uint32_t>(*n);
    } else if (key == "flags" || key == "Features") {
      for (auto f : SplitWords(value)) flags.insert(f);
    } else if (key == "Hardware" && hardware.empty()) {
      hardware = value;
    } else if (key == "CPU implementer" && implementer.empty()) {
      implementer = value;
    } else if (key == "CPU part" && part.empty()) {
      part = value;
    }
  });
  if (!implementer.empty()) {
    if (vendor.empty()) vendor = ArmImplementerName(implementer);
    if (model.empty()) model = !hardware.empty() ? hardware : vendor + " part " + part;
  }
  if (model.empty()) model = hardware;

  auto& cpu = *inv.mutable_cpu();
  cpu.set_model(model);
  cpu.set_vendor(vendor);
  cpu.set_threads(threads);
  uint32_t cores = 0;
  for (const auto& [socket, n] : cores_per_socket) cores += n;
  // Without topology lines (ARM, some hypervisors) each logical CPU is a core.
  cpu.set_cores(cores ? cores : threads);
  cpu.set_sockets(std::max<uint32_t>(static_cast<uint32_t>(cores_per_socket.size()), threads ? 1 : 0));
  if (!flags.empty()) {
    std::string joined;
    for (auto f : flags) {
      if (!joined.empty()) joined += ' ';
      joined += f;
    }
    cpu.set_flags_digest(Sha256Hex(joined));
  }
  if (auto khz = ParseU64(ctx.ReadValue("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))) {
    cpu.set_max_mhz(static_cast<uint32_t>(*khz / 1000));
  }
}

void CollectMemory(Context& ctx, v1::Inventory& inv) {
  auto text = ctx.Read("/proc/meminfo");
  if (!text) {
    ctx.Warn("cannot read /proc/meminfo: memory size unknown");
    return;
  }
  auto& mem = *inv.mutable_memory();
  ForEachLine(*text, [&](std::string_view line) {
    std::string_view key, value;
    if (!SplitKeyValue(line, ':', key, value)) return;
    auto words = SplitWords(value);
    if (words.empty()) return;
    auto n = ParseU64(words[0]);
    if (!n) return;
    uint64_t bytes = *n * 1024;  // meminfo says "kB" and means KiB
    if (key == "MemTotal") mem.set_total_bytes(bytes);
    else if (key == "SwapTotal") mem.set_swap_total_bytes(bytes);
    else if (key == "MemAvailable") mem.set_available_bytes(bytes);
    else if (key == "SwapFree") mem.set_swap_free_bytes(bytes);
  });
}

}  // namespace parc::agent::linux_inventory
