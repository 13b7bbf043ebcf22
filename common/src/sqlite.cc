#include "parc/common/sqlite.h"

#include <sqlite3.h>

namespace parc::sql {

void DbCloser::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void StmtFinalizer::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }

namespace {
Error DbError(sqlite3* db, std::string_view what) {
  int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  Errc errc = Errc::kDatabase;
  if ((code & 0xff) == SQLITE_FULL) errc = Errc::kResourceExhausted;
  if ((code & 0xff) == SQLITE_CONSTRAINT) errc = Errc::kAlreadyExists;
  if ((code & 0xff) == SQLITE_BUSY) errc = Errc::kUnavailable;
  return Error(errc, std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}
}  // namespace

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
  return *this;
}
Statement& Statement::Bind(int index, std::string_view value) {
  sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindBlob(int index, std::string_view value) {
  sqlite3_bind_blob(stmt_.get(), index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_.get(), index);
  return *this;
}

Expected<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Fail(DbError(sqlite3_db_handle(stmt_.get()), "SQL statement failed"));
}

ExpectedVoid Statement::Run() {
  while (true) {
    auto r = Step();
    if (!r) return Fail(r.error());
    if (!*r) return {};
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
std::string Statement::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_.get(), col);
  int n = sqlite3_column_bytes(stmt_.get(), col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}
bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
int Statement::ColumnCount() const { return sqlite3_column_count(stmt_.get()); }

Expected<Database> Database::Open(const std::filesystem::path& path, const OpenOptions& options) {
  sqlite3* raw = nullptr;
  int flags = options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Database db;
  db.db_.reset(raw);
  if (rc != SQLITE_OK) return Fail(DbError(raw, "cannot open database " + path.string()));
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  sqlite3_extended_result_codes(raw, 1);
  if (auto r = db.Exec("PRAGMA foreign_keys=ON"); !r) return Fail(r.error());
  if (!options.read_only && options.wal) {
    // Switching to WAL needs a lock the busy handler does not wait for: retry
    // while another process (e.g. `parc-agent status`) has the file open.
    for (int attempt = 0;; ++attempt) {
      auto r = db.Exec("PRAGMA journal_mode=WAL");
      if (r) break;
      if (!r.error().Is(Errc::kUnavailable) || attempt * 20 >= options.busy_timeout_ms) return Fail(r.error());
      sqlite3_sleep(20);
    }
  }
  if (auto r = db.Exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"); !r)
    return Fail(r.error());
  return db;
}

ExpectedVoid Database::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    Error e = DbError(db_.get(), "SQL failed");
    return Fail(Error(e.code(), "SQL failed: " + msg));
  }
  return {};
}

Expected<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) return Fail(DbError(db_.get(), "cannot prepare SQL"));
  return Statement(s);
}

Expected<Statement*> Database::Cached(const std::string& sql) {
  for (auto& [text, stmt] : *cache_) {
    if (text == sql) {
      stmt->Reset();
      return stmt.get();
    }
  }
  auto s = Prepare(sql);
  if (!s) return Fail(s.error());
  cache_->emplace_back(sql, std::make_unique<Statement>(std::move(*s)));
  return cache_->back().second.get();
}

void Database::ResetAllCached() {
  for (auto& entry : *cache_) entry.second->Reset();
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_.get()); }
int Database::Changes() const { return sqlite3_changes(db_.get()); }
std::string Database::LastErrorMessage() const { return sqlite3_errmsg(db_.get()); }
bool Database::InTransaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

ExpectedVoid Database::Transaction(const std::function<ExpectedVoid()>& fn) {
  if (auto r = Exec("BEGIN IMMEDIATE"); !r) return r;
  auto result = fn();
  if (!result) {
    (void)Exec("ROLLBACK");
    return result;
  }
  if (auto r = Exec("COMMIT"); !r) {
    (void)Exec("ROLLBACK");
    return r;
  }
  return {};
}

ExpectedVoid Migrate(Database& db, const std::vector<std::string_view>& migrations) {
  auto st = db.Prepare("PRAGMA user_version");
  if (!st) return Fail(st.error());
  auto row = st->Step();
  if (!row) return Fail(row.error());
  int64_t current = st->Int(0);
  if (current > static_cast<int64_t>(migrations.size())) {
    return Fail(Errc::kFailedPrecondition,
                "database schema version " + std::to_string(current) + " is newer than this program knows (" +
                    std::to_string(migrations.size()) + "); upgrade Parc");
  }
  for (size_t i = static_cast<size_t>(current); i < migrations.size(); ++i) {
    auto r = db.Transaction([&]() -> ExpectedVoid {
      if (auto e = db.Exec(migrations[i]); !e) return e;
      return db.Exec("PRAGMA user_version=" + std::to_string(i + 1));
    });
    if (!r) return Fail(r.error().WithContext("migration " + std::to_string(i + 1)));
  }
  return {};
}

}  // namespace parc::sql
