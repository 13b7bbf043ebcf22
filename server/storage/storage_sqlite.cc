// The SQLite parc database. Writes go through one WriteQueue (one writer
// thread, batched transactions); reads use a small pool of query_only
// connections, which WAL lets run alongside the writer.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "fields_json.h"
#include "parc/common/timeutil.h"
#include "parc/server/storage.h"
#include "report_apply.h"
#include "schema.h"
#include "sql_util.h"
#include "sqlite_storage_testing.h"
#include "write_queue.h"

namespace parc::server {
namespace {

using detail::Cursor;
using detail::ForEachRow;
using detail::Query;
using detail::ReadSnapshot;

// Read-only connections, opened on demand and kept for reuse.
class ReadPool {
 public:
  explicit ReadPool(std::filesystem::path path) : path_(std::move(path)) {}

  class Lease {
   public:
    Lease(ReadPool* pool, std::unique_ptr<sql::Database> db) : pool_(pool), db_(std::move(db)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (db_) pool_->Return(std::move(db_));
    }
    sql::Database& operator*() const { return *db_; }

   private:
    ReadPool* pool_;
    std::unique_ptr<sql::Database> db_;
  };

  Expected<Lease> Acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        auto db = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(db));
      }
    }
    // A normal handle in query_only mode: it can take part in WAL recovery
    // after a crash, which a SQLITE_OPEN_READONLY handle cannot.
    sql::OpenOptions options;
    options.wal = false;  // already WAL; switching needs a lock readers must not take
    auto db = sql::Database::Open(path_, options);
    if (!db) return Fail(db.error());
    if (auto r = db->Exec("PRAGMA query_only=1"); !r) return Fail(r.error());
    return Lease(this, std::make_unique<sql::Database>(std::move(*db)));
  }

 private:
  static constexpr size_t kMaxIdle = 8;
  void Return(std::unique_ptr<sql::Database> db) {
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(db));
  }

  std::filesystem::path path_;
  std::mutex mu_;
  std::vector<std::unique_ptr<sql::Database>> idle_;
};

// The writer's typed tasks return a value; methods with nothing to say drop it.
ExpectedVoid Discard(Expected<bool> r) {
  if (!r) return Fail(r.error());
  return {};
}

bool ValidGroupName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

ExpectedVoid CheckGroupName(const std::string& name) {
  if (ValidGroupName(name)) return {};
  return Fail(Errc::kInvalidArgument, "group name '" + name.substr(0, 80) +
                                          "' is not valid: use 1 to 64 letters, digits, '.', '_' or '-'");
}

// Compares without stopping at the first difference, so that response time
// says nothing about how much of a guessed secret hash was right.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

const char* const kHostSelect =
    "SELECT id, hostname, enrolled_at, last_seen, revoked, revoked_at, revoke_reason, cert_fingerprint, "
    "cert_expires_at, agent_version, platform_os, platform_arch, distribution, os_pretty_name, "
    "inventory_digest, inventory_updated_at, previous_host_id, superseded_by FROM hosts h ";

HostRecord HostFromRow(const sql::Statement& s) {
  HostRecord h;
  h.id = s.Text(0);
  h.hostname = s.Text(1);
  h.enrolled_at = s.Int(2);
  h.last_seen = s.Int(3);
  h.revoked = s.Int(4) != 0;
  h.revoked_at = s.Int(5);
  h.revoke_reason = s.Text(6);
  h.cert_fingerprint = s.Text(7);
  h.cert_expires_at = s.Int(8);
  h.agent_version = s.Text(9);
  h.platform_os = s.Text(10);
  h.platform_arch = s.Text(11);
  h.distribution = s.Text(12);
  h.os_pretty_name = s.Text(13);
  h.inventory_digest = s.Text(14);
  h.inventory_updated_at = s.Int(15);
  h.previous_host_id = s.Text(16);
  h.superseded_by = s.Text(17);
  return h;
}

Expected<std::vector<HostRecord>> SelectHosts(sql::Database& db, const std::string& where,
                                              const std::vector<std::string>& args) {
  PARC_ASSIGN(c, Query(db, kHostSelect + where));
  for (size_t i = 0; i < args.size(); ++i) c->Bind(static_cast<int>(i + 1), args[i]);
  std::vector<HostRecord> hosts;
  PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { hosts.push_back(HostFromRow(s)); }));
  return hosts;
}

ExpectedVoid FillGroupsAndIdentity(sql::Database& db, HostRecord& h) {
  {
    PARC_ASSIGN(c, Query(db, "SELECT group_name FROM group_members WHERE host_id = ?1 ORDER BY group_name"));
    c->Bind(1, h.id);
    PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { h.groups.push_back(s.Text(0)); }));
  }
  PARC_ASSIGN(c, Query(db, "SELECT claim FROM host_identity WHERE host_id = ?1 ORDER BY claim"));
  c->Bind(1, h.id);
  return ForEachRow(*c, [&](sql::Statement& s) { h.identity.push_back(s.Text(0)); });
}

Expected<std::optional<HostRecord>> FindHost(sql::Database& db, const std::string& id) {
  PARC_ASSIGN(hosts, SelectHosts(db, "WHERE id = ?1", {id}));
  if (hosts.empty()) return std::optional<HostRecord>();
  PARC_TRY(FillGroupsAndIdentity(db, hosts[0]));
  return std::optional<HostRecord>(std::move(hosts[0]));
}

Expected<HostRecord> RequireHost(sql::Database& db, const std::string& id) {
  PARC_ASSIGN(host, FindHost(db, id));
  if (!host) return Fail(Errc::kNotFound, "no host with id '" + id + "'");
  return std::move(*host);
}

ExpectedVoid RequireHostExists(sql::Database& db, const std::string& id) {
  PARC_ASSIGN(c, Query(db, "SELECT 1 FROM hosts WHERE id = ?1"));
  c->Bind(1, id);
  PARC_ASSIGN(row, c->Step());
  if (!row) return Fail(Errc::kNotFound, "no host with id '" + id + "'");
  return {};
}

Error Ambiguous(const std::string& ref, const std::vector<HostRecord>& hosts, size_t shown_max) {
  std::string msg = "'" + ref + "' matches " + (hosts.size() > shown_max ? "more than " + std::to_string(shown_max)
                                                                          : std::to_string(hosts.size())) +
                    " hosts: ";
  for (size_t i = 0; i < hosts.size() && i < shown_max; ++i) {
    if (i) msg += ", ";
    msg += hosts[i].id + " (" + hosts[i].hostname + ")";
  }
  return Error(Errc::kInvalidArgument, msg + "; use the host id");
}

Expected<HostRecord> ResolveHost(sql::Database& db, const std::string& ref) {
  constexpr size_t kShown = 10;
  const std::string limit = " LIMIT " + std::to_string(kShown + 1);
  if (ref.empty()) return Fail(Errc::kInvalidArgument, "no host given");
  PARC_ASSIGN(exact, FindHost(db, ref));
  if (exact) return std::move(*exact);
  if (ref.size() >= 4) {
    // Range scan on the primary key: every id starting with ref sorts between
    // ref and ref + 0xFF (a byte that never occurs in UTF-8 text).
    PARC_ASSIGN(hosts, SelectHosts(db, "WHERE id > ?1 AND id < ?2 ORDER BY id" + limit, {ref, ref + '\xff'}));
    if (hosts.size() > 1) return Fail(Ambiguous(ref, hosts, kShown));
    if (hosts.size() == 1) {
      PARC_TRY(FillGroupsAndIdentity(db, hosts[0]));
      return std::move(hosts[0]);
    }
  }
  PARC_ASSIGN(hosts, SelectHosts(db, "WHERE hostname = ?1 COLLATE NOCASE ORDER BY id" + limit, {ref}));
  if (hosts.size() > 1) return Fail(Ambiguous(ref, hosts, kShown));
  if (hosts.empty()) return Fail(Errc::kNotFound, "no host matches '" + ref + "' (by id, id prefix or hostname)");
  PARC_TRY(FillGroupsAndIdentity(db, hosts[0]));
  return std::move(hosts[0]);
}

Expected<std::optional<GroupRecord>> FindGroup(sql::Database& db, const std::string& name) {
  GroupRecord g;
  {
    PARC_ASSIGN(c, Query(db, "SELECT name, description, created_at FROM groups WHERE name = ?1"));
    c->Bind(1, name);
    PARC_ASSIGN(row, c->Step());
    if (!row) return std::optional<GroupRecord>();
    g.name = c->Text(0);
    g.description = c->Text(1);
    g.created_at = c->Int(2);
  }
  PARC_ASSIGN(c, Query(db, "SELECT host_id FROM group_members WHERE group_name = ?1 ORDER BY host_id"));
  c->Bind(1, name);
  PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { g.host_ids.push_back(s.Text(0)); }));
  return std::optional<GroupRecord>(std::move(g));
}

Expected<GroupRecord> RequireGroup(sql::Database& db, const std::string& name) {
  PARC_ASSIGN(g, FindGroup(db, name));
  if (!g) return Fail(Errc::kNotFound, "no group named '" + name + "'");
  return std::move(*g);
}

StoredItem ItemFromRow(const sql::Statement& s, Expected<inventory::Fields> fields) {
  StoredItem item;
  item.host_id = s.Text(0);
  item.hostname = s.Text(1);
  item.section = s.Text(2);
  item.key = s.Text(3);
  if (fields) item.fields = std::move(*fields);
  return item;
}

ExpectedVoid CheckSection(const std::string& section) {
  if (section.empty() || inventory::IsSection(section)) return {};
  std::string known;
  for (const auto& s : inventory::SectionNames()) known += (known.empty() ? "" : ", ") + s;
  return Fail(Errc::kInvalidArgument, "unknown inventory section '" + section.substr(0, 64) + "' (known: " + known + ")");
}

// The earlier record of the same machine: a host sharing a firmware UUID or
// serial is strong evidence; a shared MAC or disk serial (moved NIC or disk)
// counts only when nothing stronger matches.
Expected<std::string> PreviousRecordOf(sql::Database& db, const std::string& host_id,
                                       const std::vector<std::string>& claims) {
  // Score: a firmware UUID/serial match first, then the number of shared
  // claims (a reinstalled machine keeps its NICs and disks, a clone does not),
  // then the most recently seen record.
  struct Candidate {
    bool strong = false;
    int shared = 0;
    int64_t last_seen = -1, enrolled_at = -1;
  };
  std::map<std::string, Candidate> candidates;
  PARC_ASSIGN(c, Query(db,
                       "SELECT h.id, h.last_seen, h.enrolled_at FROM host_identity i JOIN hosts h ON h.id = i.host_id "
                       "WHERE i.claim = ?1 AND h.id <> ?2"));
  for (const auto& claim : claims) {
    const bool is_strong = claim.starts_with("uuid:") || claim.starts_with("serial:");
    c->Reset();
    c->Bind(1, claim).Bind(2, host_id);
    PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
      auto& cand = candidates[s.Text(0)];
      cand.strong = cand.strong || is_strong;
      cand.shared++;
      cand.last_seen = s.Int(1);
      cand.enrolled_at = s.Int(2);
    }));
  }
  // Firmware that says another machine wins over shared NICs or disks: a disk
  // moved into a new machine, or identical test roots, is not a reinstall.
  const bool has_uuid = std::any_of(claims.begin(), claims.end(), [](const std::string& c) { return c.starts_with("uuid:"); });
  PARC_ASSIGN(other_uuid, Query(db, "SELECT 1 FROM host_identity WHERE host_id = ?1 AND claim LIKE 'uuid:%' LIMIT 1"));
  std::string best;
  const Candidate* top = nullptr;
  for (const auto& [id, cand] : candidates) {
    if (has_uuid && !cand.strong) {
      other_uuid->Reset();
      other_uuid->Bind(1, id);
      PARC_ASSIGN(row, other_uuid->Step());
      if (row) continue;
    }
    auto rank = [](const Candidate& x) { return std::tuple(x.strong, x.shared, x.last_seen, x.enrolled_at); };
    if (!top || rank(cand) > rank(*top)) {
      top = &cand;
      best = id;
    }
  }
  return best;
}

class SqliteStorage final : public Storage {
 public:
  SqliteStorage(const std::filesystem::path& path, sql::Database writer)
      : reads_(path), writes_(std::move(writer)) {}

  ~SqliteStorage() override = default;  // writes_ is declared last: drained and joined first

  ExpectedVoid CreateToken(const TokenRecord& token) override {
    if (token.id.empty() || token.secret_hash.empty())
      return Fail(Errc::kInvalidArgument, "an enrollment token needs an id and a secret");
    if (!token.group.empty()) PARC_TRY(CheckGroupName(token.group));
    return Discard(Write<bool>([token](sql::Database& db) -> Expected<bool> {
             {
               PARC_ASSIGN(c, Query(db, "SELECT 1 FROM tokens WHERE id = ?1"));
               c->Bind(1, token.id);
               PARC_ASSIGN(row, c->Step());
               if (row) return Fail(Errc::kAlreadyExists, "an enrollment token with id '" + token.id + "' already exists");
             }
             PARC_ASSIGN(c, Query(db,
                                  "INSERT INTO tokens(id, secret_hash, group_name, comment, created_at, expires_at, "
                                  "used_at, used_by_host) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
             c->Bind(1, token.id).Bind(2, token.secret_hash).Bind(3, token.group).Bind(4, token.comment);
             c->Bind(5, token.created_at).Bind(6, token.expires_at).Bind(7, token.used_at).Bind(8, token.used_by_host);
             PARC_TRY(c->Run());
             return true;
           })
        );
  }

  Expected<HostRecord> EnrollHost(const std::string& token_id, const std::string& secret_hash,
                                  const NewHost& host) override {
    if (host.id.empty()) return Fail(Errc::kInvalidArgument, "a new host needs an id");
    return Write<HostRecord>([=](sql::Database& db) -> Expected<HostRecord> {
      std::string group;
      {
        PARC_ASSIGN(c, Query(db, "SELECT secret_hash, group_name, expires_at, used_at, used_by_host FROM tokens WHERE id = ?1"));
        c->Bind(1, token_id);
        PARC_ASSIGN(row, c->Step());
        // Unknown id and wrong secret read the same, so that the answer does
        // not confirm which token ids exist. The secret is checked before the
        // token's state for the same reason.
        if (!row || !ConstantTimeEquals(c->Text(0), secret_hash))
          return Fail(Errc::kNotFound, "unknown enrollment token");
        if (c->Int(3) != 0)
          return Fail(Errc::kFailedPrecondition, "enrollment token already used (by host " + c->Text(4) + " at " +
                                                     FormatTime(c->Int(3)) + ")");
        if (c->Int(2) <= host.enrolled_at)
          return Fail(Errc::kExpired, "enrollment token expired at " + FormatTime(c->Int(2)));
        group = c->Text(1);
      }
      {
        PARC_ASSIGN(existing, SelectHosts(db, "WHERE id = ?1 OR cert_fingerprint = ?2", {host.id, host.cert_fingerprint}));
        if (!existing.empty())
          return Fail(Errc::kAlreadyExists, "host " + existing[0].id + " already has this id or certificate");
      }
      std::vector<std::string> claims = host.identity;
      std::sort(claims.begin(), claims.end());
      claims.erase(std::unique(claims.begin(), claims.end()), claims.end());
      PARC_ASSIGN(previous, PreviousRecordOf(db, host.id, claims));
      {
        PARC_ASSIGN(c, Query(db,
                             "INSERT INTO hosts(id, hostname, enrolled_at, cert_fingerprint, cert_expires_at, "
                             "platform_os, platform_arch, distribution, previous_host_id) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
        c->Bind(1, host.id).Bind(2, host.hostname).Bind(3, host.enrolled_at);
        if (host.cert_fingerprint.empty()) c->BindNull(4);
        else c->Bind(4, host.cert_fingerprint);
        c->Bind(5, host.cert_expires_at).Bind(6, host.platform_os).Bind(7, host.platform_arch);
        c->Bind(8, host.distribution).Bind(9, previous);
        PARC_TRY(c->Run());
      }
      {
        PARC_ASSIGN(c, Query(db, "UPDATE tokens SET used_at = ?2, used_by_host = ?3 WHERE id = ?1"));
        c->Bind(1, token_id).Bind(2, host.enrolled_at).Bind(3, host.id);
        PARC_TRY(c->Run());
      }
      if (!group.empty()) {
        {
          PARC_ASSIGN(c, Query(db, "INSERT OR IGNORE INTO groups(name, description, created_at) VALUES (?1, '', ?2)"));
          c->Bind(1, group).Bind(2, host.enrolled_at);
          PARC_TRY(c->Run());
        }
        PARC_TRY(AddMember(db, group, host.id));
      }
      PARC_TRY(detail::ReplaceClaims(db, host.id, claims));
      return RequireHost(db, host.id);
    });
  }

  Expected<HostRecord> GetHost(const std::string& ref) override {
    return Read<HostRecord>([&](sql::Database& db) { return ResolveHost(db, ref); });
  }

  Expected<std::vector<HostRecord>> ListHosts(const HostFilter& filter) override {
    return Read<std::vector<HostRecord>>([&](sql::Database& db) -> Expected<std::vector<HostRecord>> {
      if (!filter.group.empty()) PARC_TRY(RequireGroup(db, filter.group));
      std::vector<HostRecord> hosts;
      {
        PARC_ASSIGN(c, Query(db, std::string(kHostSelect) +
                                     "WHERE (?1 = '' OR EXISTS (SELECT 1 FROM group_members m "
                                     "WHERE m.group_name = ?1 AND m.host_id = h.id)) "
                                     "AND (?2 <= 0 OR h.last_seen < ?2) AND (?3 OR h.revoked = 0) "
                                     "ORDER BY h.hostname, h.id"));
        c->Bind(1, filter.group).Bind(2, filter.not_seen_since).Bind(3, filter.include_revoked);
        PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { hosts.push_back(HostFromRow(s)); }));
      }
      // Two scans instead of two queries per host: lists of thousands of hosts stay fast.
      std::unordered_map<std::string, HostRecord*> by_id;
      for (auto& h : hosts) by_id.emplace(h.id, &h);
      {
        PARC_ASSIGN(c, Query(db, "SELECT host_id, group_name FROM group_members ORDER BY group_name"));
        PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
          if (auto it = by_id.find(s.Text(0)); it != by_id.end()) it->second->groups.push_back(s.Text(1));
        }));
      }
      PARC_ASSIGN(c, Query(db, "SELECT host_id, claim FROM host_identity ORDER BY claim"));
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
        if (auto it = by_id.find(s.Text(0)); it != by_id.end()) it->second->identity.push_back(s.Text(1));
      }));
      return hosts;
    });
  }

  Expected<HostRecord> RevokeHost(const std::string& host_id, const std::string& reason, int64_t at) override {
    return Write<HostRecord>([=](sql::Database& db) -> Expected<HostRecord> {
      PARC_TRY(RequireHostExists(db, host_id));
      {
        // Revoking again keeps the first time and reason: that is when trust ended.
        PARC_ASSIGN(c, Query(db,
                             "UPDATE hosts SET revoked_at = ?2, revoke_reason = ?3, revoked = 1 "
                             "WHERE id = ?1 AND revoked = 0"));
        c->Bind(1, host_id).Bind(2, at).Bind(3, reason);
        PARC_TRY(c->Run());
      }
      return RequireHost(db, host_id);
    });
  }

  ExpectedVoid MarkSuperseded(const std::string& old_host_id, const std::string& new_host_id) override {
    if (old_host_id == new_host_id) return Fail(Errc::kInvalidArgument, "a host cannot supersede itself");
    return Discard(Write<bool>([=](sql::Database& db) -> Expected<bool> {
             PARC_TRY(RequireHostExists(db, old_host_id));
             PARC_TRY(RequireHostExists(db, new_host_id));
             {
               PARC_ASSIGN(c, Query(db, "UPDATE hosts SET superseded_by = ?2 WHERE id = ?1"));
               c->Bind(1, old_host_id).Bind(2, new_host_id);
               PARC_TRY(c->Run());
             }
             PARC_ASSIGN(c, Query(db, "UPDATE hosts SET previous_host_id = ?1 WHERE id = ?2 AND previous_host_id = ''"));
             c->Bind(1, old_host_id).Bind(2, new_host_id);
             PARC_TRY(c->Run());
             return true;
           })
        );
  }

  Expected<std::vector<std::string>> RevokedCertificateFingerprints() override {
    return Read<std::vector<std::string>>([](sql::Database& db) -> Expected<std::vector<std::string>> {
      std::vector<std::string> out;
      PARC_ASSIGN(c, Query(db,
                           "SELECT cert_fingerprint FROM hosts WHERE revoked = 1 AND cert_fingerprint IS NOT NULL "
                           "ORDER BY cert_fingerprint"));
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { out.push_back(s.Text(0)); }));
      return out;
    });
  }

  void TouchHostAsync(const std::string& host_id, int64_t at, const std::string& agent_version,
                      const std::string& hostname) override {
    writes_.Submit<bool>(
        [=](sql::Database& db) -> Expected<bool> {
          PARC_ASSIGN(c, Query(db,
                               "UPDATE hosts SET last_seen = MAX(last_seen, ?2), "
                               "agent_version = CASE WHEN ?3 <> '' THEN ?3 ELSE agent_version END, "
                               "hostname = CASE WHEN ?4 <> '' THEN ?4 ELSE hostname END WHERE id = ?1"));
          c->Bind(1, host_id).Bind(2, at).Bind(3, agent_version).Bind(4, hostname);
          PARC_TRY(c->Run());
          return true;
        },
        [host_id](Expected<bool> r) {
          if (!r) spdlog::warn("could not record that host {} was seen: {}", host_id, r.error().message());
        });
  }

  void ApplyReportAsync(ReportIn report, std::function<void(Expected<ReportOutcome>)> done) override {
    // Validation and encoding happen here, on the caller's thread; the writer only runs SQL.
    auto prepared = detail::PrepareReport(std::move(report));
    if (!prepared) {
      // Still answered from the writer thread, as every other outcome is: a
      // caller may hold a lock around this call.
      writes_.Submit<ReportOutcome>([e = prepared.error()](sql::Database&) -> Expected<ReportOutcome> { return Fail(e); },
                                    std::move(done));
      return;
    }
    writes_.Submit<ReportOutcome>(
        [p = std::move(*prepared)](sql::Database& db) { return detail::ApplyPreparedReport(db, *p); }, std::move(done));
  }

  Expected<std::vector<StoredItem>> GetInventory(const std::string& host_id, const std::string& section) override {
    PARC_TRY(CheckSection(section));
    return Read<std::vector<StoredItem>>([&](sql::Database& db) -> Expected<std::vector<StoredItem>> {
      PARC_TRY(RequireHostExists(db, host_id));
      std::vector<StoredItem> items;
      PARC_ASSIGN(c, Query(db,
                           "SELECT i.host_id, h.hostname, i.section, i.item_key, i.fields FROM inventory_items i "
                           "JOIN hosts h ON h.id = i.host_id WHERE i.host_id = ?1 AND (?2 = '' OR i.section = ?2) "
                           "ORDER BY i.section, i.item_key"));
      c->Bind(1, host_id).Bind(2, section);
      std::optional<Error> bad;
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
        auto fields = detail::DecodeFields(s.Text(4));
        if (!fields) bad = fields.error();
        items.push_back(ItemFromRow(s, std::move(fields)));
        return !bad;
      }));
      if (bad) return Fail(*bad);
      return items;
    });
  }

  ExpectedVoid ExportInventory(const std::string& section, const std::string& group,
                               const std::function<bool(const StoredItem&)>& fn) override {
    PARC_TRY(CheckSection(section));
    return Discard(Read<bool>([&](sql::Database& db) -> Expected<bool> {
             if (!group.empty()) PARC_TRY(RequireGroup(db, group));
             PARC_ASSIGN(c, Query(db,
                                  "SELECT i.host_id, h.hostname, i.section, i.item_key, i.fields FROM inventory_items i "
                                  "JOIN hosts h ON h.id = i.host_id WHERE (?1 = '' OR i.section = ?1) AND "
                                  "(?2 = '' OR EXISTS (SELECT 1 FROM group_members m WHERE m.group_name = ?2 "
                                  "AND m.host_id = i.host_id)) ORDER BY i.host_id, i.section, i.item_key"));
             c->Bind(1, section).Bind(2, group);
             std::optional<Error> bad;
             PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
               auto fields = detail::DecodeFields(s.Text(4));
               if (!fields) {
                 bad = fields.error();
                 return false;
               }
               return fn(ItemFromRow(s, std::move(fields)));
             }));
             if (bad) return Fail(*bad);
             return true;
           })
        );
  }

  Expected<std::map<std::string, uint32_t>> SectionCounts(const std::string& host_id) override {
    return Read<std::map<std::string, uint32_t>>([&](sql::Database& db) -> Expected<std::map<std::string, uint32_t>> {
      PARC_TRY(RequireHostExists(db, host_id));
      std::map<std::string, uint32_t> counts;
      PARC_ASSIGN(c, Query(db, "SELECT section, COUNT(*) FROM inventory_items WHERE host_id = ?1 GROUP BY section"));
      c->Bind(1, host_id);
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { counts[s.Text(0)] = static_cast<uint32_t>(s.Int(1)); }));
      return counts;
    });
  }

  Expected<std::vector<HistoryRecord>> GetHistory(const std::string& host_id, int64_t since,
                                                  const std::string& section) override {
    PARC_TRY(CheckSection(section));
    return Read<std::vector<HistoryRecord>>([&](sql::Database& db) -> Expected<std::vector<HistoryRecord>> {
      PARC_TRY(RequireHostExists(db, host_id));
      std::vector<HistoryRecord> out;
      PARC_ASSIGN(c, Query(db,
                           "SELECT at, report_id, section, item_key, change, field, old_value, new_value "
                           "FROM inventory_history WHERE host_id = ?1 AND at >= ?2 AND (?3 = '' OR section = ?3) "
                           "ORDER BY at, id"));
      c->Bind(1, host_id).Bind(2, since).Bind(3, section);
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
        HistoryRecord r;
        r.at = s.Int(0);
        r.report_id = s.Text(1);
        r.change = {s.Text(2), s.Text(3), s.Text(4), s.Text(5), s.Text(6), s.Text(7)};
        out.push_back(std::move(r));
      }));
      return out;
    });
  }

  Expected<GroupRecord> CreateGroup(const std::string& name, const std::string& description, int64_t at) override {
    PARC_TRY(CheckGroupName(name));
    return Write<GroupRecord>([=](sql::Database& db) -> Expected<GroupRecord> {
      PARC_ASSIGN(existing, FindGroup(db, name));
      if (existing) return Fail(Errc::kAlreadyExists, "group '" + name + "' already exists");
      {
        PARC_ASSIGN(c, Query(db, "INSERT INTO groups(name, description, created_at) VALUES (?1, ?2, ?3)"));
        c->Bind(1, name).Bind(2, description).Bind(3, at);
        PARC_TRY(c->Run());
      }
      return RequireGroup(db, name);
    });
  }

  Expected<std::vector<GroupRecord>> ListGroups() override {
    return Read<std::vector<GroupRecord>>([](sql::Database& db) -> Expected<std::vector<GroupRecord>> {
      std::vector<GroupRecord> groups;
      std::map<std::string, size_t> index;
      {
        PARC_ASSIGN(c, Query(db, "SELECT name, description, created_at FROM groups ORDER BY name"));
        PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
          index[s.Text(0)] = groups.size();
          groups.push_back({s.Text(0), s.Text(1), s.Int(2), {}});
        }));
      }
      PARC_ASSIGN(c, Query(db, "SELECT group_name, host_id FROM group_members ORDER BY group_name, host_id"));
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
        if (auto it = index.find(s.Text(0)); it != index.end()) groups[it->second].host_ids.push_back(s.Text(1));
      }));
      return groups;
    });
  }

  Expected<GroupRecord> AddToGroup(const std::string& group, const std::string& host_id) override {
    return Write<GroupRecord>([=](sql::Database& db) -> Expected<GroupRecord> {
      PARC_TRY(RequireGroup(db, group));
      PARC_TRY(RequireHostExists(db, host_id));
      PARC_TRY(AddMember(db, group, host_id));
      return RequireGroup(db, group);
    });
  }

  Expected<GroupRecord> RemoveFromGroup(const std::string& group, const std::string& host_id) override {
    return Write<GroupRecord>([=](sql::Database& db) -> Expected<GroupRecord> {
      PARC_TRY(RequireGroup(db, group));
      PARC_TRY(RequireHostExists(db, host_id));
      {
        PARC_ASSIGN(c, Query(db, "DELETE FROM group_members WHERE group_name = ?1 AND host_id = ?2"));
        c->Bind(1, group).Bind(2, host_id);
        PARC_TRY(c->Run());
      }
      return RequireGroup(db, group);
    });
  }

  Expected<std::vector<DuplicateSet>> ListDuplicates() override {
    return Read<std::vector<DuplicateSet>>([](sql::Database& db) -> Expected<std::vector<DuplicateSet>> {
      std::vector<DuplicateSet> out;
      PARC_ASSIGN(c, Query(db,
                           "SELECT i.claim, i.host_id FROM host_identity i JOIN hosts h ON h.id = i.host_id "
                           "WHERE h.revoked = 0 AND h.superseded_by = '' ORDER BY i.claim, i.host_id"));
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
        std::string claim = s.Text(0);
        if (out.empty() || out.back().identity != claim) out.push_back({std::move(claim), {}});
        out.back().host_ids.push_back(s.Text(1));
      }));
      std::erase_if(out, [](const DuplicateSet& d) { return d.host_ids.size() < 2; });
      return out;
    });
  }

  ExpectedVoid AppendAudit(const AuditRecord& record) override {
    return Discard(Write<bool>([record](sql::Database& db) -> Expected<bool> {
             PARC_ASSIGN(c, Query(db, "INSERT INTO audit_log(at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)"));
             c->Bind(1, record.at).Bind(2, record.actor).Bind(3, record.action).Bind(4, record.target);
             c->Bind(5, record.detail);
             PARC_TRY(c->Run());
             return true;
           })
        );
  }

  Expected<std::vector<AuditRecord>> ListAudit(int64_t since, uint32_t limit) override {
    return Read<std::vector<AuditRecord>>([&](sql::Database& db) -> Expected<std::vector<AuditRecord>> {
      std::vector<AuditRecord> out;
      PARC_ASSIGN(c, Query(db,
                           "SELECT at, actor, action, target, detail FROM audit_log WHERE at >= ?1 "
                           "ORDER BY at, id LIMIT ?2"));
      c->Bind(1, since).Bind(2, limit == 0 ? int64_t{-1} : int64_t{limit});
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
        out.push_back({s.Int(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4)});
      }));
      return out;
    });
  }

  void Flush() override { writes_.Flush(); }

  ExpectedVoid LimitSizeForTesting(int64_t extra_pages) {
    return Discard(Write<bool>([extra_pages](sql::Database& db) -> Expected<bool> {
             int64_t limit = 1073741823;  // SQLite's default maximum
             if (extra_pages > 0) {
               PARC_ASSIGN(c, Query(db, "PRAGMA page_count"));
               PARC_ASSIGN(row, c->Step());
               (void)row;
               limit = c->Int(0) + extra_pages;
             }
             PARC_TRY(db.Exec("PRAGMA max_page_count = " + std::to_string(limit)));
             return true;
           })
        );
  }

 private:
  static ExpectedVoid AddMember(sql::Database& db, const std::string& group, const std::string& host_id) {
    PARC_ASSIGN(c, Query(db, "INSERT OR IGNORE INTO group_members(group_name, host_id) VALUES (?1, ?2)"));
    c->Bind(1, group).Bind(2, host_id);
    return c->Run();
  }

  template <typename T>
  Expected<T> Write(std::function<Expected<T>(sql::Database&)> fn) {
    return writes_.Call<T>(std::move(fn));
  }

  template <typename T, typename Fn>
  Expected<T> Read(Fn&& fn) {
    PARC_ASSIGN(lease, reads_.Acquire());
    sql::Database& db = *lease;
    PARC_ASSIGN(snapshot, ReadSnapshot::Begin(db));
    (void)snapshot;
    return fn(db);
  }

  ReadPool reads_;
  detail::WriteQueue writes_;
};

}  // namespace

Expected<std::unique_ptr<Storage>> OpenSqliteStorage(const std::string& path) {
  auto db = sql::Database::Open(path);
  if (!db) return Fail(db.error().WithContext("opening the parc database"));
  if (auto r = sql::Migrate(*db, detail::Migrations()); !r)
    return Fail(r.error().WithContext("upgrading the parc database schema"));
  // The writer reads back what it changes (current items, claims): a larger
  // page cache than SQLite's 2 MB default keeps a busy fleet's working set.
  if (auto r = db->Exec("PRAGMA cache_size = -32768"); !r) return Fail(r.error());
  if (auto r = db->Exec("PRAGMA temp_store = MEMORY"); !r) return Fail(r.error());
  return std::unique_ptr<Storage>(std::make_unique<SqliteStorage>(path, std::move(*db)));
}

ExpectedVoid LimitDatabaseSizeForTesting(Storage& storage, int64_t extra_pages) {
  auto* sqlite = dynamic_cast<SqliteStorage*>(&storage);
  if (!sqlite) return Fail(Errc::kInvalidArgument, "not a SQLite parc database");
  return sqlite->LimitSizeForTesting(extra_pages);
}

}  // namespace parc::server
