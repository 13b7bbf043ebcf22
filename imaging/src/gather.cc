#include "gather.h"

#include "fetch.h"

namespace parc::imaging::internal {

Gatherer::Gatherer(std::vector<ChunkRef> unique, ChunkStore& cache, ChunkFetcher* fetcher, const DeployOptions& options,
                   Ticker& ticker)
    : unique_(std::move(unique)), cache_(cache), fetcher_(fetcher), options_(options), ticker_(ticker) {
  where_.assign(unique_.size(), Where::kMissing);
  seeds_.resize(unique_.size());
  for (size_t i = 0; i < unique_.size(); ++i) by_object_.emplace(unique_[i].object, i);
}

ExpectedVoid Gatherer::CheckCache() {
  for (size_t i = 0; i < unique_.size(); ++i) {
    if (cache_.Has(unique_[i].object)) {
      where_[i] = Where::kCache;
      ++from_cache_;
    } else {
      by_plain_[unique_[i].sha256].push_back(i);
      wanted_sizes_.insert(unique_[i].size);
    }
  }
  return {};
}

void Gatherer::Seeded(const Digest& plain, uint32_t source, uint64_t offset) {
  auto it = by_plain_.find(plain);
  if (it == by_plain_.end()) return;
  std::lock_guard lock(mu_);
  for (size_t i : it->second)
    if (where_[i] == Where::kMissing) {
      where_[i] = Where::kSeed;
      seeds_[i] = {source, offset};
      ++seeded_;
    }
}

void Gatherer::RelocateSeeds(const std::function<bool(const ChunkRef&, uint32_t&, uint64_t&)>& fn) {
  for (size_t i = 0; i < unique_.size(); ++i) {
    if (where_[i] != Where::kSeed) continue;
    if (!fn(unique_[i], seeds_[i].source, seeds_[i].offset)) {
      where_[i] = Where::kMissing;
      --seeded_;
    }
  }
}

size_t Gatherer::missing() const {
  size_t n = 0;
  for (auto w : where_) n += w == Where::kMissing;
  return n;
}

void Gatherer::StartFetching(const std::vector<const ChunkRef*>& uses) {
  std::lock_guard lock(mu_);
  fetching_ = true;
  fetch_failed_ = false;
  uses_.assign(unique_.size(), 0);
  for (const ChunkRef* c : uses)
    if (auto it = by_object_.find(c->object); it != by_object_.end()) ++uses_[it->second];
}

ExpectedVoid Gatherer::FetchMissing() {
  auto r = FetchAll();
  {
    std::lock_guard lock(mu_);
    fetching_ = false;
    fetch_failed_ = !r;
    if (!r) handoff_.clear(), handoff_bytes_ = 0;
  }
  arrived_.notify_all();
  return r;
}

ExpectedVoid Gatherer::FetchAll() {
  std::vector<size_t> todo;
  uint64_t bytes = 0;
  for (size_t i = 0; i < unique_.size(); ++i)
    if (where_[i] == Where::kMissing) todo.push_back(i), bytes += unique_[i].stored_size;
  if (todo.empty()) return {};
  if (!fetcher_)
    return Fail(Errc::kNotFound, std::to_string(todo.size()) +
                                     " chunks are neither in the cache nor in the target, and there is no source to fetch them from");
  ticker_.Phase("fetch", bytes, todo.size());
  // Verified completely (stored digest, then decoded) and kept, so that a bad
  // chunk stops the deploy before the target is touched.
  auto keep = [&](size_t k, std::string_view stored) -> ExpectedVoid {
    size_t i = todo[k];
    const ChunkRef& ref = unique_[i];
    auto plain = DecodeChunk(ref, stored);  // checks the stored digest first
    if (!plain) return Fail(plain.error());
    if (auto p = cache_.PutChecked(ref.object, stored); !p) return p;
    ticker_.Add(stored.size(), 1);
    {
      std::lock_guard lock(mu_);
      where_[i] = Where::kCache;
      ++fetched_;
      fetched_bytes_ += stored.size();
      if (fetching_ && uses_[i] > 0 && handoff_bytes_ + plain->size() <= kHandoffBytes) {
        handoff_bytes_ += plain->size();
        handoff_.emplace(i, Handoff{std::move(*plain), uses_[i]});
      }
    }
    arrived_.notify_all();
    return {};
  };
  // Batches of small chunks in one round trip each (FetchMany); whatever a
  // batch did not deliver is fetched alone, resuming on interruptions.
  std::vector<std::pair<size_t, size_t>> batches;  // [first, end) of todo
  for (size_t k = 0; k < todo.size();) {
    size_t end = k;
    uint64_t b = 0;
    while (end < todo.size() && end - k < kBatchChunks && (end == k || b + unique_[todo[end]].stored_size <= kBatchBytes))
      b += unique_[todo[end++]].stored_size;
    batches.emplace_back(k, end);
    k = end;
  }
  auto r = ParallelFor(batches.size(), std::max(1u, options_.fetch_parallelism), ticker_, [&](size_t n, unsigned) -> ExpectedVoid {
    auto [first, end] = batches[n];
    std::vector<ChunkRef> refs;
    for (size_t k = first; k < end; ++k) refs.push_back(unique_[todo[k]]);
    std::vector<uint8_t> got(refs.size(), 0);
    auto many = fetcher_->FetchMany(refs, [&](size_t i, std::string_view stored) -> ExpectedVoid {
      if (i >= refs.size() || got[i]) return Fail(Errc::kCrypto, "the source sent a chunk that was not asked for: refused");
      if (auto kept = keep(first + i, stored); !kept) return kept;
      got[i] = 1;
      return {};
    });
    if (!many && !many.error().Is(Errc::kUnavailable)) return Fail(many.error());
    for (size_t i = 0; i < refs.size(); ++i) {
      if (got[i]) continue;
      auto stored = FetchStored(refs[i], *fetcher_, options_.fetch_attempts, options_.fetch_retry_delay);
      if (!stored) return Fail(stored.error());
      if (auto kept = keep(first + i, *stored); !kept) return kept;
    }
    return {};
  });
  return r;
}

Expected<std::string> Gatherer::Plain(const ChunkRef& ref, const SeedRead& read) {
  auto it = by_object_.find(ref.object);
  if (it == by_object_.end()) return Fail(Errc::kInternal, "chunk not part of the image");
  size_t i = it->second;
  Where where;
  Seed seed;
  {
    std::unique_lock lock(mu_);
    arrived_.wait(lock, [&] { return where_[i] != Where::kMissing || !fetching_; });
    if (where_[i] == Where::kMissing && fetch_failed_)
      return Fail(Errc::kUnavailable, "chunk " + ref.object.Hex().substr(0, 16) + " was not fetched: the fetch failed");
    where = where_[i];
    seed = seeds_[i];
    if (auto h = handoff_.find(i); h != handoff_.end()) {  // just fetched and checked: no second decode
      std::string plain;
      if (--h->second.uses_left == 0) {
        plain = std::move(h->second.plain);
        handoff_bytes_ -= plain.size();
        handoff_.erase(h);
      } else {
        plain = h->second.plain;
      }
      return plain;
    }
  }
  if (where == Where::kSeed) {
    std::string buf(ref.size, '\0');
    if (auto r = read(seed.source, seed.offset, buf.data(), buf.size()); r && Digest::Of(buf) == ref.sha256)
      return buf;
    // The target changed since it was scanned: fall through to a fetch.
  }
  bool fetched = false;
  auto plain = ReadChunk(ref, cache_, fetcher_, options_.fetch_attempts, &fetched, options_.fetch_retry_delay);
  if (plain && fetched) {
    late_fetched_.fetch_add(1);
    late_fetched_bytes_.fetch_add(ref.stored_size);
  }
  return plain;
}

void Gatherer::Fill(DeployReport& r) const {
  r.chunks = unique_.size();
  r.from_cache = from_cache_;
  r.seeded = seeded_;
  r.fetched = fetched_ + late_fetched_.load();
  r.fetched_bytes = fetched_bytes_ + late_fetched_bytes_.load();  // the deploy replaces it with what crossed the wire
}

ExpectedVoid FetchWhileWriting(Gatherer& gatherer, const std::vector<const ChunkRef*>& uses, Ticker& ticker,
                               std::string_view phase, uint64_t total_bytes, uint64_t total_items,
                               const std::function<ExpectedVoid(Ticker&)>& write) {
  const ProgressFn silent;
  Ticker write_ticker(silent);
  gatherer.StartFetching(uses);
  std::atomic<bool> writer_failed_first{false};
  Background writing([&]() -> ExpectedVoid {
    auto r = write(write_ticker);
    if (!r && gatherer.Fetching()) {  // no point fetching on
      writer_failed_first = true;
      ticker.Cancel();
    }
    return r;
  });
  if (auto f = gatherer.FetchMissing(); !f) {
    write_ticker.Cancel();
    auto w = writing.Wait();
    return Fail(!w && writer_failed_first ? w.error() : f.error());
  }
  ticker.Phase(phase, total_bytes, total_items);
  auto catch_up = [&] { ticker.Add(write_ticker.bytes() - ticker.bytes(), write_ticker.items() - ticker.items()); };
  auto w = writing.Wait([&] {
    catch_up();
    if (!ticker.Tick()) write_ticker.Cancel();
  });
  if (w) catch_up();
  if (!ticker.Tick(true)) return Fail(Ticker::Cancelled());
  return w;
}

}  // namespace parc::imaging::internal
