// Where each chunk of a deployment comes from: the cache, the target's
// current content (seeds, re-verified when read), or the fetcher (verified
// and kept in the cache before it is written anywhere).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "parc/imaging/deploy.h"
#include "work.h"

namespace parc::imaging::internal {

// Reads n bytes of seed source `source` at `offset` into buf.
using SeedRead = std::function<ExpectedVoid(uint32_t source, uint64_t offset, char* buf, size_t n)>;

class Gatherer {
 public:
  Gatherer(std::vector<ChunkRef> unique, ChunkStore& cache, ChunkFetcher* fetcher, const DeployOptions& options,
           Ticker& ticker);

  const std::vector<ChunkRef>& unique() const { return unique_; }
  ExpectedVoid CheckCache();
  // Seeding, from any thread: is a chunk with this plain digest still
  // wanted, and where one was found.
  bool WantedSize(uint32_t size) const { return wanted_sizes_.contains(size); }
  bool Wanted(const Digest& plain) const { return by_plain_.contains(plain); }
  void Seeded(const Digest& plain, uint32_t source, uint64_t offset);
  size_t missing() const;
  // Block targets: looks at every seed (single thread, before writing); fn
  // returns the seed's new place, or false to forget it (it is fetched).
  void RelocateSeeds(const std::function<bool(const ChunkRef&, uint32_t& source, uint64_t& offset)>& fn);
  // Fetches what is neither cached nor seeded (in parallel), verifying each
  // chunk completely before keeping it.
  ExpectedVoid FetchMissing();
  // Writing while fetching: from this call until FetchMissing returns,
  // Plain() waits for a chunk that is still being fetched instead of fetching
  // it itself; once the fetch has failed it returns an error at once. `uses`
  // lists every chunk reference the writers will ask for, in any order:
  // a fetched chunk is handed to them decoded (up to kHandoffBytes held at a
  // time) until its last use, instead of being read and decoded again.
  void StartFetching(const std::vector<const ChunkRef*>& uses);
  bool Fetching() {
    std::lock_guard lock(mu_);
    return fetching_;
  }
  // Plain bytes of a chunk for writing, verified.
  Expected<std::string> Plain(const ChunkRef& ref, const SeedRead& read);

  void Fill(DeployReport& r) const;

 private:
  enum class Where : uint8_t { kMissing, kCache, kSeed };
  ExpectedVoid FetchAll();
  struct Seed {
    uint32_t source = 0;
    uint64_t offset = 0;
  };
  std::vector<ChunkRef> unique_;
  ChunkStore& cache_;
  ChunkFetcher* fetcher_;
  const DeployOptions& options_;
  Ticker& ticker_;
  std::vector<Where> where_;
  std::vector<Seed> seeds_;
  std::unordered_map<Digest, size_t, DigestHash> by_object_;
  std::unordered_map<Digest, std::vector<size_t>, DigestHash> by_plain_;  // not cached
  std::unordered_set<uint32_t> wanted_sizes_;
  std::mutex mu_;  // where_, seeds_ and the counters below while threads run
  std::condition_variable arrived_;
  bool fetching_ = false, fetch_failed_ = false;
  struct Handoff {
    std::string plain;
    uint32_t uses_left;
  };
  static constexpr uint64_t kHandoffBytes = 64u << 20;
  std::vector<uint32_t> uses_;  // by unique_ index
  std::unordered_map<size_t, Handoff> handoff_;
  uint64_t handoff_bytes_ = 0;
  uint64_t from_cache_ = 0, seeded_ = 0, fetched_ = 0, fetched_bytes_ = 0;
  std::atomic<uint64_t> late_fetched_{0}, late_fetched_bytes_{0};
};

// Writing while fetching (a tree, a new block file): runs write(t) on a thread
// of its own, t a ticker of its own, while `gatherer` fetches what is missing
// (StartFetching(uses) first); then shows the writer's progress as `phase`
// of `ticker` until it is done. A failed fetch stops the writer and its error
// is returned, unless the writer failed first (a full disk, say), which stops
// the fetch and is returned instead.
ExpectedVoid FetchWhileWriting(Gatherer& gatherer, const std::vector<const ChunkRef*>& uses, Ticker& ticker,
                               std::string_view phase, uint64_t total_bytes, uint64_t total_items,
                               const std::function<ExpectedVoid(Ticker&)>& write);

}  // namespace parc::imaging::internal
