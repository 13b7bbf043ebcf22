// RAII wrapper over SQLite: one Database per connection, Statement per prepared
// statement, errors as Expected. Used by the server's parc database and the
// agent's outbox.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace parc::sql {

struct DbCloser { void operator()(sqlite3* db) const; };
struct StmtFinalizer { void operator()(sqlite3_stmt* s) const; };

class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* s) : stmt_(s) {}

  // Binding is 1-based like SQLite's API; Bind() chains for readability.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view value);
  Statement& BindBlob(int index, std::string_view value);
  Statement& BindNull(int index);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const std::string& value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, bool value) { return Bind(index, static_cast<int64_t>(value ? 1 : 0)); }

  // true: a row is ready; false: done.
  Expected<bool> Step();
  // Runs to completion, ignoring rows.
  ExpectedVoid Run();
  void Reset();

  int64_t Int(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;
  int ColumnCount() const;

  sqlite3_stmt* get() const { return stmt_.get(); }

 private:
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
};

struct OpenOptions {
  bool read_only = false;
  int busy_timeout_ms = 5000;
  bool wal = true;
  // NORMAL in WAL is durable against a process crash; FULL adds power-loss durability.
  bool synchronous_full = false;
};

class Database {
 public:
  static Expected<Database> Open(const std::filesystem::path& path, const OpenOptions& options = {});

  ExpectedVoid Exec(std::string_view sql);
  Expected<Statement> Prepare(std::string_view sql);
  // A cached prepared statement (reset and cleared before it is returned).
  Expected<Statement*> Cached(const std::string& sql);
  // Resets every cached statement: a statement left mid-result keeps its read
  // transaction (and so an old WAL snapshot) open after COMMIT.
  void ResetAllCached();
  int64_t LastInsertRowId() const;
  int Changes() const;
  std::string LastErrorMessage() const;
  sqlite3* handle() const { return db_.get(); }
  // false after COMMIT/ROLLBACK, and after SQLite itself rolled a transaction
  // back (disk full, I/O error): callers batching work must know it is lost.
  bool InTransaction() const;

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT; rolls back if fn fails.
  ExpectedVoid Transaction(const std::function<ExpectedVoid()>& fn);

 private:
  std::unique_ptr<sqlite3, DbCloser> db_;
  std::shared_ptr<std::vector<std::pair<std::string, std::unique_ptr<Statement>>>> cache_ =
      std::make_shared<std::vector<std::pair<std::string, std::unique_ptr<Statement>>>>();
};

// Numbered migrations: migration i (1-based) is applied once, in order, each in
// its own transaction, and recorded in PRAGMA user_version.
ExpectedVoid Migrate(Database& db, const std::vector<std::string_view>& migrations);

}  // namespace parc::sql
