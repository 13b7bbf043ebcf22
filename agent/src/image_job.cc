#include "image_job.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/imaging/capture.h"
#include "parc/imaging/deploy.h"
#include "parc/imaging/grpc_upload.h"
#include "parc/imaging/inspect.h"
#include "parc/imaging/upload.h"
#include "parc/packages/signing.h"
#include "parc/v1/agent.grpc.pb.h"

namespace parc::agent {
namespace fs = std::filesystem;

namespace {

// What a capture job may hand over (the server keeps as much: scheduler.h).
constexpr size_t kMaxCaptureOutput = 1u << 20;

v1::JobUpdate Failed(const std::string& job_id, const std::string& message) {
  v1::JobUpdate u;
  u.set_job_id(job_id);
  u.set_state(v1::JobUpdate::FAILED);
  u.set_message(message);
  return u;
}

v1::JobUpdate Succeeded(const std::string& job_id, const std::string& message, uint64_t bytes, std::string output) {
  v1::JobUpdate u;
  u.set_job_id(job_id);
  u.set_state(v1::JobUpdate::SUCCEEDED);
  u.set_percent(100);
  u.set_bytes_done(bytes);
  u.set_bytes_total(bytes);
  u.set_message(message);
  u.set_output(std::move(output));
  return u;
}

// Chunks from the server's content store, resumed from an offset.
class GrpcFetcher final : public imaging::ChunkFetcher {
 public:
  // One channel for the whole job (a bulk channel has a connection of its
  // own: one per chunk would cost a TLS handshake per chunk). Stubs are
  // thread-safe, so parallel chunk fetches share it.
  GrpcFetcher(const std::function<std::shared_ptr<grpc::Channel>()>& channels, bool crash_mid_fetch)
      : stub_(v1::AgentService::NewStub(channels())), crash_mid_fetch_(crash_mid_fetch) {}

  ExpectedVoid Fetch(const imaging::ChunkRef& ref, uint64_t offset,
                     const std::function<ExpectedVoid(std::string_view)>& sink) override {
    if (crash_mid_fetch_ && ++calls_ > 10) {
      // Lets the chunks already received reach the cache, as they would before a power cut.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ::raise(SIGKILL);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::GetContentRequest req;
    req.set_sha256(ref.object.Hex());
    req.set_offset(offset);
    auto reader = stub_->GetContent(&ctx, req);
    v1::ContentChunk chunk;
    ExpectedVoid failed;
    while (reader->Read(&chunk)) {
      if (chunk.offset() != offset) {
        ctx.TryCancel();
        failed = Fail(Errc::kUnavailable, "the server sent bytes at an unexpected offset");
        break;
      }
      if (auto r = sink(chunk.data()); !r) {
        ctx.TryCancel();
        failed = r;
        break;
      }
      offset += chunk.data().size();
    }
    grpc::Status status = reader->Finish();
    if (!failed) return failed;
    if (status.ok()) return {};
    switch (status.error_code()) {
      case grpc::StatusCode::NOT_FOUND:
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::PERMISSION_DENIED:
      case grpc::StatusCode::UNAUTHENTICATED:
        return Fail(Errc::kNotFound, "the server cannot provide chunk " + ref.object.Hex().substr(0, 16) + ": " +
                                         status.error_message());
      default:
        return Fail(Errc::kUnavailable, "download interrupted: " + status.error_message());
    }
  }

  ExpectedVoid FetchMany(const std::vector<imaging::ChunkRef>& refs,
                         const std::function<ExpectedVoid(size_t, std::string_view)>& sink) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::GetObjectsRequest req;
    for (const auto& r : refs) req.add_sha256(r.object.Hex());
    auto reader = stub_->GetObjects(&ctx, req);
    v1::ObjectData msg;
    ExpectedVoid failed;
    size_t next = 0;
    while (reader->Read(&msg)) {
      if (next >= refs.size() || msg.sha256() != req.sha256(static_cast<int>(next))) {
        ctx.TryCancel();
        failed = Fail(Errc::kCrypto, "the server sent an object that was not asked for: refused");
        break;
      }
      if (crash_mid_fetch_ && ++calls_ > 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        ::raise(SIGKILL);
      }
      if (auto r = sink(next, msg.data()); !r) {
        ctx.TryCancel();
        failed = r;
        break;
      }
      ++next;
    }
    grpc::Status status = reader->Finish();
    if (!failed) return failed;
    // Whatever did not arrive is fetched one by one (an older server has no GetObjects).
    if (status.ok() || status.error_code() == grpc::StatusCode::UNIMPLEMENTED) return {};
    return Fail(Errc::kUnavailable, "batch download interrupted: " + status.error_message());
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  bool crash_mid_fetch_;
  std::atomic<int> calls_{0};
};

// The job's target inside the agent's root (the root is / on a real host).
Expected<fs::path> TargetPath(const AgentConfig& config, const std::string& target) {
  if (target.empty() || target.front() != '/' || target == "/")
    return Fail(Errc::kInvalidArgument, "the job names no valid target path ('" + target + "')");
  if (auto v = imaging::ValidatePath(target); !v) return Fail(v.error().WithContext("target"));
  return config.root / fs::path(target).relative_path();
}

// Where a job's progress callbacks go, at most every 5 % of a phase.
imaging::ProgressFn Reporter(const ImageJobEnv& env, const std::function<v1::JobUpdate::State(std::string_view)>& state,
                             const std::string& what) {
  auto phase = std::make_shared<std::string>();
  auto last = std::make_shared<uint32_t>(0);
  return [&env, state, what, phase, last](const imaging::Progress& p) {
    uint32_t percent = p.total_bytes ? static_cast<uint32_t>(p.done_bytes * 100 / p.total_bytes)
                       : p.total_items ? static_cast<uint32_t>(p.done_items * 100 / p.total_items) : 0;
    if (p.phase != *phase || percent >= *last + 5 || percent == 100) {
      if (p.phase != *phase || percent != *last)
        env.progress(state(p.phase), percent, std::string(p.phase) + " " + what, p.done_bytes, p.total_bytes);
      *phase = std::string(p.phase);
      *last = percent;
    }
    return true;
  };
}

// One cache for every image, in pack files (imaging::PackChunkStore): chunks
// shared between versions are fetched once, what an interrupted deployment
// fetched is there for the next attempt, and a capture's chunks are there for
// deploying it back. Agents before the pack cache kept one file per chunk in
// images/cache: that directory is only a cache, it is dropped.
Expected<std::unique_ptr<imaging::PackChunkStore>> OpenCache(const AgentConfig& config) {
  const fs::path images = config.state_dir / "images";
  if (auto r = EnsureDirectory(images, 0700); !r) return Fail(r.error());
  std::error_code ec;
  if (fs::exists(images / "cache", ec)) {
    fs::remove_all(images / "cache", ec);
    if (ec) spdlog::warn("cannot remove the old chunk cache {}: {}", (images / "cache").string(), ec.message());
  }
  return imaging::PackChunkStore::Open(images / "chunks");
}

v1::JobUpdate::State StateOfPhase(std::string_view phase) {
  if (phase == "fetch") return v1::JobUpdate::DOWNLOADING;
  if (phase == "seed" || phase == "verify" || phase == "scan") return v1::JobUpdate::VERIFYING;
  return v1::JobUpdate::INSTALLING;
}

std::string Stats(const imaging::DeployReport& r, bool verified, const std::string& rollback_point) {
  return nlohmann::json{{"chunks", r.chunks},
                        {"from_cache", r.from_cache},
                        {"seeded", r.seeded},
                        {"fetched", r.fetched},
                        {"index_fetched", r.index_fetched},
                        {"fetched_bytes", r.fetched_bytes},
                        {"written_bytes", r.written_bytes},
                        {"unchanged_bytes", r.unchanged_bytes},
                        {"verified", verified},
                        {"already_deployed", r.already_deployed},
                        {"rollback_point", rollback_point}}
      .dump();
}

// --- what this agent deployed to each tree target, and its rollback point ----
//
// <state>/images/targets/<key>.json, one per tree target the agent deployed
// to: the image in place and, while that deployment is not committed, the
// rollback point its previous tree is (reported to the server with the
// package and policy points). Written atomically after each step, so a crash
// leaves the one before or the one after.
struct TargetRecord {
  std::string target;  // the job's path, as the server named it
  std::string name, version, image_id;
  std::string manifest_json;  // of the image in place: its chunks stay in the cache (PruneCache)
  uint64_t size = 0, entries = 0;
  struct Point {
    std::string id, job_id, from_version, from_image_id, from_manifest_json, to_version;
    int64_t created_at = 0;
    uint64_t paths = 0, bytes = 0;  // of the previous tree (its image's entries and size; 0 when unknown)
    // committed (restorable), restoring, rolled-back, discarded (the
    // deployment is no longer in place: committed by hand, or changed)
    std::string state;
  };
  std::optional<Point> point;
};

fs::path TargetsDir(const AgentConfig& config) { return config.state_dir / "images" / "targets"; }

fs::path RecordPath(const AgentConfig& config, const std::string& target) {
  return TargetsDir(config) / (Sha256Hex(target).substr(0, 24) + ".json");
}

Expected<TargetRecord> ParseRecord(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    TargetRecord r;
    r.target = j.at("target").get<std::string>();
    r.name = j.at("name").get<std::string>();
    r.version = j.at("version").get<std::string>();
    r.image_id = j.at("image_id").get<std::string>();
    r.manifest_json = j.value("manifest_json", "");
    r.size = j.value("size", uint64_t{0});
    r.entries = j.value("entries", uint64_t{0});
    if (auto p = j.find("point"); p != j.end() && p->is_object()) {
      TargetRecord::Point pt;
      pt.id = p->at("id").get<std::string>();
      pt.job_id = p->value("job_id", "");
      pt.from_version = p->value("from_version", "");
      pt.from_image_id = p->value("from_image_id", "");
      pt.from_manifest_json = p->value("from_manifest_json", "");
      pt.to_version = p->value("to_version", "");
      pt.created_at = p->value("created_at", int64_t{0});
      pt.paths = p->value("paths", uint64_t{0});
      pt.bytes = p->value("bytes", uint64_t{0});
      pt.state = p->at("state").get<std::string>();
      r.point = pt;
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Fail(Errc::kParse, std::string("unreadable image target record: ") + e.what());
  }
}

Expected<std::optional<TargetRecord>> LoadRecord(const AgentConfig& config, const std::string& target) {
  fs::path path = RecordPath(config, target);
  if (!PathExists(path)) return std::optional<TargetRecord>{};
  auto text = ReadSmallFile(path);
  if (!text) return Fail(text.error());
  auto r = ParseRecord(*text);
  if (!r) return Fail(r.error().WithContext(path.string()));
  if (r->target != target) return std::optional<TargetRecord>{};  // another target with the same key prefix: not ours
  return std::optional<TargetRecord>(std::move(*r));
}

ExpectedVoid SaveRecord(const AgentConfig& config, const TargetRecord& r) {
  if (auto d = EnsureDirectory(TargetsDir(config), 0700); !d) return d;
  nlohmann::json j{{"format", "parc-image-target/1"}, {"target", r.target},   {"name", r.name},
                   {"version", r.version},            {"image_id", r.image_id}, {"size", r.size},
                   {"entries", r.entries},            {"manifest_json", r.manifest_json}};
  if (r.point)
    j["point"] = {{"id", r.point->id},
                  {"job_id", r.point->job_id},
                  {"from_version", r.point->from_version},
                  {"from_image_id", r.point->from_image_id},
                  {"from_manifest_json", r.point->from_manifest_json},
                  {"to_version", r.point->to_version},
                  {"created_at", r.point->created_at},
                  {"paths", r.point->paths},
                  {"bytes", r.point->bytes},
                  {"state", r.point->state}};
  return WriteFileAtomic(RecordPath(config, r.target), j.dump(2) + "\n", 0600);
}

std::vector<TargetRecord> AllRecords(const AgentConfig& config) {
  std::vector<TargetRecord> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(TargetsDir(config), ec)) {
    if (e.path().extension() != ".json") continue;
    auto text = ReadSmallFile(e.path());
    if (!text) continue;
    if (auto r = ParseRecord(*text)) out.push_back(std::move(*r));
    else spdlog::warn("{}: {}", e.path().string(), r.error().message());
  }
  return out;
}

// Whether the deployment a point belongs to is still the one in place, with its previous tree.
bool StillInPlace(const AgentConfig& config, const TargetRecord& r) {
  auto target = TargetPath(config, r.target);
  if (!target) return false;
  auto now = imaging::InspectTree(*target);
  if (!now) return false;
  if (now->kept_image_id == r.image_id) return true;  // the next deployment was cut off: this one is still in place
  return now->state == imaging::TreeDeployment::State::kSwapped && now->image_id == r.image_id &&
         !now->previous.empty() && PathExists(now->previous);
}

// The record after a tree deployment: the image in place, and the rollback
// point its previous tree is unless the deployment was committed.
TargetRecord AfterDeploy(const std::optional<TargetRecord>& before, const imaging::Manifest& m,
                         std::string_view manifest_json, const imaging::DeployReport& report, const std::string& target,
                         const std::string& job_id, bool keep_previous) {
  TargetRecord next;
  next.target = target;
  next.name = m.name;
  next.version = m.version;
  next.image_id = report.image_id;
  next.manifest_json = std::string(manifest_json);
  next.size = m.size;
  next.entries = m.entries;
  if (!keep_previous) return next;
  if (before && before->image_id == report.image_id && before->point && before->point->state == "committed") {
    next.point = before->point;  // recorded already (a job run again, or this image deployed again)
    return next;
  }
  TargetRecord::Point pt;
  pt.id = RandomUuid();
  pt.job_id = job_id;
  pt.to_version = m.version;
  pt.created_at = NowUnix();
  pt.state = "committed";
  if (before && before->image_id != report.image_id) {  // what Parc put there last is what was there
    pt.from_version = before->version;
    pt.from_image_id = before->image_id;
    pt.from_manifest_json = before->manifest_json;
    pt.paths = before->entries;
    pt.bytes = before->size;
  }
  next.point = pt;
  return next;
}

// The cache keeps the chunks of the images in place on this host (one per
// target the agent deployed to, from the records): the next version of an
// image shares most of them. What else it holds (older versions, other
// images, captures already uploaded) is dropped and its space given back
// (PackChunkStore::Prune), so that weekly images do not fill the disk.
void PruneCache(const AgentConfig& config, imaging::PackChunkStore& cache) {
  std::unordered_set<imaging::Digest, imaging::DigestHash> keep;
  for (const auto& r : AllRecords(config)) {
    auto m = imaging::ParseManifest(r.manifest_json);
    if (!m) continue;  // none recorded: nothing of it to keep
    for (const auto& c : m->body_chunks) keep.insert(c.object);
    auto image = imaging::LoadImage(*m, cache, nullptr);
    if (!image) continue;  // its index is not in the cache (fetched again when needed)
    for (const auto& c : image->UniqueChunks()) keep.insert(c.object);
  }
  auto pruned = cache.Prune([&](const imaging::Digest& d) { return keep.contains(d); });
  if (!pruned) {
    spdlog::warn("the chunk cache was not pruned: {}", pruned.error().message());
    return;
  }
  if (pruned->dropped)
    spdlog::info("chunk cache: kept {} chunks ({} MiB) of the images in place, dropped {} ({} MiB), {} MiB freed",
                 pruned->kept, pruned->kept_bytes >> 20, pruned->dropped, pruned->dropped_bytes >> 20,
                 pruned->freed_bytes >> 20);
}

}  // namespace

void PruneImageCache(const AgentConfig& config) {
  if (!PathExists(config.state_dir / "images" / "chunks")) return;
  auto cache = imaging::PackChunkStore::Open(config.state_dir / "images" / "chunks");
  if (!cache) {
    spdlog::warn("the chunk cache was not pruned: {}", cache.error().message());
    return;
  }
  PruneCache(config, **cache);
}

std::vector<v1::RollbackPointInfo> ImageRollbackPoints(const AgentConfig& config) {
  std::vector<v1::RollbackPointInfo> out;
  for (auto& r : AllRecords(config)) {
    if (!r.point) continue;
    if (r.point->state == "committed" && !StillInPlace(config, r)) {
      r.point->state = "discarded";  // committed by hand, or changed outside Parc: nothing to restore
      if (auto s = SaveRecord(config, r); !s) spdlog::warn("{}", s.error().message());
    }
    v1::RollbackPointInfo o;
    o.set_point_id(r.point->id);
    o.set_job_id(r.point->job_id);
    o.set_package("image:" + r.name);
    o.set_action("deploy");
    o.set_from_version(r.point->from_version);
    o.set_to_version(r.point->to_version);
    o.set_created_at(r.point->created_at);
    o.set_paths(r.point->paths);
    o.set_bytes(r.point->bytes);
    o.set_state(r.point->state == "restoring" ? "committed" : r.point->state);
    o.set_target(r.target);
    out.push_back(std::move(o));
  }
  return out;
}

std::optional<v1::JobUpdate> RestoreImagePoint(const std::string& job_id, const std::string& point_id,
                                               const AgentConfig& config) {
  std::optional<TargetRecord> found;
  for (auto& r : AllRecords(config))
    if (r.point && r.point->id == point_id) found = std::move(r);
  if (!found) return std::nullopt;
  TargetRecord& r = *found;
  auto target = TargetPath(config, r.target);
  if (!target) return Failed(job_id, target.error().message());
  std::string what = r.name + " " + r.point->to_version + " on " + r.target;
  if (r.point->state == "rolled-back")  // the job ran before a crash, and finished
    return Succeeded(job_id, "rollback point " + point_id.substr(0, 8) + " of " + r.target + " was restored already", 0, "");
  if (r.point->state != "committed" && r.point->state != "restoring")
    return Failed(job_id, "rollback point " + point_id.substr(0, 8) + " is " + r.point->state + ": it cannot be restored");
  if (r.point->state == "committed") {
    if (!StillInPlace(config, r)) {
      r.point->state = "discarded";
      (void)SaveRecord(config, r);
      return Failed(job_id, "the deployment of " + what +
                                " is no longer the one this rollback point belongs to (committed, or changed outside "
                                "Parc): its previous tree is gone; nothing changed");
    }
    r.point->state = "restoring";  // from here on, a run after a crash finishes the rollback
    if (auto s = SaveRecord(config, r); !s) return Failed(job_id, s.error().message());
  }
  // A later deployment cut off before its swap is discarded first (this
  // point's deployment is the one in place again), then the previous tree
  // is swapped back; after a crash mid-restore, whatever is left of it.
  for (int step = 0;; ++step) {
    auto now = imaging::InspectTree(*target);
    if (!now) return Failed(job_id, now.error().message());
    if (now->state == imaging::TreeDeployment::State::kNone) break;
    if (step == 3) return Failed(job_id, "cannot put the previous tree of " + r.target + " back: its deployment does not end");
    if (now->state == imaging::TreeDeployment::State::kSwapped && now->image_id != r.image_id)
      return Failed(job_id, r.target + " holds another deployment now (" + now->name + " " + now->version + "); nothing changed");
    if (auto rb = imaging::RollbackTree(*target); !rb)
      return Failed(job_id, "cannot put the previous tree of " + r.target + " back: " + rb.error().message());
  }
  std::string restored = r.point->from_version.empty() ? "the tree it replaced" : r.name + " " + r.point->from_version;
  r.version = r.point->from_version;
  r.image_id = r.point->from_image_id;
  r.manifest_json = r.point->from_manifest_json;
  r.entries = r.point->paths;
  r.size = r.point->bytes;
  r.point->state = "rolled-back";
  if (auto s = SaveRecord(config, r); !s) return Failed(job_id, s.error().message());
  return Succeeded(job_id, "restored " + r.target + " to " + restored + " (rollback point " + point_id.substr(0, 8) +
                               "); " + r.name + " " + r.point->to_version + " was removed",
                   0, "");
}

v1::JobUpdate RunImageJob(const v1::Job& job, const ImageJobEnv& env) {
  const auto& im = job.image();
  const AgentConfig& config = *env.config;
  auto target = TargetPath(config, im.target());
  if (!target) return Failed(job.job_id(), target.error().message());
  env.progress(v1::JobUpdate::VERIFYING, 0, "checking the image signature", 0, 0);
  auto trusted = pkg::LoadTrustedKeys(config.state_dir / "trusted_keys.json");
  if (!trusted) return Failed(job.job_id(), trusted.error().message());
  auto m = imaging::VerifyManifest(im.manifest_json(), im.signature(), *trusted, NowUnix());
  if (!m) return Failed(job.job_id(), "image refused: " + m.error().message());
  if (m->name != im.name() || m->version != im.version())
    return Failed(job.job_id(), "image refused: the signed manifest describes " + m->name + " " + m->version +
                                    ", the job asked for " + im.name() + " " + im.version());
  auto cache = OpenCache(config);
  if (!cache) return Failed(job.job_id(), cache.error().message());
  GrpcFetcher fetcher(env.channels, env.crash_at == "image-mid-fetch");
  imaging::DeployOptions o;
  o.trusted = *trusted;
  // A server restart mid-fetch is waited out (1+2+3+4+5+5+5 s), then the
  // job fails with what it fetched kept in the cache for the next attempt.
  o.fetch_attempts = 8;
  o.fetch_retry_delay = std::chrono::seconds(1);
  o.progress = Reporter(env, StateOfPhase, m->name + " " + m->version);
  bool block = m->kind == imaging::ImageKind::kBlock;
  o.verify = !block;  // a block target is always read back and checked
  // The deployment this agent left in place for its rollback point is
  // committed once this one is swapped in (not before: if this one fails, it
  // and its point stay).
  o.commit_previous = true;
  std::optional<TargetRecord> before;
  if (!block) {
    auto loaded = LoadRecord(config, im.target());
    if (!loaded) spdlog::warn("{}; the rollback point of {} will not name the version it restores", loaded.error().message(), im.target());
    else before = std::move(*loaded);
    // A first deployment to /srv/ws may find no /srv yet.
    std::error_code ec;
    fs::create_directories(target->parent_path(), ec);
    if (ec) return Failed(job.job_id(), "cannot create " + target->parent_path().string() + ": " + ec.message());
  }
  auto report = block ? imaging::DeployBlock(im.manifest_json(), im.signature(), *target, **cache, &fetcher, o)
                      : imaging::DeployTree(im.manifest_json(), im.signature(), *target, **cache, &fetcher, o);
  if (!report) return Failed(job.job_id(), "image " + m->name + " " + m->version + " not deployed: " + report.error().message());
  std::string point_note;
  if (!block) {
    // The new tree was checked against the image before the swap (o.verify).
    // Its previous tree stays as the rollback point unless the job commits
    // (a first deployment has none).
    bool keep = !im.commit() && !report->previous.empty();
    if (!keep)
      if (auto c = imaging::CommitTree(*target); !c)
        return Failed(job.job_id(), "image deployed and verified but not committed: " + c.error().message());
    TargetRecord next = AfterDeploy(before, *m, im.manifest_json(), *report, im.target(), job.job_id(), keep);
    if (auto s = SaveRecord(config, next); !s)
      return Failed(job.job_id(), "image deployed and verified, but its record could not be written: " + s.error().message());
    if (next.point) point_note = next.point->id;
  } else {
    TargetRecord next = AfterDeploy(std::nullopt, *m, im.manifest_json(), *report, im.target(), job.job_id(), false);
    if (auto s = SaveRecord(config, next); !s)
      return Failed(job.job_id(), "image deployed and verified, but its record could not be written: " + s.error().message());
  }
  return Succeeded(job.job_id(),
                   report->already_deployed
                       ? "image " + m->name + " " + m->version + " was already deployed to " + im.target()
                       : "deployed image " + m->name + " " + m->version + " to " + im.target() + ": " +
                             std::to_string(report->chunks) + " chunks, " + std::to_string(report->fetched) +
                             " fetched (" + std::to_string(report->fetched_bytes) + " bytes), " +
                             std::to_string(report->seeded) + " seeded from the target, " +
                             std::to_string(report->from_cache) + " from the cache" +
                             (point_note.empty() ? std::string()
                                                 : "; the previous tree is rollback point " + point_note.substr(0, 8)),
                   report->fetched_bytes, Stats(*report, true, point_note));
}

v1::JobUpdate RunCaptureJob(const v1::Job& job, const ImageJobEnv& env) {
  const auto& c = job.capture();
  const AgentConfig& config = *env.config;
  if (auto v = imaging::ValidateNameVersion(c.name(), c.version()); !v) return Failed(job.job_id(), v.error().message());
  // "/" is the whole system (a master workstation); mount points below it are recorded empty.
  auto source = c.source() == "/" ? Expected<fs::path>(config.root) : TargetPath(config, c.source());
  if (!source) return Failed(job.job_id(), source.error().message());
  std::error_code ec;
  auto st = fs::symlink_status(*source, ec);
  if (ec || !fs::exists(st))
    return Failed(job.job_id(), "nothing to capture: " + c.source() + " does not exist on this host");
  bool tree = fs::is_directory(st);
  if (!tree && !fs::is_regular_file(st) && !fs::is_block_file(st))
    return Failed(job.job_id(), c.source() + " is neither a directory, a regular file nor a block device");
  // Into the chunk cache: deploying this image to this host later fetches nothing.
  auto cache = OpenCache(config);
  if (!cache) return Failed(job.job_id(), cache.error().message());

  imaging::CaptureOptions o;
  o.name = c.name();
  o.version = c.version();
  o.exclude.assign(c.exclude().begin(), c.exclude().end());
  if (tree) {
    // Never the agent's own state (its key, and the cache being written).
    auto state = fs::weakly_canonical(config.state_dir, ec);
    auto base = fs::weakly_canonical(*source, ec);
    auto rel = state.lexically_relative(base);
    if (!ec && !rel.empty() && *rel.begin() != "..") o.exclude.push_back("/" + rel.generic_string());
  }
  std::string what = c.name() + " " + c.version() + " from " + c.source();
  o.progress = Reporter(env, [](std::string_view) { return v1::JobUpdate::INSTALLING; }, what);
  env.progress(v1::JobUpdate::INSTALLING, 0, "capturing " + what, 0, 0);
  auto captured = tree ? imaging::CaptureTree(*source, **cache, o) : imaging::CaptureBlock(*source, **cache, o);
  if (!captured) return Failed(job.job_id(), "capture of " + what + " failed: " + captured.error().message());

  auto stub = v1::AgentService::NewStub(env.channels());
  imaging::UploadHooks hooks;
  imaging::SetGrpcUploadHooks(
      hooks, *stub,
      [](grpc::ClientContext& ctx, bool put) {
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(put ? 300 : 120));
      },
      [](const grpc::Status& s, bool put) {
        return Error(Errc::kUnavailable, std::string(put ? "the server refused the upload: " : "the server did not answer: ") +
                                             s.error_message());
      });
  hooks.progress = Reporter(env, [](std::string_view) { return v1::JobUpdate::DOWNLOADING; }, what);
  auto up = imaging::UploadImage(captured->image.manifest, captured->image, **cache, hooks);
  if (!up) return Failed(job.job_id(), "captured " + what + " but the upload failed: " + up.error().message());

  const auto& m = captured->image.manifest;
  std::string output = nlohmann::json{{"manifest_json", captured->manifest_json},
                                      {"kind", tree ? "tree" : "block"},
                                      {"size", m.size},
                                      {"entries", m.entries},
                                      {"chunks", m.chunks},
                                      {"stored_size", m.stored_size},
                                      {"read_bytes", captured->read_bytes},
                                      {"objects", up->objects},
                                      {"uploaded", up->missing},
                                      {"uploaded_bytes", up->missing_bytes},
                                      {"notes", captured->notes}}
                           .dump();
  if (output.size() > kMaxCaptureOutput)
    return Failed(job.job_id(), "captured " + what + " but its index (" + std::to_string(output.size()) +
                                    " bytes) is larger than a job can hand over (" + std::to_string(kMaxCaptureOutput) +
                                    "): capture it with parcctl image capture --from on that host");
  return Succeeded(job.job_id(),
                   "captured " + what + ": " + std::to_string(m.chunks) + " chunks, " + std::to_string(up->missing) +
                       " uploaded (" + std::to_string(up->missing_bytes) + " bytes), " +
                       std::to_string(up->objects - up->missing) +
                       " already on the server; to be signed and registered",
                   up->missing_bytes, std::move(output));
}

}  // namespace parc::agent
