#include "fetch.h"

#include <algorithm>
#include <thread>

namespace parc::imaging::internal {

namespace {
}  // namespace

Expected<std::string> FetchStored(const ChunkRef& ref, ChunkFetcher& fetcher, unsigned attempts,
                                  std::chrono::milliseconds retry_delay) {
  std::string data;
  data.reserve(ref.stored_size);
  Error last;
  for (unsigned attempt = 0; attempt < std::max(1u, attempts); ++attempt) {
    if (attempt > 0 && retry_delay.count() > 0) std::this_thread::sleep_for(retry_delay * std::min(attempt, 5u));
    auto r = fetcher.Fetch(ref, data.size(), [&](std::string_view piece) -> ExpectedVoid {
      if (data.size() + piece.size() > ref.stored_size)
        return Fail(Errc::kCrypto, "chunk " + ref.object.Short() + " is longer than its index says: refused");
      data.append(piece);
      return {};
    });
    if (r) {
      if (data.size() != ref.stored_size || Digest::Of(data) != ref.object)
        return Fail(Errc::kCrypto, "chunk " + ref.object.Short() + " does not match its digest (altered or truncated): refused");
      return data;
    }
    last = r.error();
    if (!last.Is(Errc::kUnavailable)) break;
  }
  return Fail(last.WithContext("fetching chunk " + ref.object.Short()));
}

ExpectedVoid PrefetchIntoCache(const std::vector<ChunkRef>& refs, ChunkStore& cache, ChunkFetcher& fetcher) {
  std::vector<ChunkRef> missing;
  for (const auto& c : refs)
    if (!cache.Has(c.object)) missing.push_back(c);
  for (size_t k = 0; k < missing.size();) {
    std::vector<ChunkRef> batch;
    uint64_t bytes = 0;
    while (k < missing.size() && batch.size() < kBatchChunks && (batch.empty() || bytes + missing[k].stored_size <= kBatchBytes))
      bytes += missing[k].stored_size, batch.push_back(missing[k++]);
    std::vector<uint8_t> got(batch.size(), 0);
    auto r = fetcher.FetchMany(batch, [&](size_t i, std::string_view stored) -> ExpectedVoid {
      if (i >= batch.size() || got[i]) return Fail(Errc::kCrypto, "the source sent a chunk that was not asked for: refused");
      got[i] = 1;
      auto plain = DecodeChunk(batch[i], stored);
      if (!plain) return Fail(plain.error());
      return cache.PutChecked(batch[i].object, stored);
    });
    if (!r && !r.error().Is(Errc::kUnavailable)) return r;
  }
  return {};
}

Expected<std::string> ReadChunk(const ChunkRef& ref, ChunkStore& cache, ChunkFetcher* fetcher, unsigned attempts,
                                bool* fetched, std::chrono::milliseconds retry_delay) {
  if (fetched) *fetched = false;
  auto stored = cache.Get(ref.object);
  if (stored) {
    auto plain = DecodeChunk(ref, *stored);
    if (plain) return plain;
    if (!plain.error().Is(Errc::kCrypto)) return plain;
    (void)cache.Remove(ref.object);  // corrupt local copy: fetch it again
  } else if (!stored.error().Is(Errc::kNotFound)) {
    return Fail(stored.error());
  }
  if (!fetcher) return Fail(Errc::kNotFound, "chunk " + ref.object.Short() + " is not in the cache and there is no source");
  auto got = FetchStored(ref, *fetcher, attempts, retry_delay);
  if (!got) return Fail(got.error());
  auto plain = DecodeChunk(ref, *got);
  if (!plain) return plain;
  if (auto p = cache.PutChecked(ref.object, *got); !p) return Fail(p.error());
  if (fetched) *fetched = true;
  return plain;
}

}  // namespace parc::imaging::internal
