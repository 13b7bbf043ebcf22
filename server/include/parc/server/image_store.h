// The image registry of the parc database: one row per signed image version
// (its manifest bytes and signature; the body and the chunks are objects of
// the content store). Behind an interface like DeployStore so that a
// PostgreSQL backend can run the same contract tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parc/common/error.h"

namespace parc::server {

struct ImageRecord {
  std::string name, version, kind;  // kind: tree, block
  std::string publisher, key_id;
  int64_t created_at = 0, signed_at = 0, expires_at = 0, uploaded_at = 0;
  uint64_t size = 0, entries = 0, chunks = 0, stored_size = 0;
  std::string image_id;       // SHA-256 of manifest_json
  std::string uploaded_by;
  std::string manifest_json;  // the signed bytes
  std::string signature;      // raw Ed25519 signature
};

class ImageStore {
 public:
  virtual ~ImageStore() = default;
  // kAlreadyExists when name=version is registered with another manifest;
  // the same manifest again returns the stored record.
  virtual Expected<ImageRecord> AddImage(const ImageRecord& image) = 0;
  // Sorted by name, then version (Debian ordering); name "" = every image.
  virtual Expected<std::vector<ImageRecord>> ListImages(const std::string& name) = 0;
  // version "" = the newest.
  virtual Expected<ImageRecord> GetImage(const std::string& name, const std::string& version) = 0;
  // Exactly name=version; kNotFound when it is not registered.
  virtual ExpectedVoid RemoveImage(const std::string& name, const std::string& version) = 0;
};

// Opens the image table of the SQLite parc database (OpenSqliteStorage must
// have migrated it first).
Expected<std::unique_ptr<ImageStore>> OpenSqliteImageStore(const std::string& path);

}  // namespace parc::server
