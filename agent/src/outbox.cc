#include "outbox.h"

namespace parc::agent {

namespace {
const std::vector<std::string_view> kMigrations = {
    R"sql(
CREATE TABLE outbox(
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  report_id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,            -- 'inventory'
  digest TEXT NOT NULL,          -- inventory digest after this report
  created_at INTEGER NOT NULL,
  payload BLOB NOT NULL          -- serialized parc.v1.Report
);
CREATE TABLE state(key TEXT PRIMARY KEY, value BLOB NOT NULL);
)sql",
};
}  // namespace

Expected<Outbox> Outbox::Open(const std::filesystem::path& path) {
  sql::OpenOptions options;
  options.synchronous_full = true;  // an acknowledged report must survive a power cut
  auto db = sql::Database::Open(path, options);
  if (!db) return Fail(db.error().WithContext("agent outbox"));
  if (auto r = sql::Migrate(*db, kMigrations); !r) return Fail(r.error().WithContext("agent outbox"));
  Outbox o;
  o.db_ = std::move(*db);
  return o;
}

Expected<std::string> Outbox::GetState(const std::string& key) {
  auto st = db_.Cached("SELECT value FROM state WHERE key=?");
  if (!st) return Fail(st.error());
  (*st)->Bind(1, key);
  auto row = (*st)->Step();
  if (!row) return Fail(row.error());
  return *row ? (*st)->Text(0) : std::string();
}

ExpectedVoid Outbox::SetState(const std::string& key, const std::string& value) {
  auto st = db_.Cached("INSERT INTO state(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  if (!st) return Fail(st.error());
  (*st)->Bind(1, key).BindBlob(2, value);
  return (*st)->Run();
}

Expected<PendingReport> Outbox::EnqueueInventory(v1::Report report, const std::string& digest,
                                                 const v1::Inventory& queued) {
  PendingReport pending;
  auto r = db_.Transaction([&]() -> ExpectedVoid {
    auto st = db_.Cached("INSERT INTO outbox(report_id, kind, digest, created_at, payload) VALUES(?, 'inventory', ?, ?, ?)");
    if (!st) return Fail(st.error());
    (*st)->Bind(1, report.report_id()).Bind(2, digest).Bind(3, report.created_at()).BindBlob(4, report.SerializeAsString());
    if (auto e = (*st)->Run(); !e) return e;
    pending.sequence = db_.LastInsertRowId();
    return SetState("queued_inventory", queued.SerializeAsString());
  });
  if (!r) return Fail(r.error().WithContext("cannot queue report"));
  report.set_sequence(static_cast<uint64_t>(pending.sequence));
  pending.report = std::move(report);
  pending.digest = digest;
  return pending;
}

Expected<std::vector<PendingReport>> Outbox::Pending(size_t limit) {
  auto st = db_.Cached("SELECT sequence, digest, payload FROM outbox ORDER BY sequence LIMIT ?");
  if (!st) return Fail(st.error());
  (*st)->Bind(1, static_cast<int64_t>(limit));
  std::vector<PendingReport> out;
  while (true) {
    auto row = (*st)->Step();
    if (!row) return Fail(row.error());
    if (!*row) break;
    PendingReport p;
    p.sequence = (*st)->Int(0);
    p.digest = (*st)->Text(1);
    if (!p.report.ParseFromString((*st)->Text(2))) continue;  // unreadable entry: skipped, removed on ack of later ones
    p.report.set_sequence(static_cast<uint64_t>(p.sequence));
    out.push_back(std::move(p));
  }
  return out;
}

Expected<size_t> Outbox::PendingCount() {
  auto st = db_.Cached("SELECT count(*) FROM outbox");
  if (!st) return Fail(st.error());
  auto row = (*st)->Step();
  if (!row) return Fail(row.error());
  return static_cast<size_t>((*st)->Int(0));
}

ExpectedVoid Outbox::Acknowledge(const std::string& report_id) {
  return db_.Transaction([&]() -> ExpectedVoid {
    auto sel = db_.Cached("SELECT digest FROM outbox WHERE report_id=?");
    if (!sel) return Fail(sel.error());
    (*sel)->Bind(1, report_id);
    auto row = (*sel)->Step();
    if (!row) return Fail(row.error());
    if (!*row) return {};  // already acknowledged (duplicate ack)
    std::string digest = (*sel)->Text(0);
    (*sel)->Reset();
    auto del = db_.Cached("DELETE FROM outbox WHERE report_id=?");
    if (!del) return Fail(del.error());
    (*del)->Bind(1, report_id);
    if (auto e = (*del)->Run(); !e) return e;
    return SetState("acked_digest", digest);
  });
}

ExpectedVoid Outbox::Discard(const std::string& report_id) {
  auto del = db_.Cached("DELETE FROM outbox WHERE report_id=?");
  if (!del) return Fail(del.error());
  (*del)->Bind(1, report_id);
  return (*del)->Run();
}

ExpectedVoid Outbox::DropInventoryReports() {
  return db_.Transaction([&]() -> ExpectedVoid {
    if (auto e = db_.Exec("DELETE FROM outbox WHERE kind='inventory'"); !e) return e;
    if (auto e = db_.Exec("DELETE FROM state WHERE key IN ('queued_inventory','acked_digest')"); !e) return e;
    return {};
  });
}

Expected<std::optional<v1::Inventory>> Outbox::QueuedInventory() {
  auto v = GetState("queued_inventory");
  if (!v) return Fail(v.error());
  if (v->empty()) return std::optional<v1::Inventory>();
  v1::Inventory inv;
  if (!inv.ParseFromString(*v)) return std::optional<v1::Inventory>();
  return std::optional<v1::Inventory>(std::move(inv));
}

Expected<std::string> Outbox::AckedDigest() { return GetState("acked_digest"); }

}  // namespace parc::agent
