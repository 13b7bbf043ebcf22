// Small helpers over parc::sql for the storage code: early-return macros,
// cursors that always reset their statement (a statement left mid-result
// would pin an old snapshot of a WAL database), and a read snapshot.
#pragma once

#include <type_traits>
#include <utility>

#include "parc/common/error.h"
#include "parc/common/sqlite.h"

#define PARC_CONCAT_INNER_(a, b) a##b
#define PARC_CONCAT_(a, b) PARC_CONCAT_INNER_(a, b)
// Returns the error of an Expected expression from the enclosing function.
#define PARC_TRY(expr)                                                      \
  do {                                                                      \
    auto parc_try_result_ = (expr);                                         \
    if (!parc_try_result_) return ::parc::Fail(parc_try_result_.error());   \
  } while (0)
// Declares `auto& var` bound to the value of an Expected expression, or returns its error.
#define PARC_ASSIGN(var, expr)                                              \
  auto PARC_CONCAT_(var, _expected_) = (expr);                              \
  if (!PARC_CONCAT_(var, _expected_))                                       \
    return ::parc::Fail(PARC_CONCAT_(var, _expected_).error());             \
  auto& var = *PARC_CONCAT_(var, _expected_)

namespace parc::server::detail {

class Cursor {
 public:
  explicit Cursor(sql::Statement* s) : s_(s) {}
  Cursor(Cursor&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  Cursor& operator=(Cursor&&) = delete;
  ~Cursor() {
    if (s_) s_->Reset();
  }
  sql::Statement* operator->() const { return s_; }
  sql::Statement& operator*() const { return *s_; }

 private:
  sql::Statement* s_;
};

inline Expected<Cursor> Query(sql::Database& db, const std::string& sql) {
  auto s = db.Cached(sql);
  if (!s) return Fail(s.error());
  return Cursor(*s);
}

// Calls fn(statement) for every row; fn may return false to stop early.
template <typename Fn>
ExpectedVoid ForEachRow(sql::Statement& s, Fn&& fn) {
  while (true) {
    auto row = s.Step();
    if (!row) return Fail(row.error());
    if (!*row) return {};
    if constexpr (std::is_same_v<std::invoke_result_t<Fn, sql::Statement&>, bool>) {
      if (!fn(s)) return {};
    } else {
      fn(s);
    }
  }
}

// One consistent view across the several SELECTs of a read (host + groups + claims).
class ReadSnapshot {
 public:
  static Expected<ReadSnapshot> Begin(sql::Database& db) {
    // A connection must never keep an old snapshot: end whatever is left over.
    if (db.InTransaction()) (void)db.Exec("ROLLBACK");
    if (auto r = db.Exec("BEGIN"); !r) return Fail(r.error());
    return ReadSnapshot(&db);
  }
  ReadSnapshot(ReadSnapshot&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  ReadSnapshot& operator=(ReadSnapshot&&) = delete;
  ~ReadSnapshot() {
    if (!db_) return;
    db_->ResetAllCached();
    if (!db_->Exec("COMMIT")) (void)db_->Exec("ROLLBACK");
  }

 private:
  explicit ReadSnapshot(sql::Database* db) : db_(db) {}
  sql::Database* db_;
};

}  // namespace parc::server::detail
