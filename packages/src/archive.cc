// Package files: pax tar + zstd written and read with libarchive.
//
// Extraction is a two-stage pipeline: this thread decompresses and checks
// every member's header against the manifest; writer threads create the
// files, write them straight from the decompression buffers (no copy: the
// buffers are refcounted blocks, refilled once every writer is done with
// them), hash them on the way and check each digest before closing. On two
// cores that overlaps zstd with SHA-256, write(2) and file creation.
#include "parc/packages/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "parc/common/files.h"
#include "parc/common/hash.h"

namespace parc::pkg {
namespace fs = std::filesystem;
namespace {

constexpr size_t kBlock = 1 << 20;
constexpr size_t kMaxManifestBytes = 16 << 20;
// Writer threads for extraction; PARC_EXTRACT_WRITERS overrides (benchmarks).
unsigned WriterThreads() {
  const char* env = std::getenv("PARC_EXTRACT_WRITERS");
  int n = env ? std::atoi(env) : 0;
  return n >= 1 && n <= 16 ? static_cast<unsigned>(n) : 3u;
}

struct ReadFree { void operator()(archive* a) const { archive_read_free(a); } };
struct WriteFree { void operator()(archive* a) const { archive_write_free(a); } };
struct EntryFree { void operator()(archive_entry* e) const { archive_entry_free(e); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); } };
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    Reset();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new()) { Reset(); }
  void Reset() { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  std::string HexDigest() {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    return HexEncode(std::string_view(reinterpret_cast<char*>(md), len));
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx_;
};

ExpectedVoid WriteAll(int fd, const char* data, size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(errno, "cannot write " + what));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

std::unexpected<Error> ArchiveFail(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return Fail(Errc::kIo, what + ": " + (msg ? msg : "unknown libarchive error"));
}
std::unexpected<Error> Corrupt(archive* a) {
  const char* msg = archive_error_string(a);
  return Fail(Errc::kParse, std::string("package file is truncated or corrupt: ") + (msg ? msg : "read error"));
}

// ---------------------------------------------------------------- reading

// A package is one zstd frame with a content checksum (zstd --check, the CLI's
// default): the checksum is what catches damage to bytes no tar reader uses.
ExpectedVoid CheckZstdHeader(const fs::path& package) {
  Fd f(::open(package.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.get() < 0) {
    if (errno == ENOENT) return Fail(Errc::kNotFound, "no package file " + package.string());
    return Fail(ErrnoError(errno, "cannot open " + package.string()));
  }
  unsigned char head[6] = {};
  ssize_t n = ::read(f.get(), head, sizeof head);
  if (n != 6 || head[0] != 0x28 || head[1] != 0xb5 || head[2] != 0x2f || head[3] != 0xfd)
    return Fail(Errc::kParse, package.string() + " is not a Parc package (not zstd-compressed)");
  if (!(head[4] & 0x04))
    return Fail(Errc::kParse, package.string() + " is not a Parc package: its zstd frame has no content checksum "
                                                 "(compress with zstd --check)");
  // Compressors always write a zero window mantissa; anything else is damage.
  bool single_segment = head[4] & 0x20;
  if (!single_segment && (head[5] & 0x07))
    return Fail(Errc::kParse, "package file is truncated or corrupt: bad zstd window descriptor");
  return {};
}

// The zstd layer is ours rather than libarchive's: the whole frame must be
// decompressed to its end (where zstd checks the content checksum) even though
// the tar reader stops at the end-of-archive marker, nothing may follow the
// frame, and the byte counts feed the decompression-bomb check.
// Decompressed bytes live in a few refcounted blocks. The tar reader returns
// member data as pointers into the current block; a writer thread that takes
// such bytes holds a reference until they are written, and a block is only
// refilled once nobody holds it (the reader drops its own reference when it
// asks for the next block: libarchive copies what it still needs of the old
// one, a header straddling two blocks, before it asks).
class BlockPool {
 public:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t len = 0;
    int refs = 0;  // guarded by the pool's mutex
    bool Holds(const void* p, size_t n) const {
      auto* c = static_cast<const char*>(p);
      return c >= data.get() && c + n <= data.get() + len;
    }
  };
  BlockPool(size_t count, size_t capacity) : blocks_(count), capacity_(capacity) {
    for (auto& b : blocks_) b.data.reset(new char[capacity]);
  }
  size_t capacity() const { return capacity_; }
  // A block nobody holds, with one reference for the caller (waits for one).
  Block* Acquire() {
    std::unique_lock lock(mu_);
    Block* free = nullptr;
    cv_.wait(lock, [&] {
      for (auto& b : blocks_)
        if (b.refs == 0) return (free = &b) != nullptr;
      return false;
    });
    free->refs = 1;
    free->len = 0;
    return free;
  }
  void Ref(Block* b) {
    std::lock_guard lock(mu_);
    ++b->refs;
  }
  void Unref(Block* b) {
    {
      std::lock_guard lock(mu_);
      if (--b->refs > 0) return;
    }
    cv_.notify_all();
  }

 private:
  std::vector<Block> blocks_;
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
};

struct DCtxFree { void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); } };
class ZstdSource {
 public:
  // Blocks: 1 for reading the head (manifest, signature); extraction passes more.
  explicit ZstdSource(Fd fd, size_t blocks = 1)
      : fd_(std::move(fd)), dctx_(ZSTD_createDCtx()), in_(kBlock), pool_(std::make_shared<BlockPool>(blocks, kBlock)) {}
  ~ZstdSource() {
    if (cur_) pool_->Unref(cur_);
  }
  ZstdSource(const ZstdSource&) = delete;
  ZstdSource& operator=(const ZstdSource&) = delete;

  static la_ssize_t Read(archive* a, void* self, const void** buf) {
    auto* s = static_cast<ZstdSource*>(self);
    auto r = s->Next();
    if (!r) {
      archive_set_error(a, EIO, "%s", r.error().message().c_str());
      return -1;
    }
    *buf = s->cur_->data.get();
    return static_cast<la_ssize_t>(*r);
  }
  // Decompresses what the tar reader did not ask for; the frame must end
  // cleanly (checksum verified) with nothing after it.
  ExpectedVoid Drain() {
    while (true) {
      auto r = Next();
      if (!r) return Fail(r.error());
      if (*r == 0) return {};
    }
  }
  // The block holding [p, p + n) with a reference for the caller, or nullptr
  // when libarchive returned bytes of its own buffer (copy them).
  BlockPool::Block* Hold(const void* p, size_t n) {
    if (!cur_ || !cur_->Holds(p, n)) return nullptr;
    pool_->Ref(cur_);
    return cur_;
  }
  const std::shared_ptr<BlockPool>& pool() const { return pool_; }
  uint64_t compressed() const { return compressed_; }
  uint64_t plain() const { return plain_; }

 private:
  Expected<size_t> Next() {
    if (cur_) pool_->Unref(cur_);  // libarchive is done with it
    cur_ = pool_->Acquire();
    while (true) {
      if (inb_.pos == inb_.size && !eof_) {
        ssize_t n;
        do n = ::read(fd_.get(), in_.data(), in_.size());
        while (n < 0 && errno == EINTR);
        if (n < 0) return Fail(ErrnoError(errno, "cannot read the package"));
        if (n == 0) eof_ = true;
        compressed_ += static_cast<uint64_t>(n);
        inb_ = {in_.data(), static_cast<size_t>(n), 0};
      }
      if (frame_done_) {
        if (inb_.pos < inb_.size) return Fail(Errc::kParse, "data after the end of the zstd frame");
        if (eof_) return size_t{0};
        continue;
      }
      if (eof_ && inb_.pos == inb_.size) return Fail(Errc::kParse, "the zstd stream ends in the middle of a frame");
      ZSTD_outBuffer o{cur_->data.get(), pool_->capacity(), 0};
      size_t ret = ZSTD_decompressStream(dctx_.get(), &o, &inb_);
      if (ZSTD_isError(ret)) return Fail(Errc::kParse, std::string("zstd: ") + ZSTD_getErrorName(ret));
      if (ret == 0) frame_done_ = true;
      plain_ += o.pos;
      cur_->len = o.pos;
      if (o.pos > 0) return o.pos;
    }
  }

  Fd fd_;
  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx_;
  std::vector<char> in_;
  std::shared_ptr<BlockPool> pool_;
  BlockPool::Block* cur_ = nullptr;  // the block libarchive reads from
  ZSTD_inBuffer inb_{nullptr, 0, 0};
  uint64_t compressed_ = 0, plain_ = 0;
  bool eof_ = false, frame_done_ = false;
};

struct PackageReader {
  std::unique_ptr<ZstdSource> source;
  ReadArchive a;
  archive* get() const { return a.get(); }
};

Expected<PackageReader> OpenRead(const fs::path& package, size_t blocks = 1) {
  if (auto h = CheckZstdHeader(package); !h) return Fail(h.error());
  Fd fd(::open(package.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Fail(ErrnoError(errno, "cannot open " + package.string()));
  PackageReader r;
  r.source = std::make_unique<ZstdSource>(std::move(fd), blocks);
  r.a.reset(archive_read_new());
  if (!r.a) return Fail(Errc::kInternal, "archive_read_new failed");
  archive_read_support_format_tar(r.a.get());
  if (archive_read_open(r.a.get(), r.source.get(), nullptr, &ZstdSource::Read, nullptr) != ARCHIVE_OK) {
    const char* msg = archive_error_string(r.a.get());
    return Fail(Errc::kParse, package.string() + " is not a Parc package (not a zstd-compressed tar): " +
                                  (msg ? msg : "unreadable"));
  }
  return r;
}

// Reads the current member's data, at most `limit` bytes.
Expected<std::string> ReadMember(archive* a, archive_entry* e, size_t limit, const char* name) {
  if (archive_entry_size(e) < 0 || static_cast<uint64_t>(archive_entry_size(e)) > limit)
    return Fail(Errc::kResourceExhausted, std::string(name) + " is larger than " + std::to_string(limit) + " bytes");
  std::string out(static_cast<size_t>(archive_entry_size(e)), '\0');
  size_t got = 0;
  while (got < out.size()) {
    la_ssize_t n = archive_read_data(a, out.data() + got, out.size() - got);
    if (n < 0) return Corrupt(a);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got != out.size()) return Fail(Errc::kParse, "package file is truncated or corrupt: short " + std::string(name));
  return out;
}

// Reads the first two members (manifest.json, manifest.sig) of an open archive.
Expected<OpenedPackage> ReadHead(archive* a, const fs::path& package, bool parse = true) {
  archive_entry* e = nullptr;
  int r = archive_read_next_header(a, &e);
  if (r == ARCHIVE_EOF) return Fail(Errc::kParse, package.string() + " is not a Parc package: it is empty");
  if (r < ARCHIVE_WARN) {
    return Fail(Errc::kParse, package.string() + " is not a Parc package (not a zstd-compressed tar): " +
                                  (archive_error_string(a) ? archive_error_string(a) : "unreadable"));
  }
  const char* name = archive_entry_pathname(e);
  if (!name || std::string_view(name) != kManifestMember || archive_entry_filetype(e) != AE_IFREG)
    return Fail(Errc::kParse, package.string() + " is not a Parc package: its first member is '" +
                                  (name ? name : "") + "', not manifest.json");
  OpenedPackage p;
  auto bytes = ReadMember(a, e, kMaxManifestBytes, kManifestMember);
  if (!bytes) return Fail(bytes.error());
  p.manifest_bytes = std::move(*bytes);
  r = archive_read_next_header(a, &e);
  if (r == ARCHIVE_EOF) {
    // Unsigned packages may leave the signature out entirely.
  } else if (r < ARCHIVE_WARN) {
    return Corrupt(a);
  } else {
    name = archive_entry_pathname(e);
    if (!name || std::string_view(name) != kSignatureMember || archive_entry_filetype(e) != AE_IFREG)
      return Fail(Errc::kParse, package.string() + " is not a Parc package: its second member is '" +
                                    (name ? name : "") + "', not manifest.sig");
    auto sig = ReadMember(a, e, 4096, kSignatureMember);
    if (!sig) return Fail(sig.error());
    p.signature = std::move(*sig);
  }
  if (!parse) return p;
  auto m = ParseManifest(p.manifest_bytes);
  if (!m) return Fail(m.error().WithContext("manifest.json"));
  p.manifest = std::move(*m);
  return p;
}

// ---------------------------------------------------------------- writing

struct PayloadSource {
  std::string member;
  fs::path source;          // files only
  EntryType type = EntryType::kFile;
  unsigned mode = 0644;
  uint64_t size = 0;
  std::string sha256;
  std::string target;
};

// zstd with a content checksum, so that a flipped bit anywhere in the
// compressed stream (even in tar padding no reader looks at) is detected.
// libarchive's own zstd writer cannot turn the checksum on.
struct CCtxFree { void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); } };
struct ZstdSink {
  Fd fd;
  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx{ZSTD_createCCtx()};
  std::vector<char> out = std::vector<char>(ZSTD_CStreamOutSize());

  ExpectedVoid Compress(const void* data, size_t len, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, len, 0};
    while (true) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      size_t left = ZSTD_compressStream2(cctx.get(), &o, &in, mode);
      if (ZSTD_isError(left)) return Fail(Errc::kInternal, std::string("zstd: ") + ZSTD_getErrorName(left));
      if (auto w = WriteAll(fd.get(), out.data(), o.pos, "the package"); !w) return w;
      bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
      if (done) return {};
    }
  }
  ExpectedVoid Finish() { return Compress(nullptr, 0, ZSTD_e_end); }
  static la_ssize_t Write(archive* a, void* self, const void* buf, size_t len) {
    auto r = static_cast<ZstdSink*>(self)->Compress(buf, len, ZSTD_e_continue);
    if (!r) {
      archive_set_error(a, EIO, "%s", r.error().message().c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(len);
  }
};

class PackageWriter {
 public:
  static Expected<PackageWriter> Create(const fs::path& out, int zstd_level) {
    PackageWriter w;
    w.out_ = out;
    w.tmp_ = out;
    w.tmp_ += ".tmp." + std::to_string(::getpid());
    w.sink_ = std::make_unique<ZstdSink>();
    w.sink_->fd = Fd(::open(w.tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (w.sink_->fd.get() < 0) return Fail(ErrnoError(errno, "cannot create " + w.tmp_.string()));
    ZSTD_CCtx* z = w.sink_->cctx.get();
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, zstd_level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1)))
      return Fail(Errc::kInvalidArgument, "bad zstd compression level " + std::to_string(zstd_level));
    if (cores > 1) ZSTD_CCtx_setParameter(z, ZSTD_c_nbWorkers, static_cast<int>(cores));  // ignored without MT
    w.a_.reset(archive_write_new());
    archive* a = w.a_.get();
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK) return ArchiveFail(a, "pax");
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open(a, w.sink_.get(), nullptr, &ZstdSink::Write, nullptr) != ARCHIVE_OK)
      return ArchiveFail(a, "cannot start " + w.tmp_.string());
    return w;
  }
  PackageWriter() = default;
  PackageWriter(PackageWriter&&) = default;
  PackageWriter& operator=(PackageWriter&&) = default;
  ~PackageWriter() {
    if (!committed_ && !tmp_.empty()) {
      a_.reset();
      ::unlink(tmp_.c_str());
    }
  }

  archive* get() { return a_.get(); }

  ExpectedVoid Header(const std::string& name, EntryType type, unsigned mode, uint64_t size,
                      const std::string& target = "") {
    Entry e(archive_entry_new());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_mtime(e.get(), 0, 0);
    switch (type) {
      case EntryType::kFile:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
        archive_entry_set_perm(e.get(), mode);
        break;
      case EntryType::kDirectory:
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        archive_entry_set_perm(e.get(), mode);
        break;
      case EntryType::kSymlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_perm(e.get(), 0777);
        archive_entry_set_symlink(e.get(), target.c_str());
        break;
    }
    if (archive_write_header(a_.get(), e.get()) < ARCHIVE_WARN) return ArchiveFail(a_.get(), "cannot add " + name);
    return {};
  }
  ExpectedVoid Data(const char* data, size_t n, const std::string& name) {
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_.get(), data, n);
      if (w < 0) return ArchiveFail(a_.get(), "cannot write " + name);
      data += w;
      n -= static_cast<size_t>(w);
    }
    return {};
  }
  ExpectedVoid Bytes(const std::string& name, std::string_view bytes) {
    if (auto h = Header(name, EntryType::kFile, 0644, bytes.size()); !h) return h;
    return Data(bytes.data(), bytes.size(), name);
  }
  // Copies a file, checking it still has the digest the manifest names.
  ExpectedVoid CopyFile(const PayloadSource& s, std::vector<char>& buf) {
    if (auto h = Header(s.member, EntryType::kFile, s.mode, s.size); !h) return h;
    Fd in(::open(s.source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (in.get() < 0) return Fail(ErrnoError(errno, "cannot open " + s.source.string()));
    Sha256Stream sha;
    uint64_t total = 0;
    while (true) {
      ssize_t n = ::read(in.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail(ErrnoError(errno, "cannot read " + s.source.string()));
      }
      if (n == 0) break;
      total += static_cast<uint64_t>(n);
      if (total > s.size) break;
      sha.Update(buf.data(), static_cast<size_t>(n));
      if (auto d = Data(buf.data(), static_cast<size_t>(n), s.member); !d) return d;
    }
    if (total != s.size || sha.HexDigest() != s.sha256)
      return Fail(Errc::kFailedPrecondition, s.source.string() + " changed while the package was being built");
    return {};
  }
  ExpectedVoid Commit() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return ArchiveFail(a_.get(), "cannot finish " + tmp_.string());
    a_.reset();
    if (auto f = sink_->Finish(); !f) return Fail(f.error().WithContext(tmp_.string()));
    if (::fsync(sink_->fd.get()) != 0) return Fail(ErrnoError(errno, "cannot sync " + tmp_.string()));
    sink_->fd.Reset();
    if (::rename(tmp_.c_str(), out_.c_str()) != 0) return Fail(ErrnoError(errno, "cannot create " + out_.string()));
    committed_ = true;
    return {};
  }

 private:
  fs::path out_, tmp_;
  std::unique_ptr<ZstdSink> sink_;
  WriteArchive a_;
  bool committed_ = false;
};

Expected<std::pair<std::string, uint64_t>> HashFile(const fs::path& p, std::vector<char>& buf) {
  Fd in(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.get() < 0) return Fail(ErrnoError(errno, "cannot open " + p.string()));
  Sha256Stream sha;
  uint64_t total = 0;
  while (true) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(errno, "cannot read " + p.string()));
    }
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  return std::make_pair(sha.HexDigest(), total);
}

std::string ModeText(unsigned mode) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", mode & 07777u);
  return b;
}

// Lists a source directory's plain files (scripts/, native/), sorted.
Expected<std::vector<std::string>> PlainFiles(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    auto st = it->symlink_status(ec);
    if (ec) break;
    if (!fs::is_regular_file(st))
      return Fail(Errc::kInvalidArgument, it->path().string() + " must be a regular file");
    names.push_back(it->path().filename().string());
  }
  if (ec) return Fail(Errc::kIo, "cannot list " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

Expected<std::vector<PayloadSource>> WalkRoot(const fs::path& root, const nlohmann::json& overrides,
                                              nlohmann::json& files_out, std::vector<char>& buf) {
  std::vector<PayloadSource> out;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(root, ec))) return out;
  std::vector<std::pair<std::string, fs::path>> paths;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).generic_string();
    paths.emplace_back("/" + rel, it->path());
  }
  if (ec) return Fail(Errc::kIo, "cannot walk " + root.string() + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  for (const auto& [target, source] : paths) {
    struct stat st {};
    if (::lstat(source.c_str(), &st) != 0) return Fail(ErrnoError(errno, "cannot stat " + source.string()));
    nlohmann::json f = {{"path", target}, {"owner", "root"}, {"group", "root"}};
    PayloadSource s;
    s.member = "files" + target;
    s.source = source;
    unsigned mode = st.st_mode & 07777;
    const nlohmann::json* ov = overrides.contains(target) ? &overrides[target] : nullptr;
    bool declared_mode = ov && ov->contains("mode");
    if (S_ISREG(st.st_mode)) {
      if (st.st_nlink > 1)
        return Fail(Errc::kInvalidArgument, source.string() + " is a hard link (" + std::to_string(st.st_nlink) +
                                                " names): packages carry no hard links, copy the file instead");
      auto h = HashFile(source, buf);
      if (!h) return Fail(h.error());
      s.type = EntryType::kFile;
      s.sha256 = h->first;
      s.size = h->second;
      f["type"] = "file";
      f["sha256"] = s.sha256;
      f["size"] = s.size;
    } else if (S_ISDIR(st.st_mode)) {
      s.type = EntryType::kDirectory;
      f["type"] = "directory";
    } else if (S_ISLNK(st.st_mode)) {
      s.type = EntryType::kSymlink;
      std::error_code lec;
      s.target = fs::read_symlink(source, lec).string();
      if (lec) return Fail(Errc::kIo, "cannot read symlink " + source.string() + ": " + lec.message());
      f["type"] = "symlink";
      f["target"] = s.target;
      mode = 0777;
    } else {
      const char* kind = S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode) ? "a block device"
                         : S_ISFIFO(st.st_mode) ? "a fifo" : S_ISSOCK(st.st_mode) ? "a socket" : "a special file";
      return Fail(Errc::kInvalidArgument, source.string() + " is " + kind + ": packages carry only files, "
                                                                            "directories and symlinks");
    }
    if (s.type != EntryType::kSymlink && (mode & 06000) && !declared_mode)
      return Fail(Errc::kInvalidArgument,
                  source.string() + " has the setuid/setgid bit (mode " + ModeText(mode) +
                      "): declare it in package.json \"overrides\": {\"" + target + "\": {\"mode\": \"" +
                      ModeText(mode) + "\"}} if this is intended");
    if (ov) {
      for (auto it = ov->begin(); it != ov->end(); ++it) {
        if (it.key() == "mode" && s.type != EntryType::kSymlink) {
          if (!it.value().is_string()) return Fail(Errc::kParse, "overrides." + target + ".mode: must be a string");
          f["mode"] = it.value();
        } else if (it.key() == "owner" || it.key() == "group" || it.key() == "config") {
          f[it.key()] = it.value();
        } else {
          return Fail(Errc::kParse, "package.json: overrides." + target + "." + it.key() + ": not allowed here");
        }
      }
    }
    if (!f.contains("mode")) f["mode"] = ModeText(mode);
    files_out.push_back(std::move(f));
    out.push_back(std::move(s));
  }
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    bool found = false;
    for (const auto& s : out)
      if ("files" + it.key() == s.member) found = true;
    if (!found) return Fail(Errc::kInvalidArgument, "package.json: overrides names " + it.key() + ", which is not in root/");
  }
  return out;
}

Expected<std::vector<PayloadSource>> PayloadOf(const Manifest& m, const fs::path& dir) {
  std::vector<PayloadSource> out;
  for (const auto& f : m.files)
    out.push_back({FileMember(f), dir / "root" / f.path.substr(1), f.type, f.mode, f.size, f.sha256, f.target});
  for (const auto& n : m.native)
    out.push_back({NativeMember(n), dir / "native" / n.name, EntryType::kFile, 0644, n.size, n.sha256, ""});
  for (const auto& [key, s] : m.scripts)
    out.push_back({ScriptMember(s), dir / "scripts" / key, EntryType::kFile, 0755, s.size, s.sha256, ""});
  return out;
}

}  // namespace

Expected<Manifest> BuildPackage(const fs::path& dir, const fs::path& out, const BuildOptions& options) {
  auto text = ReadSmallFile(dir / "package.json", 4 << 20);
  if (!text) return Fail(text.error().WithContext("reading the package description"));
  std::vector<char> buf(kBlock);
  nlohmann::json desc;
  nlohmann::json files = nlohmann::json::array();
  nlohmann::json native = nlohmann::json::array();
  nlohmann::json scripts = nlohmann::json::object();
  try {
    desc = nlohmann::json::parse(*text);
    if (!desc.is_object()) return Fail(Errc::kParse, "package.json: must be a JSON object");
    for (const char* computed : {"files", "native", "scripts", "key_id", "signed_at", "expires_at"})
      if (desc.contains(computed))
        return Fail(Errc::kParse, std::string("package.json: ") + computed +
                                      " is computed by the build and must not be given");
    if (!desc.contains("format")) desc["format"] = kFormatVersion;
    nlohmann::json overrides = desc.value("overrides", nlohmann::json::object());
    nlohmann::json silent_args = desc.value("silent_args", nlohmann::json::object());
    if (!overrides.is_object()) return Fail(Errc::kParse, "package.json: overrides must be an object");
    if (!silent_args.is_object()) return Fail(Errc::kParse, "package.json: silent_args must be an object");
    desc.erase("overrides");
    desc.erase("silent_args");

    auto walked = WalkRoot(dir / "root", overrides, files, buf);
    if (!walked) return Fail(walked.error());

    auto native_names = PlainFiles(dir / "native");
    if (!native_names) return Fail(native_names.error());
    for (const auto& n : *native_names) {
      std::string ext = fs::path(n).extension().string();
      std::string kind = ext == ".deb" ? "deb" : ext == ".msi" ? "msi" : ext == ".exe" ? "exe" : "";
      if (kind.empty())
        return Fail(Errc::kInvalidArgument, "native/" + n + ": native installers must end in .deb, .msi or .exe");
      auto h = HashFile(dir / "native" / n, buf);
      if (!h) return Fail(h.error());
      nlohmann::json e = {{"kind", kind}, {"name", n}, {"sha256", h->first}, {"size", h->second}};
      if (silent_args.contains(n)) e["silent_args"] = silent_args[n];
      native.push_back(std::move(e));
    }
    for (auto it = silent_args.begin(); it != silent_args.end(); ++it)
      if (std::find(native_names->begin(), native_names->end(), it.key()) == native_names->end())
        return Fail(Errc::kInvalidArgument, "package.json: silent_args names " + it.key() + ", which is not in native/");

    auto script_names = PlainFiles(dir / "scripts");
    if (!script_names) return Fail(script_names.error());
    for (const auto& s : *script_names) {
      if (s != "pre_install" && s != "post_install" && s != "pre_remove" && s != "post_remove")
        return Fail(Errc::kInvalidArgument,
                    "scripts/" + s + ": scripts are named pre_install, post_install, pre_remove or post_remove");
      auto h = HashFile(dir / "scripts" / s, buf);
      if (!h) return Fail(h.error());
      scripts[s] = {{"name", s}, {"sha256", h->first}, {"size", h->second}};
    }
    desc["files"] = std::move(files);
    desc["native"] = std::move(native);
    desc["scripts"] = std::move(scripts);
  } catch (const nlohmann::json::exception& e) {
    return Fail(Errc::kParse, std::string("package.json: ") + e.what());
  }
  std::string draft;
  try {
    draft = desc.dump();
  } catch (const nlohmann::json::exception& e) {
    return Fail(Errc::kParse, std::string("package.json: ") + e.what());
  }
  auto manifest = ParseManifest(draft);
  if (!manifest) return Fail(manifest.error().WithContext("package.json"));

  std::string signature;
  if (options.key) {
    auto sig = SignManifest(*manifest, *options.key, options.now, options.expires_at);
    if (!sig) return Fail(sig.error());
    signature = std::move(*sig);
  }
  auto w = PackageWriter::Create(out, options.zstd_level);
  if (!w) return Fail(w.error());
  if (auto r = w->Bytes(kManifestMember, CanonicalJson(*manifest)); !r) return Fail(r.error());
  if (auto r = w->Bytes(kSignatureMember, signature); !r) return Fail(r.error());
  auto payload = PayloadOf(*manifest, dir);
  if (!payload) return Fail(payload.error());
  for (const auto& s : *payload) {
    ExpectedVoid r = s.type == EntryType::kFile ? w->CopyFile(s, buf) : w->Header(s.member, s.type, s.mode, 0, s.target);
    if (!r) return Fail(r.error());
  }
  if (auto r = w->Commit(); !r) return Fail(r.error());
  return manifest;
}

Expected<Manifest> SignPackage(const fs::path& package, const KeyPair& key, int64_t now, int64_t expires_at) {
  auto in = OpenRead(package);
  if (!in) return Fail(in.error());
  auto head = ReadHead(in->get(), package);
  if (!head) return Fail(head.error());
  Manifest m = head->manifest;
  auto sig = SignManifest(m, key, now, expires_at);
  if (!sig) return Fail(sig.error());
  auto w = PackageWriter::Create(package, 3);
  if (!w) return Fail(w.error());
  if (auto r = w->Bytes(kManifestMember, CanonicalJson(m)); !r) return Fail(r.error());
  if (auto r = w->Bytes(kSignatureMember, *sig); !r) return Fail(r.error());
  archive_entry* e = nullptr;
  while (true) {
    int r = archive_read_next_header(in->get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return Corrupt(in->get());
    if (archive_write_header(w->get(), e) < ARCHIVE_WARN) return ArchiveFail(w->get(), "cannot copy member");
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while ((r = archive_read_data_block(in->get(), &block, &size, &offset)) == ARCHIVE_OK)
      if (auto d = w->Data(static_cast<const char*>(block), size, archive_entry_pathname(e)); !d) return Fail(d.error());
    if (r != ARCHIVE_EOF) return Corrupt(in->get());
  }
  if (auto d = in->source->Drain(); !d)
    return Fail(Errc::kParse, "package file is truncated or corrupt: " + d.error().message());
  if (auto r = w->Commit(); !r) return Fail(r.error());
  return m;
}

Expected<OpenedPackage> ReadManifest(const fs::path& package) {
  auto a = OpenRead(package);
  if (!a) return Fail(a.error());
  return ReadHead(a->get(), package);
}

Expected<OpenedPackage> VerifyPackage(const fs::path& package, const std::vector<PublicKey>& trusted, int64_t now) {
  auto p = ReadManifest(package);
  if (!p) return p;
  if (auto v = VerifyManifest(p->manifest, p->manifest_bytes, p->signature, trusted, now); !v) return Fail(v.error());
  if (CanonicalJson(p->manifest) != p->manifest_bytes)
    return Fail(Errc::kParse, "manifest.json is not in canonical form (sorted keys, no whitespace, every field "
                              "present; see docs/packages.md), refusing it");
  return p;
}

// ---------------------------------------------------------------- extraction
namespace {

struct Expect {
  EntryType type = EntryType::kFile;
  unsigned mode = 0644;       // files/dirs: the declared mode; native/scripts: mode written
  bool check_mode = true;     // false for native/scripts (not in the manifest)
  uint64_t size = 0;
  std::string sha256;
  std::string target;
  bool seen = false;
};

// The writer thread: creates, writes, hashes and closes files, and checks each
// file's digest before closing it.
class FileWriter {
 public:
  // One job may open a file, write bytes and close it: a small file is one job.
  struct Job {
    std::string path;                 // open this file first ("" = continue the open one)
    std::string member;               // with path: its member name, for messages
    const char* data = nullptr;       // bytes to write, in `block` or in `owned`
    size_t len = 0;
    BlockPool::Block* block = nullptr;  // a reference, dropped once written
    std::unique_ptr<char[]> owned;
    bool close = false;               // then check the digest, set the mode, close
    unsigned mode = 0;
    std::string sha256;               // with close: the manifest's digest
  };

  explicit FileWriter(std::shared_ptr<BlockPool> pool) : pool_(std::move(pool)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~FileWriter() { Stop(); }

  void Push(Job job) {
    bool was_empty;
    {
      std::unique_lock lock(mu_);
      // Bytes are bounded by the pool; this bounds the jobs of empty files.
      room_cv_.wait(lock, [&] { return jobs_.size() < kMaxQueued; });
      was_empty = jobs_.empty();
      jobs_.push_back(std::move(job));
    }
    if (was_empty) jobs_cv_.notify_one();  // the writer only sleeps on an empty queue
  }
  bool Failed() const { return failed_.load(std::memory_order_relaxed); }
  // Waits for every queued job; returns the first error.
  ExpectedVoid Finish() {
    Stop();
    if (failed_) return Fail(error_);
    return {};
  }

 private:
  static constexpr size_t kMaxQueued = 4096;

  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    jobs_cv_.notify_one();
    thread_.join();
  }
  void SetError(Error e) {
    if (!failed_) {
      error_ = std::move(e);
      failed_ = true;
    }
    fd_.Reset();
  }
  void Loop() {
    std::deque<Job> batch;
    while (true) {
      {
        std::unique_lock lock(mu_);
        jobs_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        batch.swap(jobs_);
      }
      room_cv_.notify_all();
      for (Job& job : batch) Do(job);
      batch.clear();
    }
  }
  void Do(Job& job) {
    if (!failed_ && !job.path.empty()) {
      fd_ = Fd(::open(job.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (fd_.get() < 0) SetError(ErrnoError(errno, "cannot create " + job.path));
      path_ = std::move(job.path);
      member_ = std::move(job.member);
      sha_.Reset();
    }
    if (job.len > 0 && !failed_) {
      sha_.Update(job.data, job.len);
      if (auto w = WriteAll(fd_.get(), job.data, job.len, path_); !w) SetError(w.error());
    }
    if (job.block) pool_->Unref(job.block);
    if (job.close && !failed_) {
      if (std::string digest = sha_.HexDigest(); digest != job.sha256) {
        SetError(Error(Errc::kCrypto, "member '" + member_ + "': SHA-256 " + digest + " does not match the manifest (" +
                                          job.sha256 + ")"));
        return;
      }
      if (::fchmod(fd_.get(), job.mode) != 0) SetError(ErrnoError(errno, "cannot set the mode of " + path_));
      if (::close(fd_.Release()) != 0) SetError(ErrnoError(errno, "cannot write " + path_));
    }
  }

  std::shared_ptr<BlockPool> pool_;
  std::mutex mu_;
  std::condition_variable jobs_cv_, room_cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::atomic<bool> failed_{false};
  Error error_;
  // Writer thread only.
  Fd fd_;
  std::string path_, member_;
  Sha256Stream sha_;
  std::thread thread_;
};

// Files go round-robin to several writers: creating a file on ext4 costs
// ~100 us, mostly waiting, and several creations in flight overlap the waits.
class WriterPool {
 public:
  WriterPool(unsigned n, const std::shared_ptr<BlockPool>& pool) {
    for (unsigned i = 0; i < std::max(1u, n); ++i) writers_.push_back(std::make_unique<FileWriter>(pool));
  }
  // Small files of one directory go to one writer: concurrent creations in
  // the same directory only fight over its lock. Large files go round-robin.
  FileWriter* For(const std::string& parent, uint64_t size) {
    if (size >= (256 << 10)) return writers_[next_++ % writers_.size()].get();
    return writers_[std::hash<std::string>{}(parent) % writers_.size()].get();
  }
  bool Failed() const {
    for (const auto& w : writers_)
      if (w->Failed()) return true;
    return false;
  }
  ExpectedVoid Finish() {
    ExpectedVoid first;
    for (auto& w : writers_)
      if (auto r = w->Finish(); !r && first) first = r;
    return first;
  }

 private:
  std::vector<std::unique_ptr<FileWriter>> writers_;
  size_t next_ = 0;
};

const char* TypeWord(EntryType t) {
  switch (t) {
    case EntryType::kFile: return "a file";
    case EntryType::kDirectory: return "a directory";
    case EntryType::kSymlink: return "a symlink";
  }
  return "?";
}

class Extractor {
 public:
  Extractor(const fs::path& package, const OpenedPackage& opened, const fs::path& staging, const ExtractLimits& limits,
            const Progress& progress)
      : package_(package), opened_(opened), staging_(staging), limits_(limits), progress_(progress) {}

  ExpectedVoid Run() {
    if (auto r = Plan(); !r) return r;
    if (::mkdir(staging_.c_str(), 0755) != 0) {
      if (errno == EEXIST) return Fail(Errc::kAlreadyExists, "staging directory " + staging_.string() + " already exists");
      return Fail(ErrnoError(errno, "cannot create staging directory " + staging_.string()));
    }
    created_staging_ = true;
    auto r = Stream();
    if (writer_) {
      auto w = writer_->Finish();  // always join before looking at the tree
      if (r && !w) r = w;
    }
    if (r) r = FixDirectoryModes();
    if (r && progress_) progress_(total_, total_);
    return r;
  }
  ~Extractor() = default;
  bool CreatedStaging() const { return created_staging_; }

 private:
  ExpectedVoid Plan() {
    uint64_t declared = 0;
    auto add = [&](std::string member, Expect e) -> ExpectedVoid {
      if (e.type == EntryType::kFile) {
        declared += e.size;
        if (declared > limits_.max_total_bytes || e.size > limits_.max_total_bytes)
          return Fail(Errc::kResourceExhausted, "the package declares more than " +
                                                    std::to_string(limits_.max_total_bytes) +
                                                    " bytes of payload, above the extraction limit");
      }
      if (!expect_.emplace(std::move(member), std::move(e)).second)
        return Fail(Errc::kParse, "the manifest names the same archive member twice");
      return {};
    };
    const Manifest& m = opened_.manifest;
    for (const auto& f : m.files)
      if (auto r = add(FileMember(f), {f.type, f.mode, true, f.size, f.sha256, f.target}); !r) return r;
    for (const auto& n : m.native)
      if (auto r = add(NativeMember(n), {EntryType::kFile, 0644, false, n.size, n.sha256, ""}); !r) return r;
    for (const auto& [key, s] : m.scripts)
      if (auto r = add(ScriptMember(s), {EntryType::kFile, 0755, false, s.size, s.sha256, ""}); !r) return r;
    if (expect_.size() > limits_.max_entries)
      return Fail(Errc::kResourceExhausted, "the package has " + std::to_string(expect_.size()) +
                                                " entries, above the extraction limit of " +
                                                std::to_string(limits_.max_entries));
    total_ = declared;
    return {};
  }

  std::unexpected<Error> MemberError(const std::string& name, const std::string& why) {
    return Fail(Errc::kParse, "member '" + name + "': " + why);
  }

  // Creates the missing parents of rel (relative to staging) as directories,
  // refusing any existing component that is not a real directory.
  ExpectedVoid MakeParents(const std::string& rel) {
    size_t slash = rel.rfind('/');
    if (slash == std::string::npos) return {};
    std::string parent = rel.substr(0, slash);
    if (dirs_.contains(parent)) return {};
    if (auto r = MakeParents(parent); !r) return r;
    fs::path full = staging_ / parent;
    if (::mkdir(full.c_str(), 0755) != 0) {
      if (errno != EEXIST) return Fail(ErrnoError(errno, "cannot create " + full.string()));
      struct stat st {};
      if (::lstat(full.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Fail(Errc::kParse, "'" + parent + "' is not a directory in staging: refusing to write through it");
    }
    dirs_.insert(parent);
    return {};
  }

  ExpectedVoid CheckRead(int r, archive* a) {
    if (r < ARCHIVE_WARN) return Corrupt(a);
    return {};
  }

  ExpectedVoid CheckRatio() {
    uint64_t raw = reader_->source->compressed();
    uint64_t plain = reader_->source->plain();
    if (plain > (1u << 20) && plain > limits_.max_ratio * std::max<uint64_t>(raw, 1))
      return Fail(Errc::kResourceExhausted, "decompression bomb: " + std::to_string(plain) + " bytes out of " +
                                                std::to_string(raw) + " compressed, above the ratio limit of " +
                                                std::to_string(limits_.max_ratio));
    return {};
  }

  ExpectedVoid Stream() {
    const unsigned writers = WriterThreads();
    // Enough blocks for every writer to have some queued while zstd fills the next.
    auto opened = OpenRead(package_, 2 + 3 * writers);
    if (!opened) return Fail(opened.error());
    reader_ = std::make_unique<PackageReader>(std::move(*opened));
    archive* a = reader_->get();
    // The file may have changed since it was verified: its head must be the
    // same bytes, or nothing is trusted.
    auto head = ReadHead(a, package_, /*parse=*/false);  // compared byte for byte instead
    if (!head) return Fail(head.error());
    if (head->manifest_bytes != opened_.manifest_bytes || head->signature != opened_.signature)
      return Fail(Errc::kCrypto, "the package file changed since it was verified");
    writer_ = std::make_unique<WriterPool>(writers, reader_->source->pool());

    archive_entry* e = nullptr;
    uint64_t entries = 0;
    while (true) {
      int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) break;
      if (auto c = CheckRead(r, a); !c) return c;
      if (writer_->Failed()) return writer_->Finish();
      if (++entries > limits_.max_entries)
        return Fail(Errc::kResourceExhausted, "more than " + std::to_string(limits_.max_entries) + " members");
      if (auto m = Member(a, e); !m) return m;
    }
    for (const auto& [name, ex] : expect_)
      if (!ex.seen) return MemberError(name, "declared in the manifest but missing from the package");
    if (auto d = reader_->source->Drain(); !d)
      return Fail(Errc::kParse, "package file is truncated or corrupt: " + d.error().message());
    return {};
  }

  ExpectedVoid Member(archive* a, archive_entry* e) {
    const char* raw_name = archive_entry_pathname(e);
    std::string name = raw_name ? raw_name : "";
    if (name.empty()) return Fail(Errc::kParse, "a member has no name");
    if (name.front() == '/') return MemberError(name, "absolute paths are not allowed");
    for (size_t s = 0; s <= name.size();) {
      size_t end = name.find('/', s);
      if (end == std::string::npos) end = name.size();
      if (std::string_view(name).substr(s, end - s) == "..") return MemberError(name, "'..' is not allowed");
      s = end + 1;
    }
    if (archive_entry_hardlink(e)) return MemberError(name, "hard links are not allowed");
    auto ft = archive_entry_filetype(e);
    if (ft == AE_IFCHR || ft == AE_IFBLK) return MemberError(name, "device nodes are not allowed");
    if (ft == AE_IFIFO) return MemberError(name, "fifos are not allowed");
    if (ft == AE_IFSOCK) return MemberError(name, "sockets are not allowed");
    EntryType type;
    if (ft == AE_IFREG) type = EntryType::kFile;
    else if (ft == AE_IFDIR) type = EntryType::kDirectory;
    else if (ft == AE_IFLNK) type = EntryType::kSymlink;
    else return MemberError(name, "unsupported member type");
    if (type == EntryType::kDirectory && name.size() > 1 && name.back() == '/') name.pop_back();

    auto it = expect_.find(name);
    if (it == expect_.end()) return MemberError(name, "not declared in the manifest");
    Expect& ex = it->second;
    if (ex.seen) return MemberError(name, "appears twice in the package");
    ex.seen = true;
    if (ex.type != type)
      return MemberError(name, std::string("is ") + TypeWord(type) + " but the manifest declares " + TypeWord(ex.type));
    unsigned perm = archive_entry_perm(e) & 07777;
    if (type != EntryType::kSymlink) {
      if (ex.check_mode && perm != ex.mode) {
        if ((perm & 06000) && !(ex.mode & 06000))
          return MemberError(name, "has the setuid/setgid bit (mode " + ModeText(perm) +
                                       ") which the manifest does not declare (" + ModeText(ex.mode) + ")");
        return MemberError(name, "mode " + ModeText(perm) + " differs from the manifest (" + ModeText(ex.mode) + ")");
      }
      if (!ex.check_mode && (perm & 07000)) return MemberError(name, "setuid/setgid/sticky bits are not allowed here");
    }
    if (auto p = MakeParents(name); !p) return p;
    fs::path full = staging_ / name;

    if (type == EntryType::kDirectory) {
      if (::mkdir(full.c_str(), 0755) != 0) {
        struct stat st {};
        if (errno != EEXIST || ::lstat(full.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          return Fail(ErrnoError(errno, "cannot create directory " + full.string()));
      }
      dirs_.insert(name);
      dir_modes_.emplace_back(name, ex.mode);
      return {};
    }
    if (type == EntryType::kSymlink) {
      const char* link = archive_entry_symlink(e);
      std::string target = link ? link : "";
      if (target != ex.target)
        return MemberError(name, "symlink target '" + target + "' differs from the manifest ('" + ex.target + "')");
      if (!SymlinkStaysInside(name.substr(5), target)) return MemberError(name, "symlink target '" + target + "' leaves the root");
      if (::symlink(target.c_str(), full.c_str()) != 0) return Fail(ErrnoError(errno, "cannot create symlink " + full.string()));
      return {};
    }
    // Regular file.
    if (archive_entry_size_is_set(e) && static_cast<uint64_t>(archive_entry_size(e)) != ex.size)
      return MemberError(name, "size " + std::to_string(archive_entry_size(e)) + " differs from the manifest (" +
                                   std::to_string(ex.size) + ")");
    FileWriter* writer = writer_->For(name.substr(0, name.rfind('/')), ex.size);
    // The first job of a file opens it; the last closes it after checking its digest.
    bool opened = false;
    auto push = [&](FileWriter::Job job) {
      if (!opened) {
        job.path = full.string();
        job.member = name;
        opened = true;
      }
      writer->Push(std::move(job));
    };
    uint64_t written = 0;
    while (true) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(a, &block, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return Corrupt(a);
      if (static_cast<uint64_t>(offset) != written) return MemberError(name, "sparse members are not supported");
      written += size;
      written_total_ += size;
      if (written > ex.size) return MemberError(name, "holds more bytes than the manifest declares");
      if (written_total_ > limits_.max_total_bytes)
        return Fail(Errc::kResourceExhausted, "the payload exceeds the limit of " +
                                                  std::to_string(limits_.max_total_bytes) + " bytes");
      if (size > 0) {
        FileWriter::Job job;
        job.len = size;
        job.block = reader_->source->Hold(block, size);
        if (job.block) {
          job.data = static_cast<const char*>(block);
        } else {  // bytes in libarchive's own buffer, reused by its next call
          job.owned.reset(new char[size]);
          std::memcpy(job.owned.get(), block, size);
          job.data = job.owned.get();
        }
        push(std::move(job));
      }
      if (auto c = CheckRatio(); !c) return c;
      if (progress_ && written_total_ - last_progress_ >= kBlock) {
        last_progress_ = written_total_;
        progress_(written_total_, total_);
      }
      if (writer_->Failed()) return writer_->Finish();
    }
    if (written != ex.size)
      return MemberError(name, "holds " + std::to_string(written) + " bytes but the manifest declares " +
                                   std::to_string(ex.size));
    FileWriter::Job last;
    last.close = true;
    last.mode = ex.mode;
    last.sha256 = ex.sha256;
    push(std::move(last));
    return {};
  }

  ExpectedVoid FixDirectoryModes() {
    // Deepest first, so a read-only parent does not stop its children.
    std::sort(dir_modes_.begin(), dir_modes_.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    for (const auto& [name, mode] : dir_modes_) {
      fs::path full = staging_ / name;
      if (::chmod(full.c_str(), mode) != 0) return Fail(ErrnoError(errno, "cannot set the mode of " + full.string()));
    }
    return {};
  }

  const fs::path& package_;
  const OpenedPackage& opened_;
  const fs::path& staging_;
  const ExtractLimits& limits_;
  const Progress& progress_;
  std::map<std::string, Expect> expect_;
  std::set<std::string> dirs_;
  std::vector<std::pair<std::string, unsigned>> dir_modes_;
  // The reader (and its blocks) outlives the writers that hold them.
  std::unique_ptr<PackageReader> reader_;
  std::unique_ptr<WriterPool> writer_;
  uint64_t total_ = 0, written_total_ = 0, last_progress_ = 0;
  bool created_staging_ = false;
};

void RemoveTree(const fs::path& p) {
  // Read-only directories (declared 0555) must be opened up to be emptied.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  ::chmod(p.c_str(), 0700);
  fs::remove_all(p, ec);
}

}  // namespace

ExpectedVoid ExtractPayload(const fs::path& package, const OpenedPackage& opened, const fs::path& staging,
                            const ExtractLimits& limits, const Progress& progress) {
  Extractor x(package, opened, staging, limits, progress);
  auto r = x.Run();
  if (!r && x.CreatedStaging()) RemoveTree(staging);
  return r;
}

}  // namespace parc::pkg
