#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

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


// Blocks of zeros: recognised by digest without decoding a chunk (the
// largest chunk size, what runs of zeros are cut into), written from one
// buffer, and read back with a comparison instead of a digest.
class ZeroDigests {
 public:
  explicit ZeroDigests(uint32_t max_size)
      : zeros_(std::max<uint32_t>(max_size, 1), '\0'), max_(Digest::Of(zeros_)), max_size_(max_size) {}
  bool IsZero(const ChunkRef& ref) const { return ref.size == max_size_ && ref.sha256 == max_; }
  ExpectedVoid Write(const sys::Fd& fd, uint64_t offset, uint32_t size) const {
    for (uint32_t done = 0; done < size;) {
      uint32_t n = std::min<uint32_t>(size - done, static_cast<uint32_t>(zeros_.size()));
      if (auto r = sys::PWriteAll(fd, std::string_view(zeros_.data(), n), offset + done); !r) return r;
      done += n;
    }
    return {};
  }
  // Are these the bytes of ref? Zeros are compared with the digest of as
  // many zeros, computed once per size.
  bool Matches(std::string_view data, const ChunkRef& ref) {
    if (data.size() != ref.size) return false;
    if (!internal::AllZero(data)) return Digest::Of(data) == ref.sha256;
    if (IsZero(ref)) return true;
    std::lock_guard lock(mu_);
    auto [it, added] = by_size_.try_emplace(ref.size);
    if (added) it->second = Digest::Of(data);
    return it->second == ref.sha256;
  }

 private:
  std::string zeros_;
  Digest max_;
  uint32_t max_size_;
  std::mutex mu_;
  std::unordered_map<uint32_t, Digest> by_size_;
};

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
  // A new file is written under a temporary name next to it and renamed once
  // written, read back and synced: a refused deployment leaves no file behind.
  std::optional<sys::Fd> fd;
  Expected<uint64_t> current = uint64_t{0};
  if (existed) {
    auto opened = sys::OpenWrite(target, false);
    if (!opened) return ctx(opened.error());
    fd = std::move(*opened);
    current = sys::SizeOf(*fd);
    if (!current) return ctx(current.error());
  }
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
  // An existing target is rewritten only once everything is fetched and
  // verified: it has no staging copy, so writing while fetching would leave
  // it half rewritten when a later chunk turns out tampered or the server is
  // gone. A new file is written while the chunks arrive, as a tree is: it has
  // a name of its own until the end.
  fs::path temp;
  if (!existed) {
    std::error_code aec;
    fs::path abs = fs::absolute(target, aec);
    temp = abs.parent_path() / ("." + abs.filename().string() + std::string(internal::kStagingSuffix));
    if (auto r = sys::RemoveFile(temp); !r) return ctx(r.error());  // left by a crash
    auto created = sys::OpenWrite(temp, true);
    if (!created) return ctx(created.error());
    fd = std::move(*created);
  }
  auto discard = [&](const Error& e) {
    if (!temp.empty()) (void)sys::RemoveFile(temp);
    return ctx(e);
  };
  const bool stream = !existed && gatherer.missing() > 0;
  if (!stream)
    if (auto f = gatherer.FetchMissing(); !f) return discard(f.error());

  std::vector<size_t> order;  // the blocks to write, in image order
  uint64_t todo_bytes = 0;
  for (size_t i = 0; i < blocks.size(); ++i)
    if (unchanged[i]) report.unchanged_bytes += blocks[i].size;
    else order.push_back(i), todo_bytes += blocks[i].size;
  internal::SeedRead read = [&](uint32_t source, uint64_t off, char* buf, size_t n) -> ExpectedVoid {
    const sys::Fd* from = source == kStash && stash ? &*stash : &*fd;
    auto got = sys::PReadFull(*from, buf, n, off);
    if (!got) return Fail(got.error());
    if (*got != n) return Fail(Errc::kIo, "short read");
    return {};
  };
  // A new file reads zeros where nothing is written: give it its size first,
  // so that every block can be read back while later ones are being written.
  if (!device && size > *current)
    if (auto t = sys::Truncate(*fd, size); !t) return discard(t.error());
  ZeroDigests zeros(image->manifest.chunking.max_size);

  std::atomic<uint64_t> written{0};
  // Writes every block that differs and reads every block back, reporting to wt.
  auto write_and_verify = [&](Ticker& wt) -> ExpectedVoid {
    // Written and read back window by window: once a window and the next one
    // are written (the next one may share its last page), a verifier thread
    // waits for the window's pages to reach the device, drops them from the
    // cache and reads them back, while the writers go on with later windows.
    // Unchanged blocks are read back too.
    struct Window {
      size_t first, end;  // blocks
      std::atomic<size_t> left{0};  // blocks still to write
    };
    std::vector<size_t> window_of(blocks.size());
    std::deque<Window> windows;
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (windows.empty() || offsets[i] - offsets[windows.back().first] >= std::max<uint64_t>(o.readback_window, 1)) {
        windows.emplace_back();
        windows.back().first = i;
      }
      windows.back().end = i + 1;
      window_of[i] = windows.size() - 1;
      if (!unchanged[i]) windows.back().left.fetch_add(1);
    }
    std::mutex mu;
    std::condition_variable cv;
    size_t verified_windows = 0;
    bool stop = false;
    std::optional<Error> verify_error;
    auto written_through = [&](size_t w) {  // windows [0, w] completely written
      for (size_t k = verified_windows; k <= w && k < windows.size(); ++k)
        if (windows[k].left.load() != 0) return false;
      return true;
    };
    auto verify_window = [&](const Window& win) -> ExpectedVoid {
      // Whole pages: the cache drops no partial page. Those at the ends belong
      // to neighbour windows, which are written already.
      const uint64_t page = sys::PageSize();
      uint64_t start = offsets[win.first] & ~(page - 1), end = (offsets[win.end] + page - 1) & ~(page - 1);
      if (auto r = sys::WriteBackAndDrop(*fd, start, end - start); !r) return Fail(r.error());
      std::string buf;
      for (size_t i = win.first; i < win.end; ++i) {
        buf.resize(blocks[i].size);
        auto n = sys::PReadFull(*fd, buf.data(), buf.size(), offsets[i]);
        if (!n) return Fail(n.error().WithContext("reading back " + Range(offsets[i], blocks[i].size)));
        if (*n != buf.size() || !zeros.Matches(buf, blocks[i]))
          return Fail(Errc::kIo, "read back differs from the image at " + Range(offsets[i], blocks[i].size));
        wt.Add(buf.size(), 1);
      }
      return {};
    };
    std::thread verifier([&] {
      for (size_t w = 0; w < windows.size(); ++w) {
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return stop || written_through(std::min(w + 1, windows.size() - 1)); });
          if (stop) return;
        }
        auto r = verify_window(windows[w]);
        std::lock_guard lock(mu);
        if (!r) {
          verify_error = r.error();
          stop = true;
          cv.notify_all();
          return;
        }
        ++verified_windows;
        cv.notify_all();
      }
    });
    auto stop_verifier = [&] {
      {
        std::lock_guard lock(mu);
        stop = true;
      }
      cv.notify_all();
      verifier.join();
    };

    auto w = internal::ParallelFor(order.size(), threads, wt, [&](size_t k, unsigned) -> ExpectedVoid {
      {
        std::lock_guard lock(mu);
        if (stop) return Fail(verify_error ? *verify_error : Ticker::Cancelled());
      }
      size_t i = order[k];
      const ChunkRef& ref = blocks[i];
      if (zeros.IsZero(ref)) {
        // Zeros need no chunk: a new file has them already, others get them written.
        if (!fresh) {
          if (auto r = zeros.Write(*fd, offsets[i], ref.size); !r) return Fail(r.error().WithContext(Range(offsets[i], ref.size)));
          written.fetch_add(ref.size);
        }
        wt.Add(ref.size, 1);
      } else {
        auto plain = gatherer.Plain(ref, read);
        if (!plain) return Fail(plain.error());
        wt.Add(plain->size(), 1);
        if (!fresh || !internal::AllZero(*plain)) {
          if (auto r = sys::PWriteAll(*fd, *plain, offsets[i]); !r) return Fail(r.error().WithContext(Range(offsets[i], plain->size())));
          written.fetch_add(plain->size());
        }
      }
      Window& win = windows[window_of[i]];
      if (win.left.fetch_sub(1) == 1) {
        sys::StartWriteback(*fd, offsets[win.first], offsets[win.end] - offsets[win.first]);
        std::lock_guard lock(mu);
        cv.notify_all();
      }
      return {};
    });
    if (!w) {
      stop_verifier();
      return Fail(verify_error ? *verify_error : w.error());
    }
    // The last windows are read back while this thread reports progress.
    while (true) {
      std::unique_lock lock(mu);
      if (stop || verified_windows == windows.size()) break;
      cv.wait_for(lock, std::chrono::milliseconds(100));
      lock.unlock();
      if (!wt.Tick()) break;
    }
    stop_verifier();
    if (verify_error) return Fail(*verify_error);
    if (verified_windows != windows.size()) return Fail(Ticker::Cancelled());
    return {};
  };
  if (stream) {
    std::vector<const ChunkRef*> uses;
    for (size_t i : order)
      if (!zeros.IsZero(blocks[i])) uses.push_back(&blocks[i]);
    if (auto w = internal::FetchWhileWriting(gatherer, uses, ticker, "write", todo_bytes + size,
                                             order.size() + blocks.size(), write_and_verify);
        !w)
      return discard(w.error());
  } else {
    ticker.Phase("write", todo_bytes + size, order.size() + blocks.size());
    if (auto w = write_and_verify(ticker); !w) return discard(w.error());
  }
  report.written_bytes = written.load();
  if (!device && *current > size)
    if (auto t = sys::Truncate(*fd, size); !t) return ctx(t.error());
  ticker.Phase("sync", 0, 0);
  if (auto s = sys::Fsync(*fd); !s) return discard(s.error());
  if (!temp.empty()) {
    if (auto r = sys::Rename(temp, target); !r) return discard(r.error());
    if (auto r = sys::FsyncPath(fs::absolute(target, ec).parent_path()); !r) return ctx(r.error());
  }
  gatherer.Fill(report);
  report.verified_bytes = size;
  if (counting) report.fetched_bytes = counting->bytes.load();
  ticker.Tick(true);
  return report;
}

}  // namespace parc::imaging
