// Content-defined chunking: limits, determinism, streaming, the mean size,
// and boundaries that survive insertions and deletions.
#include <catch2/catch.hpp>
#include <set>

#include "imaging_fixture.h"
#include "parc/common/hash.h"
#include "parc/imaging/chunker.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

std::vector<std::string> Chunks(const std::string& data, const ChunkerParams& p = {}) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (uint32_t len : ChunkLengths(data, p)) {
    out.push_back(data.substr(pos, len));
    pos += len;
  }
  return out;
}

// Chunks of `after` whose bytes are not a chunk of `before`.
size_t NewChunks(const std::string& before, const std::string& after) {
  std::set<std::string> old;
  for (auto& c : Chunks(before)) old.insert(Sha256(c));
  size_t n = 0;
  for (auto& c : Chunks(after)) n += !old.contains(Sha256(c));
  return n;
}

}  // namespace

TEST_CASE("chunker: parameters are validated", "[chunker]") {
  CHECK(ChunkerParams{}.Validate());
  CHECK_FALSE(ChunkerParams{32, 64, 128}.Validate());              // min below 64
  CHECK_FALSE(ChunkerParams{16384, 60000, 262144}.Validate());     // avg not a power of two
  CHECK_FALSE(ChunkerParams{65536, 65536, 262144}.Validate());     // min == avg
  CHECK_FALSE(ChunkerParams{16384, 65536, 65536}.Validate());      // avg == max
  CHECK_FALSE(ChunkerParams{16384, 65536, 32u << 20}.Validate());  // max above 16 MiB
  CHECK(ChunkerParams{1024, 4096, 16384}.Validate());
}

TEST_CASE("chunker: every chunk is within min and max, only the last one short", "[chunker]") {
  ChunkerParams p;
  for (uint64_t seed : {1, 2, 3}) {
    std::string data = RandomData(8 << 20, seed);
    auto lengths = ChunkLengths(data, p);
    uint64_t sum = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      sum += lengths[i];
      CHECK(lengths[i] <= p.max_size);
      if (i + 1 < lengths.size()) CHECK(lengths[i] >= p.min_size);
    }
    CHECK(sum == data.size());
  }
  // Data without boundaries (zeros) is cut at max.
  auto zeros = ChunkLengths(std::string(1 << 20, '\0'), p);
  REQUIRE(zeros.size() == 4);
  for (auto l : zeros) CHECK(l == p.max_size);
  // Short inputs are one chunk.
  CHECK(ChunkLengths("abc", p) == std::vector<uint32_t>{3});
  CHECK(ChunkLengths("", p).empty());
}

TEST_CASE("chunker: the mean chunk size is close to avg for random data", "[chunker]") {
  std::string data = RandomData(64 << 20, 11);
  for (ChunkerParams p : {ChunkerParams{}, ChunkerParams{2048, 8192, 65536}}) {
    auto lengths = ChunkLengths(data, p);
    double mean = static_cast<double>(data.size()) / static_cast<double>(lengths.size());
    INFO("mean " << mean << " for avg " << p.avg_size);
    CHECK(mean > 0.85 * p.avg_size);
    CHECK(mean < 1.15 * p.avg_size);
  }
}

TEST_CASE("chunker: cutting a stream piece by piece gives the same boundaries", "[chunker]") {
  std::string data = RandomData(3 << 20, 21);
  auto whole = ChunkLengths(data);
  Chunker c;
  std::vector<uint32_t> streamed;
  size_t start = 0, have = 0;
  const size_t piece = 100000;  // smaller than max: Cut must ask for more
  while (start < data.size()) {
    have = std::min(data.size(), std::max(have, start) + piece);
    bool final = have == data.size();
    size_t n = c.Cut(reinterpret_cast<const uint8_t*>(data.data()) + start, have - start, final);
    if (n == 0) continue;
    streamed.push_back(static_cast<uint32_t>(n));
    start += n;
  }
  CHECK(streamed == whole);
}

TEST_CASE("chunker: a 1-byte insertion or deletion changes only the chunks around it", "[chunker]") {
  std::string data = RandomData(16 << 20, 31);
  size_t total = Chunks(data).size();
  REQUIRE(total > 200);
  for (size_t at : {size_t(0), size_t(5 << 20), data.size() / 2 + 12345, data.size() - 10}) {
    std::string inserted = data;
    inserted.insert(at, 1, 'x');
    std::string deleted = data;
    deleted.erase(at, 1);
    INFO("edit at " << at << " of " << total << " chunks");
    // The chunk containing the edit, maybe its neighbour when a boundary
    // moved; everything else is found again.
    CHECK(NewChunks(data, inserted) <= 2);
    CHECK(NewChunks(data, deleted) <= 2);
  }
  // Many scattered edits: the damage stays proportional.
  std::string edited = data;
  for (size_t k = 1; k <= 10; ++k) edited[k * (1 << 20) + 777] ^= 0x55;
  CHECK(NewChunks(data, edited) <= 20);
}

TEST_CASE("chunker: the gear table is the documented one", "[chunker]") {
  // docs/images.md: gear[i] = first 8 bytes, little-endian, of SHA-256("parc-gear" || i).
  for (unsigned i : {0u, 1u, 255u}) {
    std::string seed = "parc-gear";
    seed.push_back(static_cast<char>(i));
    std::string d = Sha256(seed);
    uint64_t v = 0;
    for (int b = 7; b >= 0; --b) v = v << 8 | static_cast<uint8_t>(d[static_cast<size_t>(b)]);
    CHECK(GearTable()[i] == v);
  }
  // Pinned so that a change of the table (which would change every chunk
  // boundary) cannot pass unnoticed.
  auto lengths = ChunkLengths(RandomData(1 << 20, 42));
  CHECK(lengths.size() == 19);
  CHECK(lengths[0] == 95345u);
}
