// The parc database behind an interface, so that a PostgreSQL backend can be
// added and run the same contract tests (tests/server/storage_contract_test.cc).
//
// Every method is thread-safe. Writes from all callers go through one writer
// path that commits them in batches; the *Async variants never block the
// caller (the gRPC reactors use them) and call `done` after the commit.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/common/identity.h"
#include "parc/common/inventory_model.h"

namespace parc::server {

struct TokenRecord {
  std::string id;           // public part of the token, shown in lists
  std::string secret_hash;  // SHA-256 hex of the secret part; the secret itself is never stored
  std::string group;        // "" = none
  std::string comment;
  int64_t created_at = 0;
  int64_t expires_at = 0;
  int64_t used_at = 0;      // 0 = unused
  std::string used_by_host;
};

struct NewHost {
  std::string id;           // chosen by the caller (random UUID)
  std::string hostname;
  std::string cert_fingerprint;  // SHA-256 hex of the issued certificate (DER)
  int64_t cert_expires_at = 0;
  std::string platform_os, platform_arch, distribution;
  std::vector<std::string> identity;  // identity claims, e.g. "uuid:...", "serial:...", "mac:..."
  int64_t enrolled_at = 0;
};

struct HostRecord {
  std::string id;
  std::string hostname;
  int64_t enrolled_at = 0;
  int64_t last_seen = 0;
  bool revoked = false;
  int64_t revoked_at = 0;
  std::string revoke_reason;
  std::string cert_fingerprint;
  int64_t cert_expires_at = 0;
  std::string agent_version;
  std::string platform_os, platform_arch, distribution;
  std::string os_pretty_name;       // from the inventory's os section
  std::string inventory_digest;     // digest of the stored inventory ("" = none yet)
  int64_t inventory_updated_at = 0;
  std::string previous_host_id;     // the earlier record of the same machine (reinstall)
  std::string superseded_by;        // a later record of the same machine replaced this one
  std::vector<std::string> groups;
  std::vector<std::string> identity;
};

struct HostFilter {
  std::string group;                // "" = all
  int64_t not_seen_since = 0;       // > 0: only hosts whose last_seen < this (stale)
  bool include_revoked = true;
};

struct GroupRecord {
  std::string name;
  std::string description;
  int64_t created_at = 0;
  std::vector<std::string> host_ids;
};

struct AuditRecord {
  int64_t at = 0;
  std::string actor;
  std::string action;
  std::string target;
  std::string detail;
};

struct HistoryRecord {
  int64_t at = 0;
  std::string report_id;
  inventory::Change change;
};

struct StoredItem {
  std::string host_id;
  std::string hostname;
  std::string section;
  std::string key;
  inventory::Fields fields;
};

struct DuplicateSet {
  std::string identity;             // the shared claim
  std::vector<std::string> host_ids;
};

// One report from an agent's outbox, as received.
struct ReportIn {
  std::string host_id;
  std::string report_id;
  uint64_t sequence = 0;
  int64_t received_at = 0;
  // Exactly one of these is set.
  std::optional<inventory::ItemMap> full;
  std::optional<v1::InventoryDelta> delta;
};

struct ReportOutcome {
  bool duplicate = false;           // this report_id was stored before: nothing done
  bool full_wanted = false;         // delta did not apply (base mismatch): nothing done
  size_t history_rows = 0;          // history rows written
  std::string digest;               // inventory digest after the report
};

class Storage {
 public:
  virtual ~Storage() = default;

  // --- enrollment tokens
  virtual ExpectedVoid CreateToken(const TokenRecord& token) = 0;
  // In one transaction: checks the token (kNotFound unknown / wrong secret,
  // kExpired, kFailedPrecondition already used), marks it used, creates the
  // host, adds it to the token's group and records its identity claims. If the
  // identity matches an existing host, previous_host_id of the new record is
  // set to the most recently seen such host.
  virtual Expected<HostRecord> EnrollHost(const std::string& token_id, const std::string& secret_hash,
                                          const NewHost& host) = 0;

  // --- hosts
  // ref: full id, unique id prefix (>= 4 chars) or unique hostname.
  // kNotFound, or kInvalidArgument naming the candidates when ambiguous.
  virtual Expected<HostRecord> GetHost(const std::string& ref) = 0;
  virtual Expected<std::vector<HostRecord>> ListHosts(const HostFilter& filter) = 0;
  virtual Expected<HostRecord> RevokeHost(const std::string& host_id, const std::string& reason, int64_t at) = 0;
  virtual ExpectedVoid MarkSuperseded(const std::string& old_host_id, const std::string& new_host_id) = 0;
  // Fingerprints of every revoked certificate (loaded at start, then kept in memory by the server).
  virtual Expected<std::vector<std::string>> RevokedCertificateFingerprints() = 0;
  // Session bookkeeping: last seen, agent version, platform. Fire and forget.
  virtual void TouchHostAsync(const std::string& host_id, int64_t at, const std::string& agent_version,
                              const std::string& hostname) = 0;

  // --- inventory
  // Idempotent by (host_id, report_id). A full report replaces the stored
  // inventory; a delta applies to it when its base digest equals the stored
  // digest. History rows come from inventory::HistoryChanges (no phantom churn).
  // Identity claims are refreshed from the inventory (IdentityClaims).
  virtual void ApplyReportAsync(ReportIn report, std::function<void(Expected<ReportOutcome>)> done) = 0;
  Expected<ReportOutcome> ApplyReport(ReportIn report);  // blocking convenience wrapper
  // section "" = all sections.
  virtual Expected<std::vector<StoredItem>> GetInventory(const std::string& host_id, const std::string& section) = 0;
  // Streams rows of every matching host (section "" = all, group "" = all hosts); stops when fn returns false.
  virtual ExpectedVoid ExportInventory(const std::string& section, const std::string& group,
                                       const std::function<bool(const StoredItem&)>& fn) = 0;
  virtual Expected<std::map<std::string, uint32_t>> SectionCounts(const std::string& host_id) = 0;
  // Oldest first; since = 0: everything; section "" = all.
  virtual Expected<std::vector<HistoryRecord>> GetHistory(const std::string& host_id, int64_t since,
                                                          const std::string& section) = 0;

  // --- groups
  virtual Expected<GroupRecord> CreateGroup(const std::string& name, const std::string& description, int64_t at) = 0;
  virtual Expected<std::vector<GroupRecord>> ListGroups() = 0;
  virtual Expected<GroupRecord> AddToGroup(const std::string& group, const std::string& host_id) = 0;
  virtual Expected<GroupRecord> RemoveFromGroup(const std::string& group, const std::string& host_id) = 0;

  // --- identity
  // Claims shared by two or more hosts that are neither revoked nor superseded.
  virtual Expected<std::vector<DuplicateSet>> ListDuplicates() = 0;

  // --- audit
  virtual ExpectedVoid AppendAudit(const AuditRecord& record) = 0;
  virtual Expected<std::vector<AuditRecord>> ListAudit(int64_t since, uint32_t limit) = 0;

  // Waits until every queued write is committed (tests, shutdown).
  virtual void Flush() = 0;
};

// Opens (creating and migrating if needed) the SQLite parc database.
Expected<std::unique_ptr<Storage>> OpenSqliteStorage(const std::string& path);

// Identity claims (see parc/common/identity.h), shared with the agent.
using parc::IdentityClaims;

}  // namespace parc::server
