#include "parc/imaging/capture.h"

#include <algorithm>
#include <cstring>

#include "parc/common/timeutil.h"
#include "pipeline.h"
#include "walk.h"
#include "sys.h"
#include "work.h"

namespace parc::imaging {

namespace fs = std::filesystem;
using internal::Pipeline;
using internal::ReuseMap;
using internal::Ticker;

namespace {

constexpr size_t kSegment = 8u << 20;
constexpr size_t kNone = static_cast<size_t>(-1);

std::shared_ptr<std::string> NewBuffer(const std::string& carry, size_t extra) {
  auto buf = std::make_shared<std::string>();
  const size_t n = carry.size() + extra;
  buf->resize_and_overwrite(n, [&](char* p, size_t) {  // libstdc++ 12 passes the capacity, not n
    std::memcpy(p, carry.data(), carry.size());
    return n;
  });
  return buf;
}

struct Span {
  size_t first = kNone, count = 0;
  uint64_t bytes = 0;
};

// Reads fd to its end, cutting chunks and queueing them. size_hint sizes the
// reads (a small file is one read); the bytes actually read count.
Expected<Span> ChunkStream(const sys::Fd& fd, uint64_t size_hint, const Chunker& chunker, Pipeline& pipeline) {
  Span span;
  std::string carry;
  bool eof = false;
  while (!eof) {
    uint64_t left = size_hint > span.bytes ? size_hint - span.bytes : 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(kSegment, left + 1));
    auto buf = NewBuffer(carry, want);
    auto n = sys::ReadFull(fd, buf->data() + carry.size(), want);
    if (!n) return Fail(n.error());
    eof = *n < want;
    buf->resize(carry.size() + *n);
    span.bytes += *n;
    std::vector<std::pair<size_t, size_t>> spans;
    const auto* p = reinterpret_cast<const uint8_t*>(buf->data());
    size_t pos = 0;
    while (pos < buf->size()) {
      size_t cut = chunker.Cut(p + pos, buf->size() - pos, eof);
      if (cut == 0) break;
      spans.emplace_back(pos, cut);
      pos += cut;
    }
    carry.assign(buf->data() + pos, buf->size() - pos);
    if (!spans.empty()) {
      auto slot = pipeline.Submit(buf, spans);
      if (!slot) return Fail(slot.error());
      if (span.first == kNone) span.first = *slot;
      span.count += spans.size();
    }
  }
  return span;
}

ReuseMap BuildReuse(const CaptureOptions& o) {
  ReuseMap m;
  for (const Image* img : o.reuse) {
    if (!img) continue;
    for (const auto& c : img->UniqueChunks()) m.emplace(c.sha256, c);
    for (const auto& c : img->manifest.body_chunks) m.emplace(c.sha256, c);
  }
  return m;
}

ExpectedVoid CheckOptions(const CaptureOptions& o) {
  if (auto v = ValidateNameVersion(o.name, o.version); !v) return v;
  if (o.inline_max > IndexLimits{}.max_inline_bytes)
    return Fail(Errc::kInvalidArgument, "files kept in the index can be at most " +
                                            std::to_string(IndexLimits{}.max_inline_bytes) + " bytes");
  return o.chunking.Validate();
}

// The body goes through the same pipeline (its chunks are content too); then
// the manifest totals.
Expected<CaptureResult> Complete(Image image, Pipeline& pipeline, ChunkStore& store, const CaptureOptions& o, Ticker& ticker,
                                 uint64_t read_bytes, std::vector<std::string> notes) {
  Manifest& m = image.manifest;
  m.name = o.name;
  m.version = o.version;
  m.created_at = o.now ? o.now : NowUnix();
  m.chunking = o.chunking;
  m.zstd_level = o.zstd_level;
  m.entries = m.kind == ImageKind::kTree ? image.entries.size() : image.blocks.size();
  auto unique = image.UniqueChunks();
  m.chunks = unique.size();
  m.stored_size = 0;
  for (const auto& c : unique) m.stored_size += c.stored_size;
  auto body = std::make_shared<std::string>(SerializeBody(image));
  m.body_size = body->size();
  m.body_sha256 = Digest::Of(*body);
  std::vector<std::pair<size_t, size_t>> spans;
  size_t pos = 0;
  for (uint32_t len : ChunkLengths(*body, o.chunking)) spans.emplace_back(pos, len), pos += len;
  auto first = pipeline.Submit(body, spans);
  if (!first) return Fail(first.error());
  if (auto f = pipeline.Finish(); !f) return Fail(f.error());
  for (size_t i = 0; i < spans.size(); ++i) m.body_chunks.push_back(pipeline.Ref(*first + i));
  ticker.Phase("sync", 0, 0);
  if (auto s = store.Sync(); !s) return Fail(s.error().WithContext("syncing the chunk store"));
  CaptureResult r;
  r.manifest_json = CanonicalManifest(m);
  r.image = std::move(image);
  r.read_bytes = read_bytes;
  r.chunks_compressed = pipeline.stats().compressed;
  r.chunks_reused = pipeline.stats().reused;
  r.objects_written = pipeline.stats().objects_written;
  r.bytes_written = pipeline.stats().bytes_written;
  r.notes = std::move(notes);
  ticker.Tick(true);
  return r;
}

}  // namespace

Expected<CaptureResult> CaptureTree(const fs::path& root, ChunkStore& store, const CaptureOptions& o) {
  if (auto v = CheckOptions(o); !v) return Fail(v.error());
  Ticker ticker(o.progress);
  auto root_fd = sys::OpenDirectory(root);
  if (!root_fd) return Fail(root_fd.error().WithContext("capture"));
  auto root_st = sys::FStat(*root_fd);
  if (!root_st) return Fail(root_st.error());
  internal::WalkOptions wo;
  wo.one_file_system = o.one_file_system;
  wo.exclude = o.exclude;
  wo.accounts_root = o.accounts_root.value_or(root);
  ticker.Phase("scan", 0, 0);
  auto walked = internal::WalkTree(*root_fd, wo, ticker);
  if (!walked) return Fail(walked.error().WithContext("capture of " + root.string()));
  internal::WalkResult& walker = *walked;

  Image image;
  image.manifest.kind = ImageKind::kTree;
  image.entries = std::move(walker.entries);
  std::vector<std::string> notes = std::move(walker.notes);
  ReuseMap reuse = BuildReuse(o);
  ticker.Phase("chunk", walker.total_bytes, walker.files.size());
  Pipeline pipeline(store, o.zstd_level, internal::ThreadCount(o.threads), reuse, ticker);
  Chunker chunker(o.chunking);
  std::vector<Span> spans(walker.files.size());
  uint64_t read = 0;
  for (size_t i = 0; i < walker.files.size(); ++i) {
    const internal::FileJob& job = walker.files[i];
    Entry& e = image.entries[job.entry];
    auto fd = sys::OpenBeneath(*root_fd, job.rel, false);
    if (!fd) return Fail(fd.error().WithContext("capture of " + e.path));
    auto st = sys::FStat(*fd);
    if (!st) return Fail(st.error().WithContext(e.path));
    if (st->ino != job.ino || st->type != sys::Type::kFile)
      return Fail(Errc::kFailedPrecondition, e.path + " was replaced while the tree was captured; capture again");
    if (st->size > 0 && st->size <= o.inline_max) {
      std::string data(o.inline_max + 1, '\0');
      auto n = sys::ReadFull(*fd, data.data(), data.size());
      if (!n) return Fail(n.error().WithContext("capture of " + e.path));
      if (*n <= o.inline_max) {  // 0 if it was emptied meanwhile: an empty file
        data.resize(*n);
        if (*n != e.size) notes.push_back(e.path + ": changed size while being read; its content as read is captured");
        e.size = *n;
        e.data = std::move(data);
        read += *n;
        ticker.Add(*n, 1);
        if (!ticker.Tick()) return Fail(Ticker::Cancelled());
        continue;
      }
      // It grew past the limit while being read: chunked from the start.
      fd = sys::OpenBeneath(*root_fd, job.rel, false);
      if (!fd) return Fail(fd.error().WithContext("capture of " + e.path));
    }
    auto span = ChunkStream(*fd, st->size, chunker, pipeline);
    if (!span) return Fail(span.error().WithContext("capture of " + e.path));
    if (span->bytes != e.size) notes.push_back(e.path + ": changed size while being read; its content as read is captured");
    e.size = span->bytes;
    read += span->bytes;
    spans[i] = *span;
    if (!ticker.Tick()) return Fail(Ticker::Cancelled());
  }
  if (auto f = pipeline.Finish(); !f) return Fail(f.error().WithContext("capture of " + root.string()));
  image.manifest.size = 0;
  for (size_t i = 0; i < walker.files.size(); ++i) {
    Entry& e = image.entries[walker.files[i].entry];
    e.chunks.clear();
    for (size_t k = 0; k < spans[i].count; ++k) e.chunks.push_back(pipeline.Ref(spans[i].first + k));
    image.manifest.size += e.size;
  }
  return Complete(std::move(image), pipeline, store, o, ticker, read, std::move(notes));
}

Expected<CaptureResult> CaptureBlock(const fs::path& source, ChunkStore& store, const CaptureOptions& o) {
  if (auto v = CheckOptions(o); !v) return Fail(v.error());
  Ticker ticker(o.progress);
  auto fd = sys::OpenRead(source);
  if (!fd) return Fail(fd.error().WithContext("capture"));
  auto size = sys::SizeOf(*fd);
  if (!size) return Fail(size.error().WithContext(source.string()));
  Image image;
  image.manifest.kind = ImageKind::kBlock;
  ReuseMap reuse = BuildReuse(o);
  ticker.Phase("chunk", *size, 0);
  Pipeline pipeline(store, o.zstd_level, internal::ThreadCount(o.threads), reuse, ticker);
  Chunker chunker(o.chunking);
  auto span = ChunkStream(*fd, *size, chunker, pipeline);
  if (!span) return Fail(span.error().WithContext("capture of " + source.string()));
  if (span->bytes != *size)
    return Fail(Errc::kFailedPrecondition, source.string() + " changed size while being read; capture again");
  if (auto f = pipeline.Finish(); !f) return Fail(f.error().WithContext("capture of " + source.string()));
  for (size_t k = 0; k < span->count; ++k) image.blocks.push_back(pipeline.Ref(span->first + k));
  image.manifest.size = span->bytes;
  return Complete(std::move(image), pipeline, store, o, ticker, span->bytes, {});
}

}  // namespace parc::imaging
