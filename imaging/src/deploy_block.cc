#include <algorithm>
#include <optional>

#include "deploy_common.h"
#include "gather.h"
#include "parc/imaging/deploy.h"
#include "stream.h"
#include "sys.h"

namespace parc::imaging {

namespace fs = std::filesystem;
using internal::Gatherer;
using internal::Ticker;

namespace {

constexpr uint32_t kTarget = 0, kStash = 1;

std::string Range(uint64_t off, uint64_t len) {
  return "bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1);
}

}  // namespace

Expected<DeployReport> DeployBlock(std::string_view manifest_json, std::string_view signature, const fs::path& target,
                                   ChunkStore& cache, ChunkFetcher* given_fetcher, const DeployOptions& o) {
  std::optional<internal::CountingFetcher> counting;
  if (given_fetcher) counting.emplace(*given_fetcher);
  ChunkFetcher* fetcher = counting ? &*counting : nullptr;
  auto image = internal::OpenSignedImage(manifest_json, signature, ImageKind::kBlock, cache, fetcher, o);
  if (!image) return Fail(image.error().WithContext("deploy to " + target.string()));
  DeployReport report;
  report.name = image->manifest.name;
  report.version = image->manifest.version;
  report.image_id = ManifestId(manifest_json);
  report.index_fetched = counting ? counting->chunks.load() : 0;
  auto ctx = [&](const Error& e) { return Fail(e.WithContext("deploy of " + report.name + " " + report.version + " to " + target.string())); };
  const uint64_t size = image->manifest.size;
  const auto& blocks = image->blocks;

  bool existed = sys::Exists(target);
  bool device = false;
  if (existed) {
    auto st = sys::LStat(target);
    if (!st) return ctx(st.error());
    if (st->type != sys::Type::kFile && st->type != sys::Type::kBlockDevice)
      return ctx(Error(Errc::kFailedPrecondition, "the target is neither a regular file nor a block device (symlinks are not followed)"));
    device = st->type == sys::Type::kBlockDevice;
  }
  auto fd = sys::OpenWrite(target, !existed);
  if (!fd) return ctx(fd.error());
  auto current = sys::SizeOf(*fd);
  if (!current) return ctx(current.error());
  if (device && *current < size)
    return ctx(Error(Errc::kResourceExhausted, "the device holds " + std::to_string(*current) + " bytes, the image needs " +
                                                   std::to_string(size)));
  if (!device && size > *current) {
    std::error_code aec;
    auto free = sys::FreeBytes(fs::absolute(target, aec).parent_path());
    if (free && *free < size - *current)
      return ctx(Error(Errc::kResourceExhausted, "needs " + std::to_string((size - *current) >> 20) + " MiB more, " +
                                                     std::to_string(*free >> 20) + " MiB are free"));
  }
  std::vector<uint64_t> offsets(blocks.size() + 1, 0);
  for (size_t i = 0; i < blocks.size(); ++i) offsets[i + 1] = offsets[i] + blocks[i].size;

  Ticker ticker(o.progress);
  unsigned threads = internal::ThreadCount(o.threads);
  Gatherer gatherer(image->UniqueChunks(), cache, fetcher, o, ticker);
  if (auto r = gatherer.CheckCache(); !r) return ctx(r.error());

  // What is already right, position by position (any producer's boundaries).
  std::vector<uint8_t> unchanged(blocks.size(), 0);
  const bool fresh = *current == 0;
  if (o.seed && !fresh) {
    ticker.Phase("seed", std::min(*current, size), blocks.size());
    auto r = internal::ParallelFor(blocks.size(), threads, ticker, [&](size_t i, unsigned) -> ExpectedVoid {
      if (offsets[i + 1] > *current) return {};
      std::string buf(blocks[i].size, '\0');
      auto n = sys::PReadFull(*fd, buf.data(), buf.size(), offsets[i]);
      if (!n) return Fail(n.error());
      ticker.Add(buf.size(), 1);
      if (*n != buf.size() || Digest::Of(buf) != blocks[i].sha256) return {};
      unchanged[i] = 1;
      gatherer.Seeded(blocks[i].sha256, kTarget, offsets[i]);
      return {};
    });
    if (!r) return ctx(r.error());
    // Content that moved: cut the target like the image was cut.
    if (gatherer.missing() > 0) {
      ticker.Phase("seed", *current, 0);
      Chunker chunker(image->manifest.chunking);
      auto whole = sys::OpenRead(target);
      if (!whole) return ctx(whole.error());
      auto cut = internal::CutStream(*whole, *current, chunker, [&](std::string_view chunk, uint64_t off) -> ExpectedVoid {
        ticker.Add(chunk.size());
        if (gatherer.WantedSize(static_cast<uint32_t>(chunk.size()))) {
          Digest d = Digest::Of(chunk);
          if (gatherer.Wanted(d)) gatherer.Seeded(d, kTarget, off);
        }
        if (!ticker.Tick()) return Fail(Ticker::Cancelled());
        return {};
      });
      if (!cut) return ctx(cut.error());
    }
  }
  // A seed in a region that is about to be rewritten is copied aside first.
  auto overwritten = [&](uint64_t off, uint64_t len) {
    size_t i = static_cast<size_t>(std::upper_bound(offsets.begin(), offsets.end(), off) - offsets.begin()) - 1;
    for (; i < blocks.size() && offsets[i] < off + len; ++i)
      if (!unchanged[i]) return true;
    return off + len > size;  // beyond the image: truncated away
  };
  std::optional<sys::Fd> stash;
  uint64_t stash_end = 0;
  std::error_code ec;
  fs::path work = o.work_dir;
  if (work.empty()) work = device ? fs::temp_directory_path(ec) : fs::absolute(target, ec).parent_path();
  if (work.empty()) work = "/var/tmp";
  gatherer.RelocateSeeds([&](const ChunkRef& ref, uint32_t& source, uint64_t& offset) {
    if (source != kTarget || !overwritten(offset, ref.size)) return true;
    if (!stash) {
      auto t = sys::OpenTmpFile(work);
      if (!t) return false;
      stash = std::move(*t);
    }
    std::string buf(ref.size, '\0');
    auto n = sys::PReadFull(*fd, buf.data(), buf.size(), offset);
    if (!n || *n != buf.size() || Digest::Of(buf) != ref.sha256) return false;
    if (!sys::PWriteAll(*stash, buf, stash_end)) return false;
    source = kStash;
    offset = stash_end;
    stash_end += buf.size();
    return true;
  });
  if (auto f = gatherer.FetchMissing(); !f) return ctx(f.error());

  std::vector<size_t> todo;
  uint64_t todo_bytes = 0;
  for (size_t i = 0; i < blocks.size(); ++i)
    if (unchanged[i]) report.unchanged_bytes += blocks[i].size;
    else todo.push_back(i), todo_bytes += blocks[i].size;
  internal::SeedRead read = [&](uint32_t source, uint64_t off, char* buf, size_t n) -> ExpectedVoid {
    const sys::Fd* from = source == kStash && stash ? &*stash : &*fd;
    auto got = sys::PReadFull(*from, buf, n, off);
    if (!got) return Fail(got.error());
    if (*got != n) return Fail(Errc::kIo, "short read");
    return {};
  };
  ticker.Phase("write", todo_bytes, todo.size());
  std::atomic<uint64_t> written{0};
  auto w = internal::ParallelFor(todo.size(), threads, ticker, [&](size_t k, unsigned) -> ExpectedVoid {
    size_t i = todo[k];
    auto plain = gatherer.Plain(blocks[i], read);
    if (!plain) return Fail(plain.error());
    ticker.Add(plain->size(), 1);
    if (fresh && internal::AllZero(*plain)) return {};  // a new file reads zeros there already
    if (auto r = sys::PWriteAll(*fd, *plain, offsets[i]); !r) return Fail(r.error().WithContext(Range(offsets[i], plain->size())));
    written.fetch_add(plain->size());
    return {};
  });
  if (!w) return ctx(w.error());
  if (!device && *current != size)
    if (auto t = sys::Truncate(*fd, size); !t) return ctx(t.error());
  ticker.Phase("sync", 0, 0);
  if (auto s = sys::Fsync(*fd); !s) return ctx(s.error());
  sys::DropCache(*fd);  // the read-back must come from the device, not from what was just written

  ticker.Phase("verify", size, blocks.size());
  auto v = internal::ParallelFor(blocks.size(), threads, ticker, [&](size_t i, unsigned) -> ExpectedVoid {
    std::string buf(blocks[i].size, '\0');
    auto n = sys::PReadFull(*fd, buf.data(), buf.size(), offsets[i]);
    if (!n) return Fail(n.error());
    if (*n != buf.size() || Digest::Of(buf) != blocks[i].sha256)
      return Fail(Errc::kIo, "read back differs from the image at " + Range(offsets[i], blocks[i].size));
    ticker.Add(buf.size(), 1);
    return {};
  });
  if (!v) return ctx(v.error());
  gatherer.Fill(report);
  report.written_bytes = written.load();
  report.verified_bytes = size;
  if (counting) report.fetched_bytes = counting->bytes.load();
  ticker.Tick(true);
  return report;
}

}  // namespace parc::imaging
