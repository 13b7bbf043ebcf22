#include "jobs.h"

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/packages/archive.h"
#include "parc/packages/installer.h"
#include "parc/packages/signing.h"
#include "parc/v1/agent.grpc.pb.h"
#include "image_job.h"
#include "policy_job.h"

namespace parc::agent {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxAttempts = 3;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY,
  attempts INTEGER NOT NULL DEFAULT 0,
  terminal BLOB,                 -- serialized JobUpdate once finished
  updated_at INTEGER NOT NULL
);
)sql";

// Test-only fault injection (see package_cli.cc): "after-fetch" kills the agent
// once the package is downloaded and verified; the installer's own points
// ("mid-apply", "before-commit") are passed through.
std::string CrashAt() {
  const char* v = std::getenv("PARC_CRASH_AT");
  return v ? v : "";
}

v1::RollbackPointInfo ToWire(const pkg::RollbackPoint& p) {
  v1::RollbackPointInfo o;
  o.set_point_id(p.id);
  o.set_job_id(p.job_id);
  o.set_package(p.package);
  o.set_action(p.action);
  o.set_from_version(p.from_version);
  o.set_to_version(p.to_version);
  o.set_created_at(p.created_at);
  o.set_paths(p.paths);
  o.set_bytes(p.bytes);
  o.set_state(p.state);
  return o;
}

// SHA-256 fed as the bytes go by.
class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(const char* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  // Hashes a whole file (a kept partial download); returns its size.
  Expected<uint64_t> AddFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(Errc::kIo, "cannot read " + path.string());
    std::string buf(1 << 20, '\0');
    uint64_t size = 0;
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      auto n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      Update(buf.data(), n);
      size += n;
    }
    if (in.bad()) return Fail(Errc::kIo, "cannot read " + path.string());
    return size;
  }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    return HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

v1::JobUpdate Failed(const std::string& job_id, const std::string& message, const std::string& output = "") {
  v1::JobUpdate u;
  u.set_job_id(job_id);
  u.set_state(v1::JobUpdate::FAILED);
  u.set_message(message);
  u.set_output(output);
  return u;
}

}  // namespace

Expected<std::unique_ptr<JobExecutor>> JobExecutor::Open(const AgentConfig& config, ChannelFactory channels,
                                                         Sender send) {
  auto db = sql::Database::Open(config.state_dir / "jobs.db", sql::OpenOptions{.synchronous_full = true});
  if (!db) return Fail(db.error().WithContext("opening the job database"));
  if (auto r = sql::Migrate(*db, {kSchema}); !r) return Fail(r.error().WithContext("job database"));
  // Before anything else: a change cut off by a crash is undone now.
  {
    auto installer = pkg::Installer::Open(config.root, config.state_dir);
    if (!installer) return Fail(installer.error().WithContext("opening the installed-package database"));
    auto restored = (*installer)->Recover();
    if (!restored) return Fail(restored.error().WithContext("recovering an interrupted installation"));
    for (const auto& p : *restored)
      spdlog::warn("an interrupted change of {} was undone (rollback point {})", p.package, p.id);
  }
  return std::unique_ptr<JobExecutor>(new JobExecutor(config, std::move(channels), std::move(send), std::move(*db)));
}

JobExecutor::JobExecutor(const AgentConfig& config, ChannelFactory channels, Sender send, sql::Database db)
    : config_(config), channels_(std::move(channels)), send_(std::move(send)), db_(std::move(db)) {
  worker_ = std::thread([this] { Worker(); });
}

JobExecutor::~JobExecutor() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void JobExecutor::SetTrustedKeys(const google::protobuf::RepeatedPtrField<v1::PublisherKey>& keys) {
  std::vector<pkg::PublicKey> out;
  for (const auto& k : keys) {
    auto pk = pkg::ParsePublicKey(k.public_key_pem(), k.name());
    if (!pk) {
      spdlog::warn("ignoring publisher key {} from the server: {}", k.key_id(), pk.error().message());
      continue;
    }
    out.push_back(*pk);
  }
  if (auto r = pkg::SaveTrustedKeys(config_.state_dir / "trusted_keys.json", out); !r)
    spdlog::error("cannot save trusted keys: {}", r.error().message());
}

void JobExecutor::Submit(const v1::Job& job) {
  std::lock_guard lock(mutex_);
  if (job.job_id().empty() || job.job_id().size() > 64) return;
  if (running_ == job.job_id()) return;
  for (const auto& q : queue_)
    if (q.job_id() == job.job_id()) return;
  auto st = db_.Cached("SELECT terminal FROM jobs WHERE job_id = ?1");
  if (st) {
    (*st)->Bind(1, job.job_id());
    auto row = (*st)->Step();
    if (row && *row && !(*st)->IsNull(0)) {
      v1::JobUpdate done;
      done.ParseFromString((*st)->Text(0));
      (*st)->Reset();
      v1::AgentMessage m;
      *m.mutable_job_update() = std::move(done);
      send_(std::move(m));  // already ran: the recorded outcome, not a second run
      return;
    }
    (*st)->Reset();
  }
  queue_.push_back(job);
  cv_.notify_all();
}

void JobExecutor::Record(const std::string& job_id, const v1::JobUpdate* terminal, int attempts) {
  std::lock_guard lock(mutex_);
  auto st = db_.Cached(
      "INSERT INTO jobs(job_id, attempts, terminal, updated_at) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT(job_id) DO UPDATE SET attempts = excluded.attempts, terminal = excluded.terminal, "
      "updated_at = excluded.updated_at");
  if (!st) return;
  (*st)->Bind(1, job_id).Bind(2, attempts);
  if (terminal)
    (*st)->BindBlob(3, terminal->SerializeAsString());
  else
    (*st)->BindNull(3);
  (*st)->Bind(4, NowUnix());
  if (auto r = (*st)->Run(); !r) spdlog::error("job database: {}", r.error().message());
}

void JobExecutor::Progress(const std::string& job_id, v1::JobUpdate::State state, uint32_t percent,
                           const std::string& message, uint64_t done, uint64_t total) {
  v1::AgentMessage m;
  auto* u = m.mutable_job_update();
  u->set_job_id(job_id);
  u->set_state(state);
  u->set_percent(percent);
  u->set_message(message);
  u->set_bytes_done(done);
  u->set_bytes_total(total);
  send_(std::move(m));
}

void JobExecutor::Worker() {
  while (true) {
    v1::Job job;
    int attempts = 0;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || report_points_; });
      if (stop_) return;
      if (queue_.empty()) {
        report_points_ = false;
        lock.unlock();
        SendRollbackPoints();
        continue;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = job.job_id();
      auto st = db_.Cached("SELECT attempts FROM jobs WHERE job_id = ?1");
      if (st) {
        (*st)->Bind(1, job.job_id());
        auto row = (*st)->Step();
        if (row && *row) attempts = static_cast<int>((*st)->Int(0));
        (*st)->Reset();
      }
    }
    ++attempts;
    Record(job.job_id(), nullptr, attempts);  // counted before running: a crash counts too
    v1::JobUpdate result;
    if (attempts > kMaxAttempts)
      result = Failed(job.job_id(), "the agent stopped during this job " + std::to_string(attempts - 1) +
                                        " times; the change was undone each time and is not tried again");
    else
      result = Run(job);
    Record(job.job_id(), &result, attempts);
    spdlog::info("job {}: {}", job.job_id().substr(0, 8), result.message());
    v1::AgentMessage m;
    *m.mutable_job_update() = result;
    send_(std::move(m));
    SendRollbackPoints();
    if (job.has_image() && result.state() == v1::JobUpdate::SUCCEEDED) PruneImageCache(config_);
    std::lock_guard lock(mutex_);
    running_.clear();
  }
}

v1::JobUpdate JobExecutor::Run(const v1::Job& job) {
  Progress(job.job_id(), v1::JobUpdate::RECEIVED, 0, "received");
  if (job.has_install()) return Install(job);
  if (job.has_policy()) {
    PolicyJobEnv env;
    env.config = &config_;
    env.fetch = [&](const std::string& sha, uint64_t size) { return Fetch(sha, size, job.job_id(), ".toml", nullptr); };
    env.progress = [&](v1::JobUpdate::State state, uint32_t pct, const std::string& message) {
      Progress(job.job_id(), state, pct, message);
    };
    env.crash_at = CrashAt();
    return RunPolicyJob(job, env);
  }
  if (job.has_image() || job.has_capture()) {
    ImageJobEnv env;
    env.config = &config_;
    env.channels = [this] { return channels_(true); };  // chunks are bulk content
    env.progress = [&](v1::JobUpdate::State state, uint32_t pct, const std::string& message, uint64_t done,
                       uint64_t total) { Progress(job.job_id(), state, pct, message, done, total); };
    env.crash_at = CrashAt();
    return job.has_image() ? RunImageJob(job, env) : RunCaptureJob(job, env);
  }
  if (job.has_rollback()) {
    if (auto done = RestoreImagePoint(job.job_id(), job.rollback().point_id(), config_)) return *done;
    if (auto done = RestorePolicyPoint(job.job_id(), job.rollback().point_id(), config_)) return *done;
  }
  auto installer = pkg::Installer::Open(config_.root, config_.state_dir);
  if (!installer) return Failed(job.job_id(), installer.error().message());
  pkg::InstallOptions o;
  o.job_id = job.job_id();
  o.live = config_.root == "/";
  o.crash_at = CrashAt();
  Expected<pkg::InstallResult> r = Fail(Errc::kInvalidArgument, "this agent does not know that kind of job; upgrade it");
  if (job.has_remove()) {
    Progress(job.job_id(), v1::JobUpdate::INSTALLING, 0, "removing " + job.remove().name());
    r = (*installer)->Remove(job.remove().name(), o);
  } else if (job.has_rollback()) {
    Progress(job.job_id(), v1::JobUpdate::INSTALLING, 0, "restoring rollback point " + job.rollback().point_id());
    o.allow_downgrade = true;
    r = (*installer)->RollbackTo(job.rollback().point_id(), o);
  }
  if (!r) return Failed(job.job_id(), r.error().message());
  v1::JobUpdate u;
  u.set_job_id(job.job_id());
  u.set_state(v1::JobUpdate::SUCCEEDED);
  u.set_percent(100);
  u.set_message(r->message);
  if (!r->point.id.empty()) *u.mutable_point() = ToWire(r->point);
  return u;
}

Expected<fs::path> JobExecutor::Fetch(const std::string& sha, uint64_t size, const std::string& job_id,
                                      const std::string& suffix, FetchStats* stats) {
  bool valid = sha.size() == 64 && sha.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!valid) return Fail(Errc::kInvalidArgument, "the job names no valid content digest");
  fs::path cache = config_.state_dir / "cache";
  if (auto r = EnsureDirectory(cache, 0700); !r) return Fail(r.error());
  fs::path done = cache / (sha + suffix);
  if (PathExists(done)) return done;
  fs::path part = cache / (sha + ".part");
  // The digest is computed as the bytes arrive (a kept partial download is
  // hashed first), so no second pass over the file; it is still checked
  // before the file leaves ".part" and before anything is unpacked.
  Sha256Stream digest;
  uint64_t offset = 0;
  {
    std::error_code ec;
    if (fs::exists(part, ec)) {
      spdlog::info("resuming the download of {} at byte {}", sha.substr(0, 12), fs::file_size(part, ec));
      auto kept = digest.AddFile(part);
      if (!kept) return Fail(kept.error());
      offset = *kept;
    }
  }
  if (stats) stats->resumed_at = offset;
  int failures = 0;
  uint64_t last_reported = 0;
  uint64_t total = size;
  std::ofstream out(part, std::ios::binary | std::ios::app);
  if (!out) return Fail(Errc::kIo, "cannot write " + part.string());
  while (!(size && offset >= size)) {
    // A connection of its own with bulk settings; the session's stays small.
    auto stub = v1::AgentService::NewStub(channels_(size == 0 || size > (1u << 20)));
    grpc::ClientContext ctx;
    v1::GetContentRequest req;
    req.set_sha256(sha);
    req.set_offset(offset);
    auto reader = stub->GetContent(&ctx, req);
    v1::ContentChunk chunk;
    while (reader->Read(&chunk)) {
      if (chunk.offset() != offset) {
        ctx.TryCancel();
        break;
      }
      const std::string& data = chunk.data();
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!out) {
        ctx.TryCancel();
        reader->Finish();
        return Fail(Errc::kResourceExhausted, "cannot write the download (disk full?)");
      }
      digest.Update(data.data(), data.size());
      offset += data.size();
      total = chunk.total_size();
      if (total && (offset - last_reported) * 20 >= total) {  // every 5%
        last_reported = offset;
        Progress(job_id, v1::JobUpdate::DOWNLOADING, static_cast<uint32_t>(offset * 100 / total),
                 "downloading " + std::to_string(offset >> 20) + " of " + std::to_string(total >> 20) + " MiB", offset,
                 total);
      }
    }
    grpc::Status status = reader->Finish();
    if (status.ok() && total && offset >= total) break;
    if (status.error_code() == grpc::StatusCode::NOT_FOUND || status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      return Fail(Errc::kNotFound, "the server cannot provide " + sha.substr(0, 12) + ": " + status.error_message());
    if (++failures > 5)
      return Fail(Errc::kUnavailable, "download interrupted too often (" + status.error_message() + "); " +
                                          std::to_string(offset) + " bytes kept for the next attempt");
    spdlog::warn("download of {} interrupted at {} bytes ({}); resuming", sha.substr(0, 12), offset,
                 status.error_message());
    out.flush();
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  out.close();
  if (!out) return Fail(Errc::kResourceExhausted, "cannot write the download (disk full?)");
  if (stats) stats->bytes = offset;
  Progress(job_id, v1::JobUpdate::VERIFYING, 0, "verifying the download");
  std::string got = digest.HexDigest();
  if (got != sha) {
    std::error_code ec;
    fs::remove(part, ec);
    return Fail(Errc::kCrypto, "the download does not match its digest (got " + got.substr(0, 12) + "..., expected " +
                                   sha.substr(0, 12) + "...): discarded");
  }
  std::error_code ec;
  fs::rename(part, done, ec);
  if (ec) return Fail(Errc::kIo, "cannot keep the download: " + ec.message());
  return done;
}

v1::JobUpdate JobExecutor::Install(const v1::Job& job) {
  const auto& p = job.install();
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();
  // Where the time goes, logged once per job: download (digest included),
  // signature, extraction, and the installer's own phases.
  std::string timing;
  auto phase_done = [&](std::string name, Clock::time_point since) {
    std::replace(name.begin(), name.end(), ' ', '-');
    timing += fmt::format(" {} {:.2f} s,", name, Seconds(since));
  };
  auto log_timing = [&](const char* outcome) {
    spdlog::info("job {}: {} {} {}:{} total {:.2f} s", job.job_id().substr(0, 8), outcome, p.name(), p.version(), timing,
                 Seconds(t_start));
  };
  Progress(job.job_id(), v1::JobUpdate::DOWNLOADING, 0, "downloading " + p.name() + " " + p.version());
  FetchStats fetched;
  auto t = Clock::now();
  auto file = Fetch(p.content_sha256(), p.size(), job.job_id(), ".parc", &fetched);
  if (!file) return Failed(job.job_id(), file.error().message());
  {
    double s = Seconds(t);
    uint64_t got = fetched.bytes - fetched.resumed_at;
    timing += fmt::format(" download {:.2f} s ({} MiB, {:.0f} MiB/s),", s, got >> 20, s > 0 ? (got / 1048576.0) / s : 0.0);
  }
  // The package is not kept past its extraction (nor past a refusal): the
  // server holds it, and a copy per endpoint would double the disk it needs.
  // Dropped right after extraction, its pages are usually never written back.
  struct DropCache {
    fs::path file;
    void Now() {
      std::error_code ec;
      if (!file.empty()) fs::remove(file, ec);
      file.clear();
    }
    ~DropCache() { Now(); }
  } drop{*file};
  t = Clock::now();
  auto trusted = pkg::LoadTrustedKeys(config_.state_dir / "trusted_keys.json");
  if (!trusted) return Failed(job.job_id(), trusted.error().message());
  Progress(job.job_id(), v1::JobUpdate::VERIFYING, 50, "checking the signature");
  auto opened = pkg::VerifyPackage(*file, *trusted, NowUnix());
  if (!opened) return Failed(job.job_id(), "package refused: " + opened.error().message());
  if (opened->manifest.name != p.name() || opened->manifest.version != p.version())
    return Failed(job.job_id(), "package refused: the file holds " + opened->manifest.Id() + ", the job asked for " +
                                    p.name() + "=" + p.version());
  phase_done("signature", t);
  std::string crash = CrashAt();
  if (crash == "after-fetch") ::raise(SIGKILL);
  auto installer = pkg::Installer::Open(config_.root, config_.state_dir);
  if (!installer) return Failed(job.job_id(), installer.error().message());
  fs::path staging = (*installer)->NewStagingDir();
  Progress(job.job_id(), v1::JobUpdate::INSTALLING, 0, "unpacking");
  t = Clock::now();
  if (auto x = pkg::ExtractPayload(*file, *opened, staging); !x) {
    std::error_code ec;
    fs::remove(staging.parent_path(), ec);
    return Failed(job.job_id(), "package refused: " + x.error().message());
  }
  phase_done("extract", t);
  drop.Now();
  pkg::InstallOptions o;
  o.job_id = job.job_id();
  o.allow_downgrade = p.allow_downgrade();
  o.live = config_.root == "/";
  o.crash_at = crash;
  std::string phase = "install";
  t = Clock::now();
  auto r = (*installer)->Install(*opened, staging, o, [&](const std::string& next, int pct) {
    if (next != phase) {
      phase_done(phase, t);
      phase = next;
      t = Clock::now();
    }
    Progress(job.job_id(), v1::JobUpdate::INSTALLING, static_cast<uint32_t>(std::clamp(pct, 0, 100)), next);
  });
  if (!r) {
    log_timing("failed");
    return Failed(job.job_id(), r.error().message());
  }
  log_timing("installed");
  v1::JobUpdate u;
  u.set_job_id(job.job_id());
  u.set_state(v1::JobUpdate::SUCCEEDED);
  u.set_percent(100);
  u.set_message(r->message);
  std::string output;
  for (const auto& s : r->steps)
    if (!s.output.empty()) output += "== " + s.what + " (exit " + std::to_string(s.exit_code) + ")\n" + s.output;
  u.set_output(output.substr(0, 65536));
  if (!r->point.id.empty()) *u.mutable_point() = ToWire(r->point);
  return u;
}

void JobExecutor::ReportRollbackPoints() {
  {
    std::lock_guard lock(mutex_);
    report_points_ = true;
  }
  cv_.notify_all();
}

void JobExecutor::SendRollbackPoints() {
  auto installer = pkg::Installer::Open(config_.root, config_.state_dir);
  if (!installer) return;
  auto points = (*installer)->ListRollbackPoints();
  if (!points) return;
  v1::AgentMessage m;
  auto* list = m.mutable_rollback_points();  // set even when empty: "none" is news too
  for (const auto& p : *points) *list->add_points() = ToWire(p);
  for (auto& p : PolicyRollbackPoints(config_)) *list->add_points() = std::move(p);
  for (auto& p : ImageRollbackPoints(config_)) *list->add_points() = std::move(p);
  send_(std::move(m));
}

}  // namespace parc::agent
