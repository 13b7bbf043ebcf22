#include "parc/imaging/chunker.h"

#include <array>
#include <bit>
#include <cstring>

#include "parc/common/hash.h"

namespace parc::imaging {

namespace {

// gear[i] = first 8 bytes, little-endian, of SHA-256("parc-gear" || byte i):
// reproducible from the documentation alone, no table to copy.
std::array<uint64_t, 256> MakeGear() {
  std::array<uint64_t, 256> g{};
  for (unsigned i = 0; i < 256; ++i) {
    std::string seed = "parc-gear";
    seed.push_back(static_cast<char>(i));
    std::string d = Sha256(seed);
    uint64_t v = 0;
    for (int b = 7; b >= 0; --b) v = v << 8 | static_cast<uint8_t>(d[static_cast<size_t>(b)]);
    g[i] = v;
  }
  return g;
}

// The top `bits` bits: with h = (h << 1) + gear[byte] they depend on the last
// 64 bytes, which is the window of the hash.
uint64_t TopBits(unsigned bits) { return bits == 0 ? 0 : ~0ull << (64 - bits); }

}  // namespace

const uint64_t* GearTable() {
  static const std::array<uint64_t, 256> table = MakeGear();
  return table.data();
}

ExpectedVoid ChunkerParams::Validate() const {
  if (min_size < 64) return Fail(Errc::kInvalidArgument, "chunking: min size must be at least 64 bytes");
  if (!(min_size < avg_size && avg_size < max_size))
    return Fail(Errc::kInvalidArgument, "chunking: sizes must satisfy min < avg < max (got " + std::to_string(min_size) +
                                            "/" + std::to_string(avg_size) + "/" + std::to_string(max_size) + ")");
  if (!std::has_single_bit(avg_size)) return Fail(Errc::kInvalidArgument, "chunking: avg size must be a power of two");
  if (max_size > (16u << 20)) return Fail(Errc::kInvalidArgument, "chunking: max size must be at most 16 MiB");
  return {};
}

Chunker::Chunker(const ChunkerParams& params) : params_(params) {
  if (!params_.Validate()) params_ = ChunkerParams{};
  unsigned bits = static_cast<unsigned>(std::countr_zero(params_.avg_size));
  // Normalized chunking (FastCDC level 1): harder to cut before the normal
  // point, easier after it. The normal point sits halfway between min and avg
  // so that the mean chunk size comes out close to avg despite cut-point
  // skipping (measured in tests/imaging/chunker_test.cc).
  mask_small_ = TopBits(bits + 1);
  mask_large_ = TopBits(bits - 1);
  normal_ = params_.min_size + (params_.avg_size - params_.min_size) / 2;
}

size_t Chunker::Cut(const uint8_t* data, size_t len, bool final) const {
  const uint64_t* gear = GearTable();
  const size_t min = params_.min_size, max = params_.max_size;
  if (len <= min) return final ? len : 0;
  size_t normal = normal_ < len ? normal_ : len;
  size_t end = max < len ? max : len;
  uint64_t h = 0;
  size_t i = min;  // cut-point skipping: no boundary before min, no hashing either
  for (; i < normal; ++i) {
    h = (h << 1) + gear[data[i]];
    if (!(h & mask_small_)) return i + 1;
  }
  for (; i < end; ++i) {
    h = (h << 1) + gear[data[i]];
    if (!(h & mask_large_)) return i + 1;
  }
  if (end == max) return max;
  return final ? len : 0;
}

std::vector<uint32_t> ChunkLengths(std::string_view data, const ChunkerParams& params) {
  Chunker c(params);
  std::vector<uint32_t> out;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t left = data.size();
  while (left > 0) {
    size_t n = c.Cut(p, left, true);
    out.push_back(static_cast<uint32_t>(n));
    p += n;
    left -= n;
  }
  return out;
}

}  // namespace parc::imaging
