// The server's content store: immutable objects named by their SHA-256 under
// <state>/content/objects/ab/<sha256>, uploads kept in content/incoming/ until
// complete and verified (so an interrupted upload resumes), and reads from any
// offset in 1 MiB chunks (so an interrupted download resumes). Any dumb mirror
// could serve the same files: clients verify the digest themselves.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "parc/common/error.h"

namespace parc::server {

class ContentStore {
 public:
  static constexpr size_t kChunk = 1 << 20;

  explicit ContentStore(std::filesystem::path dir, uint64_t max_object_bytes = 64ull << 30);
  ExpectedVoid Init();

  static bool ValidDigest(const std::string& sha256);
  std::filesystem::path ObjectPath(const std::string& sha256) const;
  // Size of a complete object, if present.
  std::optional<uint64_t> Size(const std::string& sha256) const;
  // Deletes a complete object; returns the bytes freed (0: it was not there).
  // Callers decide first that nothing needs it any more.
  Expected<uint64_t> Remove(const std::string& sha256);
  // Bytes of an unfinished upload kept from an earlier attempt.
  uint64_t Received(const std::string& sha256) const;
  // Marks a complete object as just stored (its mtime, which gc's grace
  // period counts from): identical bytes pushed again start a new grace.
  void Touch(const std::string& sha256);

  // Space kept free on the store's disk: the parc database, its journal and
  // the logs usually share it, and must keep working when uploads fill it.
  static constexpr uint64_t kFreeReserve = 64ull << 20;
  // kResourceExhausted, in words for the admin, when storing `bytes` more
  // would leave less than kFreeReserve free.
  ExpectedVoid CheckFreeSpace(uint64_t bytes) const;

  // Unfinished uploads kept for a resume (content/incoming/) last written
  // before `cutoff` and not being received now: deleted (counted only, with
  // dry_run). An abandoned push would otherwise hold its bytes for ever.
  struct Collected {
    uint64_t files = 0;
    uint64_t bytes = 0;
  };
  Expected<Collected> CollectStaleUploads(std::filesystem::file_time_type cutoff, bool dry_run);

  // One upload at a time per digest. Begin checks the offset against what is
  // kept (0 restarts), the declared size against the limit and the free disk
  // space; Append writes; Finish verifies the whole object's digest and moves
  // it into place. Abort keeps the partial file for a later resume.
  class Upload {
   public:
    Upload() = default;
    Upload(Upload&&) noexcept;
    Upload& operator=(Upload&&) noexcept;
    ~Upload();
    ExpectedVoid Append(std::string_view data);
    Expected<uint64_t> Finish();  // returns the size
    uint64_t written() const { return offset_; }

   private:
    friend class ContentStore;
    ContentStore* store_ = nullptr;
    std::string sha256_;
    uint64_t size_ = 0;
    uint64_t offset_ = 0;
    int fd_ = -1;
    void Release();
  };
  Expected<Upload> BeginUpload(const std::string& sha256, uint64_t size, uint64_t offset);

  // Streams an object from offset; `sink` returns false to stop (client gone).
  ExpectedVoid Read(const std::string& sha256, uint64_t offset,
                    const std::function<bool(uint64_t offset, std::string_view data, uint64_t total)>& sink) const;

  // A complete object open for reading at any offset, into the caller's
  // buffer (GetContent reads straight into the message it sends).
  class Reader {
   public:
    Reader() = default;
    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;
    ~Reader();
    uint64_t size() const { return size_; }
    // Up to n bytes at offset; 0 at the end.
    Expected<size_t> ReadAt(uint64_t offset, char* buf, size_t n) const;
    // Asks the kernel to start reading [offset, offset + n) now (no wait),
    // so that the ReadAt after it finds the bytes in memory.
    void WillNeed(uint64_t offset, size_t n) const;

   private:
    friend class ContentStore;
    int fd_ = -1;
    uint64_t size_ = 0;
    std::string sha256_;
  };
  Expected<Reader> Open(const std::string& sha256) const;

 private:
  std::filesystem::path IncomingPath(const std::string& sha256) const;
  std::filesystem::path dir_;
  uint64_t max_object_bytes_;
  std::mutex mutex_;
  std::set<std::string> uploading_;
};

}  // namespace parc::server
