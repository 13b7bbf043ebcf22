// PackChunkStore: chunks appended to pack files, located through a small
// index file next to each pack (chunk_store.h, docs/images.md).
//
//   <dir>/packs/00000001.pack   the stored bytes of each object, back to back
//   <dir>/packs/00000001.idx    one 56-byte entry per put or removal, in order
//
// An index entry: "PRCK", kind (1 object, 2 removed), 3 zero bytes, stored
// length (u32 LE), the object's digest (32 bytes), offset in the pack (u64 LE),
// then the first 4 bytes of the SHA-256 of the 52 bytes before. Open reads the
// index files only (sequential, small), never the packs. A pack is written
// before its entry, so a crash loses at most the last entries (their bytes are
// wasted, not wrong); an entry whose bytes did not reach the disk reads back as
// bytes that fail the caller's check, and the caller removes them.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

#include "parc/common/hash.h"
#include "parc/imaging/chunk_store.h"
#include "sys.h"

namespace parc::imaging {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[4] = {'P', 'R', 'C', 'K'};
constexpr size_t kEntry = 56;
constexpr size_t kChecked = 52;  // bytes covered by the entry's check
enum : uint8_t { kObject = 1, kRemoved = 2 };

struct Entry {
  uint8_t kind = kObject;
  uint32_t length = 0;
  Digest object;
  uint64_t offset = 0;
};

template <typename T>
void PutLe(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>(v >> (8 * i));
}
template <typename T>
T GetLe(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::array<char, kEntry> Encode(const Entry& e) {
  std::array<char, kEntry> b{};
  std::memcpy(b.data(), kMagic, 4);
  b[4] = static_cast<char>(e.kind);
  PutLe<uint32_t>(&b[8], e.length);
  std::memcpy(&b[12], e.object.bytes.data(), 32);
  PutLe<uint64_t>(&b[44], e.offset);
  std::string check = Sha256(std::string_view(b.data(), kChecked));
  std::memcpy(&b[kChecked], check.data(), 4);
  return b;
}

std::optional<Entry> Decode(const char* b) {
  if (std::memcmp(b, kMagic, 4) != 0 || b[5] || b[6] || b[7]) return std::nullopt;
  std::string check = Sha256(std::string_view(b, kChecked));
  if (std::memcmp(&b[kChecked], check.data(), 4) != 0) return std::nullopt;
  Entry e;
  e.kind = static_cast<uint8_t>(b[4]);
  e.length = GetLe<uint32_t>(&b[8]);
  std::memcpy(e.object.bytes.data(), &b[12], 32);
  e.offset = GetLe<uint64_t>(&b[44]);
  if (e.kind != kObject && e.kind != kRemoved) return std::nullopt;
  if (e.kind == kObject && e.length > MaxStoredSize(16u << 20)) return std::nullopt;
  return e;
}

std::string PackName(uint32_t seq, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08u.%s", seq, ext);
  return buf;
}

// "00000042.pack" -> 42.
std::optional<uint32_t> PackSeq(std::string_view name) {
  if (name.size() != 13 || !name.ends_with(".pack")) return std::nullopt;
  uint32_t seq = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 8, seq);
  if (ec != std::errc() || p != name.data() + 8 || seq == 0) return std::nullopt;
  return seq;
}

struct Location {
  uint32_t slot = 0;  // into State::readers
  uint32_t length = 0;
  uint64_t offset = 0;
};

}  // namespace

struct PackChunkStore::State {
  fs::path dir;  // <store>/packs
  sys::Fd dir_fd;
  Options options;

  mutable std::shared_mutex mu;  // index and readers
  std::unordered_map<Digest, Location, DigestHash> index;
  std::deque<sys::Fd> readers;  // one per pack, by slot; a deque keeps references stable
  std::vector<uint32_t> seqs;   // each slot's pack number
  // Slots whose pack Prune deleted. Their descriptors stay open: a reader
  // that found an object there just before still reads the unlinked file.
  std::vector<bool> deleted;

  std::mutex append_mu;  // everything below
  struct Writer {
    sys::Fd pack, idx;  // the pack's descriptor holds the lock
    uint32_t slot = 0;
    uint64_t pack_end = 0, idx_end = 0;
  };
  std::optional<Writer> writer;
  std::vector<Writer> filled;  // packs this instance filled since the last Sync
  uint32_t next_seq = 1;
  bool dir_changed = false;

  // Reads one index file into the index; returns the length of its valid
  // entries (a torn last entry ends it). Entries pointing past the pack's end
  // are skipped (their bytes never reached the disk).
  Expected<uint64_t> Load(const fs::path& idx_path, uint32_t slot, uint64_t pack_size) {
    auto fd = sys::OpenRead(idx_path);
    if (!fd) {
      if (fd.error().Is(Errc::kNotFound)) return uint64_t{0};
      return Fail(fd.error());
    }
    std::string buf(kEntry * 4096, '\0');
    uint64_t valid = 0;
    for (;;) {
      auto n = sys::ReadFull(*fd, buf.data(), buf.size());
      if (!n) return Fail(n.error().WithContext("reading " + idx_path.string()));
      size_t whole = *n - *n % kEntry;
      for (size_t at = 0; at < whole; at += kEntry) {
        auto e = Decode(buf.data() + at);
        if (!e) return valid;
        valid += kEntry;
        if (e->kind == kRemoved) {
          index.erase(e->object);
        } else if (e->offset + e->length <= pack_size) {
          index[e->object] = Location{slot, e->length, e->offset};
        }
      }
      if (*n < buf.size()) return valid;
    }
  }

  // A new pack with the next free number, locked, as the writer.
  ExpectedVoid StartPack() {
    for (int attempt = 0; attempt < 1000; ++attempt) {
      uint32_t seq = next_seq++;
      auto pack = sys::CreateFileAt(dir_fd, PackName(seq, "pack"));
      if (!pack) {
        if (pack.error().Is(Errc::kAlreadyExists)) continue;
        return Fail(pack.error().WithContext("chunk cache " + dir.string()));
      }
      // Another opener may have adopted the empty file in the instant before
      // the lock: it is theirs then, take the next number.
      auto locked = sys::TryLock(*pack);
      if (!locked) return Fail(locked.error());
      if (!*locked) continue;
      auto idx = sys::OpenWrite(dir / PackName(seq, "idx"), true);
      if (!idx) return Fail(idx.error());
      auto reader = sys::OpenRead(dir / PackName(seq, "pack"));
      if (!reader) return Fail(reader.error());
      uint32_t slot;
      {
        std::unique_lock lock(mu);
        readers.push_back(std::move(*reader));
        seqs.push_back(seq);
        deleted.push_back(false);
        slot = static_cast<uint32_t>(readers.size() - 1);
      }
      SetWriter(std::move(*pack), std::move(*idx), slot, 0, 0);
      dir_changed = true;
      return {};
    }
    return Fail(Errc::kInternal, "cannot create a new pack in " + dir.string());
  }

  // Makes an open, locked pack the one appended to, from these ends on.
  void SetWriter(sys::Fd pack, sys::Fd idx, uint32_t slot, uint64_t pack_end, uint64_t idx_end) {
    if (writer) filled.push_back(std::move(*writer));
    writer.emplace();
    writer->pack = std::move(pack);
    writer->idx = std::move(idx);
    writer->slot = slot;
    writer->pack_end = pack_end;
    writer->idx_end = idx_end;
  }

  ExpectedVoid AppendEntry(const Entry& e) {
    auto b = Encode(e);
    if (auto w = sys::PWriteAll(writer->idx, std::string_view(b.data(), b.size()), writer->idx_end); !w) return w;
    writer->idx_end += kEntry;
    return {};
  }

  // Appends an object to the writer (a new pack when it is full) and indexes
  // it. Called with append_mu held.
  ExpectedVoid Append(const Digest& object, std::string_view stored) {
    if (!writer || (writer->pack_end > 0 && writer->pack_end + stored.size() > options.max_pack_bytes))
      if (auto r = StartPack(); !r) return r;
    // A failed write leaves pack_end where it was: the next append overwrites it.
    if (auto r = sys::PWriteAll(writer->pack, stored, writer->pack_end); !r) return r;
    Entry e{kObject, static_cast<uint32_t>(stored.size()), object, writer->pack_end};
    if (auto r = AppendEntry(e); !r) return r;
    writer->pack_end += stored.size();
    std::unique_lock lock(mu);
    index[object] = Location{writer->slot, e.length, e.offset};
    return {};
  }

  // Writes back what this instance appended. Called with append_mu held.
  ExpectedVoid SyncLocked() {
    auto sync = [](const Writer& w) -> ExpectedVoid {
      if (auto r = sys::Fdatasync(w.pack); !r) return r;
      return sys::Fdatasync(w.idx);
    };
    for (const auto& w : filled)
      if (auto r = sync(w); !r) return r;
    filled.clear();
    if (writer)
      if (auto r = sync(*writer); !r) return r;
    if (dir_changed) {
      if (auto r = sys::Fsync(dir_fd); !r) return r;
      dir_changed = false;
    }
    return {};
  }

  bool Writes(uint32_t slot) const {
    if (writer && writer->slot == slot) return true;
    for (const auto& w : filled)
      if (w.slot == slot) return true;
    return false;
  }
};

PackChunkStore::PackChunkStore(std::unique_ptr<State> state) : s_(std::move(state)) {}
PackChunkStore::~PackChunkStore() = default;

Expected<std::unique_ptr<PackChunkStore>> PackChunkStore::Open(const fs::path& dir, Options options) {
  auto s = std::make_unique<State>();
  s->dir = dir / "packs";
  s->options = options;
  for (const auto& d : {dir, s->dir})
    if (auto r = sys::MakeDirectory(d, 0750); !r) return Fail(r.error());
  auto dir_fd = sys::OpenDirectory(s->dir);
  if (!dir_fd) return Fail(dir_fd.error());
  s->dir_fd = std::move(*dir_fd);
  auto names = sys::ListDirectory(s->dir_fd);
  if (!names) return Fail(names.error());
  std::vector<uint32_t> seqs;
  for (const auto& n : *names)
    if (auto seq = PackSeq(n)) seqs.push_back(*seq);
  std::sort(seqs.begin(), seqs.end());
  if (!seqs.empty()) s->next_seq = seqs.back() + 1;

  // The last pack is appended to when it has room and no other instance
  // writes it; locking it before reading its index keeps that index still.
  std::optional<sys::Fd> adopted;
  if (!seqs.empty()) {
    auto fd = sys::OpenWrite(s->dir / PackName(seqs.back(), "pack"), false);
    if (fd) {
      auto locked = sys::TryLock(*fd);
      auto size = sys::SizeOf(*fd);
      if (locked && *locked && size && *size < options.max_pack_bytes) adopted = std::move(*fd);
    }
  }
  for (uint32_t seq : seqs) {
    auto reader = sys::OpenRead(s->dir / PackName(seq, "pack"));
    if (!reader && reader.error().Is(Errc::kNotFound)) continue;  // deleted meanwhile by another instance's Prune
    if (!reader) return Fail(reader.error());
    auto size = sys::SizeOf(*reader);
    if (!size) return Fail(size.error());
    auto slot = static_cast<uint32_t>(s->readers.size());
    auto valid = s->Load(s->dir / PackName(seq, "idx"), slot, *size);
    if (!valid) return Fail(valid.error());
    s->readers.push_back(std::move(*reader));
    s->seqs.push_back(seq);
    s->deleted.push_back(false);
    if (adopted && seq == seqs.back()) {
      // Appends go after everything in the pack (bytes of lost entries are
      // skipped) and after the last whole entry of its index.
      auto idx = sys::OpenWrite(s->dir / PackName(seq, "idx"), true);
      if (!idx) return Fail(idx.error());
      if (auto t = sys::Truncate(*idx, *valid); !t) return Fail(t.error());
      s->SetWriter(std::move(*adopted), std::move(*idx), slot, *size, *valid);
    }
  }
  return std::unique_ptr<PackChunkStore>(new PackChunkStore(std::move(s)));
}

bool PackChunkStore::Has(const Digest& object) const {
  std::shared_lock lock(s_->mu);
  return s_->index.contains(object);
}

Expected<std::string> PackChunkStore::Get(const Digest& object) const {
  Location loc;
  const sys::Fd* fd = nullptr;
  {
    std::shared_lock lock(s_->mu);
    auto it = s_->index.find(object);
    if (it == s_->index.end()) return Fail(Errc::kNotFound, "chunk " + object.Short() + " is not in the store");
    loc = it->second;
    fd = &s_->readers[loc.slot];
  }
  std::string data;
  Expected<size_t> n = size_t{0};
  // Exactly loc.length: libstdc++ 12 passes the capacity, which may be more.
  data.resize_and_overwrite(loc.length, [&](char* p, size_t) {
    n = sys::PReadFull(*fd, p, loc.length, loc.offset);
    return n ? *n : 0;
  });
  if (!n) return Fail(n.error().WithContext("reading chunk " + object.Short() + " from the cache"));
  // Short only when the pack lost its tail: the caller's check refuses it.
  return data;
}

ExpectedVoid PackChunkStore::PutChecked(const Digest& object, std::string_view stored) {
  if (Has(object)) return {};
  if (stored.size() > MaxStoredSize(16u << 20))
    return Fail(Errc::kInvalidArgument, "chunk " + object.Short() + " is too large for the cache");
  std::lock_guard append(s_->append_mu);
  if (Has(object)) return {};  // put by another thread meanwhile
  return s_->Append(object, stored);
}

ExpectedVoid PackChunkStore::Remove(const Digest& object) {
  std::lock_guard append(s_->append_mu);
  if (!Has(object)) return {};
  {
    std::unique_lock lock(s_->mu);
    s_->index.erase(object);
  }
  // Gone for this instance whatever happens below; the removal entry makes it
  // gone for the next one too.
  if (!s_->writer)
    if (auto r = s_->StartPack(); !r) return r;
  return s_->AppendEntry(Entry{kRemoved, 0, object, 0});
}

ExpectedVoid PackChunkStore::Sync() {
  std::lock_guard append(s_->append_mu);
  return s_->SyncLocked();
}

size_t PackChunkStore::ObjectCount() const {
  std::shared_lock lock(s_->mu);
  return s_->index.size();
}

size_t PackChunkStore::PackCount() const {
  std::shared_lock lock(s_->mu);
  return static_cast<size_t>(std::count(s_->deleted.begin(), s_->deleted.end(), false));
}

Expected<PackChunkStore::PruneReport> PackChunkStore::Prune(const std::function<bool(const Digest&)>& keep,
                                                            const std::function<void(std::string_view)>& step) {
  auto reached = [&](std::string_view what) {
    if (step) step(what);
  };
  std::lock_guard append(s_->append_mu);
  State& s = *s_;
  PruneReport report;
  struct Use {
    std::vector<std::pair<Digest, Location>> kept;
    std::vector<Digest> dropped;
    uint64_t kept_bytes = 0;
  };
  std::vector<Use> use(s.readers.size());
  {
    std::shared_lock lock(s.mu);
    for (const auto& [object, loc] : s.index) {
      Use& u = use[loc.slot];
      if (keep(object)) {
        u.kept.emplace_back(object, loc);
        u.kept_bytes += loc.length;
        ++report.kept;
        report.kept_bytes += loc.length;
      } else {
        u.dropped.push_back(object);
        ++report.dropped;
        report.dropped_bytes += loc.length;
      }
    }
  }
  auto forget = [&](const std::vector<Digest>& objects) {
    std::unique_lock lock(s.mu);
    for (const auto& o : objects) s.index.erase(o);
  };
  struct Doomed {
    uint32_t slot;
    sys::Fd lock;  // held until the pack is deleted: no other instance adopts it meanwhile
  };
  std::vector<Doomed> doomed;
  for (uint32_t slot = 0; slot < use.size(); ++slot) {
    if (s.deleted[slot]) continue;
    Use& u = use[slot];
    auto size = sys::SizeOf(s.readers[slot]);
    if (!size) return Fail(size.error());
    bool empty = u.kept.empty(), sparse = u.kept_bytes * 2 < *size;
    if ((empty || sparse) && !s.Writes(slot)) {
      auto fd = sys::OpenRead(s.dir / PackName(s.seqs[slot], "pack"));
      if (!fd) return Fail(fd.error());
      auto locked = sys::TryLock(*fd);
      if (!locked) return Fail(locked.error());
      if (*locked) {
        for (const auto& [object, loc] : u.kept) {  // moved to the writer
          std::string data(loc.length, '\0');
          auto n = sys::PReadFull(s.readers[slot], data.data(), data.size(), loc.offset);
          if (!n) return Fail(n.error().WithContext("chunk cache " + s.dir.string()));
          if (*n != data.size()) continue;  // a lost tail: its readers would refuse it anyway
          if (auto a = s.Append(object, data); !a) return Fail(a.error());
          ++report.copied;
          report.copied_bytes += data.size();
        }
        forget(u.dropped);
        doomed.push_back({slot, std::move(*fd)});
        continue;
      }
    }
    // Kept as it is: its dropped objects are marked removed.
    if (!u.dropped.empty() && !s.writer)
      if (auto r = s.StartPack(); !r) return Fail(r.error());
    for (const auto& o : u.dropped)
      if (auto r = s.AppendEntry(Entry{kRemoved, 0, o, 0}); !r) return Fail(r.error());
    forget(u.dropped);
  }
  reached("moved");
  // The copies and removal entries reach the disk before any original goes.
  if (auto r = s.SyncLocked(); !r) return Fail(r.error());
  reached("synced");
  for (auto& d : doomed) {
    fs::path pack = s.dir / PackName(s.seqs[d.slot], "pack"), idx = s.dir / PackName(s.seqs[d.slot], "idx");
    std::error_code ec;
    uint64_t bytes = fs::file_size(pack, ec);
    if (ec) bytes = 0;
    uint64_t idx_bytes = fs::file_size(idx, ec);
    if (!ec) bytes += idx_bytes;
    if (auto r = sys::RemoveFile(idx); !r) return Fail(r.error());  // the index first: a pack without one is only wasted space
    reached("index-deleted");
    if (auto r = sys::RemoveFile(pack); !r) return Fail(r.error());
    {
      std::unique_lock lock(s.mu);
      s.deleted[d.slot] = true;
    }
    ++report.packs_deleted;
    report.freed_bytes += bytes;
  }
  if (!doomed.empty())
    if (auto r = sys::Fsync(s.dir_fd); !r) return Fail(r.error());
  return report;
}

}  // namespace parc::imaging
