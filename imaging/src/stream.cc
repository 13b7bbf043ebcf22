#include "stream.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace parc::imaging::internal {

ExpectedVoid CutStream(const sys::Fd& fd, uint64_t size_hint, const Chunker& chunker,
                       const std::function<ExpectedVoid(std::string_view, uint64_t)>& fn) {
  constexpr size_t kSegment = 8u << 20;
  std::string buf;
  size_t carry = 0;
  uint64_t read = 0, base = 0;  // base: stream offset of buf[0]
  bool eof = false;
  while (!eof) {
    uint64_t left = size_hint > read ? size_hint - read : 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(kSegment, left + 1));
    buf.resize(carry + want);
    auto n = sys::ReadFull(fd, buf.data() + carry, want);
    if (!n) return Fail(n.error());
    eof = *n < want;
    read += *n;
    size_t len = carry + *n;
    const auto* p = reinterpret_cast<const uint8_t*>(buf.data());
    size_t pos = 0;
    while (pos < len) {
      size_t cut = chunker.Cut(p + pos, len - pos, eof);
      if (cut == 0) break;
      if (auto r = fn(std::string_view(buf.data() + pos, cut), base + pos); !r) return r;
      pos += cut;
    }
    carry = len - pos;
    std::memmove(buf.data(), buf.data() + pos, carry);
    base += pos;
  }
  return {};
}

}  // namespace parc::imaging::internal
