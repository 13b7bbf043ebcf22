// SQLite implementation of ImageStore: a handful of rows (one per image
// version), on a connection of its own serialised by a mutex.
#include <algorithm>
#include <mutex>

#include "parc/packages/version.h"
#include "parc/server/image_store.h"
#include "sql_util.h"

namespace parc::server {
namespace {

using detail::Cursor;

constexpr const char* kImageColumns =
    "name, version, kind, publisher, key_id, created_at, signed_at, expires_at, uploaded_at, size, entries, chunks, "
    "stored_size, image_id, uploaded_by, manifest_json, signature";

ImageRecord ReadImage(const sql::Statement& s) {
  ImageRecord r;
  r.name = s.Text(0);
  r.version = s.Text(1);
  r.kind = s.Text(2);
  r.publisher = s.Text(3);
  r.key_id = s.Text(4);
  r.created_at = s.Int(5);
  r.signed_at = s.Int(6);
  r.expires_at = s.Int(7);
  r.uploaded_at = s.Int(8);
  r.size = static_cast<uint64_t>(s.Int(9));
  r.entries = static_cast<uint64_t>(s.Int(10));
  r.chunks = static_cast<uint64_t>(s.Int(11));
  r.stored_size = static_cast<uint64_t>(s.Int(12));
  r.image_id = s.Text(13);
  r.uploaded_by = s.Text(14);
  r.manifest_json = s.Text(15);
  r.signature = s.Text(16);
  return r;
}

class SqliteImageStore final : public ImageStore {
 public:
  explicit SqliteImageStore(sql::Database db) : db_(std::move(db)) {}

  Expected<ImageRecord> AddImage(const ImageRecord& r) override {
    if (auto existing = GetImage(r.name, r.version)) {
      if (existing->image_id == r.image_id) return *existing;
      return Fail(Errc::kAlreadyExists, "image " + r.name + " " + r.version +
                                            " is already registered with another manifest; capture a new version");
    }
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("INSERT INTO images(") + kImageColumns +
                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"));
    c->Bind(1, r.name).Bind(2, r.version).Bind(3, r.kind).Bind(4, r.publisher).Bind(5, r.key_id);
    c->Bind(6, r.created_at).Bind(7, r.signed_at).Bind(8, r.expires_at).Bind(9, r.uploaded_at);
    c->Bind(10, static_cast<int64_t>(r.size)).Bind(11, static_cast<int64_t>(r.entries));
    c->Bind(12, static_cast<int64_t>(r.chunks)).Bind(13, static_cast<int64_t>(r.stored_size));
    c->Bind(14, r.image_id).Bind(15, r.uploaded_by).Bind(16, r.manifest_json).BindBlob(17, r.signature);
    PARC_TRY(c->Run());
    return r;
  }

  Expected<std::vector<ImageRecord>> ListImages(const std::string& name) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kImageColumns +
                     " FROM images WHERE ?1 = '' OR name = ?1 ORDER BY name, uploaded_at"));
    c->Bind(1, name);
    std::vector<ImageRecord> out;
    while (true) {
      PARC_ASSIGN(row, c->Step());
      if (!row) break;
      out.push_back(ReadImage(*c));
    }
    std::stable_sort(out.begin(), out.end(), [](const ImageRecord& a, const ImageRecord& b) {
      if (a.name != b.name) return a.name < b.name;
      return pkg::CompareVersions(a.version, b.version) < 0;
    });
    return out;
  }

  Expected<ImageRecord> GetImage(const std::string& name, const std::string& version) override {
    auto all = ListImages(name);
    if (!all) return Fail(all.error());
    if (name.empty() || all->empty()) return Fail(Errc::kNotFound, "no image named '" + name + "' (see parcctl image list)");
    if (version.empty()) return all->back();
    for (const auto& r : *all)
      if (r.version == version) return r;
    return Fail(Errc::kNotFound, "image " + name + " has no version " + version + " (newest: " + all->back().version + ")");
  }

  ExpectedVoid RemoveImage(const std::string& name, const std::string& version) override {
    std::lock_guard lock(mutex_);
    {
      PARC_ASSIGN(c, Q("SELECT 1 FROM images WHERE name = ?1 AND version = ?2"));
      c->Bind(1, name).Bind(2, version);
      PARC_ASSIGN(row, c->Step());
      if (!row) return Fail(Errc::kNotFound, "image " + name + " " + version + " is not registered (see parcctl image list)");
    }
    PARC_ASSIGN(c, Q("DELETE FROM images WHERE name = ?1 AND version = ?2"));
    c->Bind(1, name).Bind(2, version);
    return c->Run();
  }

 private:
  Expected<Cursor> Q(const std::string& sql) {
    auto s = db_.Cached(sql);
    if (!s) return Fail(s.error());
    return Cursor(*s);
  }

  std::mutex mutex_;
  sql::Database db_;
};

}  // namespace

Expected<std::unique_ptr<ImageStore>> OpenSqliteImageStore(const std::string& path) {
  auto db = sql::Database::Open(path, sql::OpenOptions{.busy_timeout_ms = 30000});
  if (!db) return Fail(db.error().WithContext("opening the parc database for images"));
  auto version = db->Prepare("SELECT 1 FROM sqlite_master WHERE name = 'images'");
  if (!version) return Fail(version.error());
  auto row = version->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Errc::kFailedPrecondition, "the parc database has no image table (not migrated)");
  return std::unique_ptr<ImageStore>(std::make_unique<SqliteImageStore>(std::move(*db)));
}

}  // namespace parc::server
