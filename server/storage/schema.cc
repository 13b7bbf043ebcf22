#include "schema.h"

namespace parc::server::detail {
namespace {

// Migration 1: initial schema.
// Optional text columns are NOT NULL DEFAULT '' so that readers need no NULL
// handling; cert_fingerprint is the exception because UNIQUE must ignore
// hosts that have no certificate yet (NULLs are distinct).
constexpr std::string_view kInitialSchema = R"sql(
CREATE TABLE hosts (
  id                   TEXT PRIMARY KEY,
  hostname             TEXT NOT NULL DEFAULT '',
  enrolled_at          INTEGER NOT NULL DEFAULT 0,
  last_seen            INTEGER NOT NULL DEFAULT 0,
  revoked              INTEGER NOT NULL DEFAULT 0,
  revoked_at           INTEGER NOT NULL DEFAULT 0,
  revoke_reason        TEXT NOT NULL DEFAULT '',
  cert_fingerprint     TEXT UNIQUE,
  cert_expires_at      INTEGER NOT NULL DEFAULT 0,
  agent_version        TEXT NOT NULL DEFAULT '',
  platform_os          TEXT NOT NULL DEFAULT '',
  platform_arch        TEXT NOT NULL DEFAULT '',
  distribution         TEXT NOT NULL DEFAULT '',
  os_pretty_name       TEXT NOT NULL DEFAULT '',
  inventory_digest     TEXT NOT NULL DEFAULT '',
  inventory_updated_at INTEGER NOT NULL DEFAULT 0,
  previous_host_id     TEXT NOT NULL DEFAULT '',
  superseded_by        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX hosts_hostname ON hosts(hostname COLLATE NOCASE);

CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,
  secret_hash  TEXT NOT NULL,
  group_name   TEXT NOT NULL DEFAULT '',
  comment      TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  used_at      INTEGER NOT NULL DEFAULT 0,
  used_by_host TEXT NOT NULL DEFAULT ''
);

CREATE TABLE groups (
  name        TEXT PRIMARY KEY,
  description TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE group_members (
  group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
  host_id    TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  PRIMARY KEY (group_name, host_id)
) WITHOUT ROWID;
CREATE INDEX group_members_host ON group_members(host_id);

CREATE TABLE host_identity (
  host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  claim   TEXT NOT NULL,
  PRIMARY KEY (host_id, claim)
) WITHOUT ROWID;
CREATE INDEX host_identity_claim ON host_identity(claim);

-- fields: JSON object {field: text} with sorted keys.
CREATE TABLE inventory_items (
  host_id    TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  section    TEXT NOT NULL,
  item_key   TEXT NOT NULL,
  fields     TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (host_id, section, item_key)
) WITHOUT ROWID;

-- change: 'added', 'removed' or 'changed' (one row per changed field).
CREATE TABLE inventory_history (
  id        INTEGER PRIMARY KEY,
  host_id   TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  at        INTEGER NOT NULL,
  report_id TEXT NOT NULL,
  section   TEXT NOT NULL,
  item_key  TEXT NOT NULL,
  change    TEXT NOT NULL,
  field     TEXT NOT NULL DEFAULT '',
  old_value TEXT NOT NULL DEFAULT '',
  new_value TEXT NOT NULL DEFAULT ''
);
CREATE INDEX inventory_history_host_at ON inventory_history(host_id, at);

-- Every applied report, so that an outbox resending after a lost reply is harmless.
CREATE TABLE reports (
  host_id     TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  report_id   TEXT NOT NULL,
  sequence    INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  PRIMARY KEY (host_id, report_id)
) WITHOUT ROWID;

CREATE TABLE audit_log (
  id     INTEGER PRIMARY KEY,
  at     INTEGER NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log(at);

-- One view per main section for asset managers' ad-hoc SQL (sqlite3, DB Browser,
-- LibreOffice Base): one column per field; numbers as INTEGER, booleans as
-- 'true'/'false'. Sections without a view are reachable through inventory_items.
CREATE VIEW inv_os AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.id') AS id,
  json_extract(i.fields, '$.name') AS name,
  json_extract(i.fields, '$.version_id') AS version_id,
  json_extract(i.fields, '$.pretty_name') AS pretty_name,
  json_extract(i.fields, '$.version_codename') AS version_codename,
  json_extract(i.fields, '$.kernel_name') AS kernel_name,
  json_extract(i.fields, '$.kernel_release') AS kernel_release,
  json_extract(i.fields, '$.kernel_version') AS kernel_version,
  json_extract(i.fields, '$.architecture') AS architecture,
  json_extract(i.fields, '$.hostname') AS os_hostname,
  json_extract(i.fields, '$.fqdn') AS fqdn,
  json_extract(i.fields, '$.timezone') AS timezone,
  CAST(json_extract(i.fields, '$.boot_time') AS INTEGER) AS boot_time,
  json_extract(i.fields, '$.machine_id') AS machine_id
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'os';

CREATE VIEW inv_hardware AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.system_vendor') AS system_vendor,
  json_extract(i.fields, '$.product_name') AS product_name,
  json_extract(i.fields, '$.product_version') AS product_version,
  json_extract(i.fields, '$.serial_number') AS serial_number,
  json_extract(i.fields, '$.system_uuid') AS system_uuid,
  json_extract(i.fields, '$.bios_vendor') AS bios_vendor,
  json_extract(i.fields, '$.bios_version') AS bios_version,
  json_extract(i.fields, '$.bios_date') AS bios_date,
  json_extract(i.fields, '$.board_vendor') AS board_vendor,
  json_extract(i.fields, '$.board_name') AS board_name,
  json_extract(i.fields, '$.board_serial') AS board_serial,
  json_extract(i.fields, '$.chassis_type') AS chassis_type,
  json_extract(i.fields, '$.chassis_serial') AS chassis_serial,
  json_extract(i.fields, '$.asset_tag') AS asset_tag
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'hardware';

CREATE VIEW inv_disks AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.name') AS name,
  json_extract(i.fields, '$.model') AS model,
  json_extract(i.fields, '$.serial') AS serial,
  json_extract(i.fields, '$.vendor') AS vendor,
  CAST(json_extract(i.fields, '$.size_bytes') AS INTEGER) AS size_bytes,
  json_extract(i.fields, '$.rotational') AS rotational,
  json_extract(i.fields, '$.removable') AS removable,
  json_extract(i.fields, '$.transport') AS transport,
  json_extract(i.fields, '$.wwn') AS wwn
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'disks';

CREATE VIEW inv_filesystems AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.mount_point') AS mount_point,
  json_extract(i.fields, '$.device') AS device,
  json_extract(i.fields, '$.type') AS type,
  json_extract(i.fields, '$.uuid') AS uuid,
  CAST(json_extract(i.fields, '$.size_bytes') AS INTEGER) AS size_bytes,
  CAST(json_extract(i.fields, '$.free_bytes') AS INTEGER) AS free_bytes,
  json_extract(i.fields, '$.read_only') AS read_only
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'filesystems';

CREATE VIEW inv_interfaces AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.name') AS name,
  json_extract(i.fields, '$.mac') AS mac,
  json_extract(i.fields, '$.addresses') AS addresses,
  json_extract(i.fields, '$.state') AS state,
  CAST(json_extract(i.fields, '$.speed_mbps') AS INTEGER) AS speed_mbps,
  CAST(json_extract(i.fields, '$.mtu') AS INTEGER) AS mtu,
  json_extract(i.fields, '$.type') AS type,
  json_extract(i.fields, '$.driver') AS driver
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'interfaces';

CREATE VIEW inv_software AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.name') AS name,
  json_extract(i.fields, '$.architecture') AS architecture,
  json_extract(i.fields, '$.version') AS version,
  json_extract(i.fields, '$.source') AS source,
  json_extract(i.fields, '$.summary') AS summary,
  CAST(json_extract(i.fields, '$.installed_size_bytes') AS INTEGER) AS installed_size_bytes,
  json_extract(i.fields, '$.vendor') AS vendor
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'software';

CREATE VIEW inv_services AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.name') AS name,
  json_extract(i.fields, '$.enabled') AS enabled,
  json_extract(i.fields, '$.active') AS active,
  json_extract(i.fields, '$.description') AS description
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'services';

CREATE VIEW inv_users AS
SELECT i.host_id, h.hostname, i.updated_at,
  json_extract(i.fields, '$.name') AS name,
  CAST(json_extract(i.fields, '$.uid') AS INTEGER) AS uid,
  CAST(json_extract(i.fields, '$.gid') AS INTEGER) AS gid,
  json_extract(i.fields, '$.home') AS home,
  json_extract(i.fields, '$.shell') AS shell,
  json_extract(i.fields, '$.gecos') AS gecos,
  json_extract(i.fields, '$.system') AS system,
  json_extract(i.fields, '$.locked') AS locked
FROM inventory_items i JOIN hosts h ON h.id = i.host_id WHERE i.section = 'users';
)sql";

// Migration 2: software distribution (publisher keys, content store index,
// packages, deployments and their per-host jobs, rollback points per host).
constexpr std::string_view kDeploySchema = R"sql(
CREATE TABLE publisher_keys (
  key_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  public_key_pem TEXT NOT NULL,
  added_at INTEGER NOT NULL
);
CREATE TABLE content_objects (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  stored_at INTEGER NOT NULL
);
CREATE TABLE packages (
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  sha256 TEXT NOT NULL REFERENCES content_objects(sha256),
  size INTEGER NOT NULL,
  summary TEXT NOT NULL DEFAULT '',
  publisher TEXT NOT NULL DEFAULT '',
  key_id TEXT NOT NULL,
  signed_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  uploaded_at INTEGER NOT NULL,
  files INTEGER NOT NULL DEFAULT 0,
  manifest_json TEXT NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE TABLE deployments (
  id TEXT PRIMARY KEY,
  package TEXT NOT NULL,
  version TEXT NOT NULL DEFAULT '',
  sha256 TEXT NOT NULL DEFAULT '',
  size INTEGER NOT NULL DEFAULT 0,
  remove INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,              -- scheduled, running, halted, canceled, completed
  reason TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL DEFAULT '',
  start_at INTEGER NOT NULL DEFAULT 0,
  deadline INTEGER NOT NULL DEFAULT 0,
  maint_window TEXT NOT NULL DEFAULT '',
  max_parallel INTEGER NOT NULL DEFAULT 0,
  halt_failure_percent INTEGER NOT NULL DEFAULT 0,
  targets TEXT NOT NULL DEFAULT '[]',
  -- failed / finished job counts when an admin resumed a halted deployment:
  -- the halt rule then looks only at what finished after the resume
  resumed_failed INTEGER NOT NULL DEFAULT 0,
  resumed_finished INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  deployment_id TEXT NOT NULL DEFAULT '',
  seq INTEGER NOT NULL DEFAULT 0,   -- order within its deployment (canary hosts first)
  host_id TEXT NOT NULL REFERENCES hosts(id),
  kind TEXT NOT NULL,               -- install, remove, rollback
  package TEXT NOT NULL DEFAULT '',
  version TEXT NOT NULL DEFAULT '',
  sha256 TEXT NOT NULL DEFAULT '',
  size INTEGER NOT NULL DEFAULT 0,
  target_point TEXT NOT NULL DEFAULT '',
  allow_downgrade INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,              -- pending, sent, downloading, verifying, installing, succeeded, failed, canceled
  percent INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  output TEXT NOT NULL DEFAULT '',
  point_id TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_by_deployment ON jobs(deployment_id, seq);
CREATE INDEX jobs_by_host ON jobs(host_id, state);
CREATE TABLE rollback_points (
  host_id TEXT NOT NULL REFERENCES hosts(id),
  point_id TEXT NOT NULL,
  job_id TEXT NOT NULL DEFAULT '',
  package TEXT NOT NULL DEFAULT '',
  action TEXT NOT NULL DEFAULT '',
  from_version TEXT NOT NULL DEFAULT '',
  to_version TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL DEFAULT 0,
  paths INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT '',
  reported_at INTEGER NOT NULL,
  PRIMARY KEY (host_id, point_id)
);
)sql";

// Migration 3: hardening policies. Signed baselines, their assignment to
// groups, one row per check run (a policy job), the latest result of every
// rule per host and assignment, and a history row only when a rule's status
// changes (a check that finds the same as the last one adds no history).
constexpr std::string_view kPolicySchema = R"sql(
ALTER TABLE jobs ADD COLUMN params TEXT NOT NULL DEFAULT '';
CREATE TABLE policies (
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  sha256 TEXT NOT NULL REFERENCES content_objects(sha256),
  size INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  publisher TEXT NOT NULL DEFAULT '',
  signed_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  uploaded_at INTEGER NOT NULL,
  rule_count INTEGER NOT NULL DEFAULT 0,
  rules_json TEXT NOT NULL DEFAULT '[]',  -- [{id, title, anssi, source, level, kind}]
  manifest_json TEXT NOT NULL,            -- the signed bytes
  signature BLOB NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE TABLE policy_assignments (
  id TEXT PRIMARY KEY,
  policy TEXT NOT NULL,
  version TEXT NOT NULL DEFAULT '',       -- '' = the newest registered version
  group_name TEXT NOT NULL,
  mode TEXT NOT NULL,                     -- audit, enforce
  level TEXT NOT NULL,
  interval_seconds INTEGER NOT NULL,
  active INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL DEFAULT '',
  comment TEXT NOT NULL DEFAULT '',
  run_requested_at INTEGER NOT NULL DEFAULT 0  -- "check now": hosts whose last run is older are due
);
CREATE TABLE policy_runs (
  job_id TEXT PRIMARY KEY REFERENCES jobs(id),
  assignment_id TEXT NOT NULL REFERENCES policy_assignments(id),
  host_id TEXT NOT NULL REFERENCES hosts(id),
  policy TEXT NOT NULL,
  version TEXT NOT NULL,
  level TEXT NOT NULL,
  mode TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0,  -- 0 = not answered yet
  ok INTEGER NOT NULL DEFAULT 0,           -- the job succeeded (the check ran)
  checked_at INTEGER NOT NULL DEFAULT 0,
  pass INTEGER NOT NULL DEFAULT 0,
  fail INTEGER NOT NULL DEFAULT 0,
  na INTEGER NOT NULL DEFAULT 0,
  error INTEGER NOT NULL DEFAULT 0,
  manual INTEGER NOT NULL DEFAULT 0,
  remediated INTEGER NOT NULL DEFAULT 0,
  regressed INTEGER NOT NULL DEFAULT 0,
  improved INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  point_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX policy_runs_by_host ON policy_runs(host_id, assignment_id, created_at);
CREATE TABLE policy_rule_results (
  host_id TEXT NOT NULL REFERENCES hosts(id),
  assignment_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  policy TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  anssi TEXT NOT NULL DEFAULT '',
  level TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,                    -- pass, fail, na, error
  expected TEXT NOT NULL DEFAULT '',
  found TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  manual INTEGER NOT NULL DEFAULT 0,
  remediated INTEGER NOT NULL DEFAULT 0,
  previous_status TEXT NOT NULL DEFAULT '',-- at the check before ('' = first check)
  since INTEGER NOT NULL,                  -- when it took its current status
  checked_at INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  PRIMARY KEY (host_id, assignment_id, rule_id)
) WITHOUT ROWID;
CREATE TABLE policy_rule_history (
  host_id TEXT NOT NULL REFERENCES hosts(id),
  assignment_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  old_status TEXT NOT NULL,                -- '' = first check
  new_status TEXT NOT NULL,                -- pass, fail, na, error, or 'gone' (rule left the policy)
  found TEXT NOT NULL DEFAULT ''
);
CREATE INDEX policy_rule_history_by_host ON policy_rule_history(host_id, at);
)sql";


// Migration 4: unattended installation over the network (docs/netboot.md).
// Machines to install by MAC, the boot files they load (objects of the
// content store) and the admins' own answer file templates. token_id names
// the last enrollment token minted for a machine (tokens.id; the secret is
// never stored), so that its state (installing, enrolled) is read from tokens.
constexpr std::string_view kNetbootSchema = R"sql(
CREATE TABLE netboot_hosts (
  mac TEXT PRIMARY KEY,                    -- aa:bb:cc:dd:ee:ff
  hostname TEXT NOT NULL,
  group_name TEXT NOT NULL,
  os TEXT NOT NULL,                        -- debian12, windows11, ubuntu-cloud
  disk TEXT NOT NULL,
  locale TEXT NOT NULL,
  keyboard TEXT NOT NULL,
  timezone TEXT NOT NULL,
  asset TEXT NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL DEFAULT '',
  armed_until INTEGER NOT NULL DEFAULT 0,  -- 0 = its iPXE script boots the local disk
  answer_fetched_at INTEGER NOT NULL DEFAULT 0,
  answer_fetched_by TEXT NOT NULL DEFAULT '',
  token_id TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX netboot_hosts_hostname ON netboot_hosts(hostname);
CREATE TABLE netboot_assets (
  name TEXT PRIMARY KEY,
  cmdline TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE netboot_asset_files (
  asset TEXT NOT NULL REFERENCES netboot_assets(name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  role TEXT NOT NULL,                      -- kernel, initrd, file
  sha256 TEXT NOT NULL,                    -- object in the content store
  size INTEGER NOT NULL,
  PRIMARY KEY (asset, name)
) WITHOUT ROWID;
CREATE TABLE netboot_templates (
  os TEXT PRIMARY KEY,
  text TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL DEFAULT ''
);
)sql";
// Images (docs/images.md): one row per signed image version. The body and
// the chunks are content-store objects; image deployments are deployments
// and jobs (kind 'image', params = manifest, signature, target) of
// migration 2's tables. A table of its own, appended last: migration 4 is the
// netboot branch's, so when both are merged this one comes after it.
constexpr std::string_view kImageSchema = R"sql(
CREATE TABLE images (
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  kind TEXT NOT NULL,                     -- tree, block
  publisher TEXT NOT NULL DEFAULT '',
  key_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  signed_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  uploaded_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  entries INTEGER NOT NULL,
  chunks INTEGER NOT NULL,
  stored_size INTEGER NOT NULL,
  image_id TEXT NOT NULL,                 -- SHA-256 of manifest_json
  uploaded_by TEXT NOT NULL DEFAULT '',
  manifest_json TEXT NOT NULL,            -- the signed bytes
  signature BLOB NOT NULL,
  PRIMARY KEY (name, version)
);
)sql";


// Migration 6: "check now" answered only by runs created after the request.
// run_requested_at is in seconds, so a run created earlier in the same second
// counted as the answer and the request was silently dropped; the watermark
// is the newest policy_runs rowid when the request was made.
constexpr std::string_view kPolicyRunNowSchema = R"sql(
ALTER TABLE policy_assignments ADD COLUMN run_requested_after INTEGER NOT NULL DEFAULT 0;
)sql";

// Migration 7: image deployments' rollback points name their target (a host
// may hold trees at several places).
constexpr std::string_view kRollbackTargetSchema = R"sql(
ALTER TABLE rollback_points ADD COLUMN target TEXT NOT NULL DEFAULT '';
)sql";
}  // namespace

const std::vector<std::string_view>& Migrations() {
  static const std::vector<std::string_view> kMigrations = {kInitialSchema, kDeploySchema, kPolicySchema,
                                                             kNetbootSchema, kImageSchema,
                                                             kPolicyRunNowSchema, kRollbackTargetSchema};
  return kMigrations;
}

}  // namespace parc::server::detail
