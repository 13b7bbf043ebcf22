// The agent's image rollback points without a server: a tree deployed over
// another one by the imaging library (as the image job does), the agent's
// per-target record (<state>/images/targets/<key>.json, docs/images.md) and
// RestoreImagePoint, including a restore cut off by a crash and a point
// whose deployment is no longer in place.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "image_job.h"
#include "imaging_fixture.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/imaging/deploy.h"
#include "parc/imaging/index.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

struct Fixture {
  Env env;
  test::TempDir dir{"parc-image-points"};
  fs::path src = dir / "src", root = dir / "root", state = dir / "state";
  fs::path target = root / "srv/ws";
  agent::AgentConfig config;
  Snapshot snap1, snap2;
  std::string id2;

  Fixture() {
    config.root = root;
    config.state_dir = state;
    fs::create_directories(target.parent_path());
    BuildRichTree(src);
    auto v1 = env.CaptureTreeSigned(src, "1");
    snap1 = TakeSnapshot(src);
    test::WriteFile(src / "data/v2", "second version\n");
    auto v2 = env.CaptureTreeSigned(src, "2", &v1.image());
    snap2 = TakeSnapshot(src);
    id2 = ManifestId(v2.json());
    TestFetcher fetcher(env.server());
    REQUIRE_OK(DeployTree(v1.json(), v1.sig(), target, env.cache(), &fetcher, env.Options()));
    REQUIRE_VOID_OK(CommitTree(target));
    DeployOptions keep = env.Options();
    keep.commit_previous = true;
    REQUIRE_OK(DeployTree(v2.json(), v2.sig(), target, env.cache(), &fetcher, keep));
  }

  // The record the image job writes after deploying version 2 over version 1.
  void Record(const std::string& point_state) {
    nlohmann::json j{{"format", "parc-image-target/1"}, {"target", "/srv/ws"}, {"name", "ws"},   {"version", "2"},
                     {"image_id", id2},                 {"size", 10},          {"entries", 3},
                     {"point",
                      {{"id", "point-1"}, {"job_id", "job-2"}, {"from_version", "1"}, {"from_image_id", "id-1"},
                       {"to_version", "2"}, {"created_at", 1}, {"paths", 2}, {"bytes", 5}, {"state", point_state}}}};
    test::WriteFile(state / "images/targets" / (Sha256Hex("/srv/ws").substr(0, 24) + ".json"), j.dump());
  }

  std::string PointState() {
    auto points = agent::ImageRollbackPoints(config);
    REQUIRE(points.size() == 1);
    CHECK(points[0].target() == "/srv/ws");
    CHECK(points[0].package() == "image:ws");
    return points[0].state();
  }
};

}  // namespace

TEST_CASE("agent image points: restoring puts the previous tree back, once, and finishes after a crash", "[agent][image]") {
  Fixture f;
  CHECK_FALSE(agent::RestoreImagePoint("job", "another-point", f.config));  // not an image point: someone else's

  SECTION("restored") {
    f.Record("committed");
    CHECK(f.PointState() == "committed");
    auto u = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(u);
    INFO(u->message());
    CHECK(u->state() == v1::JobUpdate::SUCCEEDED);
    CHECK_THAT(u->message(), Catch::Contains("restored /srv/ws to ws 1"));
    CHECK(DiffSnapshots(f.snap1, TakeSnapshot(f.target)) == "");
    CHECK(f.PointState() == "rolled-back");
    // The same job run again (the agent stopped before reporting): nothing more to do.
    auto again = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(again);
    CHECK(again->state() == v1::JobUpdate::SUCCEEDED);
    CHECK(DiffSnapshots(f.snap1, TakeSnapshot(f.target)) == "");
  }
  SECTION("cut off by a crash after the swap, before the record said so: the next run finishes it") {
    f.Record("restoring");
    REQUIRE_VOID_OK(RollbackTree(f.target));
    CHECK(f.PointState() == "committed");  // still shown as restorable: the job is not over
    auto u = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(u);
    INFO(u->message());
    CHECK(u->state() == v1::JobUpdate::SUCCEEDED);
    CHECK(DiffSnapshots(f.snap1, TakeSnapshot(f.target)) == "");
    CHECK(f.PointState() == "rolled-back");
  }
  SECTION("cut off by a crash before the swap: the next run swaps") {
    f.Record("restoring");
    auto u = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(u);
    CHECK(u->state() == v1::JobUpdate::SUCCEEDED);
    CHECK(DiffSnapshots(f.snap1, TakeSnapshot(f.target)) == "");
  }
  SECTION("a later deployment killed mid-write: the point is still restorable, restoring discards that one first") {
    f.Record("committed");
    test::WriteFile(f.src / "data/v3", "third version\n");
    auto v3 = f.env.CaptureTreeSigned(f.src, "3");
    pid_t pid = ::fork();
    if (pid == 0) {
      DeployOptions o = f.env.Options();
      o.commit_previous = true;
      o.threads = 1;
      o.progress = [](const Progress& p) {
        if (p.phase == "write" && p.done_items >= 3) ::kill(::getpid(), SIGKILL);
        return true;
      };
      TestFetcher fetcher(f.env.server());
      (void)DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, o);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    auto during = REQUIRE_OK(InspectTree(f.target));
    CHECK(during.state == TreeDeployment::State::kWriting);
    CHECK(during.kept_image_id == f.id2);
    CHECK(f.PointState() == "committed");
    auto u = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(u);
    INFO(u->message());
    CHECK(u->state() == v1::JobUpdate::SUCCEEDED);
    CHECK(DiffSnapshots(f.snap1, TakeSnapshot(f.target)) == "");
    CHECK(REQUIRE_OK(InspectTree(f.target)).state == TreeDeployment::State::kNone);
  }
  SECTION("a deployment committed meanwhile (by hand) is not rolled back: the job fails, nothing changes") {
    f.Record("committed");
    REQUIRE_VOID_OK(CommitTree(f.target));
    auto u = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(u);
    CHECK(u->state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u->message(), Catch::Contains("no longer"));
    CHECK(DiffSnapshots(f.snap2, TakeSnapshot(f.target)) == "");
    CHECK(f.PointState() == "discarded");
  }
  SECTION("a restore cut off by a crash, then another image swapped in there: the restore refuses, nothing changes") {
    f.Record("restoring");
    test::WriteFile(f.src / "data/v3", "third version\n");
    auto v3 = f.env.CaptureTreeSigned(f.src, "3");
    const Snapshot snap3 = TakeSnapshot(f.src);
    DeployOptions keep = f.env.Options();
    keep.commit_previous = true;
    TestFetcher fetcher(f.env.server());
    REQUIRE_OK(DeployTree(v3.json(), v3.sig(), f.target, f.env.cache(), &fetcher, keep));
    auto u = agent::RestoreImagePoint("job", "point-1", f.config);
    REQUIRE(u);
    INFO(u->message());
    CHECK(u->state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u->message(), Catch::Contains("holds another deployment now") && Catch::Contains(" 3)"));
    CHECK(DiffSnapshots(snap3, TakeSnapshot(f.target)) == "");
    auto now = REQUIRE_OK(InspectTree(f.target));
    CHECK(now.state == TreeDeployment::State::kSwapped);
    CHECK(now.image_id == ManifestId(v3.json()));
  }
  SECTION("a point whose deployment was committed by hand is listed as discarded") {
    f.Record("committed");
    REQUIRE_VOID_OK(CommitTree(f.target));
    CHECK(f.PointState() == "discarded");
  }
}
