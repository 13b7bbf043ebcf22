// Decoding a monitor's EDID block (VESA E-EDID 1.3/1.4 base block). Neutral:
// Linux reads it from /sys/class/drm, Windows from the registry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parc::agent {

struct EdidInfo {
  std::string manufacturer;  // three-letter PNP id, e.g. "DEL"
  uint32_t product_code = 0;
  std::string serial;        // serial descriptor, else the numeric serial, else ""
  std::string name;          // monitor name descriptor
  uint32_t year = 0;         // year of manufacture (or model year)
  uint32_t width_cm = 0;
  uint32_t height_cm = 0;
};

// nullopt when the bytes are not a valid base block: shorter than 128 bytes,
// wrong header or wrong checksum. Extension blocks are ignored.
std::optional<EdidInfo> ParseEdid(std::string_view bytes);

}  // namespace parc::agent
