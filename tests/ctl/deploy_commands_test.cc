// Pure helpers of parcctl's distribution commands: package references,
// parallelism, percentages, future times, progress and deployment summaries.
#include <catch2/catch.hpp>

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "commands.h"  // ctl/src: the helpers are internal to parcctl
#include "parc/common/hash.h"
#include "parc/ctl/cli.h"

using namespace parc::ctl;
namespace v1 = parc::v1;

namespace {
constexpr int64_t kNow = 1'800'000'000;

// A content store that can drop an upload after its first data message, and
// a deployment whose watch sends three updates ending with one failed job.
class FakeDeploy final : public v1::DeployService::Service {
 public:
  grpc::Status StatContent(grpc::ServerContext*, const v1::StatContentRequest* req,
                           v1::StatContentResponse* resp) override {
    std::lock_guard lock(mu_);
    resp->set_sha256(req->sha256());
    if (complete_) {
      resp->set_complete(true);
      resp->set_size(stored_.size());
    } else {
      resp->set_received_bytes(stored_.size());
    }
    return grpc::Status::OK;
  }
  grpc::Status PutContent(grpc::ServerContext*, grpc::ServerReader<v1::PutContentRequest>* reader,
                          v1::StatContentResponse* resp) override {
    std::lock_guard lock(mu_);
    v1::PutContentRequest msg;
    if (!reader->Read(&msg) || !msg.has_header()) return {grpc::StatusCode::INVALID_ARGUMENT, "header first"};
    const auto header = msg.header();
    offsets.push_back(header.offset());
    if (header.offset() != stored_.size()) return {grpc::StatusCode::INVALID_ARGUMENT, "wrong offset"};
    while (reader->Read(&msg)) {
      if (msg.data().size() > (1u << 20)) return {grpc::StatusCode::INVALID_ARGUMENT, "chunk too large"};
      stored_ += msg.data();
      if (interrupt) {
        interrupt = false;
        return {grpc::StatusCode::ABORTED, "upload interrupted; run the same command to resume"};
      }
    }
    complete_ = stored_.size() == header.size() && parc::Sha256Hex(stored_) == header.sha256();
    resp->set_complete(complete_);
    resp->set_size(stored_.size());
    return grpc::Status::OK;
  }
  grpc::Status RegisterPackage(grpc::ServerContext*, const v1::RegisterPackageRequest* req,
                               v1::PackageInfo* resp) override {
    std::lock_guard lock(mu_);
    if (!complete_ || parc::Sha256Hex(stored_) != req->sha256())
      return {grpc::StatusCode::NOT_FOUND, "no uploaded content"};
    resp->set_name("hello");
    resp->set_version("1.0-1");
    resp->set_sha256(req->sha256());
    resp->set_size(stored_.size());
    return grpc::Status::OK;
  }
  grpc::Status CreateDeployment(grpc::ServerContext*, const v1::CreateDeploymentRequest* req,
                                v1::DeploymentInfo* resp) override {
    std::lock_guard lock(mu_);
    created = req->ShortDebugString();
    *resp = Update(0);
    return grpc::Status::OK;
  }
  grpc::Status WatchDeployment(grpc::ServerContext*, const v1::GetDeploymentRequest*,
                               grpc::ServerWriter<v1::DeploymentInfo>* writer) override {
    for (int i = 0; i < 3; ++i) writer->Write(Update(i));
    return grpc::Status::OK;
  }

  static v1::DeploymentInfo Update(int step) {
    v1::DeploymentInfo d;
    d.set_deployment_id("3f2a9c1e-0000-4000-8000-000000000000");
    d.set_package("hello");
    d.set_version("1.0-1");
    d.set_state(step == 2 ? "completed" : "running");
    d.add_targets("group:lab");
    auto job = [&](const std::string& host, const std::string& state, uint32_t percent) {
      auto* j = d.add_jobs();
      j->set_job_id("job-" + host);
      j->set_hostname(host);
      j->set_state(state);
      j->set_percent(percent);
      (*d.mutable_counts())[state]++;
    };
    job("pc-01", step == 0 ? "pending" : "succeeded", step == 0 ? 0 : 100);
    job("pc-02", step < 2 ? "downloading" : "failed", 40);
    return d;
  }

  std::string stored() {
    std::lock_guard lock(mu_);
    return stored_;
  }

  bool interrupt = false;
  std::vector<uint64_t> offsets;
  std::string created;

 private:
  std::mutex mu_;
  std::string stored_;
  bool complete_ = false;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

class Fixture {
 public:
  Fixture() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&deploy);
    server_ = builder.BuildAndStart();
    hooks_.connect = [this](const std::string&) { return server_->InProcessChannel(grpc::ChannelArguments()); };
    hooks_.now = [] { return kNow; };
  }
  ~Fixture() { server_->Shutdown(); }

  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"parcctl", "--server", "parc.example:7443"});
    std::ostringstream out, err;
    int code = parc::ctl::Run(args, out, err, hooks_);
    return {code, out.str(), err.str()};
  }

  FakeDeploy deploy;

 private:
  std::unique_ptr<grpc::Server> server_;
  Hooks hooks_;
};

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}
}  // namespace

TEST_CASE("package reference splits NAME=VERSION") {
  auto plain = ParsePackageRef("hello");
  REQUIRE(plain);
  CHECK(plain->name == "hello");
  CHECK(plain->version.empty());

  auto versioned = ParsePackageRef("hello=1.0-1");
  REQUIRE(versioned);
  CHECK(versioned->name == "hello");
  CHECK(versioned->version == "1.0-1");

  auto epoch = ParsePackageRef("lib+x=2:1.0~rc1-3");
  REQUIRE(epoch);
  CHECK(epoch->name == "lib+x");
  CHECK(epoch->version == "2:1.0~rc1-3");
}

TEST_CASE("package reference refuses empty parts") {
  CHECK_FALSE(ParsePackageRef(""));
  CHECK_FALSE(ParsePackageRef("=1.0"));
  CHECK_FALSE(ParsePackageRef("hello="));
  CHECK_FALSE(ParsePackageRef("hello=1 0"));
}

TEST_CASE("max parallel takes a count or a percentage") {
  auto n = ParseMaxParallel("5");
  REQUIRE(n);
  CHECK(n->count == 5);
  CHECK(n->percent == 0);

  auto p = ParseMaxParallel("25%");
  REQUIRE(p);
  CHECK(p->count == 0);
  CHECK(p->percent == 25);

  auto all = ParseMaxParallel("100%");
  REQUIRE(all);
  CHECK(all->percent == 100);
}

TEST_CASE("max parallel refuses zero, out of range and junk") {
  for (const char* bad : {"", "0", "0%", "101%", "%", "-1", "5x", "2.5", "25 %", "abc"}) {
    INFO(bad);
    CHECK_FALSE(ParseMaxParallel(bad));
  }
}

TEST_CASE("percent accepts 0 to 100 with or without the sign") {
  CHECK(ParsePercent("10%").value() == 10);
  CHECK(ParsePercent("10").value() == 10);
  CHECK(ParsePercent("0%").value() == 0);
  CHECK(ParsePercent("100%").value() == 100);
  CHECK_FALSE(ParsePercent("101%"));
  CHECK_FALSE(ParsePercent("-5%"));
  CHECK_FALSE(ParsePercent(""));
  CHECK_FALSE(ParsePercent("ten"));
}

TEST_CASE("future times are absolute or from now") {
  CHECK(ParseFutureTime("+2h", kNow).value() == kNow + 7200);
  CHECK(ParseFutureTime("30m", kNow).value() == kNow + 1800);
  CHECK(ParseFutureTime("1d12h", kNow).value() == kNow + 36 * 3600);
  CHECK(ParseFutureTime("now", kNow).value() == kNow);
  CHECK(ParseFutureTime("2026-11-28T10:00:00Z", kNow).value() == 1795860000);
  CHECK(ParseFutureTime("2026-11-28", kNow).value() == 1795824000);
  CHECK_FALSE(ParseFutureTime("", kNow));
  CHECK_FALSE(ParseFutureTime("+", kNow));
  CHECK_FALSE(ParseFutureTime("tomorrow", kNow));
  CHECK_FALSE(ParseFutureTime("2026-13-45", kNow));
}

TEST_CASE("upload progress shows percent, sizes and rate") {
  constexpr uint64_t kMiB = 1 << 20;
  CHECK(UploadProgress(5 * kMiB, 10 * kMiB, 4 * kMiB, 2.0) == " 50%  5.0 of 10.0 MiB  2.0 MiB/s");
  CHECK(UploadProgress(10 * kMiB, 10 * kMiB, 10 * kMiB, 0.0) == "100%  10.0 of 10.0 MiB  0.0 MiB/s");
  CHECK(UploadProgress(0, 0, 0, 1.0) == "100%  0.0 of 0.0 MiB  0.0 MiB/s");
}

TEST_CASE("deployment counts follow the job lifecycle") {
  parc::v1::DeploymentInfo d;
  (*d.mutable_counts())["failed"] = 1;
  (*d.mutable_counts())["pending"] = 2;
  (*d.mutable_counts())["succeeded"] = 3;
  (*d.mutable_counts())["weird"] = 1;
  CHECK(DeploymentCounts(d) == "7 hosts: 2 pending, 3 succeeded, 1 failed, 1 weird");

  parc::v1::DeploymentInfo one;
  (*one.mutable_counts())["sent"] = 1;
  CHECK(DeploymentCounts(one) == "1 host: 1 sent");
  CHECK(DeploymentCounts(parc::v1::DeploymentInfo()) == "0 hosts");
}

TEST_CASE("deployment is finished when completed or canceled and no job is in flight") {
  parc::v1::DeploymentInfo d;
  d.set_state("running");
  d.add_jobs()->set_state("succeeded");
  CHECK_FALSE(DeploymentFinished(d));
  d.set_state("completed");
  CHECK(DeploymentFinished(d));
  d.set_state("canceled");
  d.add_jobs()->set_state("installing");
  CHECK_FALSE(DeploymentFinished(d));
  d.mutable_jobs(1)->set_state("failed");
  CHECK(DeploymentFinished(d));
  d.set_state("halted");
  CHECK_FALSE(DeploymentFinished(d));
}

TEST_CASE("package push resumes an interrupted upload and skips stored bytes") {
  auto path = std::filesystem::temp_directory_path() / ("parcctl-push-" + parc::RandomToken(6) + ".parc");
  std::string bytes;
  for (int i = 0; bytes.size() < (5u << 19); ++i) bytes += "chunk " + std::to_string(i) + "\n";  // > 2.5 MiB
  std::ofstream(path, std::ios::binary) << bytes;
  Fixture f;

  f.deploy.interrupt = true;
  auto first = f.Run({"package", "push", path.string()});
  CHECK(first.code == 1);
  CHECK(Contains(first.err, "run the same command to resume"));
  CHECK(f.deploy.stored().size() == (1u << 20));

  auto second = f.Run({"package", "push", path.string()});
  INFO(second.err);
  CHECK(second.code == 0);
  CHECK(Contains(second.err, "resuming the upload at 1.0 MiB"));
  CHECK(Contains(second.err, "100%"));
  CHECK(Contains(second.out, "hello 1.0-1"));
  CHECK(Contains(second.out, parc::Sha256Hex(bytes)));
  CHECK(f.deploy.stored() == bytes);
  CHECK(f.deploy.offsets == std::vector<uint64_t>{0, 1u << 20});

  auto third = f.Run({"package", "push", path.string(), "--json"});
  CHECK(third.code == 0);
  CHECK(third.err.empty());
  CHECK(Contains(third.out, "\"version\":\"1.0-1\""));
  CHECK(f.deploy.offsets.size() == 2);  // nothing uploaded again
  std::filesystem::remove(path);
}

TEST_CASE("deploy create sends targets, limits and times") {
  Fixture f;
  auto r = f.Run({"deploy", "create", "--to", "group:lab", "hello=1.0-1", "--to", "host:pc-042", "--max-parallel",
                  "25%", "--halt-on-failure", "10%", "--start", "+2h", "--window", "Sat 22:00-06:00"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(f.deploy.created ==
        "package: \"hello\" version: \"1.0-1\" targets: \"group:lab\" targets: \"host:pc-042\" start: 1800007200 "
        "window: \"Sat 22:00-06:00\" max_parallel_percent: 25 halt_failure_percent: 10");
  CHECK(Contains(r.out, "created deployment 3f2a9c1e-0000-4000-8000-000000000000"));
  CHECK(Contains(r.out, "pc-02"));
  CHECK(f.Run({"deploy", "create", "hello", "--to", "lab"}).code == 2);
  CHECK(f.Run({"deploy", "create", "hello"}).code == 2);
}

TEST_CASE("deploy status watch prints changes and exits 1 when a job failed") {
  Fixture f;
  auto r = f.Run({"deploy", "status", "3f2a", "--watch"});
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(Contains(r.out, "running  2 hosts: 1 downloading, 1 succeeded"));
  CHECK(Contains(r.out, "finished: completed, 2 hosts: 1 succeeded, 1 failed"));
  auto json = f.Run({"deploy", "status", "3f2a", "--watch", "--json"});
  CHECK(json.code == 1);
  CHECK(std::count(json.out.begin(), json.out.end(), '\n') == 3);
}

TEST_CASE("deploy targets are group:NAME or host:HOST, at least one") {
  CHECK(CheckTargets({"group:lab", "host:pc-042"}));
  CHECK_FALSE(CheckTargets({}));
  for (const char* bad : {"lab", "group:", "site:paris", ":pc1"}) {
    auto r = CheckTargets({"group:lab", bad});
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains(bad));
  }
}
