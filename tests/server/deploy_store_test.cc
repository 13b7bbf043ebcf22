// The deployment tables of the parc database (SQLite): packages ordered by
// Debian version, immutable name=version, deployments with their jobs across a
// reopen (server restart), and rollback points replaced by the agent's list.
#include <catch2/catch.hpp>

#include "parc/server/deploy_store.h"
#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

PackageRecord Pkg(const std::string& version, const std::string& sha) {
  PackageRecord p;
  p.name = "hello";
  p.version = version;
  p.sha256 = sha;
  p.size = 10;
  p.key_id = "0123456789abcdef";
  p.manifest_json = "{}";
  return p;
}

}  // namespace

TEST_CASE("packages keep their bytes per version and the newest follows Debian ordering", "[deploy_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteDeployStore(path));
  for (const auto& [v, sha] : std::vector<std::pair<std::string, std::string>>{
           {"1.0-1", "a"}, {"1.0~rc1-1", "b"}, {"1:0.9-1", "c"}, {"1.10-1", "d"}, {"1.9-1", "e"}}) {
    Ok(store->AddContent(sha, 10, 1));
    Ok(store->AddPackage(Pkg(v, sha)));
  }
  CHECK(Ok(store->GetPackage("hello", "")).version == "1:0.9-1");  // the epoch wins
  auto all = Ok(store->ListPackages("hello"));
  std::vector<std::string> order;
  for (const auto& p : all) order.push_back(p.version);
  CHECK(order == std::vector<std::string>{"1.0~rc1-1", "1.0-1", "1.9-1", "1.10-1", "1:0.9-1"});
  // Same bytes again: accepted. Other bytes under the same version: refused.
  CHECK(store->AddPackage(Pkg("1.0-1", "a")));
  auto clash = store->AddPackage(Pkg("1.0-1", "e"));
  REQUIRE_FALSE(clash);
  CHECK(clash.error().Is(Errc::kAlreadyExists));
  auto missing = store->GetPackage("hello", "7.0");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().Is(Errc::kNotFound));
}

TEST_CASE("a package version is removed alone, and its content is forgotten only once nothing names it", "[deploy_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteDeployStore(path));
  Ok(store->AddContent("a", 10, 1));
  Ok(store->AddContent("b", 10, 1));
  Ok(store->AddPackage(Pkg("1.0-1", "a")));
  Ok(store->AddPackage(Pkg("2.0-1", "b")));
  CHECK_FALSE(Ok(store->ForgetUnusedContent("a")));  // 1.0-1 still names it
  auto removed = Ok(store->RemovePackage("hello", "1.0-1"));
  CHECK(removed.sha256 == "a");
  CHECK(Ok(store->ListPackages("hello")).size() == 1);
  CHECK(Ok(store->GetPackage("hello", "")).version == "2.0-1");
  CHECK(Ok(store->ForgetUnusedContent("a")));
  CHECK_FALSE(Ok(store->ContentSize("a")).has_value());
  CHECK_FALSE(Ok(store->ForgetUnusedContent("b")));
  CHECK(Ok(store->ContentSize("b")).has_value());
  auto again = store->RemovePackage("hello", "1.0-1");
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kNotFound));
}

TEST_CASE("deployments and jobs survive a reopen and rollback points follow the agent's list", "[deploy_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  {
    auto storage = Ok(OpenSqliteStorage(path));
    Enroll(*storage, "h1", "pc1");
    Enroll(*storage, "h2", "pc2");
    storage->Flush();
    auto store = Ok(OpenSqliteDeployStore(path));
    DeploymentRecord d;
    d.id = "dep-1";
    d.package = "hello";
    d.version = "1.0-1";
    d.created_at = 100;
    d.max_parallel = 1;
    d.targets = {"group:lab"};
    std::vector<JobRecord> jobs(2);
    jobs[0].id = "job-1";
    jobs[0].host_id = "h1";
    jobs[1].id = "job-2";
    jobs[1].host_id = "h2";
    jobs[1].seq = 1;
    for (auto& j : jobs) {
      j.deployment_id = d.id;
      j.kind = "install";
    }
    Ok(store->CreateDeployment(d, jobs));
    auto j1 = Ok(store->GetJob("job-1"));
    j1.state = "sent";
    Ok(store->UpdateJob(j1));
    Ok(store->ReplaceRollbackPoints("h1", {RollbackPointRecord{"h1", "p1", "job-1", "hello", "install", "", "1.0-1", 5, 3, 0, "committed", 6},
                                           RollbackPointRecord{"h1", "p0", "", "old", "remove", "0.1", "", 4, 1, 10, "committed", 6}}));
    Ok(store->ReplaceRollbackPoints("h1", {RollbackPointRecord{"h1", "p1", "job-1", "hello", "install", "", "1.0-1", 5, 3, 0, "restored", 7},
                                           RollbackPointRecord{"h1", "p2", "job-2", "image:ws", "deploy", "1", "2", 8, 40, 4096, "committed", 7, "/srv/ws"}}));
  }
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteDeployStore(path));
  auto d = Ok(store->GetDeployment("dep"));  // unique prefix
  CHECK(d.max_parallel == 1);
  CHECK(d.targets == std::vector<std::string>{"group:lab"});
  CHECK(Ok(store->ListDeployments(true)).size() == 1);
  auto jobs = Ok(store->JobsOfDeployment("dep-1"));
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0].state == "sent");
  CHECK(jobs[0].InFlight());
  CHECK(jobs[1].state == "pending");
  CHECK(Ok(store->OpenJobsOfHost("h1")).size() == 1);
  Ok(store->SetDeploymentState("dep-1", "completed", ""));
  CHECK(Ok(store->ListDeployments(true)).empty());
  auto points = Ok(store->ListRollbackPoints("h1"));
  REQUIRE(points.size() == 2);
  CHECK(points[0].state == "restored");
  CHECK(points[0].target == "");
  CHECK(points[1].target == "/srv/ws");  // migration 7
  CHECK(points[1].from_version == "1");
  CHECK_FALSE(store->GetDeployment("nope"));
}

TEST_CASE("content no package names is listed as unreferenced, for gc", "[deploy_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteDeployStore(path));
  CHECK(Ok(store->UnreferencedContent()).empty());
  Ok(store->AddContent("a", 10, 1));
  Ok(store->AddContent("b", 10, 1));
  Ok(store->AddContent("c", 10, 1));
  Ok(store->AddPackage(Pkg("1.0-1", "a")));
  CHECK(Ok(store->UnreferencedContent()) == std::vector<std::string>{"b", "c"});
  Ok(store->RemovePackage("hello", "1.0-1"));
  CHECK(Ok(store->UnreferencedContent()) == std::vector<std::string>{"a", "b", "c"});
  CHECK(Ok(store->ForgetUnusedContent("b")));
  CHECK(Ok(store->UnreferencedContent()) == std::vector<std::string>{"a", "c"});
}
