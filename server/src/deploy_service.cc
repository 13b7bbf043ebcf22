// DeployService: publisher keys, content upload, packages, deployments,
// rollback points. Admin-authenticated like AdminService; every change audited.
#include <spdlog/spdlog.h>

#include <set>

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/packages/archive.h"
#include "parc/packages/signing.h"
#include "services.h"
#include "window.h"

namespace parc::server {

Expected<std::vector<HostRecord>> ServerState::ResolveTargets(
    const google::protobuf::RepeatedPtrField<std::string>& targets) const {
  std::vector<HostRecord> hosts;
  std::set<std::string> seen;
  for (const auto& target : targets) {
    auto colon = target.find(':');
    std::string kind = colon == std::string::npos ? "" : target.substr(0, colon);
    std::string name = colon == std::string::npos ? "" : target.substr(colon + 1);
    if (name.empty() || (kind != "group" && kind != "host"))
      return Fail(Errc::kInvalidArgument, "target '" + target + "' must be group:NAME or host:HOST");
    std::vector<HostRecord> found;
    if (kind == "host") {
      auto h = storage->GetHost(name);
      if (!h) return Fail(h.error());
      found.push_back(*h);
    } else {
      HostFilter f;
      f.group = name;
      auto list = storage->ListHosts(f);
      if (!list) return Fail(list.error());
      if (list->empty()) return Fail(Errc::kNotFound, "group '" + name + "' has no hosts");
      found = std::move(*list);
    }
    for (auto& h : found) {
      if (h.revoked || !h.superseded_by.empty()) continue;
      if (seen.insert(h.id).second) hosts.push_back(std::move(h));
    }
  }
  if (hosts.empty()) return Fail(Errc::kFailedPrecondition, "the targets hold no active host");
  return hosts;
}

namespace {

void FillJob(const JobRecord& j, const std::string& hostname, v1::JobInfo* out) {
  out->set_job_id(j.id);
  out->set_deployment_id(j.deployment_id);
  out->set_host_id(j.host_id);
  out->set_hostname(hostname);
  out->set_kind(j.kind);
  out->set_state(j.state);
  out->set_percent(j.percent);
  out->set_message(j.message);
  out->set_output(j.output);
  out->set_updated_at(j.updated_at);
  out->set_point_id(j.point_id);
}

void FillPackage(const PackageRecord& p, v1::PackageInfo* out) {
  out->set_name(p.name);
  out->set_version(p.version);
  out->set_summary(p.summary);
  out->set_publisher(p.publisher);
  out->set_key_id(p.key_id);
  out->set_sha256(p.sha256);
  out->set_size(p.size);
  out->set_signed_at(p.signed_at);
  out->set_expires_at(p.expires_at);
  out->set_uploaded_at(p.uploaded_at);
  out->set_files(p.files);
  out->set_manifest_json(p.manifest_json);
}

grpc::Status Refused(const std::string& what, const Error& e) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, what + ": " + e.message());
}

}  // namespace

void DeployServiceImpl::PushTrustedKeys() {
  v1::ServerMessage msg;
  for (auto& k : TrustedKeysForAgents(*state_.deploy)) *msg.mutable_command()->mutable_trusted_keys()->add_keys() = k;
  msg.mutable_command()->set_command_id("keys-" + RandomToken(6));
  for (auto& session : state_.registry.Snapshot()) session->Push(msg);
}

grpc::Status DeployServiceImpl::AddPublisherKey(grpc::ServerContext* context, const v1::AddPublisherKeyRequest* request,
                                                v1::PublisherKey* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto key = pkg::ParsePublicKey(request->public_key_pem(), request->name());
  if (!key) return {grpc::StatusCode::INVALID_ARGUMENT, "not an Ed25519 public key: " + key.error().message()};
  std::string name = request->name().empty() ? key->key_id : request->name().substr(0, 128);
  if (auto r = state_.deploy->AddPublisherKey({key->key_id, name, key->Pem(), NowUnix()}); !r) return ToStatus(r.error());
  state_.Audit(*who, "key.add", key->key_id, name);
  response->set_key_id(key->key_id);
  response->set_name(name);
  response->set_public_key_pem(key->Pem());
  PushTrustedKeys();
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::ListPublisherKeys(grpc::ServerContext* context, const v1::ListPublisherKeysRequest*,
                                                  v1::ListPublisherKeysResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  for (auto& k : TrustedKeysForAgents(*state_.deploy)) *response->add_keys() = k;
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::StatContent(grpc::ServerContext* context, const v1::StatContentRequest* request,
                                            v1::StatContentResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (!ContentStore::ValidDigest(request->sha256()))
    return {grpc::StatusCode::INVALID_ARGUMENT, "content digest must be 64 lower-case hex characters"};
  response->set_sha256(request->sha256());
  std::lock_guard content(state_.content_mu);
  if (auto size = state_.content->Size(request->sha256())) {
    // A push of bytes already stored ends here (parcctl asks first): they
    // count as pushed now, so gc gives them a new grace period to be
    // registered in.
    state_.content->Touch(request->sha256());
    response->set_complete(true);
    response->set_size(*size);
  } else {
    response->set_received_bytes(state_.content->Received(request->sha256()));
  }
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::PutContent(grpc::ServerContext* context, grpc::ServerReader<v1::PutContentRequest>* reader,
                                           v1::StatContentResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  v1::PutContentRequest msg;
  if (!reader->Read(&msg) || !msg.has_header())
    return {grpc::StatusCode::INVALID_ARGUMENT, "an upload starts with a header (digest, size, offset)"};
  const auto header = msg.header();
  response->set_sha256(header.sha256());
  {
    std::lock_guard content(state_.content_mu);
    if (auto size = state_.content->Size(header.sha256())) {
      // Identical bytes are stored once: nothing to receive (and, as in
      // StatContent, a new grace period before gc).
      response->set_complete(true);
      response->set_size(*size);
      state_.content->Touch(header.sha256());
      (void)state_.deploy->AddContent(header.sha256(), *size, NowUnix());
      return grpc::Status::OK;
    }
  }
  auto upload = state_.content->BeginUpload(header.sha256(), header.size(), header.offset());
  if (!upload) return ToStatus(upload.error());
  while (reader->Read(&msg)) {
    if (!msg.has_data() && msg.body_case() != v1::PutContentRequest::kData)
      return {grpc::StatusCode::INVALID_ARGUMENT, "only data may follow the header"};
    if (auto r = upload->Append(msg.data()); !r) return ToStatus(r.error());
  }
  if (upload->written() < header.size()) {
    // The client went away or stopped early: keep what arrived for a resume.
    response->set_received_bytes(upload->written());
    return {grpc::StatusCode::ABORTED, "upload interrupted after " + std::to_string(upload->written()) + " of " +
                                           std::to_string(header.size()) + " bytes; run the same command to resume"};
  }
  std::lock_guard content(state_.content_mu);
  auto size = upload->Finish();
  if (!size) return ToStatus(size.error());
  if (auto r = state_.deploy->AddContent(header.sha256(), *size, NowUnix()); !r) return ToStatus(r.error());
  state_.Audit(*who, "content.put", header.sha256(), std::to_string(*size) + " bytes");
  response->set_complete(true);
  response->set_size(*size);
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::RegisterPackage(grpc::ServerContext* context, const v1::RegisterPackageRequest* request,
                                                v1::PackageInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  std::lock_guard content(state_.content_mu);
  auto size = state_.content->Size(request->sha256());
  if (!size) return {grpc::StatusCode::NOT_FOUND, "no uploaded content " + request->sha256() + "; upload it first"};
  std::vector<pkg::PublicKey> trusted;
  auto keys = state_.deploy->ListPublisherKeys();
  if (!keys) return ToStatus(keys.error());
  for (const auto& k : *keys) {
    auto pk = pkg::ParsePublicKey(k.public_key_pem, k.name);
    if (pk) trusted.push_back(*pk);
  }
  if (trusted.empty())
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "no publisher key is trusted yet: add one with 'parcctl key add NAME.pub' first"};
  auto opened = pkg::VerifyPackage(state_.content->ObjectPath(request->sha256()), trusted, NowUnix());
  if (!opened) return Refused("package refused", opened.error());
  const auto& m = opened->manifest;
  PackageRecord rec;
  rec.name = m.name;
  rec.version = m.version;
  rec.summary = m.summary;
  rec.publisher = m.publisher;
  rec.key_id = m.key_id;
  rec.sha256 = request->sha256();
  rec.size = *size;
  rec.signed_at = m.signed_at;
  rec.expires_at = m.expires_at;
  rec.uploaded_at = NowUnix();
  rec.files = static_cast<uint32_t>(m.files.size());
  rec.manifest_json = opened->manifest_bytes;
  auto stored = state_.deploy->AddPackage(rec);
  if (!stored) return ToStatus(stored.error());
  state_.Audit(*who, "package.register", m.Id(), request->sha256());
  FillPackage(*stored, response);
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::ListPackages(grpc::ServerContext* context, const v1::ListPackagesRequest* request,
                                             v1::ListPackagesResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto list = state_.deploy->ListPackages(request->name());
  if (!list) return ToStatus(list.error());
  for (const auto& p : *list) FillPackage(p, response->add_packages());
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::RemovePackage(grpc::ServerContext* context, const v1::RemovePackageRequest* request,
                                              v1::RemovePackageResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (request->name().empty() || request->version().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "give the package as NAME=VERSION: versions are removed one at a time"};
  std::lock_guard content(state_.content_mu);
  auto package = state_.deploy->GetPackage(request->name(), request->version());
  if (!package) return ToStatus(package.error());
  auto deployments = state_.deploy->ListDeployments(false);
  if (!deployments) return ToStatus(deployments.error());
  for (const auto& d : *deployments)
    if (d.Unfinished() && (d.sha256 == package->sha256 || (d.package == package->name && d.version == package->version)))
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "deployment " + d.id.substr(0, 8) + " of " + package->name + " " + package->version + " is " + d.state +
                  ": let it finish or cancel it (parcctl deploy cancel " + d.id.substr(0, 8) + ") first; nothing removed"};
  auto removed = state_.deploy->RemovePackage(package->name, package->version);
  if (!removed) return ToStatus(removed.error());
  // Unregistered first: a crash below leaves a file nothing names, never a package without its file.
  auto forgotten = state_.deploy->ForgetUnusedContent(removed->sha256);
  if (!forgotten) return ToStatus(forgotten.error());
  uint64_t freed = 0;
  if (*forgotten) {
    auto size = state_.content->Remove(removed->sha256);
    if (size) freed = *size;
    else spdlog::warn("package {} {}: {}", removed->name, removed->version, size.error().message());
  }
  state_.Audit(*who, "package.remove", removed->name + "=" + removed->version,
               *forgotten ? "file deleted (" + std::to_string(freed) + " bytes)" : "file kept: still used");
  spdlog::info("package {} {} removed by {}{}", removed->name, removed->version, who->common_name,
               *forgotten ? "" : " (its file is still used)");
  response->set_name(removed->name);
  response->set_version(removed->version);
  response->set_sha256(removed->sha256);
  response->set_content_deleted(*forgotten && freed > 0);
  response->set_bytes_freed(freed);
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::CreateDeployment(grpc::ServerContext* context, const v1::CreateDeploymentRequest* request,
                                                 v1::DeploymentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  if (request->targets().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "no target: give --to group:NAME or --to host:HOST"};
  if (!request->window().empty()) {
    if (auto w = ParseWindow(request->window()); !w) return ToStatus(w.error());
  }
  if (request->max_parallel_percent() > 100 || request->halt_failure_percent() > 100)
    return {grpc::StatusCode::INVALID_ARGUMENT, "percentages must be between 0 and 100"};
  DeploymentRecord d;
  d.id = RandomUuid();
  d.package = request->package();
  d.remove = request->remove();
  if (!d.remove) {
    auto pkgrec = state_.deploy->GetPackage(request->package(), request->version());
    if (!pkgrec) return ToStatus(pkgrec.error());
    d.version = pkgrec->version;
    d.sha256 = pkgrec->sha256;
    d.size = pkgrec->size;
  } else {
    d.version = request->version();
  }
  // Resolve targets now: the hosts of a group at creation time receive it.
  auto resolved = state_.ResolveTargets(request->targets());
  if (!resolved) return ToStatus(resolved.error());
  std::vector<HostRecord> hosts = std::move(*resolved);
  d.targets.assign(request->targets().begin(), request->targets().end());
  d.created_at = NowUnix();
  d.created_by = who->common_name;
  d.start = request->start();
  d.deadline = request->deadline();
  if (d.deadline && d.deadline <= std::max(d.start, d.created_at))
    return {grpc::StatusCode::INVALID_ARGUMENT, "the deadline is not after the start"};
  d.window = request->window();
  d.halt_failure_percent = request->halt_failure_percent();
  d.max_parallel = request->max_parallel();
  if (request->max_parallel_percent()) {
    uint32_t n = static_cast<uint32_t>((hosts.size() * request->max_parallel_percent() + 99) / 100);
    n = std::max<uint32_t>(n, 1);
    d.max_parallel = d.max_parallel ? std::min(d.max_parallel, n) : n;
  }
  d.state = "scheduled";
  std::vector<JobRecord> jobs;
  int64_t seq = 0;
  for (const auto& h : hosts) {
    JobRecord j;
    j.id = RandomUuid();
    j.deployment_id = d.id;
    j.seq = seq++;
    j.host_id = h.id;
    j.kind = d.remove ? "remove" : "install";
    j.package = d.package;
    j.version = d.version;
    j.sha256 = d.sha256;
    j.size = d.size;
    j.created_at = j.updated_at = d.created_at;
    jobs.push_back(std::move(j));
  }
  if (auto r = state_.deploy->CreateDeployment(d, jobs); !r) return ToStatus(r.error());
  state_.Audit(*who, "deploy.create", d.id,
        (d.remove ? "remove " : "install ") + d.package + " " + d.version + " on " + std::to_string(hosts.size()) +
            " hosts" + (request->comment().empty() ? "" : " (" + request->comment() + ")"));
  state_.scheduler->Wake();
  auto info = Describe(d.id, true);
  if (!info) return ToStatus(info.error());
  *response = std::move(*info);
  return grpc::Status::OK;
}

Expected<v1::DeploymentInfo> DeployServiceImpl::Describe(const std::string& ref, bool with_jobs) {
  auto d = state_.deploy->GetDeployment(ref);
  if (!d) return Fail(d.error());
  v1::DeploymentInfo out;
  out.set_deployment_id(d->id);
  out.set_package(d->package);
  out.set_version(d->version);
  out.set_remove(d->remove);
  out.set_state(d->state);
  out.set_reason(d->reason);
  out.set_created_at(d->created_at);
  out.set_start(d->start);
  out.set_deadline(d->deadline);
  out.set_window(d->window);
  out.set_max_parallel(d->max_parallel);
  out.set_halt_failure_percent(d->halt_failure_percent);
  out.set_created_by(d->created_by);
  for (const auto& t : d->targets) out.add_targets(t);
  auto jobs = state_.deploy->JobsOfDeployment(d->id);
  if (!jobs) return Fail(jobs.error());
  std::map<std::string, std::string> names;
  for (const auto& j : *jobs) {
    (*out.mutable_counts())[j.state]++;
    if (!with_jobs) continue;
    auto it = names.find(j.host_id);
    if (it == names.end()) {
      auto h = state_.storage->GetHost(j.host_id);
      it = names.emplace(j.host_id, h ? h->hostname : "").first;
    }
    FillJob(j, it->second, out.add_jobs());
  }
  return out;
}

grpc::Status DeployServiceImpl::GetDeployment(grpc::ServerContext* context, const v1::GetDeploymentRequest* request,
                                              v1::DeploymentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto info = Describe(request->deployment_id(), true);
  if (!info) return ToStatus(info.error());
  *response = std::move(*info);
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::WatchDeployment(grpc::ServerContext* context, const v1::GetDeploymentRequest* request,
                                                grpc::ServerWriter<v1::DeploymentInfo>* writer) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  std::string last;
  while (!context->IsCancelled()) {
    uint64_t generation = state_.scheduler->generation();
    auto info = Describe(request->deployment_id(), true);
    if (!info) return ToStatus(info.error());
    std::string serialized = info->SerializeAsString();
    if (serialized != last) {
      if (!writer->Write(*info)) break;
      last = std::move(serialized);
    }
    const std::string& s = info->state();
    if (s == "completed" || s == "canceled") {
      // Finished only when no job is still in flight (a canceled deployment lets running jobs end).
      bool open = false;
      for (const auto& j : info->jobs())
        if (j.state() != "succeeded" && j.state() != "failed" && j.state() != "canceled") open = true;
      if (!open) break;
    }
    state_.scheduler->WaitForChange(generation, std::chrono::seconds(1));
  }
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::ListDeployments(grpc::ServerContext* context, const v1::ListDeploymentsRequest*,
                                                v1::ListDeploymentsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto list = state_.deploy->ListDeployments(false);
  if (!list) return ToStatus(list.error());
  for (const auto& d : *list) {
    auto info = Describe(d.id, false);
    if (info) *response->add_deployments() = std::move(*info);
  }
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::ControlDeployment(grpc::ServerContext* context,
                                                  const v1::ControlDeploymentRequest* request,
                                                  v1::DeploymentInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto d = state_.deploy->GetDeployment(request->deployment_id());
  if (!d) return ToStatus(d.error());
  const std::string& action = request->action();
  if (!d->Unfinished()) return {grpc::StatusCode::FAILED_PRECONDITION, "deployment is already " + d->state};
  std::string reason = request->reason().empty() ? "by " + who->common_name : request->reason() + " (" + who->common_name + ")";
  if (action == "halt") {
    if (d->state == "halted") return {grpc::StatusCode::FAILED_PRECONDITION, "deployment is already halted"};
    if (auto r = state_.deploy->SetDeploymentState(d->id, "halted", "halted " + reason); !r) return ToStatus(r.error());
  } else if (action == "resume") {
    if (d->state != "halted") return {grpc::StatusCode::FAILED_PRECONDITION, "deployment is " + d->state + ", not halted"};
    auto jobs = state_.deploy->JobsOfDeployment(d->id);
    if (!jobs) return ToStatus(jobs.error());
    uint32_t failed = 0, done = 0;
    for (const auto& j : *jobs) {
      if (j.state == "failed") ++failed;
      if (j.state == "failed" || j.state == "succeeded") ++done;
    }
    if (auto r = state_.deploy->ResumeDeployment(d->id, failed, done); !r) return ToStatus(r.error());
  } else if (action == "cancel") {
    auto jobs = state_.deploy->JobsOfDeployment(d->id);
    if (!jobs) return ToStatus(jobs.error());
    for (auto j : *jobs) {
      if (j.state != "pending") continue;  // jobs already on their way finish (or roll back) on the agent
      j.state = "canceled";
      j.message = "deployment canceled " + reason;
      j.updated_at = NowUnix();
      if (auto r = state_.deploy->UpdateJob(j); !r) return ToStatus(r.error());
    }
    if (auto r = state_.deploy->SetDeploymentState(d->id, "canceled", "canceled " + reason); !r) return ToStatus(r.error());
  } else {
    return {grpc::StatusCode::INVALID_ARGUMENT, "action must be halt, resume or cancel"};
  }
  state_.Audit(*who, "deploy." + action, d->id, request->reason());
  state_.scheduler->Changed();
  state_.scheduler->Wake();
  auto info = Describe(d->id, true);
  if (!info) return ToStatus(info.error());
  *response = std::move(*info);
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::ListRollbackPoints(grpc::ServerContext* context,
                                                   const v1::ListRollbackPointsRequest* request,
                                                   v1::ListRollbackPointsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return ToStatus(host.error());
  auto points = state_.deploy->ListRollbackPoints(host->id);
  if (!points) return ToStatus(points.error());
  response->set_host_id(host->id);
  for (const auto& p : *points) {
    auto* o = response->add_points();
    o->set_point_id(p.point_id);
    o->set_job_id(p.job_id);
    o->set_package(p.package);
    o->set_action(p.action);
    o->set_from_version(p.from_version);
    o->set_to_version(p.to_version);
    o->set_created_at(p.created_at);
    o->set_paths(p.paths);
    o->set_bytes(p.bytes);
    o->set_state(p.state);
    o->set_target(p.target);
  }
  return grpc::Status::OK;
}

grpc::Status DeployServiceImpl::Rollback(grpc::ServerContext* context, const v1::RollbackRequest* request,
                                         v1::JobInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return ToStatus(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return ToStatus(host.error());
  auto points = state_.deploy->ListRollbackPoints(host->id);
  if (!points) return ToStatus(points.error());
  const RollbackPointRecord* point = nullptr;
  for (const auto& p : *points) {
    if (p.point_id == request->point_id()) {
      point = &p;
      break;
    }
    if (!request->point_id().empty() && p.point_id.rfind(request->point_id(), 0) == 0) {
      if (point) return {grpc::StatusCode::INVALID_ARGUMENT, "'" + request->point_id() + "' matches several points"};
      point = &p;
    }
  }
  if (!point)
    return {grpc::StatusCode::NOT_FOUND, "host " + host->hostname + " reported no rollback point '" +
                                             request->point_id() + "' (see parcctl rollback-points " + host->hostname + ")"};
  if (point->state != "committed")
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "rollback point " + point->point_id.substr(0, 8) + " is " + point->state + ", only committed points can be restored"};
  JobRecord j;
  j.id = RandomUuid();
  j.host_id = host->id;
  j.kind = "rollback";
  j.package = point->package;
  j.version = point->from_version;
  j.target_point = point->point_id;
  j.allow_downgrade = true;
  j.created_at = j.updated_at = NowUnix();
  if (auto r = state_.deploy->CreateJob(j); !r) return ToStatus(r.error());
  state_.Audit(*who, "rollback", host->id, "point " + point->point_id + " (" + point->package + ")");
  state_.scheduler->Wake();
  FillJob(j, host->hostname, response);
  return grpc::Status::OK;
}

}  // namespace parc::server
