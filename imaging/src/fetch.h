// Getting the stored bytes of one chunk from a fetcher: resumes from the
// bytes already received when the fetcher reports a transient error, never
// accepts more bytes than the index declares, and verifies before returning.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "parc/imaging/chunk_store.h"

namespace parc::imaging::internal {

// Stored bytes of ref, verified against ref.object (not decompressed). After
// a transient failure (Errc::kUnavailable) the next attempt waits
// retry_delay times the attempt number (at most 5 times it), so that a
// server restart can be waited out.
Expected<std::string> FetchStored(const ChunkRef& ref, ChunkFetcher& fetcher, unsigned attempts,
                                  std::chrono::milliseconds retry_delay = {});

// Batches for ChunkFetcher::FetchMany: one round trip carries up to this
// many chunks or bytes (a single larger chunk goes alone).
inline constexpr size_t kBatchChunks = 64;
inline constexpr uint64_t kBatchBytes = 4u << 20;

// The refs the cache lacks, fetched in batches, each verified (DecodeChunk)
// and kept in the cache: one round trip per batch instead of per chunk. What
// a batch does not deliver is left for ReadChunk to fetch alone; a chunk that
// fails its check is an error (Errc::kCrypto).
ExpectedVoid PrefetchIntoCache(const std::vector<ChunkRef>& refs, ChunkStore& cache, ChunkFetcher& fetcher);

// Plain bytes of ref: from the cache if it holds a good copy (a corrupt one is
// removed), else from the fetcher (kept in the cache). fetcher may be null.
Expected<std::string> ReadChunk(const ChunkRef& ref, ChunkStore& cache, ChunkFetcher* fetcher, unsigned attempts,
                                bool* fetched = nullptr, std::chrono::milliseconds retry_delay = {});

}  // namespace parc::imaging::internal
