// Applying one agent report to the parc database. Split in two halves so that
// the CPU work (validation, digest, JSON encoding, identity claims) runs on the
// caller's thread and the single writer thread only does SQL.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/sqlite.h"
#include "parc/server/storage.h"

namespace parc::server::detail {

struct PreparedReport {
  ReportIn in;
  // full report
  std::string digest;
  std::vector<std::string> json;  // stored form of each item of in.full, in map order
  std::vector<std::string> claims;
  std::string os_pretty_name;
  // delta report: the items it touches, after the delta (nullopt = removed)
  struct Touched {
    std::optional<inventory::Fields> fields;
    std::string json;
  };
  std::map<inventory::ItemId, Touched> touched;
};

// Checks and precomputes; kInvalidArgument for malformed or hostile input.
Expected<std::shared_ptr<PreparedReport>> PrepareReport(ReportIn in);

// Runs inside the writer's transaction.
Expected<ReportOutcome> ApplyPreparedReport(sql::Database& db, const PreparedReport& report);

// Replaces the host's identity claims when they differ from `claims` (sorted, unique).
ExpectedVoid ReplaceClaims(sql::Database& db, const std::string& host_id, const std::vector<std::string>& claims);

}  // namespace parc::server::detail
