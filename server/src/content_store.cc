#include "content_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>


#include <cerrno>
#include <memory>
#include <string_view>
#include <utility>

#include "parc/common/files.h"
#include "parc/common/hash.h"

namespace parc::server {
namespace fs = std::filesystem;

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

}  // namespace

ContentStore::ContentStore(fs::path dir, uint64_t max_object_bytes)
    : dir_(std::move(dir)), max_object_bytes_(max_object_bytes) {}

ExpectedVoid ContentStore::Init() {
  if (auto r = EnsureDirectory(dir_ / "objects", 0750); !r) return r;
  return EnsureDirectory(dir_ / "incoming", 0750);
}

bool ContentStore::ValidDigest(const std::string& sha256) {
  if (sha256.size() != 64) return false;
  for (char c : sha256)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

fs::path ContentStore::ObjectPath(const std::string& sha256) const {
  return dir_ / "objects" / sha256.substr(0, 2) / sha256;
}

fs::path ContentStore::IncomingPath(const std::string& sha256) const { return dir_ / "incoming" / (sha256 + ".part"); }

std::optional<uint64_t> ContentStore::Size(const std::string& sha256) const {
  if (!ValidDigest(sha256)) return std::nullopt;
  struct stat st {};
  if (::stat(ObjectPath(sha256).c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

Expected<uint64_t> ContentStore::Remove(const std::string& sha256) {
  auto size = Size(sha256);
  if (!size) return uint64_t{0};
  if (::unlink(ObjectPath(sha256).c_str()) != 0) {
    if (errno == ENOENT) return uint64_t{0};
    return Fail(ErrnoError(errno, "cannot delete content object " + sha256.substr(0, 16)));
  }
  return *size;
}

uint64_t ContentStore::Received(const std::string& sha256) const {
  if (!ValidDigest(sha256)) return 0;
  struct stat st {};
  if (::stat(IncomingPath(sha256).c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

ExpectedVoid ContentStore::CheckFreeSpace(uint64_t bytes) const {
  struct statvfs vfs {};
  if (::statvfs(dir_.c_str(), &vfs) != 0) return {};  // unknown: the write itself reports a full disk
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (bytes + kFreeReserve <= free_bytes) return {};
  return Fail(Errc::kResourceExhausted,
              "the server's disk is nearly full: " + std::to_string(free_bytes >> 20) + " MiB free, and storing " +
                  std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB more would leave less than the " +
                  std::to_string(kFreeReserve >> 20) +
                  " MiB it keeps for the parc database; free space on the server (parcctl image gc, parcctl package "
                  "gc) and run the same command again");
}

void ContentStore::Touch(const std::string& sha256) {
  if (!ValidDigest(sha256)) return;
  std::error_code ec;
  fs::last_write_time(ObjectPath(sha256), fs::file_time_type::clock::now(), ec);  // best effort: gc only waits less
}

Expected<ContentStore::Collected> ContentStore::CollectStaleUploads(fs::file_time_type cutoff, bool dry_run) {
  Collected out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "incoming", ec)) {
    std::string name = e.path().filename().string();
    constexpr std::string_view kPart = ".part";
    if (name.size() != 64 + kPart.size() || !name.ends_with(kPart)) continue;
    std::string sha = name.substr(0, 64);
    if (!ValidDigest(sha)) continue;
    std::lock_guard lock(mutex_);  // an upload cannot begin while its file is judged
    if (uploading_.contains(sha)) continue;
    std::error_code fec;
    auto mtime = fs::last_write_time(e.path(), fec);
    uint64_t size = fs::file_size(e.path(), fec);
    if (fec || mtime > cutoff) continue;
    if (!dry_run && ::unlink(e.path().c_str()) != 0) {
      if (errno == ENOENT) continue;
      return Fail(ErrnoError(errno, "cannot delete the unfinished upload " + sha.substr(0, 16)));
    }
    ++out.files;
    out.bytes += size;
  }
  if (ec) return Fail(Errc::kIo, "reading the content store's unfinished uploads: " + ec.message());
  return out;
}

ContentStore::Upload::Upload(Upload&& o) noexcept
    : store_(std::exchange(o.store_, nullptr)), sha256_(std::move(o.sha256_)), size_(o.size_), offset_(o.offset_),
      fd_(std::exchange(o.fd_, -1)) {}

ContentStore::Upload& ContentStore::Upload::operator=(Upload&& o) noexcept {
  if (this != &o) {
    Release();
    store_ = std::exchange(o.store_, nullptr);
    sha256_ = std::move(o.sha256_);
    size_ = o.size_;
    offset_ = o.offset_;
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

ContentStore::Upload::~Upload() { Release(); }

void ContentStore::Upload::Release() {
  if (fd_ >= 0) {
    ::fsync(fd_);  // keep what arrived for a resume
    ::close(fd_);
    fd_ = -1;
  }
  if (store_) {
    std::lock_guard lock(store_->mutex_);
    store_->uploading_.erase(sha256_);
    store_ = nullptr;
  }
}

ExpectedVoid ContentStore::Upload::Append(std::string_view data) {
  if (fd_ < 0) return Fail(Errc::kFailedPrecondition, "upload already finished");
  if (offset_ + data.size() > size_)
    return Fail(Errc::kInvalidArgument, "more data than the declared size of " + std::to_string(size_) + " bytes");
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSPC) return Fail(Errc::kResourceExhausted, "the server's disk is full");
      return Fail(ErrnoError(errno, "writing the upload"));
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset_ += static_cast<uint64_t>(n);
  }
  return {};
}

Expected<uint64_t> ContentStore::Upload::Finish() {
  if (!store_ || fd_ < 0) return Fail(Errc::kFailedPrecondition, "upload not open");
  if (offset_ != size_)
    return Fail(Errc::kInvalidArgument, "upload ended after " + std::to_string(offset_) + " of " +
                                            std::to_string(size_) + " bytes; send the rest to resume");
  if (::fsync(fd_) != 0) return Fail(ErrnoError(errno, "syncing the upload"));
  ::close(fd_);
  fd_ = -1;
  fs::path incoming = store_->IncomingPath(sha256_);
  auto file = Sha256OfFile(incoming);
  if (!file) return Fail(file.error());
  const std::string* digest = &file->sha256;
  if (*digest != sha256_) {
    std::error_code ec;
    fs::remove(incoming, ec);  // useless bytes: the next attempt starts over
    return Fail(Errc::kInvalidArgument, "the uploaded bytes have SHA-256 " + *digest + ", not " + sha256_ +
                                            " as announced: upload corrupted, start again");
  }
  fs::path object = store_->ObjectPath(sha256_);
  if (auto r = EnsureDirectory(object.parent_path(), 0750); !r) return Fail(r.error());
  if (::rename(incoming.c_str(), object.c_str()) != 0) return Fail(ErrnoError(errno, "storing the object"));
  Fd dir(::open(object.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd >= 0) ::fsync(dir.fd);
  uint64_t size = size_;
  Release();
  return size;
}

Expected<ContentStore::Upload> ContentStore::BeginUpload(const std::string& sha256, uint64_t size, uint64_t offset) {
  if (!ValidDigest(sha256)) return Fail(Errc::kInvalidArgument, "content digest must be 64 lower-case hex characters");
  if (size > max_object_bytes_)
    return Fail(Errc::kResourceExhausted, "object of " + std::to_string(size) + " bytes is larger than the limit of " +
                                              std::to_string(max_object_bytes_));
  {
    std::lock_guard lock(mutex_);
    if (!uploading_.insert(sha256).second)
      return Fail(Errc::kFailedPrecondition, "another upload of the same object is in progress");
  }
  Upload up;
  up.store_ = this;
  up.sha256_ = sha256;
  up.size_ = size;
  uint64_t kept = Received(sha256);
  if (offset != 0 && offset != kept)
    return Fail(Errc::kFailedPrecondition, "the server holds " + std::to_string(kept) + " bytes of this upload, not " +
                                               std::to_string(offset) + "; resume from there");
  if (kept > size) offset = 0;
  if (auto room = CheckFreeSpace(size - offset); !room) return Fail(room.error());
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : O_APPEND);
  up.fd_ = ::open(IncomingPath(sha256).c_str(), flags, 0640);
  if (up.fd_ < 0) return Fail(ErrnoError(errno, "opening the upload file"));
  up.offset_ = offset;
  return up;
}

ContentStore::Reader::Reader(Reader&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), size_(o.size_), sha256_(std::move(o.sha256_)) {}

ContentStore::Reader& ContentStore::Reader::operator=(Reader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    sha256_ = std::move(o.sha256_);
  }
  return *this;
}

ContentStore::Reader::~Reader() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<size_t> ContentStore::Reader::ReadAt(uint64_t offset, char* buf, size_t n) const {
  while (true) {
    ssize_t got = ::pread(fd_, buf, n, static_cast<off_t>(offset));
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return Fail(ErrnoError(errno, "reading object " + sha256_));
  }
}

void ContentStore::Reader::WillNeed(uint64_t offset, size_t n) const {
  if (fd_ >= 0 && offset < size_) ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(n), POSIX_FADV_WILLNEED);
}

Expected<ContentStore::Reader> ContentStore::Open(const std::string& sha256) const {
  if (!ValidDigest(sha256)) return Fail(Errc::kInvalidArgument, "content digest must be 64 lower-case hex characters");
  Reader r;
  r.fd_ = ::open(ObjectPath(sha256).c_str(), O_RDONLY | O_CLOEXEC);
  if (r.fd_ < 0) return Fail(Errc::kNotFound, "no object " + sha256 + " in the content store");
  struct stat st {};
  if (::fstat(r.fd_, &st) != 0) return Fail(ErrnoError(errno, "cannot stat object " + sha256));
  r.size_ = static_cast<uint64_t>(st.st_size);
  r.sha256_ = sha256;
  ::posix_fadvise(r.fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  return r;
}

ExpectedVoid ContentStore::Read(const std::string& sha256, uint64_t offset,
                                const std::function<bool(uint64_t, std::string_view, uint64_t)>& sink) const {
  auto object = Open(sha256);
  if (!object) return Fail(object.error());
  uint64_t total = object->size();
  if (offset > total) return Fail(Errc::kInvalidArgument, "offset beyond the end of the object");
  std::string buf(kChunk, '\0');
  while (offset < total) {
    auto n = object->ReadAt(offset, buf.data(), buf.size());
    if (!n) return Fail(n.error());
    if (*n == 0) break;
    if (!sink(offset, std::string_view(buf.data(), *n), total)) break;
    offset += *n;
  }
  return {};
}

}  // namespace parc::server
