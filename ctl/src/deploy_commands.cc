// parcctl's distribution commands: publisher keys, package upload, deployments
// and rollbacks, through the server's DeployService (same admin certificate
// and server as the admin API).
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "commands.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/ctl/credentials.h"
#include "parc/ctl/exit_codes.h"
#include "parc/ctl/table.h"
#include "parc/ctl/text.h"
#include "parc/packages/manifest.h"
#include "parc/packages/version.h"

namespace parc::ctl {
namespace {

constexpr size_t kChunkBytes = 1 << 20;  // the server's limit per PutContent message

// Lifecycle order of job states, for counts.
constexpr const char* kJobStates[] = {"pending",    "sent",      "downloading", "verifying",
                                      "installing", "succeeded", "failed",      "canceled"};

bool JobFinished(const v1::JobInfo& j) {
  return j.state() == "succeeded" || j.state() == "failed" || j.state() == "canceled";
}

Expected<uint32_t> ParseUnsigned(std::string_view text, uint32_t max, const std::string& what) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > max)
    return Fail(Errc::kInvalidArgument, "bad " + what + " '" + std::string(text) + "'");
  return value;
}

std::string TimeOrDash(int64_t t) { return t > 0 ? FormatTime(t) : "-"; }

std::string HostOfJob(const v1::JobInfo& j) {
  return j.hostname().empty() ? ShortId(j.host_id()) : j.hostname();
}

std::string JobPercent(const v1::JobInfo& j) {
  return j.state() == "pending" ? "-" : std::to_string(j.percent()) + "%";
}

std::string RenderJobs(const v1::DeploymentInfo& d, size_t width) {
  if (d.jobs().empty()) return "";
  Table t({"HOST", "STATE", "%", "MESSAGE"});
  for (const auto& j : d.jobs()) t.AddRow({HostOfJob(j), j.state(), JobPercent(j), j.message()});
  return t.Render(width);
}

std::string PackageLabel(const std::string& name, const std::string& version) {
  return version.empty() ? name : name + " " + version;
}

// "install", "remove", or "capture" (an image captured on a host: package "capture:NAME").
std::string DeploymentAction(const v1::DeploymentInfo& d) {
  if (d.package().rfind("capture:", 0) == 0) return "capture";
  return d.remove() ? "remove" : "install";
}

// What the deployment is about; captures as "image:NAME".
std::string DeploymentSubject(const v1::DeploymentInfo& d) {
  if (d.package().rfind("capture:", 0) == 0) return "image:" + d.package().substr(8);
  return d.package();
}

std::string RenderDeployment(const v1::DeploymentInfo& d, size_t width) {
  FieldList f;
  f.Add("Deployment", d.deployment_id());
  f.Add("Action", DeploymentAction(d) + " " + PackageLabel(DeploymentSubject(d), d.version()));
  f.Add("State", d.state() + (d.reason().empty() ? "" : " (" + d.reason() + ")"));
  f.Add("Targets", Join({d.targets().begin(), d.targets().end()}, ", "));
  f.Add("Created", FormatTime(d.created_at()) + (d.created_by().empty() ? "" : " by " + d.created_by()));
  f.Add("Start", d.start() ? FormatTime(d.start()) : "now");
  f.Add("Deadline", d.deadline() ? FormatTime(d.deadline()) : "none");
  f.Add("Window", d.window().empty() ? "any time" : d.window());
  f.Add("Max parallel", d.max_parallel() ? std::to_string(d.max_parallel()) + " hosts" : "no limit");
  f.Add("Halt on failure",
        d.halt_failure_percent() ? std::to_string(d.halt_failure_percent()) + "% failed" : "never");
  f.Add("Jobs", DeploymentCounts(d));
  std::string jobs = RenderJobs(d, width);
  return f.Render() + (jobs.empty() ? "" : "\n" + jobs);
}

// Exit code of a deployment status: 0 while it runs or when every job
// succeeded, 1 once it is finished with a failed or canceled job.
int DeploymentExit(const v1::DeploymentInfo& d) {
  if (!DeploymentFinished(d)) return kExitOk;
  for (const auto& j : d.jobs())
    if (j.state() != "succeeded") return kExitFailure;
  for (const auto& [state, n] : d.counts())
    if (state != "succeeded" && n) return kExitFailure;
  return kExitOk;
}

std::string RenderPackageInfo(const v1::PackageInfo& p) {
  FieldList f;
  f.Add("Package", p.name());
  f.Add("Version", p.version());
  f.Add("Summary", p.summary());
  f.Add("Publisher", p.publisher());
  f.Add("Key id", p.key_id());
  f.Add("SHA-256", p.sha256());
  f.Add("Size", HumanBytes(p.size()));
  f.Add("Signed", TimeOrDash(p.signed_at()));
  f.Add("Expires", p.expires_at() ? FormatTime(p.expires_at()) : "never");
  f.Add("Uploaded", TimeOrDash(p.uploaded_at()));
  f.Add("Files", std::to_string(p.files()));
  if (auto m = pkg::ParseManifest(p.manifest_json())) {
    auto constraints = [](const std::vector<pkg::Constraint>& list) {
      std::vector<std::string> parts;
      for (const auto& c : list) parts.push_back(c.String());
      return Join(parts, ", ");
    };
    f.Add("Platforms", Join(m->platforms, ", "));
    f.Add("Architectures", Join(m->architectures, ", "));
    f.Add("Depends", constraints(m->depends));
    f.Add("Conflicts", constraints(m->conflicts));
    f.Add("Provides", constraints(m->provides));
    std::vector<std::string> native, scripts, services;
    for (const auto& n : m->native) native.push_back(n.name);
    for (const auto& [k, s] : m->scripts) scripts.push_back(k);
    for (const auto& s : m->services) services.push_back(s.unit);
    f.Add("Native installers", Join(native, ", "));
    f.Add("Scripts", Join(scripts, ", "));
    f.Add("Services", Join(services, ", "));
    if (!m->config.empty()) f.Add("Config files", std::to_string(m->config.size()));
  } else {
    f.Add("Manifest", "unreadable: " + m.error().message());
  }
  return f.Render();
}

}  // namespace

// ---- pure helpers ---------------------------------------------------------

Expected<PackageRef> ParsePackageRef(std::string_view text) {
  auto eq = text.find('=');
  PackageRef ref{std::string(text.substr(0, eq)), eq == std::string_view::npos ? "" : std::string(text.substr(eq + 1))};
  if (ref.name.empty()) return Fail(Errc::kInvalidArgument, "bad package '" + std::string(text) + "' (use NAME or NAME=VERSION)");
  if (eq != std::string_view::npos && ref.version.empty())
    return Fail(Errc::kInvalidArgument, "bad package '" + std::string(text) + "': empty version after '='");
  if (auto v = ref.version.empty() ? ExpectedVoid() : pkg::ValidateVersion(ref.version); !v)
    return Fail(Errc::kInvalidArgument, "bad version in '" + std::string(text) + "': " + v.error().message());
  return ref;
}

Expected<Parallelism> ParseMaxParallel(std::string_view text) {
  Parallelism p;
  if (!text.empty() && text.back() == '%') {
    auto pct = ParseUnsigned(text.substr(0, text.size() - 1), 100, "--max-parallel");
    if (!pct || *pct == 0)
      return Fail(Errc::kInvalidArgument, "bad --max-parallel '" + std::string(text) + "' (use 1% to 100%)");
    p.percent = *pct;
    return p;
  }
  auto n = ParseUnsigned(text, 1'000'000, "--max-parallel");
  if (!n || *n == 0)
    return Fail(Errc::kInvalidArgument,
                "bad --max-parallel '" + std::string(text) + "' (use a number of hosts like 5, or a share like 25%)");
  p.count = *n;
  return p;
}

Expected<uint32_t> ParsePercent(std::string_view text) {
  if (!text.empty() && text.back() == '%') text.remove_suffix(1);
  auto pct = ParseUnsigned(text, 100, "percentage");
  if (!pct) return Fail(Errc::kInvalidArgument, "bad percentage '" + std::string(text) + "' (use 0% to 100%)");
  return pct;
}

Expected<int64_t> ParseFutureTime(std::string_view text, int64_t now) {
  if (text == "now") return now;
  bool absolute = text.size() >= 10 && text[4] == '-' && text[7] == '-';
  if (absolute) return ParseTimePoint(text, now);
  std::string_view rest = !text.empty() && text.front() == '+' ? text.substr(1) : text;
  auto d = ParseDuration(rest);
  if (!d || rest.empty())
    return Fail(Errc::kInvalidArgument, "bad time '" + std::string(text) +
                                            "' (use 2026-11-28T22:00:00Z, 2026-11-28, or +2h / 30m from now)");
  return now + *d;
}

std::string UploadProgress(uint64_t done, uint64_t total, uint64_t sent_now, double seconds) {
  constexpr double kMiB = 1024.0 * 1024.0;
  unsigned percent = total ? static_cast<unsigned>(done * 100 / total) : 100;
  double rate = seconds > 0 ? static_cast<double>(sent_now) / kMiB / seconds : 0;
  char buf[128];
  std::snprintf(buf, sizeof buf, "%3u%%  %.1f of %.1f MiB  %.1f MiB/s", percent, static_cast<double>(done) / kMiB,
                static_cast<double>(total) / kMiB, rate);
  return buf;
}

bool DeploymentFinished(const v1::DeploymentInfo& d) {
  if (d.state() != "completed" && d.state() != "canceled") return false;
  return std::all_of(d.jobs().begin(), d.jobs().end(), JobFinished);
}

std::string DeploymentCounts(const v1::DeploymentInfo& d) {
  uint64_t total = 0;
  for (const auto& [state, n] : d.counts()) total += n;
  std::vector<std::string> parts;
  for (const char* state : kJobStates) {
    auto it = d.counts().find(state);
    if (it != d.counts().end() && it->second) parts.push_back(std::to_string(it->second) + " " + state);
  }
  std::map<std::string, uint32_t> others;  // states this parcctl does not know, sorted
  for (const auto& [state, n] : d.counts())
    if (n && std::find(std::begin(kJobStates), std::end(kJobStates), state) == std::end(kJobStates)) others[state] = n;
  for (const auto& [state, n] : others) parts.push_back(std::to_string(n) + " " + state);
  std::string head = std::to_string(total) + (total == 1 ? " host" : " hosts");
  return parts.empty() ? head : head + ": " + Join(parts, ", ");
}

// ---- commands -------------------------------------------------------------

int Commands::ConnectDeploy() {
  if (deploy_) return kExitOk;
  if (int rc = Connect()) return rc;
  std::shared_ptr<grpc::Channel> channel;
  if (hooks_.connect) {
    channel = hooks_.connect(conn_->server());
  } else {
    // Connection keeps its channel to itself: build the same mutual-TLS channel.
    auto creds = LoadCredentials(conn_->credentials_path());
    if (!creds) return LocalError(creds.error(), kExitFailure);
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = creds->ca_pem;
    tls.pem_private_key = creds->private_key_pem;
    tls.pem_cert_chain = creds->certificate_pem;
    grpc::ChannelArguments args;
    if (!o_.connection.server_name.empty()) args.SetSslTargetNameOverride(o_.connection.server_name);
    channel = grpc::CreateCustomChannel(conn_->server(), grpc::SslCredentials(tls), args);
  }
  deploy_ = v1::DeployService::NewStub(channel);
  deploy_channel_ = channel;
  return kExitOk;
}

int Commands::KeyAdd() {
  auto pem = ReadFile(o_.path);
  if (!pem) return LocalError(pem.error(), ExitCodeForError(pem.error()));
  if (int rc = ConnectDeploy()) return rc;
  v1::AddPublisherKeyRequest req;
  req.set_name(o_.name);
  req.set_public_key_pem(*pem);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::PublisherKey resp;
  if (auto st = deploy_->AddPublisherKey(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    return "trusted publisher key " + resp.key_id() + " (" + Printable(resp.name()) +
           "); connected agents receive it now\n";
  });
}

int Commands::KeyList() {
  if (int rc = ConnectDeploy()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListPublisherKeysResponse resp;
  if (auto st = deploy_->ListPublisherKeys(&ctx, v1::ListPublisherKeysRequest(), &resp); !st.ok())
    return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.keys().empty()) return std::string("no publisher key is trusted yet (parcctl key add NAME.pub)\n");
    Table t({"KEY ID", "NAME"});
    for (const auto& k : resp.keys()) t.AddRow({k.key_id(), k.name()});
    return t.Render(Render().max_width);
  });
}

int Commands::UploadContent(const std::string& path, FileDigest& digest) {
  auto d = Sha256OfFile(path);
  if (!d) return LocalError(d.error(), ExitCodeForError(d.error()));
  digest = *d;
  if (int rc = ConnectDeploy()) return rc;

  v1::StatContentRequest stat_req;
  stat_req.set_sha256(digest.sha256);
  v1::StatContentResponse stat;
  {
    grpc::ClientContext ctx;
    conn_->SetDeadline(ctx);
    if (auto st = deploy_->StatContent(&ctx, stat_req, &stat); !st.ok()) return RpcFailed(st);
  }
  if (stat.complete()) {
    if (!o_.json) err_ << "already on the server, identical bytes stored once\n";
    return kExitOk;
  }
  uint64_t offset = stat.received_bytes() <= digest.size ? stat.received_bytes() : 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return LocalError(Error(Errc::kIo, "cannot open " + path), kExitFailure);
  in.seekg(static_cast<std::streamoff>(offset));
  if (!o_.json && offset)
    err_ << "resuming the upload at " << HumanBytes(offset) << " of " << HumanBytes(digest.size) << "\n";

  grpc::ClientContext ctx;  // a long upload may rightly take longer than --timeout
  if (!conn_->WaitUntilConnected()) conn_->SetDeadline(ctx);
  v1::StatContentResponse put;
  auto writer = deploy_->PutContent(&ctx, &put);
  v1::PutContentRequest msg;
  auto* header = msg.mutable_header();
  header->set_sha256(digest.sha256);
  header->set_size(digest.size);
  header->set_offset(offset);
  bool open = writer->Write(msg);
  const auto started = std::chrono::steady_clock::now();
  auto last_report = started;
  uint64_t done = offset;
  std::string buffer(kChunkBytes, '\0');
  while (open && done < digest.size) {
    in.read(buffer.data(), static_cast<std::streamsize>(std::min<uint64_t>(kChunkBytes, digest.size - done)));
    auto n = static_cast<size_t>(in.gcount());
    if (n == 0) {
      ctx.TryCancel();
      writer->Finish().IgnoreError();
      return LocalError(Error(Errc::kIo, "cannot read " + path + " (did it change during the upload?)"), kExitFailure);
    }
    msg.set_data(buffer.data(), n);
    open = writer->Write(msg);
    if (open) done += n;
    auto now = std::chrono::steady_clock::now();
    if (!o_.json && (now - last_report >= std::chrono::seconds(1) || done == digest.size)) {
      double seconds = std::chrono::duration<double>(now - started).count();
      err_ << "uploading " << UploadProgress(done, digest.size, done - offset, seconds) << "\n";
      last_report = now;
    }
  }
  if (open) writer->WritesDone();
  if (auto st = writer->Finish(); !st.ok()) return RpcFailed(st);
  if (!put.complete())
    return LocalError(Error(Errc::kInternal, "the server did not keep the upload; run the same command to resume"),
                      kExitFailure);
  return kExitOk;
}

int Commands::PackagePush() {
  FileDigest digest;
  if (int rc = UploadContent(o_.path, digest)) return rc;

  v1::RegisterPackageRequest reg;
  reg.set_sha256(digest.sha256);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::PackageInfo info;
  if (auto st = deploy_->RegisterPackage(&ctx, reg, &info); !st.ok()) return RpcFailed(st);
  return Emit(info, [&] {
    FieldList f;
    f.Add("Registered", Printable(info.name()) + " " + Printable(info.version()));
    f.Add("SHA-256", info.sha256());
    f.Add("Size", HumanBytes(info.size()));
    f.Add("Files", std::to_string(info.files()));
    return f.Render();
  });
}

int Commands::PackageList() {
  if (int rc = ConnectDeploy()) return rc;
  v1::ListPackagesRequest req;
  req.set_name(o_.name);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListPackagesResponse resp;
  if (auto st = deploy_->ListPackages(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.packages().empty())
      return std::string(o_.name.empty() ? "no package registered yet (parcctl package push FILE)\n"
                                         : "no package " + Printable(o_.name) + " registered\n");
    Table t({"NAME", "VERSION", "SIZE", "FILES", "PUBLISHER", "KEY ID", "EXPIRES", "UPLOADED"});
    for (const auto& p : resp.packages())
      t.AddRow({p.name(), p.version(), HumanBytes(p.size()), std::to_string(p.files()), p.publisher(), p.key_id(),
                p.expires_at() ? FormatTime(p.expires_at()) : "never", TimeOrDash(p.uploaded_at())});
    return t.Render(Render().max_width);
  });
}

int Commands::PackageShow() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  if (int rc = ConnectDeploy()) return rc;
  v1::ListPackagesRequest req;
  req.set_name(ref->name);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListPackagesResponse resp;
  if (auto st = deploy_->ListPackages(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  const v1::PackageInfo* found = nullptr;
  for (const auto& p : resp.packages()) {
    if (p.name() != ref->name) continue;
    if (!ref->version.empty() ? p.version() == ref->version
                              : (!found || pkg::CompareVersions(p.version(), found->version()) > 0))
      found = &p;
  }
  if (!found) {
    err_ << "parcctl: error: no package " << Printable(ref->name)
         << (ref->version.empty() ? "" : " version " + Printable(ref->version)) << " registered"
         << " (see parcctl package list " << Printable(ref->name) << ")\n";
    return kExitNotFound;
  }
  return Emit(*found, [&] { return RenderPackageInfo(*found); });
}

int Commands::PackageRemove() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  if (ref->version.empty()) return UsageError("give the package as NAME=VERSION: versions are removed one at a time");
  if (int rc = ConnectDeploy()) return rc;
  v1::RemovePackageRequest req;
  req.set_name(ref->name);
  req.set_version(ref->version);
  v1::RemovePackageResponse resp;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = deploy_->RemovePackage(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    return "removed package " + resp.name() + " " + resp.version() +
           (resp.content_deleted() ? ": its file was deleted (" + HumanBytes(resp.bytes_freed()) + " freed)\n"
                                   : ": its file is kept, something else uses the same bytes\n");
  });
}

ExpectedVoid CheckTargets(const std::vector<std::string>& to) {
  for (const auto& t : to) {
    auto colon = t.find(':');
    std::string kind = colon == std::string::npos ? "" : t.substr(0, colon);
    if ((kind != "group" && kind != "host") || colon + 1 == t.size())
      return Fail(Errc::kInvalidArgument, "bad --to '" + t + "' (use group:NAME or host:HOST)");
  }
  if (to.empty()) return Fail(Errc::kInvalidArgument, "no target: give --to group:NAME or --to host:HOST");
  return {};
}

int Commands::DeployCreate() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  v1::CreateDeploymentRequest req;
  req.set_package(ref->name);
  req.set_version(ref->version);
  if (auto r = CheckTargets(o_.to); !r) return UsageError(r.error().message());
  for (const auto& t : o_.to) req.add_targets(t);
  req.set_remove(o_.remove);
  if (!o_.start.empty()) {
    auto t = ParseFutureTime(o_.start, now_);
    if (!t) return UsageError("bad --start: " + t.error().message());
    req.set_start(*t);
  }
  if (!o_.deadline.empty()) {
    auto t = ParseFutureTime(o_.deadline, now_);
    if (!t) return UsageError("bad --deadline: " + t.error().message());
    if (*t <= std::max(req.start(), now_)) return UsageError("bad --deadline: it must be after the start");
    req.set_deadline(*t);
  }
  req.set_window(o_.window);
  if (!o_.max_parallel.empty()) {
    auto p = ParseMaxParallel(o_.max_parallel);
    if (!p) return LocalError(p.error(), kExitUsage);
    req.set_max_parallel(p->count);
    req.set_max_parallel_percent(p->percent);
  }
  if (!o_.halt_on_failure.empty()) {
    auto p = ParsePercent(o_.halt_on_failure);
    if (!p) return UsageError("bad --halt-on-failure: " + p.error().message());
    req.set_halt_failure_percent(*p);
  }
  req.set_comment(o_.comment);
  if (int rc = ConnectDeploy()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::DeploymentInfo resp;
  if (auto st = deploy_->CreateDeployment(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    return "created deployment " + resp.deployment_id() + "\n" + RenderDeployment(resp, Render().max_width) +
           "\nFollow it with: parcctl deploy status " + resp.deployment_id().substr(0, 8) + " --watch\n";
  });
}

int Commands::DeployStatus() {
  if (int rc = ConnectDeploy()) return rc;
  if (o_.watch) return WatchDeployment();
  v1::GetDeploymentRequest req;
  req.set_deployment_id(o_.id);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::DeploymentInfo resp;
  if (auto st = deploy_->GetDeployment(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  if (int rc = Emit(resp, [&] { return RenderDeployment(resp, Render().max_width); })) return rc;
  return DeploymentExit(resp);
}

int Commands::WatchDeployment() {
  v1::GetDeploymentRequest req;
  req.set_deployment_id(watch_id_.empty() ? o_.id : watch_id_);
  grpc::ClientContext ctx;  // runs as long as the deployment does
  if (!conn_->WaitUntilConnected()) conn_->SetDeadline(ctx);
  auto reader = deploy_->WatchDeployment(&ctx, req);
  v1::DeploymentInfo info;
  bool first = true;
  std::map<std::string, std::string> shown;  // job id -> what was printed last
  while (reader->Read(&info)) {
    if (o_.json) {
      if (int rc = Emit(info, {})) return rc;  // one JSON document per line and update
      out_.flush();
      first = false;  // else a finished watch reads as "the server sent nothing" (exit 1)
      continue;
    }
    if (first) {
      out_ << RenderDeployment(info, Render().max_width);
      first = false;
      for (const auto& j : info.jobs()) shown[j.job_id()] = j.state() + JobPercent(j) + j.message();
    } else {
      out_ << "\n" << FormatTime(hooks_.now ? hooks_.now() : NowUnix()) << "  " << info.state()
           << (info.reason().empty() ? "" : " (" + Printable(info.reason()) + ")") << "  " << DeploymentCounts(info)
           << "\n";
      Table t({"HOST", "STATE", "%", "MESSAGE"});
      for (const auto& j : info.jobs()) {
        std::string now_shown = j.state() + JobPercent(j) + j.message();
        auto& before = shown[j.job_id()];
        if (before == now_shown) continue;
        before = now_shown;
        t.AddRow({HostOfJob(j), j.state(), JobPercent(j), j.message()});
      }
      if (!t.empty()) out_ << t.Render(Render().max_width);
    }
    out_.flush();
  }
  if (auto st = reader->Finish(); !st.ok()) return RpcFailed(st);
  if (first) return LocalError(Error(Errc::kInternal, "the server sent nothing about the deployment"), kExitFailure);
  if (!o_.json) {
    out_ << "\n" << (DeploymentFinished(info) ? "finished: " : "stopped watching: ") << info.state() << ", "
         << DeploymentCounts(info) << "\n";
  }
  return DeploymentExit(info);
}

int Commands::DeployList() {
  if (int rc = ConnectDeploy()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListDeploymentsResponse resp;
  if (auto st = deploy_->ListDeployments(&ctx, v1::ListDeploymentsRequest(), &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.deployments().empty()) return std::string("no deployment yet (parcctl deploy create --help)\n");
    Table t({"ID", "ACTION", "PACKAGE", "VERSION", "STATE", "JOBS", "CREATED"});
    for (const auto& d : resp.deployments())
      t.AddRow({ShortId(d.deployment_id()), DeploymentAction(d), DeploymentSubject(d), d.version(), d.state(),
                DeploymentCounts(d), FormatAge(d.created_at(), now_)});
    return t.Render(Render().max_width);
  });
}

int Commands::ControlDeployment(const std::string& action) {
  if (int rc = ConnectDeploy()) return rc;
  v1::ControlDeploymentRequest req;
  req.set_deployment_id(o_.id);
  req.set_action(action);
  req.set_reason(o_.reason);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::DeploymentInfo resp;
  if (auto st = deploy_->ControlDeployment(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    std::string done = action == "halt" ? "halted" : action == "resume" ? "resumed" : "canceled";
    std::string note = action == "cancel" ? "pending jobs are canceled; jobs already sent finish on their hosts\n"
                       : action == "halt" ? "no new job starts until: parcctl deploy resume " +
                                                resp.deployment_id().substr(0, 8) + "\n"
                                          : "";
    return done + " deployment " + resp.deployment_id() + " (now " + resp.state() + ", " + DeploymentCounts(resp) +
           ")\n" + note;
  });
}

int Commands::DeployHalt() { return ControlDeployment("halt"); }
int Commands::DeployResume() { return ControlDeployment("resume"); }
int Commands::DeployCancel() { return ControlDeployment("cancel"); }

int Commands::RollbackPoints() {
  if (int rc = ConnectDeploy()) return rc;
  v1::ListRollbackPointsRequest req;
  req.set_host(o_.host);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListRollbackPointsResponse resp;
  if (auto st = deploy_->ListRollbackPoints(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.points().empty()) return "host " + ShortId(resp.host_id()) + " reported no rollback point\n";
    bool targets = false;  // image deployments' points name where the tree is
    for (const auto& p : resp.points()) targets = targets || !p.target().empty();
    std::vector<std::string> head{"POINT", "PACKAGE", "ACTION", "FROM", "TO", "STATE", "CREATED", "PATHS", "SAVED"};
    if (targets) head.push_back("TARGET");
    Table t(head);
    for (const auto& p : resp.points()) {
      std::vector<std::string> row{ShortId(p.point_id()), p.package(), p.action(),
                                   p.from_version().empty() ? "-" : p.from_version(),
                                   p.to_version().empty() ? "-" : p.to_version(), p.state(), FormatTime(p.created_at()),
                                   std::to_string(p.paths()), HumanBytes(p.bytes())};
      if (targets) row.push_back(p.target().empty() ? "-" : p.target());
      t.AddRow(row);
    }
    return t.Render(Render().max_width) + "Only committed points can be restored: parcctl rollback HOST POINT\n";
  });
}

int Commands::RollbackHost() {
  if (int rc = ConnectDeploy()) return rc;
  v1::RollbackRequest req;
  req.set_host(o_.host);
  req.set_point_id(o_.point);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::JobInfo job;
  if (auto st = deploy_->Rollback(&ctx, req, &job); !st.ok()) return RpcFailed(st);
  return Emit(job, [&] {
    FieldList f;
    f.Add("Rollback job", job.job_id());
    f.Add("Host", HostOfJob(job));
    f.Add("State", job.state());
    f.Add("Message", job.message());
    return f.Render() + "The host restores the point when it is connected; see the point's state with\n"
                        "  parcctl rollback-points " + HostOfJob(job) + "\n";
  });
}

}  // namespace parc::ctl
