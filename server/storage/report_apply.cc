#include "report_apply.h"

#include "fields_json.h"
#include "sql_util.h"

namespace parc::server::detail {
namespace {

using inventory::ItemId;

const std::string& EmptyInventoryDigest() {
  static const std::string kDigest = inventory::Digest({});
  return kDigest;
}

std::string FieldOr(const inventory::Fields& fields, const char* name) {
  auto it = fields.find(name);
  return it == fields.end() ? std::string() : it->second;
}

bool IsIdentitySection(const std::string& section) {
  return section == "hardware" || section == "interfaces" || section == "disks";
}

struct HostState {
  bool exists = false;
  bool duplicate = false;
  std::string digest;
};

Expected<HostState> LoadHostState(sql::Database& db, const ReportIn& in) {
  HostState state;
  {
    PARC_ASSIGN(c, Query(db, "SELECT inventory_digest FROM hosts WHERE id = ?1"));
    c->Bind(1, in.host_id);
    PARC_ASSIGN(row, c->Step());
    if (!row) return state;
    state.exists = true;
    state.digest = c->Text(0);
  }
  PARC_ASSIGN(c, Query(db, "SELECT 1 FROM reports WHERE host_id = ?1 AND report_id = ?2"));
  c->Bind(1, in.host_id).Bind(2, in.report_id);
  PARC_ASSIGN(seen, c->Step());
  state.duplicate = seen;
  return state;
}

ExpectedVoid RecordReport(sql::Database& db, const ReportIn& in, const char* kind) {
  PARC_ASSIGN(c, Query(db,
                       "INSERT INTO reports(host_id, report_id, sequence, received_at, kind) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)"));
  c->Bind(1, in.host_id).Bind(2, in.report_id).Bind(3, static_cast<int64_t>(in.sequence)).Bind(4, in.received_at);
  c->Bind(5, kind);
  return c->Run();
}

// The per-row statements of one report, prepared once and rebound per row.
class ItemWriter {
 public:
  static Expected<ItemWriter> Open(sql::Database& db, const ReportIn& in) {
    ItemWriter w(in);
    PARC_ASSIGN(upsert, db.Cached(
                            "INSERT INTO inventory_items(host_id, section, item_key, fields, updated_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(host_id, section, item_key) "
                            "DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at"));
    PARC_ASSIGN(remove, db.Cached("DELETE FROM inventory_items WHERE host_id = ?1 AND section = ?2 AND item_key = ?3"));
    PARC_ASSIGN(history, db.Cached(
                             "INSERT INTO inventory_history(host_id, at, report_id, section, item_key, change, "
                             "field, old_value, new_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    w.upsert_ = upsert;
    w.remove_ = remove;
    w.history_ = history;
    return w;
  }

  ExpectedVoid Upsert(const ItemId& id, const std::string& json) {
    upsert_->Reset();
    upsert_->Bind(1, in_->host_id).Bind(2, id.first).Bind(3, id.second).Bind(4, json).Bind(5, in_->received_at);
    return upsert_->Run();
  }
  ExpectedVoid Remove(const ItemId& id) {
    remove_->Reset();
    remove_->Bind(1, in_->host_id).Bind(2, id.first).Bind(3, id.second);
    return remove_->Run();
  }
  ExpectedVoid History(const inventory::Change& ch) {
    history_->Reset();
    history_->Bind(1, in_->host_id).Bind(2, in_->received_at).Bind(3, in_->report_id);
    history_->Bind(4, ch.section).Bind(5, ch.key).Bind(6, ch.change);
    history_->Bind(7, ch.field).Bind(8, ch.old_value).Bind(9, ch.new_value);
    ++rows_;
    return history_->Run();
  }
  ExpectedVoid Added(const ItemId& id, const std::string& json) {
    PARC_TRY(Upsert(id, json));
    return History({id.first, id.second, "added", "", "", ""});
  }
  ExpectedVoid Removed(const ItemId& id) {
    PARC_TRY(Remove(id));
    return History({id.first, id.second, "removed", "", "", ""});
  }
  // An item whose stored text differs: history for its non-volatile field
  // changes only (none when only volatile fields moved), the row always.
  ExpectedVoid Changed(const ItemId& id, const std::string& old_json, const inventory::Fields& now,
                       const std::string& json) {
    PARC_ASSIGN(old_fields, DecodeFields(old_json));
    inventory::ItemMap before{{id, std::move(old_fields)}};
    inventory::ItemMap after{{id, now}};
    for (const auto& ch : inventory::HistoryChanges(before, after)) PARC_TRY(History(ch));
    return Upsert(id, json);
  }

  size_t rows() const { return rows_; }
  // Leaves no statement mid-execution (they are cached and shared).
  ~ItemWriter() {
    for (sql::Statement* s : {upsert_, remove_, history_})
      if (s) s->Reset();
  }
  ItemWriter(ItemWriter&& o) noexcept
      : in_(o.in_), upsert_(std::exchange(o.upsert_, nullptr)), remove_(std::exchange(o.remove_, nullptr)),
        history_(std::exchange(o.history_, nullptr)), rows_(o.rows_) {}

 private:
  explicit ItemWriter(const ReportIn& in) : in_(&in) {}
  const ReportIn* in_;
  sql::Statement* upsert_ = nullptr;
  sql::Statement* remove_ = nullptr;
  sql::Statement* history_ = nullptr;
  size_t rows_ = 0;
};

ExpectedVoid UpdateHostInventory(sql::Database& db, const ReportIn& in, const std::string& digest,
                                 const std::optional<std::string>& os_pretty_name) {
  PARC_ASSIGN(c, Query(db,
                       "UPDATE hosts SET inventory_digest = ?2, inventory_updated_at = ?3, "
                       "os_pretty_name = CASE WHEN ?5 THEN ?4 ELSE os_pretty_name END WHERE id = ?1"));
  c->Bind(1, in.host_id).Bind(2, digest).Bind(3, in.received_at);
  c->Bind(4, os_pretty_name.value_or("")).Bind(5, os_pretty_name.has_value());
  return c->Run();
}

Expected<ReportOutcome> ApplyFull(sql::Database& db, const PreparedReport& p, const std::string& stored_digest) {
  const ReportIn& in = p.in;
  ReportOutcome out;
  out.digest = p.digest;
  if (p.digest != stored_digest) {
    // Compare stored texts with the new ones: only items whose text differs
    // are parsed, so a re-report of 2,000 packages costs no JSON parsing.
    std::map<ItemId, std::string> current;
    {
      PARC_ASSIGN(c, Query(db, "SELECT section, item_key, fields FROM inventory_items WHERE host_id = ?1"));
      c->Bind(1, in.host_id);
      PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { current.emplace(ItemId{s.Text(0), s.Text(1)}, s.Text(2)); }));
    }
    PARC_ASSIGN(w, ItemWriter::Open(db, in));
    // A merge walk over two sorted maps yields the rows of
    // HistoryChanges(current, new) in the same order, without copying items.
    auto cur = current.begin();
    auto now = in.full->begin();
    size_t index = 0;
    while (cur != current.end() || now != in.full->end()) {
      if (now == in.full->end() || (cur != current.end() && cur->first < now->first)) {
        PARC_TRY(w.Removed(cur->first));
        ++cur;
      } else if (cur == current.end() || now->first < cur->first) {
        PARC_TRY(w.Added(now->first, p.json[index]));
        ++now, ++index;
      } else {
        if (cur->second != p.json[index]) PARC_TRY(w.Changed(now->first, cur->second, now->second, p.json[index]));
        ++cur, ++now, ++index;
      }
    }
    out.history_rows = w.rows();
  }
  PARC_TRY(UpdateHostInventory(db, in, p.digest, p.os_pretty_name));
  PARC_TRY(ReplaceClaims(db, in.host_id, p.claims));
  PARC_TRY(RecordReport(db, in, "full"));
  return out;
}

Expected<inventory::ItemMap> LoadIdentitySections(sql::Database& db, const std::string& host_id) {
  inventory::ItemMap items;
  PARC_ASSIGN(c, Query(db,
                       "SELECT section, item_key, fields FROM inventory_items WHERE host_id = ?1 "
                       "AND section IN ('hardware', 'interfaces', 'disks')"));
  c->Bind(1, host_id);
  std::optional<Error> bad;
  PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) {
    auto fields = DecodeFields(s.Text(2));
    if (!fields) {
      bad = fields.error();
      return false;
    }
    items.emplace(ItemId{s.Text(0), s.Text(1)}, std::move(*fields));
    return true;
  }));
  if (bad) return Fail(*bad);
  return items;
}

Expected<ReportOutcome> ApplyDelta(sql::Database& db, const PreparedReport& p, const std::string& stored_digest) {
  const ReportIn& in = p.in;
  const v1::InventoryDelta& delta = *in.delta;
  const std::string& base = stored_digest.empty() ? EmptyInventoryDigest() : stored_digest;
  ReportOutcome out;
  if (delta.base_digest() != base) {
    // Not recorded: the agent answers with a full report, and this report id
    // must stay usable should it ever be resent after that.
    out.full_wanted = true;
    out.digest = stored_digest;
    return out;
  }
  PARC_ASSIGN(w, ItemWriter::Open(db, in));
  std::optional<std::string> os_pretty_name;
  bool identity_touched = false;
  for (const auto& [id, item] : p.touched) {
    std::optional<std::string> old;
    {
      PARC_ASSIGN(c, Query(db, "SELECT fields FROM inventory_items WHERE host_id = ?1 AND section = ?2 AND item_key = ?3"));
      c->Bind(1, in.host_id).Bind(2, id.first).Bind(3, id.second);
      PARC_ASSIGN(row, c->Step());
      if (row) old = c->Text(0);
    }
    if (!item.fields) {
      if (old) PARC_TRY(w.Removed(id));
    } else if (!old) {
      PARC_TRY(w.Added(id, item.json));
    } else if (*old != item.json) {
      PARC_TRY(w.Changed(id, *old, *item.fields, item.json));
    }
    if (id.first == "os") os_pretty_name = item.fields ? FieldOr(*item.fields, "pretty_name") : std::string();
    if (IsIdentitySection(id.first)) identity_touched = true;
  }
  // The delta's own digest is trusted: checking it would mean loading the
  // whole inventory for every delta. A wrong one only makes the next delta
  // mismatch, which asks the agent for a full report that repairs everything.
  PARC_TRY(UpdateHostInventory(db, in, delta.digest(), os_pretty_name));
  if (identity_touched) {
    PARC_ASSIGN(identity_items, LoadIdentitySections(db, in.host_id));
    PARC_TRY(ReplaceClaims(db, in.host_id, IdentityClaims(identity_items)));
  }
  PARC_TRY(RecordReport(db, in, "delta"));
  out.history_rows = w.rows();
  out.digest = delta.digest();
  return out;
}

}  // namespace

Expected<std::shared_ptr<PreparedReport>> PrepareReport(ReportIn in) {
  if (in.host_id.empty()) return Fail(Errc::kInvalidArgument, "inventory report without a host id");
  if (in.report_id.empty()) return Fail(Errc::kInvalidArgument, "inventory report without a report id");
  if (in.full.has_value() == in.delta.has_value())
    return Fail(Errc::kInvalidArgument, "an inventory report must hold either a full inventory or a delta");
  auto p = std::make_shared<PreparedReport>();
  if (in.full) {
    if (auto r = inventory::Validate(*in.full); !r) return Fail(r.error().WithContext("inventory report rejected"));
    p->digest = inventory::Digest(*in.full);
    p->json.reserve(in.full->size());
    for (const auto& [id, fields] : *in.full) p->json.push_back(EncodeFields(fields));
    p->claims = IdentityClaims(*in.full);
    if (auto os = in.full->find({"os", ""}); os != in.full->end()) p->os_pretty_name = FieldOr(os->second, "pretty_name");
  } else {
    if (auto r = inventory::Validate(*in.delta); !r) return Fail(r.error().WithContext("inventory delta rejected"));
    // Removals first, then upserts, as inventory::Apply does.
    for (const auto& rm : in.delta->removals()) p->touched[{rm.section(), rm.key()}] = {};
    for (const auto& up : in.delta->upserts()) {
      inventory::Fields fields(up.fields().begin(), up.fields().end());
      auto& t = p->touched[{up.section(), up.key()}];
      t.json = EncodeFields(fields);
      t.fields = std::move(fields);
    }
  }
  p->in = std::move(in);
  return p;
}

Expected<ReportOutcome> ApplyPreparedReport(sql::Database& db, const PreparedReport& p) {
  PARC_ASSIGN(state, LoadHostState(db, p.in));
  if (!state.exists)
    return Fail(Errc::kNotFound, "inventory report for unknown host '" + p.in.host_id + "' (not enrolled, or deleted)");
  if (state.duplicate) {
    ReportOutcome out;
    out.duplicate = true;
    out.digest = state.digest;
    return out;
  }
  return p.in.full ? ApplyFull(db, p, state.digest) : ApplyDelta(db, p, state.digest);
}

ExpectedVoid ReplaceClaims(sql::Database& db, const std::string& host_id, const std::vector<std::string>& claims) {
  std::vector<std::string> stored;
  {
    PARC_ASSIGN(c, Query(db, "SELECT claim FROM host_identity WHERE host_id = ?1 ORDER BY claim"));
    c->Bind(1, host_id);
    PARC_TRY(ForEachRow(*c, [&](sql::Statement& s) { stored.push_back(s.Text(0)); }));
  }
  if (stored == claims) return {};
  {
    PARC_ASSIGN(c, Query(db, "DELETE FROM host_identity WHERE host_id = ?1"));
    c->Bind(1, host_id);
    PARC_TRY(c->Run());
  }
  PARC_ASSIGN(c, Query(db, "INSERT OR IGNORE INTO host_identity(host_id, claim) VALUES (?1, ?2)"));
  for (const auto& claim : claims) {
    c->Reset();
    c->Bind(1, host_id).Bind(2, claim);
    PARC_TRY(c->Run());
  }
  return {};
}

}  // namespace parc::server::detail
