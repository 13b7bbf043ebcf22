// The policy tables of the parc database (SQLite): when a host is due for a
// check. "Check now" must be answered by a run created after the request,
// even when the previous run was created in the same second (times are
// seconds; the answer used to be the previous run, and the request was lost).
#include <catch2/catch.hpp>

#include "parc/server/deploy_store.h"
#include "parc/server/policy_store.h"
#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

JobRecord PolicyJob(const std::string& id, const std::string& host, int64_t at) {
  JobRecord j;
  j.id = id;
  j.host_id = host;
  j.kind = "policy";
  j.package = "lab";
  j.version = "1.0";
  j.state = "pending";
  j.created_at = j.updated_at = at;
  return j;
}

PolicyRunRecord Run(const std::string& job, const std::string& host, const std::string& assignment, int64_t at) {
  PolicyRunRecord r;
  r.job_id = job;
  r.assignment_id = assignment;
  r.host_id = host;
  r.policy = "lab";
  r.version = "1.0";
  r.level = "intermediary";
  r.mode = "audit";
  r.created_at = at;
  return r;
}

}  // namespace

TEST_CASE("policy runs: due by interval, and 'check now' answered only by a newer run", "[policy_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  Enroll(*storage, "h1", "pc1");
  Ok(storage->CreateGroup("lab", "", 100));
  Ok(storage->AddToGroup("lab", "h1"));
  Ok(Ok(OpenSqliteDeployStore(path))->AddContent(std::string(64, 'a'), 10, 100));  // the policy file
  auto store = Ok(OpenSqlitePolicyStore(path));
  PolicyRecord p;
  p.name = "lab";
  p.version = "1.0";
  p.title = "Lab";
  p.sha256 = std::string(64, 'a');
  p.size = 10;
  p.key_id = "0123456789abcdef";
  p.manifest_json = "{}";
  p.signature = "sig";
  Ok(store->AddPolicy(p));
  AssignmentRecord a;
  a.id = "as-1";
  a.policy = "lab";
  a.group = "lab";
  a.mode = "audit";
  a.level = "intermediary";
  a.interval_seconds = 3600;
  a.created_at = 1000;
  Ok(store->CreateAssignment(a));

  REQUIRE(Ok(store->DueRuns(1000)).size() == 1);
  Ok(store->CreateRun(PolicyJob("j1", "h1", 1000), Run("j1", "h1", "as-1", 1000)));
  CHECK(Ok(store->DueRuns(1000)).empty());  // open run
  RunOutcome done;
  done.ok = true;
  Ok(store->FinishRun("j1", done, 1000));
  CHECK(Ok(store->DueRuns(1000)).empty());   // checked within the interval
  CHECK(Ok(store->DueRuns(4601)).size() == 1);  // interval over

  // Same second as the run above: the request still makes the host due.
  Ok(store->RequestRun("as-1", 1000));
  auto due = Ok(store->DueRuns(1000));
  REQUIRE(due.size() == 1);
  CHECK(due[0].host_id == "h1");
  Ok(store->CreateRun(PolicyJob("j2", "h1", 1000), Run("j2", "h1", "as-1", 1000)));
  Ok(store->FinishRun("j2", done, 1000));
  CHECK(Ok(store->DueRuns(1000)).empty());  // answered once, not again and again
}
