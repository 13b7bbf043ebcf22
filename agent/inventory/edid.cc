#include "parc/agent/edid.h"

#include <array>

namespace parc::agent {

namespace {

constexpr size_t kBlockSize = 128;
constexpr std::array<unsigned char, 8> kHeader = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
constexpr size_t kDescriptorOffsets[] = {54, 72, 90, 108};
constexpr unsigned char kTagSerial = 0xff, kTagName = 0xfc;

unsigned char At(std::string_view b, size_t i) { return static_cast<unsigned char>(b[i]); }

// Descriptor text: up to 13 bytes, ended by a line feed, padded with spaces.
std::string DescriptorText(std::string_view block, size_t offset) {
  std::string text;
  for (size_t i = offset + 5; i < offset + 18; ++i) {
    unsigned char c = At(block, i);
    if (c == 0x0a || c == 0x00) break;
    // Some panels put garbage here; keep the text printable for the parc.
    text.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  return text;
}

}  // namespace

std::optional<EdidInfo> ParseEdid(std::string_view bytes) {
  if (bytes.size() < kBlockSize) return std::nullopt;
  std::string_view block = bytes.substr(0, kBlockSize);
  for (size_t i = 0; i < kHeader.size(); ++i) {
    if (At(block, i) != kHeader[i]) return std::nullopt;
  }
  unsigned sum = 0;
  for (char c : block) sum += static_cast<unsigned char>(c);
  if (sum % 256 != 0) return std::nullopt;

  EdidInfo info;
  // Three 5-bit letters, 'A' = 1, big-endian across bytes 8-9.
  unsigned id = (At(block, 8) << 8) | At(block, 9);
  for (int shift : {10, 5, 0}) {
    unsigned letter = (id >> shift) & 0x1f;
    info.manufacturer.push_back(letter >= 1 && letter <= 26 ? static_cast<char>('A' + letter - 1) : '?');
  }
  info.product_code = At(block, 10) | (At(block, 11) << 8);
  uint32_t numeric_serial = At(block, 12) | (At(block, 13) << 8) | (At(block, 14) << 16) |
                            (static_cast<uint32_t>(At(block, 15)) << 24);
  if (At(block, 17) != 0) info.year = At(block, 17) + 1990u;
  info.width_cm = At(block, 21);
  info.height_cm = At(block, 22);
  for (size_t off : kDescriptorOffsets) {
    // Display descriptors start with a zero pixel clock; timing descriptors do not.
    if (At(block, off) != 0 || At(block, off + 1) != 0) continue;
    unsigned char tag = At(block, off + 3);
    if (tag == kTagSerial && info.serial.empty()) info.serial = DescriptorText(block, off);
    else if (tag == kTagName && info.name.empty()) info.name = DescriptorText(block, off);
  }
  if (info.serial.empty() && numeric_serial != 0) info.serial = std::to_string(numeric_serial);
  return info;
}

}  // namespace parc::agent
