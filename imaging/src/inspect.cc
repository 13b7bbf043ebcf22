#include "parc/imaging/inspect.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "sys.h"
#include "walk.h"
#include "work.h"

namespace parc::imaging {

namespace fs = std::filesystem;
using internal::Ticker;

namespace {

std::string Oct(uint32_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", m);
  return buf;
}
std::string Range(uint64_t off, uint64_t len) {
  return "bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1);
}
std::string Time(int64_t s, uint32_t ns) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%lld.%09u", static_cast<long long>(s), ns);
  return buf;
}

// Metadata differences between an expected and an actual entry (content aside).
void CompareMeta(const Entry& want, const Entry& got, bool check_mtime, std::vector<Difference>& out) {
  const std::string& p = want.path;
  if (want.type != got.type) {
    out.push_back({p, "type", std::string(EntryTypeName(want.type)) + " expected, " + std::string(EntryTypeName(got.type)) + " found"});
    return;
  }
  if (want.type == EntryType::kHardlink) {
    if (want.target != got.target) out.push_back({p, "target", "hard link to " + want.target + " expected, to " + got.target + " found"});
    return;
  }
  if (want.type != EntryType::kSymlink && want.mode != got.mode)
    out.push_back({p, "mode", Oct(want.mode) + " expected, " + Oct(got.mode) + " found"});
  if (want.uid != got.uid || want.gid != got.gid)
    out.push_back({p, "owner", std::to_string(want.uid) + ":" + std::to_string(want.gid) + " expected, " + std::to_string(got.uid) +
                                   ":" + std::to_string(got.gid) + " found"});
  if (check_mtime && (want.mtime != got.mtime || want.mtime_nsec != got.mtime_nsec))
    out.push_back({p, "mtime", Time(want.mtime, want.mtime_nsec) + " expected, " + Time(got.mtime, got.mtime_nsec) + " found"});
  if (want.xattrs != got.xattrs) {
    std::string d;
    for (const auto& [k, v] : want.xattrs)
      if (!got.xattrs.contains(k)) d += " -" + k;
      else if (got.xattrs.at(k) != v) d += " ~" + k;
    for (const auto& [k, v] : got.xattrs)
      if (!want.xattrs.contains(k)) d += " +" + k;
    out.push_back({p, "xattrs", "differ:" + d});
  }
  if (want.type == EntryType::kSymlink && want.target != got.target)
    out.push_back({p, "target", "-> " + want.target + " expected, -> " + got.target + " found"});
  if ((want.type == EntryType::kCharDevice || want.type == EntryType::kBlockDevice) &&
      (want.major != got.major || want.minor != got.minor))
    out.push_back({p, "device", std::to_string(want.major) + "," + std::to_string(want.minor) + " expected, " +
                                    std::to_string(got.major) + "," + std::to_string(got.minor) + " found"});
  if (want.type == EntryType::kFile && want.size != got.size)
    out.push_back({p, "size", std::to_string(want.size) + " bytes expected, " + std::to_string(got.size) + " found"});
}

// First chunk of a file that differs, hashed at the image's boundaries.
Expected<std::optional<Difference>> CompareContent(const sys::Fd& root, const Entry& e, uint64_t& checked) {
  std::string rel = e.path.substr(1);
  auto fd = sys::OpenBeneath(root, rel, false);
  if (!fd) return Fail(fd.error().WithContext(e.path));
  uint64_t off = 0;
  std::string buf;
  if (!e.data.empty()) {
    buf.resize(e.data.size());
    auto n = sys::PReadFull(*fd, buf.data(), buf.size(), 0);
    if (!n) return Fail(n.error().WithContext(e.path));
    checked += *n;
    if (*n != e.data.size() || buf != e.data) return std::optional<Difference>(Difference{e.path, "content", Range(0, e.data.size())});
  }
  for (const auto& c : e.chunks) {
    buf.resize(c.size);
    auto n = sys::PReadFull(*fd, buf.data(), c.size, off);
    if (!n) return Fail(n.error().WithContext(e.path));
    checked += *n;
    if (*n != c.size || Digest::Of(buf) != c.sha256) return std::optional<Difference>(Difference{e.path, "content", Range(off, c.size)});
    off += c.size;
  }
  return std::optional<Difference>();
}

bool PathOrder(const Difference& a, const Difference& b) {
  if (a.path != b.path) return PathLess(a.path, b.path);
  return a.what < b.what;
}

}  // namespace

Expected<VerifyReport> VerifyTree(const Image& image, const fs::path& target, const VerifyOptions& o) {
  if (image.manifest.kind != ImageKind::kTree) return Fail(Errc::kInvalidArgument, "not a tree image");
  Ticker ticker(o.progress);
  auto root = sys::OpenDirectory(target);
  if (!root) return Fail(root.error().WithContext("verify"));
  ticker.Phase("scan", 0, 0);
  internal::WalkOptions wo;
  auto walked = internal::WalkTree(*root, wo, ticker);
  if (!walked) return Fail(walked.error().WithContext("verify of " + target.string()));
  std::unordered_map<std::string, size_t> found;
  for (size_t i = 0; i < walked->entries.size(); ++i) found.emplace(walked->entries[i].path, i);

  VerifyReport report;
  std::vector<const Entry*> content;
  std::unordered_set<std::string> expected;
  for (const auto& want : image.entries) {
    expected.insert(want.path);
    ++report.checked_entries;
    auto it = found.find(want.path);
    if (it == found.end()) {
      report.differences.push_back({want.path, "missing", std::string(EntryTypeName(want.type)) + " expected"});
      continue;
    }
    const Entry& got = walked->entries[it->second];
    size_t before = report.differences.size();
    CompareMeta(want, got, o.check_mtime, report.differences);
    bool type_or_size = false;
    for (size_t k = before; k < report.differences.size(); ++k)
      type_or_size |= report.differences[k].what == "type" || report.differences[k].what == "size";
    if (want.type == EntryType::kFile && !type_or_size) content.push_back(&want);
    if (type_or_size && want.type == EntryType::kFile) report.differing_bytes += want.size;
  }
  if (o.report_extra)
    for (const auto& got : walked->entries)
      if (!expected.contains(got.path)) report.differences.push_back({got.path, "extra", std::string(EntryTypeName(got.type)) + " found"});

  uint64_t total = 0;
  for (const Entry* e : content) total += e->size;
  ticker.Phase("verify", total, content.size());
  std::mutex mu;
  auto r = internal::ParallelFor(content.size(), internal::ThreadCount(o.threads), ticker, [&](size_t k, unsigned) -> ExpectedVoid {
    uint64_t checked = 0;
    auto d = CompareContent(*root, *content[k], checked);
    if (!d) return Fail(d.error());
    ticker.Add(checked, 1);
    std::lock_guard lock(mu);
    report.checked_bytes += checked;
    if (*d) {
      report.differences.push_back(**d);
      report.differing_bytes += content[k]->size;
    }
    return {};
  });
  if (!r) return Fail(r.error());
  std::sort(report.differences.begin(), report.differences.end(), PathOrder);
  return report;
}

Expected<VerifyReport> VerifyBlock(const Image& image, const fs::path& target, const VerifyOptions& o) {
  if (image.manifest.kind != ImageKind::kBlock) return Fail(Errc::kInvalidArgument, "not a block image");
  Ticker ticker(o.progress);
  auto fd = sys::OpenRead(target);
  if (!fd) return Fail(fd.error().WithContext("verify"));
  auto st = sys::FStat(*fd);
  if (!st) return Fail(st.error());
  auto size = sys::SizeOf(*fd);
  if (!size) return Fail(size.error());
  VerifyReport report;
  const uint64_t want = image.manifest.size;
  if ((st->type == sys::Type::kFile && *size != want) || *size < want)
    report.differences.push_back({target.string(), "size", std::to_string(want) + " bytes expected, " + std::to_string(*size) + " found"});
  std::vector<uint64_t> offsets(image.blocks.size() + 1, 0);
  for (size_t i = 0; i < image.blocks.size(); ++i) offsets[i + 1] = offsets[i] + image.blocks[i].size;
  ticker.Phase("verify", want, image.blocks.size());
  std::vector<uint8_t> differs(image.blocks.size(), 0);
  std::atomic<uint64_t> checked{0};
  auto r = internal::ParallelFor(image.blocks.size(), internal::ThreadCount(o.threads), ticker, [&](size_t i, unsigned) -> ExpectedVoid {
    const ChunkRef& c = image.blocks[i];
    std::string buf(c.size, '\0');
    auto n = sys::PReadFull(*fd, buf.data(), c.size, offsets[i]);
    if (!n) return Fail(n.error());
    ticker.Add(*n, 1);
    checked += *n;
    differs[i] = !(*n == c.size && Digest::Of(buf) == c.sha256);
    return {};
  });
  if (!r) return Fail(r.error());
  report.checked_bytes = checked.load();
  report.checked_entries = image.blocks.size();
  for (size_t i = 0; i < image.blocks.size(); ++i)
    if (differs[i]) {
      report.differences.push_back({target.string(), "content", Range(offsets[i], image.blocks[i].size)});
      report.differing_bytes += image.blocks[i].size;
    }
  return report;
}

ImageDiff DiffImages(const Image& from, const Image& to) {
  ImageDiff d;
  std::unordered_set<Digest, DigestHash> have_objects, have_plain;
  auto add_have = [&](const ChunkRef& c) {
    have_objects.insert(c.object);
    have_plain.insert(c.sha256);
  };
  for (const auto& c : from.UniqueChunks()) add_have(c);
  for (const auto& c : from.manifest.body_chunks) add_have(c);
  std::unordered_set<Digest, DigestHash> counted;
  auto count = [&](const ChunkRef& c) {
    if (!counted.insert(c.object).second) return;
    ++d.chunks_total;
    d.bytes_total += c.stored_size;
    if (!have_objects.contains(c.object) && !have_plain.contains(c.sha256)) {
      ++d.chunks_to_transfer;
      d.bytes_to_transfer += c.stored_size;
    }
  };
  for (const auto& c : to.UniqueChunks()) count(c);
  for (const auto& c : to.manifest.body_chunks) count(c);

  if (from.manifest.kind == ImageKind::kBlock || to.manifest.kind == ImageKind::kBlock) {
    std::vector<uint64_t> a_off(1, 0);
    for (const auto& c : from.blocks) a_off.push_back(a_off.back() + c.size);
    std::unordered_map<uint64_t, size_t> at;
    for (size_t i = 0; i < from.blocks.size(); ++i) at.emplace(a_off[i], i);
    uint64_t off = 0;
    for (const auto& c : to.blocks) {
      auto it = at.find(off);
      if (it == at.end() || from.blocks[it->second].sha256 != c.sha256 || from.blocks[it->second].size != c.size) {
        ++d.changed_blocks;
        d.changed_bytes += c.size;
      }
      off += c.size;
    }
    return d;
  }
  size_t i = 0, k = 0;
  const auto& a = from.entries;
  const auto& b = to.entries;
  while (i < a.size() || k < b.size()) {
    if (k == b.size() || (i < a.size() && PathLess(a[i].path, b[k].path))) {
      d.removed.push_back(a[i].path);
      d.removed_bytes += a[i].size;
      ++i;
    } else if (i == a.size() || PathLess(b[k].path, a[i].path)) {
      d.added.push_back(b[k].path);
      d.added_bytes += b[k].size;
      ++k;
    } else {
      std::vector<Difference> diffs;
      bool content = a[i].type == EntryType::kFile && b[k].type == EntryType::kFile &&
                     (a[i].chunks != b[k].chunks || a[i].data != b[k].data);
      if (content && a[i].size == b[k].size) {
        bool same_plain = a[i].data == b[k].data && a[i].chunks.size() == b[k].chunks.size();
        for (size_t c = 0; c < a[i].chunks.size() && same_plain; ++c) same_plain = a[i].chunks[c].sha256 == b[k].chunks[c].sha256;
        content = !same_plain;
      }
      if (content) diffs.push_back({b[k].path, "content", ""});
      CompareMeta(a[i], b[k], true, diffs);
      if (!diffs.empty()) {
        std::string what;
        for (const auto& x : diffs) {
          if (what.find(x.what) != std::string::npos) continue;
          what += (what.empty() ? "" : ",") + x.what;
        }
        d.changed.push_back({b[k].path, what, ""});
        if (content || (b[k].type == EntryType::kFile && a[i].type != EntryType::kFile)) d.changed_bytes += b[k].size;
      }
      ++i;
      ++k;
    }
  }
  return d;
}

}  // namespace parc::imaging
