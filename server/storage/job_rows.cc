#include "job_rows.h"

#include "sql_util.h"

namespace parc::server::detail {

const char* const kJobColumns =
    "id, deployment_id, seq, host_id, kind, package, version, sha256, size, target_point, allow_downgrade, state, "
    "percent, message, output, point_id, created_at, updated_at, params";

JobRecord ReadJob(const sql::Statement& s) {
  JobRecord j;
  j.id = s.Text(0);
  j.deployment_id = s.Text(1);
  j.seq = s.Int(2);
  j.host_id = s.Text(3);
  j.kind = s.Text(4);
  j.package = s.Text(5);
  j.version = s.Text(6);
  j.sha256 = s.Text(7);
  j.size = static_cast<uint64_t>(s.Int(8));
  j.target_point = s.Text(9);
  j.allow_downgrade = s.Int(10) != 0;
  j.state = s.Text(11);
  j.percent = static_cast<uint32_t>(s.Int(12));
  j.message = s.Text(13);
  j.output = s.Text(14);
  j.point_id = s.Text(15);
  j.created_at = s.Int(16);
  j.updated_at = s.Int(17);
  j.params = s.Text(18);
  return j;
}

ExpectedVoid InsertJob(sql::Database& db, const JobRecord& j) {
  PARC_ASSIGN(c, Query(db, std::string("INSERT INTO jobs(") + kJobColumns +
                               ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
                               "?18, ?19)"));
  c->Bind(1, j.id).Bind(2, j.deployment_id).Bind(3, j.seq).Bind(4, j.host_id).Bind(5, j.kind).Bind(6, j.package);
  c->Bind(7, j.version).Bind(8, j.sha256).Bind(9, static_cast<int64_t>(j.size)).Bind(10, j.target_point);
  c->Bind(11, j.allow_downgrade).Bind(12, j.state).Bind(13, static_cast<int64_t>(j.percent)).Bind(14, j.message);
  c->Bind(15, j.output).Bind(16, j.point_id).Bind(17, j.created_at).Bind(18, j.updated_at).Bind(19, j.params);
  return c->Run();
}

}  // namespace parc::server::detail
