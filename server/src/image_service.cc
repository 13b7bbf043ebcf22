#include "image_service.h"

#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/imaging/index.h"
#include "parc/imaging/inspect.h"
#include "parc/server/image_store.h"

namespace parc::server {
namespace fs = std::filesystem;
namespace {

using imaging::ChunkRef;
using imaging::Digest;

constexpr size_t kMaxObjectBytes = 4u << 20;  // far above a chunk's largest stored size
constexpr int kMaxDigestsPerCall = 100000;

void FillImage(const ImageRecord& r, bool full, v1::ImageInfo* out) {
  out->set_name(r.name);
  out->set_version(r.version);
  out->set_kind(r.kind);
  out->set_publisher(r.publisher);
  out->set_key_id(r.key_id);
  out->set_created_at(r.created_at);
  out->set_signed_at(r.signed_at);
  out->set_expires_at(r.expires_at);
  out->set_uploaded_at(r.uploaded_at);
  out->set_size(r.size);
  out->set_entries(r.entries);
  out->set_chunks(r.chunks);
  out->set_stored_size(r.stored_size);
  out->set_image_id(r.image_id);
  out->set_uploaded_by(r.uploaded_by);
  if (full) {
    out->set_manifest_json(r.manifest_json);
    out->set_signature(r.signature);
  }
}

// The content store's directory read as a chunk store (same layout).
Expected<std::unique_ptr<imaging::DirChunkStore>> ContentChunks(const ServerState& state) {
  return imaging::DirChunkStore::Open(state.config->state_dir / "content");
}

Expected<std::vector<pkg::PublicKey>> TrustedKeys(DeployStore& deploy) {
  std::vector<pkg::PublicKey> trusted;
  auto keys = deploy.ListPublisherKeys();
  if (!keys) return Fail(keys.error());
  for (const auto& k : *keys)
    if (auto pk = pkg::ParsePublicKey(k.public_key_pem, k.name)) trusted.push_back(*pk);
  return trusted;
}

// A registered image with its body read from the content store.
Expected<imaging::Image> LoadRegistered(const ImageRecord& r, imaging::ChunkStore& store) {
  auto m = imaging::ParseManifest(r.manifest_json);
  if (!m) return Fail(m.error());
  return imaging::LoadImage(*m, store, nullptr);
}

bool ValidTarget(const std::string& t) {
  if (t.empty() || t.front() != '/' || t == "/" || t.size() > 4000) return false;
  return imaging::ValidatePath(t).has_value();
}

// The answer to a new deployment, the same as DeployService.GetDeployment's.
void FillCreated(const DeploymentRecord& d, const std::vector<JobRecord>& jobs, const std::vector<HostRecord>& hosts,
                 v1::DeploymentInfo* response) {
  response->set_deployment_id(d.id);
  response->set_package(d.package);
  response->set_version(d.version);
  response->set_state(d.state);
  response->set_created_at(d.created_at);
  response->set_created_by(d.created_by);
  response->set_max_parallel(d.max_parallel);
  for (const auto& t : d.targets) response->add_targets(t);
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto* j = response->add_jobs();
    j->set_job_id(jobs[i].id);
    j->set_deployment_id(d.id);
    j->set_host_id(jobs[i].host_id);
    j->set_hostname(hosts[i].hostname);
    j->set_kind(jobs[i].kind);
    j->set_state(jobs[i].state);
    j->set_updated_at(jobs[i].updated_at);
  }
  (*response->mutable_counts())["pending"] = static_cast<uint32_t>(jobs.size());
}

// The objects of an image: its index chunks (from the manifest) and, when its
// index can be read, its content chunks. must_read: an unreadable index is an
// error (the objects it names would be unknown).
Expected<std::unordered_set<Digest, imaging::DigestHash>> ObjectsOf(const ImageRecord& r, imaging::ChunkStore& store,
                                                                    bool must_read) {
  std::unordered_set<Digest, imaging::DigestHash> out;
  auto m = imaging::ParseManifest(r.manifest_json);
  if (!m) return Fail(m.error());
  for (const auto& c : m->body_chunks) out.insert(c.object);
  auto body = imaging::LoadImage(*m, store, nullptr);
  if (!body) {
    if (must_read) return Fail(body.error().WithContext("the index of image " + r.name + " " + r.version));
    return out;
  }
  for (const auto& c : body->UniqueChunks()) out.insert(c.object);
  return out;
}

// The objects every registered image but except_name=except_version names;
// kFailedPrecondition when an index cannot be read. Called with the service's
// registry_mu_ held.
Expected<std::unordered_set<Digest, imaging::DigestHash>> ObjectsOfImages(ImageStore& images, imaging::ChunkStore& store,
                                                                          const std::string& except_name,
                                                                          const std::string& except_version) {
  auto all = images.ListImages("");
  if (!all) return Fail(all.error());
  std::unordered_set<Digest, imaging::DigestHash> used;
  for (const auto& r : *all) {
    if (r.name == except_name && r.version == except_version) continue;
    auto objects = ObjectsOf(r, store, true);
    if (!objects) return Fail(Errc::kFailedPrecondition, objects.error().message());
    used.merge(*objects);
  }
  return used;
}

// Whether an object must stay: an image names it, it is package or policy
// content, or the parc database cannot tell.
bool InUse(DeployStore& deploy, const std::unordered_set<Digest, imaging::DigestHash>& used, const Digest& object) {
  if (used.contains(object)) return true;
  auto content = deploy.ContentSize(object.Hex());
  return !content || content->has_value();
}

}  // namespace

grpc::Status FindMissingObjects(ServerState& state, const v1::MissingObjectsRequest& request,
                                v1::MissingObjectsResponse* response) {
  if (request.sha256_size() > kMaxDigestsPerCall)
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most " + std::to_string(kMaxDigestsPerCall) + " digests per call"};
  for (const auto& d : request.sha256()) {
    if (!ContentStore::ValidDigest(d))
      return {grpc::StatusCode::INVALID_ARGUMENT, "content digest must be 64 lower-case hex characters"};
    if (!state.content->Size(d)) response->add_missing(d);
  }
  return grpc::Status::OK;
}

grpc::Status StoreObjects(ServerState& state, grpc::ServerReader<v1::PutObjectRequest>* reader,
                          v1::PutObjectsResponse* response) {
  auto store = ContentChunks(state);
  if (!store) return ToStatus(store.error());
  v1::PutObjectRequest msg;
  while (reader->Read(&msg)) {
    if (msg.data().size() > kMaxObjectBytes)
      return {grpc::StatusCode::INVALID_ARGUMENT, "object larger than 4 MiB: upload it with PutContent"};
    auto digest = Digest::FromHex(msg.sha256());
    if (!digest) return {grpc::StatusCode::INVALID_ARGUMENT, "content digest must be 64 lower-case hex characters"};
    if ((*store)->Has(*digest)) {
      response->set_already_present(response->already_present() + 1);
      continue;
    }
    // What arrived so far is kept (synced below): the push resumes with the rest.
    if (auto room = state.content->CheckFreeSpace(msg.data().size()); !room) {
      if (auto sync = (*store)->Sync(); !sync) return ToStatus(sync.error());
      return ToStatus(Error(Errc::kResourceExhausted, room.error().message() + " (the " + std::to_string(response->stored()) +
                                                          " objects stored before are kept)"));
    }
    // Put refuses bytes that do not hash to the digest: nothing unverified is kept.
    if (auto r = (*store)->Put(*digest, msg.data()); !r) {
      (void)(*store)->Sync();
      return ToStatus(r.error());
    }
    response->set_stored(response->stored() + 1);
    response->set_stored_bytes(response->stored_bytes() + msg.data().size());
  }
  if (auto r = (*store)->Sync(); !r) return ToStatus(r.error());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::MissingObjects(grpc::ServerContext* context, const v1::MissingObjectsRequest* request,
                                              v1::MissingObjectsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  return FindMissingObjects(state_, *request, response);
}

grpc::Status ImageServiceImpl::PutObjects(grpc::ServerContext* context, grpc::ServerReader<v1::PutObjectRequest>* reader,
                                          v1::PutObjectsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto st = StoreObjects(state_, reader, response);
  if (response->stored())
    state_.Audit(*who, "content.put", std::to_string(response->stored()) + " objects",
                 std::to_string(response->stored_bytes()) + " bytes");
  return st;
}

grpc::Status ImageServiceImpl::RegisterImage(grpc::ServerContext* context, const v1::RegisterImageRequest* request,
                                             v1::ImageInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  std::lock_guard registry(registry_mu_);
  auto trusted = TrustedKeys(*state_.deploy);
  if (!trusted) return ToStatus(trusted.error());
  if (trusted->empty())
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "no publisher key is trusted yet: add one with 'parcctl key add NAME.pub' first"};
  auto m = imaging::VerifyManifest(request->manifest_json(), request->signature(), *trusted, NowUnix());
  if (!m) return {grpc::StatusCode::FAILED_PRECONDITION, "image refused: " + m.error().message()};
  auto store = ContentChunks(state_);
  if (!store) return ToStatus(store.error());
  for (const auto& c : m->body_chunks)
    if (!(*store)->Has(c.object))
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "the image's index chunk " + c.object.Hex() + " is not on the server: upload the chunks first"};
  auto image = imaging::LoadImage(*m, **store, nullptr);
  if (!image) return {grpc::StatusCode::FAILED_PRECONDITION, "image refused: " + image.error().message()};
  uint64_t missing = 0;
  std::string first;
  for (const auto& c : image->UniqueChunks())
    if (!(*store)->Has(c.object) && missing++ == 0) first = c.object.Hex();
  if (missing)
    return {grpc::StatusCode::FAILED_PRECONDITION, std::to_string(missing) + " chunk(s) of the image are not on the server (" +
                                                       first + " ...): upload the chunks first"};
  ImageRecord r;
  r.name = m->name;
  r.version = m->version;
  r.kind = std::string(imaging::KindName(m->kind));
  r.publisher = m->publisher;
  r.key_id = m->key_id;
  r.created_at = m->created_at;
  r.signed_at = m->signed_at;
  r.expires_at = m->expires_at;
  r.uploaded_at = NowUnix();
  r.size = m->size;
  r.entries = m->entries;
  r.chunks = m->chunks;
  r.stored_size = m->stored_size;
  r.image_id = imaging::ManifestId(request->manifest_json());
  r.uploaded_by = who->common_name;
  r.manifest_json = request->manifest_json();
  r.signature = request->signature();
  auto stored = state_.images->AddImage(r);
  if (!stored) return ToStatus(stored.error());
  state_.Audit(*who, "image.register", r.name + "=" + r.version, r.image_id);
  FillImage(*stored, false, response);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::ListImages(grpc::ServerContext* context, const v1::ListImagesRequest* request,
                                          v1::ListImagesResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto list = state_.images->ListImages(request->name());
  if (!list) return ToStatus(list.error());
  for (const auto& r : *list) FillImage(r, false, response->add_images());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::GetImage(grpc::ServerContext* context, const v1::GetImageRequest* request,
                                        v1::ImageInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto r = state_.images->GetImage(request->name(), request->version());
  if (!r) return ToStatus(r.error());
  FillImage(*r, true, response);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::DiffImages(grpc::ServerContext* context, const v1::DiffImagesRequest* request,
                                          v1::ImageDiffInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto from = state_.images->GetImage(request->from().name(), request->from().version());
  if (!from) return ToStatus(from.error());
  auto to = state_.images->GetImage(request->to().name(), request->to().version());
  if (!to) return ToStatus(to.error());
  auto store = ContentChunks(state_);
  if (!store) return ToStatus(store.error());
  auto a = LoadRegistered(*from, **store);
  if (!a) return ToStatus(a.error().WithContext(from->name + " " + from->version));
  auto b = LoadRegistered(*to, **store);
  if (!b) return ToStatus(b.error().WithContext(to->name + " " + to->version));
  auto d = imaging::DiffImages(*a, *b);
  FillImage(*from, false, response->mutable_from());
  FillImage(*to, false, response->mutable_to());
  for (const auto& p : d.added) response->add_added(p);
  for (const auto& p : d.removed) response->add_removed(p);
  for (const auto& c : d.changed) {
    auto* o = response->add_changed();
    o->set_path(c.path);
    o->set_what(c.what);
    o->set_detail(c.detail);
  }
  response->set_added_bytes(d.added_bytes);
  response->set_removed_bytes(d.removed_bytes);
  response->set_changed_bytes(d.changed_bytes);
  response->set_changed_blocks(d.changed_blocks);
  response->set_chunks_to_transfer(d.chunks_to_transfer);
  response->set_bytes_to_transfer(d.bytes_to_transfer);
  response->set_chunks_total(d.chunks_total);
  response->set_bytes_total(d.bytes_total);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::DeployImage(grpc::ServerContext* context, const v1::DeployImageRequest* request,
                                           v1::DeploymentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (request->targets().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "no target: give --to group:NAME or --to host:HOST"};
  if (!ValidTarget(request->target()))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "--target must be an absolute path other than / (a directory for a tree image, a file or /dev/X for a "
            "block image), without '.', '..' or empty components"};
  auto image = state_.images->GetImage(request->name(), request->version());
  if (!image) return ToStatus(image.error());
  DeploymentRecord d;
  auto resolved = state_.ResolveTargets(request->targets());
  if (!resolved) return ToStatus(resolved.error());
  std::vector<HostRecord> hosts = std::move(*resolved);
  d.targets.assign(request->targets().begin(), request->targets().end());
  d.id = RandomUuid();
  // Shown by 'parcctl deploy status|list' as "install image:NAME VERSION".
  d.package = "image:" + image->name;
  d.version = image->version;
  d.sha256 = image->image_id;
  d.size = image->stored_size;
  d.created_at = NowUnix();
  d.created_by = who->common_name;
  d.max_parallel = request->max_parallel();
  d.state = "scheduled";
  std::string params = nlohmann::json{{"manifest_json", image->manifest_json},
                                      {"signature", HexEncode(image->signature)},
                                      {"kind", image->kind},
                                      {"target", request->target()},
                                      {"commit", request->commit()}}
                           .dump();
  std::vector<JobRecord> jobs;
  int64_t seq = 0;
  for (const auto& h : hosts) {
    JobRecord j;
    j.id = RandomUuid();
    j.deployment_id = d.id;
    j.seq = seq++;
    j.host_id = h.id;
    j.kind = "image";
    j.package = image->name;
    j.version = image->version;
    j.sha256 = image->image_id;
    j.size = image->stored_size;
    j.params = params;
    j.created_at = j.updated_at = d.created_at;
    jobs.push_back(std::move(j));
  }
  if (auto r = state_.deploy->CreateDeployment(d, jobs); !r) return ToStatus(r.error());
  state_.Audit(*who, "image.deploy", d.id,
               image->name + " " + image->version + " to " + request->target() + " on " + std::to_string(hosts.size()) +
                   " hosts" + (request->comment().empty() ? "" : " (" + request->comment() + ")"));
  state_.scheduler->Wake();
  FillCreated(d, jobs, hosts, response);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::CaptureImage(grpc::ServerContext* context, const v1::CaptureImageRequest* request,
                                            v1::DeploymentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (auto v = imaging::ValidateNameVersion(request->name(), request->version()); !v)
    return {grpc::StatusCode::INVALID_ARGUMENT, v.error().message()};
  if (!ValidTarget(request->source()))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "--from must be an absolute path on the host other than / (a directory, an image file or /dev/X), "
            "without '.', '..' or empty components"};
  for (const auto& e : request->exclude())
    if (!ValidTarget(e))
      return {grpc::StatusCode::INVALID_ARGUMENT, "--exclude '" + e + "' must be an absolute in-image path"};
  if (request->host().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "no host: give --on host:HOST"};
  if (auto existing = state_.images->GetImage(request->name(), request->version()))
    return {grpc::StatusCode::ALREADY_EXISTS,
            "image " + request->name() + " " + request->version() + " is registered already: capture a new version"};
  google::protobuf::RepeatedPtrField<std::string> targets;
  targets.Add("host:" + request->host());
  auto resolved = state_.ResolveTargets(targets);
  if (!resolved) return ToStatus(resolved.error());
  std::vector<HostRecord> hosts = std::move(*resolved);
  DeploymentRecord d;
  d.targets.assign(targets.begin(), targets.end());
  d.id = RandomUuid();
  d.package = std::string(kCapturePrefix) + request->name();  // 'parcctl deploy list': "capture image:NAME VERSION"
  d.version = request->version();
  d.created_at = NowUnix();
  d.created_by = who->common_name;
  d.state = "scheduled";
  nlohmann::json exclude = nlohmann::json::array();
  for (const auto& e : request->exclude()) exclude.push_back(e);
  JobRecord j;
  j.id = RandomUuid();
  j.deployment_id = d.id;
  j.host_id = hosts.front().id;
  j.kind = "capture";
  j.package = request->name();
  j.version = request->version();
  j.params = nlohmann::json{{"source", request->source()}, {"exclude", exclude}}.dump();
  j.created_at = j.updated_at = d.created_at;
  std::vector<JobRecord> jobs{j};
  if (auto r = state_.deploy->CreateDeployment(d, jobs); !r) return ToStatus(r.error());
  state_.Audit(*who, "image.capture", d.id,
               request->name() + " " + request->version() + " from " + request->source() + " on " +
                   hosts.front().hostname + (request->comment().empty() ? "" : " (" + request->comment() + ")"));
  state_.scheduler->Wake();
  FillCreated(d, jobs, hosts, response);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext* context, const v1::RemoveImageRequest* request,
                                           v1::RemoveImageResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (request->name().empty() || request->version().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "give the image as NAME=VERSION: versions are removed one at a time"};
  std::lock_guard registry(registry_mu_);
  std::lock_guard content(state_.content_mu);
  auto image = state_.images->GetImage(request->name(), request->version());
  if (!image) return ToStatus(image.error());
  auto deployments = state_.deploy->ListDeployments(false);
  if (!deployments) return ToStatus(deployments.error());
  for (const auto& d : *deployments)
    if (d.Unfinished() && d.package == "image:" + image->name && d.version == image->version)
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "deployment " + d.id.substr(0, 8) + " of " + image->name + " " + image->version + " is " + d.state +
                  ": let it finish or cancel it (parcctl deploy cancel " + d.id.substr(0, 8) + ") first; nothing removed"};
  auto store = ContentChunks(state_);
  if (!store) return ToStatus(store.error());
  auto mine = ObjectsOf(*image, **store, false);
  if (!mine) return ToStatus(mine.error());
  auto used = ObjectsOfImages(*state_.images, **store, image->name, image->version);
  if (!used)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            used.error().message() + " cannot be read, so which objects it needs is unknown; nothing removed"};
  if (auto r = state_.images->RemoveImage(image->name, image->version); !r) return ToStatus(r.error());
  // Unregistered first: a crash below leaves objects nobody uses, never an image without its objects.
  uint64_t deleted = 0, freed = 0, kept = 0;
  for (const auto& d : *mine) {
    if (InUse(*state_.deploy, *used, d)) {
      ++kept;
      continue;
    }
    auto size = state_.content->Remove(d.Hex());
    if (!size) spdlog::warn("image {} {}: {}", image->name, image->version, size.error().message());
    else if (*size > 0) ++deleted, freed += *size;  // 0: gone already
  }
  state_.Audit(*who, "image.remove", image->name + "=" + image->version,
               std::to_string(deleted) + " objects deleted (" + std::to_string(freed) + " bytes), " +
                   std::to_string(kept) + " kept");
  spdlog::info("image {} {} removed by {}: {} objects deleted ({} bytes), {} still used", image->name, image->version,
               who->common_name, deleted, freed, kept);
  response->set_name(image->name);
  response->set_version(image->version);
  response->set_objects_deleted(deleted);
  response->set_bytes_freed(freed);
  response->set_objects_kept(kept);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::CollectObjects(grpc::ServerContext* context, const v1::CollectObjectsRequest* request,
                                              v1::CollectObjectsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  const int64_t grace = request->older_than_seconds() ? static_cast<int64_t>(request->older_than_seconds()) : 86400;
  const bool dry = request->dry_run();
  std::lock_guard registry(registry_mu_);
  std::lock_guard content(state_.content_mu);
  auto store = ContentChunks(state_);
  if (!store) return ToStatus(store.error());
  auto used = ObjectsOfImages(*state_.images, **store, "", "");
  if (!used)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            used.error().message() + " cannot be read, so which objects it needs is unknown; nothing deleted"};
  // Package and policy files pushed but never registered (a registration
  // refused, a push abandoned before it): their rows go with their files.
  auto unregistered_list = state_.deploy->UnreferencedContent();
  if (!unregistered_list) return ToStatus(unregistered_list.error());
  const std::unordered_set<std::string> unregistered(unregistered_list->begin(), unregistered_list->end());
  const auto cutoff = fs::file_time_type::clock::now() - std::chrono::seconds(grace);
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator(state_.config->state_dir / "content" / "objects", ec)) {
    if (!dir.is_directory()) continue;
    for (const auto& e : fs::directory_iterator(dir.path(), ec)) {
      std::string hex = e.path().filename().string();
      if (!e.is_regular_file() || !ContentStore::ValidDigest(hex)) continue;
      response->set_objects_scanned(response->objects_scanned() + 1);
      auto digest = Digest::FromHex(hex);
      const bool pushed_unregistered = unregistered.contains(hex);
      // A never-registered push is judged by the images alone; every other
      // object by InUse (images, package and policy content, or unknown).
      const bool in_use = !digest || (pushed_unregistered ? used->contains(*digest) : InUse(*state_.deploy, *used, *digest));
      if (in_use) {
        response->set_objects_used(response->objects_used() + 1);
        continue;
      }
      std::error_code fec;
      auto mtime = fs::last_write_time(e.path(), fec);
      uint64_t size = fs::file_size(e.path(), fec);
      if (fec || mtime > cutoff) {
        response->set_objects_recent(response->objects_recent() + 1);
        continue;
      }
      if (!dry) {
        if (pushed_unregistered) {  // forgotten first: a crash then leaves a file nothing names, which gc finds again
          auto forgotten = state_.deploy->ForgetUnusedContent(hex);
          if (!forgotten) return ToStatus(forgotten.error());
          if (!*forgotten) {  // named by a package or policy after all: it stays
            response->set_objects_used(response->objects_used() + 1);
            continue;
          }
        }
        auto removed = state_.content->Remove(hex);
        if (!removed) {
          spdlog::warn("cannot delete unused object {}: {}", hex, removed.error().message());
          continue;
        }
        if (*removed == 0) continue;  // gone meanwhile
      }
      response->set_objects_deleted(response->objects_deleted() + 1);
      response->set_bytes_freed(response->bytes_freed() + size);
      if (pushed_unregistered) response->set_unregistered_deleted(response->unregistered_deleted() + 1);
    }
  }
  if (ec) return {grpc::StatusCode::INTERNAL, "reading the content store: " + ec.message()};
  auto partial = state_.content->CollectStaleUploads(cutoff, dry);
  if (!partial) return ToStatus(partial.error());
  response->set_partial_uploads_deleted(partial->files);
  response->set_partial_bytes_freed(partial->bytes);
  response->set_dry_run(dry);
  if (!dry)
    state_.Audit(*who, "image.gc", "content store",
                 std::to_string(response->objects_deleted()) + " unused objects deleted (" +
                     std::to_string(response->bytes_freed()) + " bytes, " +
                     std::to_string(response->unregistered_deleted()) + " of them never registered), " +
                     std::to_string(partial->files) + " abandoned uploads (" + std::to_string(partial->bytes) + " bytes)");
  return grpc::Status::OK;
}

}  // namespace parc::server
