// Rows of the jobs table, shared by the deploy store and the policy store
// (both create jobs that the scheduler sends).
#pragma once

#include "parc/common/sqlite.h"
#include "parc/server/deploy_store.h"

namespace parc::server::detail {

extern const char* const kJobColumns;
JobRecord ReadJob(const sql::Statement& s);  // columns in kJobColumns order
ExpectedVoid InsertJob(sql::Database& db, const JobRecord& j);

}  // namespace parc::server::detail
