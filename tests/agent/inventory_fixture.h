// Builders for prepared roots and EDID blocks shared by the inventory tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace parc::test {

struct EdidSpec {
  std::string manufacturer = "DEL";
  uint16_t product_code = 0xa0b1;
  uint32_t numeric_serial = 12345;
  int year = 2023;
  uint8_t width_cm = 53, height_cm = 30;
  std::string name = "DELL U2423";     // 0xFC descriptor; "" for none
  std::string serial = "ABC123";       // 0xFF descriptor; "" for none
};

// A 128-byte EDID base block with a correct checksum.
std::string MakeEdid(const EdidSpec& spec);

// Writes a complete, fictitious Debian workstation under root: every section
// of the inventory has something to find (see inventory_root_test.cc).
void BuildWorkstationRoot(const std::filesystem::path& root);

// Makes a workstation root machine number n of a lab: its own hostname
// (pcN), SMBIOS UUID and serials, MACs and disk serials, so that the server
// neither flags two lab machines as clones nor takes one for a reinstall of
// another (which would supersede the older record).
void MakeDistinctMachine(const std::filesystem::path& root, int n);

}  // namespace parc::test
