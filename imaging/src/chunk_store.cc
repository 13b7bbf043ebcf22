#include "parc/imaging/chunk_store.h"

#include <zstd.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "codec.h"
#include "parc/common/hash.h"
#include "sys.h"

namespace parc::imaging {

namespace fs = std::filesystem;

namespace {

struct CCtxFree { void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); } };
struct DCtxFree { void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); } };

// One compression and one decompression context per thread, reused: creating
// them costs more than compressing a small chunk.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

}  // namespace

std::string Digest::Hex() const {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string Digest::Short() const { return Hex().substr(0, 16); }

Expected<Digest> Digest::FromHex(std::string_view hex) {
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string_view::npos)
    return Fail(Errc::kParse, "a digest is 64 lower-case hex characters");
  auto raw = HexDecode(hex);
  if (!raw) return Fail(raw.error());
  Digest d;
  std::memcpy(d.bytes.data(), raw->data(), 32);
  return d;
}

Digest Digest::Of(std::string_view data) {
  Digest d;
  std::string raw = Sha256(data);
  std::memcpy(d.bytes.data(), raw.data(), 32);
  return d;
}

uint64_t MaxStoredSize(uint64_t plain_size) { return ZSTD_compressBound(plain_size); }

namespace internal {

Expected<std::string> CompressFrame(std::string_view plain, int zstd_level) {
  ZSTD_CCtx* cctx = ThreadCCtx();
  if (!cctx) return Fail(Errc::kResourceExhausted, "cannot create a zstd context");
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
  std::string out;
  size_t n = 0;
  out.resize_and_overwrite(ZSTD_compressBound(plain.size()), [&](char* p, size_t cap) {
    n = ZSTD_compress2(cctx, p, cap, plain.data(), plain.size());
    return ZSTD_isError(n) ? 0 : n;
  });
  if (ZSTD_isError(n)) return Fail(Errc::kInternal, std::string("zstd: ") + ZSTD_getErrorName(n));
  return out;
}

}  // namespace internal

Expected<std::string> EncodeChunk(std::string_view plain, int zstd_level, ChunkRef& ref) {
  auto out = internal::CompressFrame(plain, zstd_level);
  if (!out) return out;
  ref.sha256 = Digest::Of(plain);
  ref.object = Digest::Of(*out);
  ref.size = static_cast<uint32_t>(plain.size());
  ref.stored_size = static_cast<uint32_t>(out->size());
  return out;
}

Expected<std::string> DecodeChunk(const ChunkRef& ref, std::string_view stored) {
  if (stored.size() != ref.stored_size || Digest::Of(stored) != ref.object)
    return Fail(Errc::kCrypto, "chunk " + ref.object.Short() + " does not match its digest (altered or truncated): refused");
  unsigned long long declared = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (declared != ref.size || ZSTD_findFrameCompressedSize(stored.data(), stored.size()) != stored.size())
    return Fail(Errc::kCrypto, "chunk " + ref.object.Short() + " is not one zstd frame of " + std::to_string(ref.size) +
                                   " bytes: refused");
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (!dctx) return Fail(Errc::kResourceExhausted, "cannot create a zstd context");
  std::string plain;
  size_t n = 0;
  plain.resize_and_overwrite(ref.size, [&](char* p, size_t cap) {
    n = ZSTD_decompressDCtx(dctx, p, cap, stored.data(), stored.size());
    return ZSTD_isError(n) ? 0 : n;
  });
  if (ZSTD_isError(n) || n != ref.size)
    return Fail(Errc::kCrypto, "chunk " + ref.object.Short() + " does not decompress: refused");
  if (Digest::Of(plain) != ref.sha256)
    return Fail(Errc::kCrypto, "chunk " + ref.object.Short() + " decompresses to other bytes than its index says: refused");
  return plain;
}

Expected<std::unique_ptr<DirChunkStore>> DirChunkStore::Open(const fs::path& dir) {
  for (const auto& d : {dir, dir / "objects", dir / "incoming"})
    if (auto r = sys::MakeDirectory(d, 0750); !r) return Fail(r.error());
  return std::unique_ptr<DirChunkStore>(new DirChunkStore(dir));
}

fs::path DirChunkStore::ObjectPath(const Digest& object) const {
  std::string hex = object.Hex();
  return dir_ / "objects" / hex.substr(0, 2) / hex;
}

bool DirChunkStore::Has(const Digest& object) const { return sys::Exists(ObjectPath(object)); }

Expected<std::string> DirChunkStore::Get(const Digest& object) const {
  auto data = sys::ReadWholeFile(ObjectPath(object), MaxStoredSize(16u << 20));
  if (!data && data.error().Is(Errc::kNotFound)) return Fail(Errc::kNotFound, "chunk " + object.Short() + " is not in the store");
  return data;
}

ExpectedVoid ChunkStore::Put(const Digest& object, std::string_view stored) {
  if (Digest::Of(stored) != object)
    return Fail(Errc::kCrypto, "refusing to store bytes under " + object.Short() + ": they do not hash to it");
  return PutChecked(object, stored);
}

ExpectedVoid DirChunkStore::PutChecked(const Digest& object, std::string_view stored) {
  fs::path final_path = ObjectPath(object);
  if (sys::Exists(final_path)) return {};
  if (auto r = sys::MakeDirectory(final_path.parent_path(), 0750); !r) return r;
  static std::atomic<uint64_t> counter{0};
  fs::path tmp = dir_ / "incoming" /
                 (object.Hex() + ".chunk-" + RandomToken(4) + "-" + std::to_string(counter.fetch_add(1)) + ".tmp");
  if (auto w = sys::WriteNewFile(tmp, stored); !w) {
    (void)sys::RemoveFile(tmp);
    return w;
  }
  // Readers see the whole object or none; Sync() makes it durable.
  if (auto r = sys::Rename(tmp, final_path); !r) {
    (void)sys::RemoveFile(tmp);
    return r;
  }
  return {};
}

ExpectedVoid DirChunkStore::Remove(const Digest& object) { return sys::RemoveFile(ObjectPath(object)); }

ExpectedVoid DirChunkStore::Sync() {
  auto fd = sys::OpenDirectory(dir_);
  if (!fd) return Fail(fd.error());
  return sys::SyncFilesystem(*fd);
}

ExpectedVoid StoreFetcher::Fetch(const ChunkRef& ref, uint64_t offset,
                                 const std::function<ExpectedVoid(std::string_view)>& sink) {
  auto data = source_.Get(ref.object);
  if (!data) return Fail(data.error());
  if (offset > data->size()) return Fail(Errc::kInvalidArgument, "offset beyond the end of chunk " + ref.object.Short());
  return sink(std::string_view(*data).substr(offset));
}

}  // namespace parc::imaging
