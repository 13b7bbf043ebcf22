// SQLite implementation of NetbootStore: its own connection (like the policy
// store), serialised by a mutex. Traffic is a handful of rows per installed
// machine.
#include <mutex>

#include "parc/server/netboot_store.h"
#include "sql_util.h"

namespace parc::server {
namespace {

using detail::Cursor;

constexpr const char* kHostColumns =
    "h.mac, h.hostname, h.group_name, h.os, h.disk, h.locale, h.keyboard, h.timezone, h.asset, h.comment, "
    "h.created_at, h.created_by, h.armed_until, h.answer_fetched_at, h.answer_fetched_by, h.token_id, "
    "COALESCE(t.expires_at, 0), COALESCE(t.used_at, 0), COALESCE(t.used_by_host, '')";
constexpr const char* kHostFrom = " FROM netboot_hosts h LEFT JOIN tokens t ON t.id = h.token_id AND h.token_id != ''";

NetbootHostRecord ReadHost(const sql::Statement& s) {
  NetbootHostRecord h;
  std::string* text[] = {&h.mac, &h.hostname, &h.group, &h.os, &h.disk, &h.locale, &h.keyboard, &h.timezone,
                         &h.asset, &h.comment};
  for (int i = 0; i < 10; ++i) *text[i] = s.Text(i);
  h.created_at = s.Int(10);
  h.created_by = s.Text(11);
  h.armed_until = s.Int(12);
  h.answer_fetched_at = s.Int(13);
  h.answer_fetched_by = s.Text(14);
  h.token_id = s.Text(15);
  h.token_expires_at = s.Int(16);
  h.token_used_at = s.Int(17);
  h.token_used_by = s.Text(18);
  return h;
}

class SqliteNetbootStore final : public NetbootStore {
 public:
  explicit SqliteNetbootStore(sql::Database db) : db_(std::move(db)) {}

  ExpectedVoid PutHost(const NetbootHostRecord& h) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      {
        PARC_ASSIGN(c, Q("SELECT mac FROM netboot_hosts WHERE hostname = ?1 AND mac != ?2"));
        c->Bind(1, h.hostname).Bind(2, h.mac);
        PARC_ASSIGN(row, c->Step());
        if (row)
          return Fail(Errc::kAlreadyExists, "host name " + h.hostname + " is already recorded for " + c->Text(0) +
                                                " (parcctl netboot remove " + c->Text(0) + " first)");
      }
      PARC_ASSIGN(c, Q("INSERT OR REPLACE INTO netboot_hosts(mac, hostname, group_name, os, disk, locale, keyboard, "
                       "timezone, asset, comment, created_at, created_by, armed_until, answer_fetched_at, "
                       "answer_fetched_by, token_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                       "?14, ?15, ?16)"));
      c->Bind(1, h.mac).Bind(2, h.hostname).Bind(3, h.group).Bind(4, h.os).Bind(5, h.disk).Bind(6, h.locale);
      c->Bind(7, h.keyboard).Bind(8, h.timezone).Bind(9, h.asset).Bind(10, h.comment).Bind(11, h.created_at);
      c->Bind(12, h.created_by).Bind(13, h.armed_until).Bind(14, h.answer_fetched_at).Bind(15, h.answer_fetched_by);
      c->Bind(16, h.token_id);
      return c->Run();
    });
  }

  Expected<NetbootHostRecord> GetHost(const std::string& key) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kHostColumns + kHostFrom + " WHERE h.mac = ?1 OR h.hostname = ?1"));
    c->Bind(1, key);
    PARC_ASSIGN(row, c->Step());
    if (!row) return Fail(Errc::kNotFound, "no machine " + key + " recorded for network installation");
    return ReadHost(*c);
  }

  Expected<std::vector<NetbootHostRecord>> ListHosts(const std::string& group) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q(std::string("SELECT ") + kHostColumns + kHostFrom +
                     " WHERE ?1 = '' OR h.group_name = ?1 ORDER BY h.hostname"));
    c->Bind(1, group);
    std::vector<NetbootHostRecord> out;
    PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) { out.push_back(ReadHost(s)); }));
    return out;
  }

  ExpectedVoid RemoveHost(const std::string& mac) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("DELETE FROM netboot_hosts WHERE mac = ?1"));
    c->Bind(1, mac);
    PARC_TRY(c->Run());
    if (db_.Changes() == 0) return Fail(Errc::kNotFound, "no machine " + mac + " recorded for network installation");
    return {};
  }

  ExpectedVoid Arm(const std::string& mac, int64_t until) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("UPDATE netboot_hosts SET armed_until = ?2 WHERE mac = ?1"));
    c->Bind(1, mac).Bind(2, until);
    PARC_TRY(c->Run());
    if (db_.Changes() == 0) return Fail(Errc::kNotFound, "no machine " + mac + " recorded for network installation");
    return {};
  }

  ExpectedVoid RecordAnswer(const std::string& mac, const std::string& token_id, int64_t now,
                            const std::string& peer) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      std::string previous;
      {
        PARC_ASSIGN(c, Q("SELECT token_id, armed_until FROM netboot_hosts WHERE mac = ?1"));
        c->Bind(1, mac);
        PARC_ASSIGN(row, c->Step());
        if (!row) return Fail(Errc::kNotFound, "no machine " + mac + " recorded for network installation");
        if (c->Int(1) <= now)
          return Fail(Errc::kFailedPrecondition, "machine " + mac + " is not armed for installation");
        previous = c->Text(0);
      }
      if (!previous.empty() && previous != token_id) PARC_TRY(ExpireLocked(previous, now));
      PARC_ASSIGN(c, Q("UPDATE netboot_hosts SET armed_until = 0, answer_fetched_at = ?2, answer_fetched_by = ?3, "
                       "token_id = ?4 WHERE mac = ?1"));
      c->Bind(1, mac).Bind(2, now).Bind(3, peer.substr(0, 128)).Bind(4, token_id);
      return c->Run();
    });
  }

  ExpectedVoid ExpireToken(const std::string& token_id, int64_t now) override {
    std::lock_guard lock(mutex_);
    return ExpireLocked(token_id, now);
  }

  ExpectedVoid PutAsset(const NetbootAssetRecord& a) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      {
        PARC_ASSIGN(c, Q("DELETE FROM netboot_asset_files WHERE asset = ?1"));
        c->Bind(1, a.name);
        PARC_TRY(c->Run());
      }
      {
        PARC_ASSIGN(c, Q("INSERT OR REPLACE INTO netboot_assets(name, cmdline, created_at, created_by) "
                         "VALUES (?1, ?2, ?3, ?4)"));
        c->Bind(1, a.name).Bind(2, a.cmdline).Bind(3, a.created_at).Bind(4, a.created_by);
        PARC_TRY(c->Run());
      }
      int position = 0;
      for (const auto& f : a.files) {
        PARC_ASSIGN(c, Q("INSERT INTO netboot_asset_files(asset, position, name, role, sha256, size) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
        c->Bind(1, a.name).Bind(2, position++).Bind(3, f.name).Bind(4, f.role).Bind(5, f.sha256);
        c->Bind(6, static_cast<int64_t>(f.size));
        PARC_TRY(c->Run());
      }
      return {};
    });
  }

  Expected<NetbootAssetRecord> GetAsset(const std::string& name) override {
    std::lock_guard lock(mutex_);
    NetbootAssetRecord a;
    {
      PARC_ASSIGN(c, Q("SELECT name, cmdline, created_at, created_by FROM netboot_assets WHERE name = ?1"));
      c->Bind(1, name);
      PARC_ASSIGN(row, c->Step());
      if (!row) return Fail(Errc::kNotFound, "no boot files registered as '" + name + "' (parcctl netboot assets add)");
      a.name = c->Text(0);
      a.cmdline = c->Text(1);
      a.created_at = c->Int(2);
      a.created_by = c->Text(3);
    }
    PARC_TRY(ReadFiles(a));
    return a;
  }

  Expected<std::vector<NetbootAssetRecord>> ListAssets() override {
    std::lock_guard lock(mutex_);
    std::vector<NetbootAssetRecord> out;
    {
      PARC_ASSIGN(c, Q("SELECT name, cmdline, created_at, created_by FROM netboot_assets ORDER BY name"));
      PARC_TRY(detail::ForEachRow(*c, [&](sql::Statement& s) {
        out.push_back({s.Text(0), s.Text(1), s.Int(2), s.Text(3), {}});
      }));
    }
    for (auto& a : out) PARC_TRY(ReadFiles(a));
    return out;
  }

  ExpectedVoid RemoveAsset(const std::string& name) override {
    std::lock_guard lock(mutex_);
    return db_.Transaction([&]() -> ExpectedVoid {
      {
        PARC_ASSIGN(c, Q("DELETE FROM netboot_asset_files WHERE asset = ?1"));
        c->Bind(1, name);
        PARC_TRY(c->Run());
      }
      PARC_ASSIGN(c, Q("DELETE FROM netboot_assets WHERE name = ?1"));
      c->Bind(1, name);
      PARC_TRY(c->Run());
      if (db_.Changes() == 0) return Fail(Errc::kNotFound, "no boot files registered as '" + name + "'");
      return {};
    });
  }

  ExpectedVoid SetTemplate(const NetbootTemplateRecord& t) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("INSERT OR REPLACE INTO netboot_templates(os, text, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)"));
    c->Bind(1, t.os).Bind(2, t.text).Bind(3, t.updated_at).Bind(4, t.updated_by);
    return c->Run();
  }

  Expected<std::optional<NetbootTemplateRecord>> GetTemplate(const std::string& os) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("SELECT os, text, updated_at, updated_by FROM netboot_templates WHERE os = ?1"));
    c->Bind(1, os);
    PARC_ASSIGN(row, c->Step());
    if (!row) return std::optional<NetbootTemplateRecord>();
    return std::optional<NetbootTemplateRecord>(NetbootTemplateRecord{c->Text(0), c->Text(1), c->Int(2), c->Text(3)});
  }

  ExpectedVoid RemoveTemplate(const std::string& os) override {
    std::lock_guard lock(mutex_);
    PARC_ASSIGN(c, Q("DELETE FROM netboot_templates WHERE os = ?1"));
    c->Bind(1, os);
    return c->Run();
  }

 private:
  Expected<Cursor> Q(const std::string& sql) { return detail::Query(db_, sql); }

  ExpectedVoid ExpireLocked(const std::string& token_id, int64_t now) {
    PARC_ASSIGN(c, Q("UPDATE tokens SET expires_at = MIN(expires_at, ?2) WHERE id = ?1 AND used_at = 0"));
    c->Bind(1, token_id).Bind(2, now);
    return c->Run();
  }

  ExpectedVoid ReadFiles(NetbootAssetRecord& a) {
    PARC_ASSIGN(c, Q("SELECT name, role, sha256, size FROM netboot_asset_files WHERE asset = ?1 ORDER BY position"));
    c->Bind(1, a.name);
    return detail::ForEachRow(*c, [&](sql::Statement& s) {
      a.files.push_back({s.Text(0), s.Text(1), s.Text(2), static_cast<uint64_t>(s.Int(3))});
    });
  }

  std::mutex mutex_;
  sql::Database db_;
};

}  // namespace

Expected<std::unique_ptr<NetbootStore>> OpenSqliteNetbootStore(const std::string& path) {
  auto db = sql::Database::Open(path, sql::OpenOptions{.busy_timeout_ms = 30000});
  if (!db) return Fail(db.error().WithContext("opening the parc database for network installation"));
  auto probe = db->Prepare("SELECT 1 FROM sqlite_master WHERE name = 'netboot_hosts'");
  if (!probe) return Fail(probe.error());
  auto row = probe->Step();
  if (!row) return Fail(row.error());
  if (!*row) return Fail(Errc::kFailedPrecondition, "the parc database has no netboot tables (not migrated)");
  return std::unique_ptr<NetbootStore>(std::make_unique<SqliteNetbootStore>(std::move(*db)));
}

}  // namespace parc::server
