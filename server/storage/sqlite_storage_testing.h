// Test-only hooks of the SQLite parc database (not part of the Storage
// interface; the contract tests use them to provoke failures deterministically).
#pragma once

#include <cstdint>

#include "parc/server/storage.h"

namespace parc::server {

// Caps the database at its current size plus extra_pages pages (PRAGMA
// max_page_count on the writer connection), so that the next big write fails
// the way a full disk does (SQLITE_FULL). extra_pages <= 0 lifts the cap.
ExpectedVoid LimitDatabaseSizeForTesting(Storage& storage, int64_t extra_pages);

}  // namespace parc::server
