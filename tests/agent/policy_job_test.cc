// The agent's policy job without a server: signed manifests made with real
// Ed25519 keys, the baseline "fetched" from a local file, a prepared root.
// Covers what an attacker between server and agent (or a compromised mirror)
// could try: tampered manifest or bytes, an untrusted key, an expired
// signature, a replayed older version.
#include <catch2/catch.hpp>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/packages/signing.h"
#include "parc/policy/signed.h"
#include "policy_job.h"
#include "test_support.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

std::string Baseline(const std::string& version) {
  return "[baseline]\nname = \"lab-hardening\"\ntitle = \"Lab\"\nversion = \"" + version +
         "\"\n\n"
         "[[rule]]\nid = \"dmesg\"\ntitle = \"Restrict dmesg\"\nanssi = \"R9\"\nlevel = \"minimal\"\n"
         "kind = \"sysctl\"\nkey = \"kernel.dmesg_restrict\"\nvalue = \"1\"\n\n"
         "[[rule]]\nid = \"kptr\"\ntitle = \"Hide kernel pointers\"\nanssi = \"R9\"\nlevel = \"intermediary\"\n"
         "kind = \"sysctl\"\nkey = \"kernel.kptr_restrict\"\nvalue = \"2\"\n";
}

struct Fixture {
  test::TempDir dir{"parc-policy-job"};
  fs::path root = dir / "root", state = dir / "state", content = dir / "content";
  pkg::KeyPair key = *pkg::GenerateKey("acme-it");
  agent::AgentConfig config;
  int fetches = 0;

  Fixture() {
    test::WriteFile(root / "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    test::WriteFile(root / "etc/sysctl.d/10-lab.conf", "kernel.dmesg_restrict = 1\n");
    fs::create_directories(state);
    fs::create_directories(content);
    REQUIRE(pkg::SaveTrustedKeys(state / "trusted_keys.json", {key.public_key}));
    config.root = root;
    config.state_dir = state;
  }

  // A job for `text` signed by `signer`, its bytes stored where fetch finds them.
  v1::Job Job(const std::string& text, const pkg::KeyPair& signer, bool enforce = false, int64_t signed_at = 0,
              int64_t expires_at = 0) {
    int64_t now = NowUnix();
    auto s = policy::SignPolicy(text, "lab.toml", signer, signed_at ? signed_at : now - 60,
                                expires_at ? expires_at : now + 3600);
    REQUIRE(s);
    test::WriteFile(content / s->manifest.sha256, text);
    v1::Job job;
    job.set_job_id(RandomUuid());
    auto* p = job.mutable_policy();
    p->set_name(s->manifest.name);
    p->set_version(s->manifest.version);
    p->set_manifest_json(s->manifest_json);
    p->set_signature(s->signature);
    p->set_content_sha256(s->manifest.sha256);
    p->set_size(s->manifest.size);
    p->set_enforce(enforce);
    p->set_level("intermediary");
    return job;
  }

  v1::JobUpdate Run(const v1::Job& job) {
    agent::PolicyJobEnv env;
    env.config = &config;
    env.fetch = [&](const std::string& sha, uint64_t) -> Expected<fs::path> {
      ++fetches;
      if (!PathExists(content / sha)) return Fail(Errc::kNotFound, "no such content");
      return content / sha;
    };
    env.progress = [](v1::JobUpdate::State, uint32_t, const std::string&) {};
    return agent::RunPolicyJob(job, env);
  }
};

}  // namespace

TEST_CASE("an audit job reports every rule and changes nothing", "[agent][policy]") {
  Fixture f;
  auto before = pkg::testing::Snapshot(f.root);
  auto u = f.Run(f.Job(Baseline("1.0"), f.key));
  INFO(u.message());
  REQUIRE(u.state() == v1::JobUpdate::SUCCEEDED);
  REQUIRE(u.policy_report().rules_size() == 2);
  CHECK(u.policy_report().baseline() == "lab-hardening");
  CHECK(u.policy_report().rules(0).id() == "dmesg");
  CHECK(u.policy_report().rules(0).status() == "pass");
  CHECK(u.policy_report().rules(1).status() == "fail");
  CHECK(u.policy_report().rules(1).expected() == "kernel.kptr_restrict = 2");
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(f.root)) == "");
  // Kept for `parc-agent policy check --baseline lab-hardening`.
  CHECK(test::ReadFileOrEmpty(f.state / "policies/lab-hardening.toml") == Baseline("1.0"));
}

TEST_CASE("an enforce job remediates after recording a rollback point that restores the tree", "[agent][policy]") {
  Fixture f;
  auto before = pkg::testing::Snapshot(f.root);
  auto u = f.Run(f.Job(Baseline("1.0"), f.key, true));
  INFO(u.message());
  REQUIRE(u.state() == v1::JobUpdate::SUCCEEDED);
  CHECK(u.policy_report().rules(1).status() == "pass");
  CHECK(u.policy_report().rules(1).remediated());
  CHECK(u.policy_report().before_fail() == 1);
  REQUIRE_FALSE(u.point().point_id().empty());
  CHECK(u.point().action() == "policy");
  CHECK_THAT(test::ReadFileOrEmpty(f.root / "etc/sysctl.d/99-parc-hardening.conf"), Catch::Contains("kernel.kptr_restrict = 2"));

  auto points = agent::PolicyRollbackPoints(f.config);
  REQUIRE(points.size() == 1);
  CHECK(points[0].point_id() == u.point().point_id());
  CHECK(points[0].state() == "committed");
  CHECK_FALSE(agent::RestorePolicyPoint("job-x", "not-a-policy-point", f.config).has_value());
  auto restored = agent::RestorePolicyPoint("job-r", u.point().point_id(), f.config);
  REQUIRE(restored.has_value());
  CHECK(restored->state() == v1::JobUpdate::SUCCEEDED);
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(f.root)) == "");
}

TEST_CASE("policy jobs that must be refused are refused before anything runs", "[agent][policy]") {
  Fixture f;
  auto before = pkg::testing::Snapshot(f.root);

  SECTION("a manifest signed by a key the agent does not trust") {
    auto stranger = *pkg::GenerateKey("stranger");
    auto u = f.Run(f.Job(Baseline("1.0"), stranger, true));
    CHECK(u.state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u.message(), Catch::Contains("does not trust"));
    CHECK(f.fetches == 0);
  }
  SECTION("a tampered manifest") {
    auto job = f.Job(Baseline("1.0"), f.key, true);
    std::string m = job.policy().manifest_json();
    m.replace(m.find("\"Lab\""), 5, "\"Lob\"");
    job.mutable_policy()->set_manifest_json(m);
    auto u = f.Run(job);
    CHECK(u.state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u.message(), Catch::Contains("signature does not match"));
  }
  SECTION("an expired signature (a frozen, stale policy)") {
    int64_t now = NowUnix();
    auto u = f.Run(f.Job(Baseline("1.0"), f.key, true, now - 7200, now - 3600));
    CHECK(u.state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u.message(), Catch::Contains("expired"));
  }
  SECTION("baseline bytes that are not the signed ones") {
    auto job = f.Job(Baseline("1.0"), f.key, true);
    // A mirror serving other bytes under the same name.
    test::WriteFile(f.content / job.policy().content_sha256(), Baseline("1.0") + "\n# altered\n");
    auto u = f.Run(job);
    CHECK(u.state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u.message(), Catch::Contains("does not match its signed manifest"));
  }
  SECTION("a job whose fields disagree with its signed manifest") {
    auto job = f.Job(Baseline("1.0"), f.key, true);
    job.mutable_policy()->set_version("9.9");
    auto u = f.Run(job);
    CHECK(u.state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u.message(), Catch::Contains("the job asked for"));
  }
  SECTION("an older version after a newer one, unless the admin pinned it") {
    REQUIRE(f.Run(f.Job(Baseline("2.0"), f.key)).state() == v1::JobUpdate::SUCCEEDED);
    auto old_job = f.Job(Baseline("1.0"), f.key, true);
    auto u = f.Run(old_job);
    CHECK(u.state() == v1::JobUpdate::FAILED);
    CHECK_THAT(u.message(), Catch::Contains("older than version 2.0"));
    CHECK(test::ReadFileOrEmpty(f.state / "policies/lab-hardening.toml") == Baseline("2.0"));
    old_job.mutable_policy()->set_allow_downgrade(true);
    old_job.mutable_policy()->set_enforce(false);
    CHECK(f.Run(old_job).state() == v1::JobUpdate::SUCCEEDED);
    CHECK(test::ReadFileOrEmpty(f.state / "policies/lab-hardening.toml") == Baseline("1.0"));
  }
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(f.root)) == "");
}
