#include <future>

#include "parc/server/storage.h"

namespace parc::server {

// Blocks until the report is committed (or refused). Backends must make this
// safe from their own `done` callbacks (the SQLite writer runs such nested
// writes at once instead of queueing them behind itself).
Expected<ReportOutcome> Storage::ApplyReport(ReportIn report) {
  std::promise<Expected<ReportOutcome>> promise;
  auto future = promise.get_future();
  ApplyReportAsync(std::move(report), [&promise](Expected<ReportOutcome> r) { promise.set_value(std::move(r)); });
  return future.get();
}

}  // namespace parc::server
