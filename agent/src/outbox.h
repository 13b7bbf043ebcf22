// The agent's durable outbox (SQLite): reports wait here, in order, until the
// server acknowledges them, across server outages and agent restarts. The same
// file keeps the inventory state deltas are computed from.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/common/sqlite.h"
#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"

namespace parc::agent {

struct PendingReport {
  int64_t sequence = 0;
  v1::Report report;
  std::string digest;  // inventory digest after this report
};

class Outbox {
 public:
  static Expected<Outbox> Open(const std::filesystem::path& path);

  // Appends an inventory report (full or delta) and records `queued` as the
  // inventory the next delta starts from — in one transaction.
  Expected<PendingReport> EnqueueInventory(v1::Report report, const std::string& digest,
                                           const v1::Inventory& queued);
  // Pending reports in order, oldest first.
  Expected<std::vector<PendingReport>> Pending(size_t limit);
  Expected<size_t> PendingCount();
  // Removes an acknowledged report; records its digest as what the server holds.
  ExpectedVoid Acknowledge(const std::string& report_id);
  // Removes a report the server rejected for good (malformed); the acknowledged
  // digest stays as it was.
  ExpectedVoid Discard(const std::string& report_id);
  // Drops every queued inventory report (the server asked for a full one).
  ExpectedVoid DropInventoryReports();

  // The inventory as of the last queued report (nullopt if none yet).
  Expected<std::optional<v1::Inventory>> QueuedInventory();
  // Digest of the inventory the server acknowledged last ("" if none).
  Expected<std::string> AckedDigest();

 private:
  Expected<std::string> GetState(const std::string& key);
  ExpectedVoid SetState(const std::string& key, const std::string& value);
  sql::Database db_;
};

}  // namespace parc::agent
