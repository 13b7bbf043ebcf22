// Content-defined chunking: a FastCDC-style gear hash with cut-point skipping
// and normalized chunking (docs/images.md, "Chunking"). Boundaries depend only
// on the bytes near them, so an insertion changes the chunks around it and the
// rest of a file keeps its chunks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::imaging {

struct ChunkerParams {
  uint32_t min_size = 16 << 10;
  uint32_t avg_size = 64 << 10;   // a power of two
  uint32_t max_size = 256 << 10;
  // 64 <= min < avg < max <= 16 MiB, avg a power of two.
  ExpectedVoid Validate() const;
  bool operator==(const ChunkerParams&) const = default;
};

class Chunker {
 public:
  // params must be valid (Validate()); invalid ones are clamped to the defaults.
  explicit Chunker(const ChunkerParams& params = {});
  const ChunkerParams& params() const { return params_; }

  // Length of the first chunk of data[0, len). When `final` is false more data
  // may follow: 0 means "give me more" (no boundary yet and len < max_size).
  // When `final` is true the remainder is always a chunk (possibly short).
  size_t Cut(const uint8_t* data, size_t len, bool final) const;
  size_t Cut(std::string_view data, bool final) const {
    return Cut(reinterpret_cast<const uint8_t*>(data.data()), data.size(), final);
  }

 private:
  ChunkerParams params_;
  uint64_t mask_small_ = 0, mask_large_ = 0;  // before / after the normal point
  uint32_t normal_ = 0;
};

// Chunk lengths of a whole buffer (the last one may be short).
std::vector<uint32_t> ChunkLengths(std::string_view data, const ChunkerParams& params = {});

// The 256 gear values (documented so other tools can cut the same boundaries).
const uint64_t* GearTable();

}  // namespace parc::imaging
