#include "encoding.h"

#include <array>
#include <cstdint>

namespace parc::imaging::internal {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// Character -> 6-bit value; -1 for anything outside the alphabet.
constexpr std::array<int8_t, 256> kValues = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}();
int Value(char c) { return kValues[static_cast<uint8_t>(c)]; }
}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | (rest == 2 ? static_cast<uint8_t>(in[i + 1]) << 8 : 0);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4) return std::nullopt;
  std::string out;
  if (in.empty()) return out;
  const size_t pad = in[in.size() - 1] != '=' ? 0 : in[in.size() - 2] != '=' ? 1 : 2;
  const size_t n = in.size() / 4 * 3 - pad;
  bool ok = true;
  out.resize_and_overwrite(n, [&](char* p, size_t) {
    size_t o = 0;
    for (size_t i = 0; i < in.size() && ok; i += 4) {
      const bool last = i + 4 == in.size();
      int a = Value(in[i]), b = Value(in[i + 1]);
      int c = last && pad == 2 ? 0 : Value(in[i + 2]);
      int d = last && pad >= 1 ? 0 : Value(in[i + 3]);
      if ((a | b | c | d) < 0) {
        ok = false;
        break;
      }
      // Canonical: the bits the padding leaves unused are zero.
      if (last && ((pad == 2 && (b & 15)) || (pad == 1 && (c & 3)))) {
        ok = false;
        break;
      }
      uint32_t v = static_cast<uint32_t>(a) << 18 | static_cast<uint32_t>(b) << 12 | static_cast<uint32_t>(c) << 6 |
                   static_cast<uint32_t>(d);
      p[o++] = static_cast<char>(v >> 16);
      if (!last || pad < 2) p[o++] = static_cast<char>((v >> 8) & 255);
      if (!last || pad < 1) p[o++] = static_cast<char>(v & 255);
    }
    return n;
  });
  if (!ok) return std::nullopt;
  return out;
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else return false;
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      uint8_t cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

}  // namespace parc::imaging::internal
