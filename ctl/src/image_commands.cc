// parcctl's image commands (docs/images.md, "Server, agents and parcctl"):
// capture into a local chunk store and sign, push (only the chunks the server
// lacks), list/show, diff, deploy through the server's ImageService, verify a
// local store or a target.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "commands.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/ctl/exit_codes.h"
#include "parc/ctl/table.h"
#include "parc/ctl/text.h"
#include "parc/imaging/capture.h"
#include "parc/imaging/grpc_upload.h"
#include "parc/imaging/inspect.h"
#include "parc/imaging/upload.h"
#include "parc/packages/signing.h"
#include "parc/packages/version.h"

namespace parc::ctl {
namespace fs = std::filesystem;
namespace {

using imaging::ChunkRef;
using imaging::Digest;


struct LocalImage {
  std::string manifest_json, signature;  // signature "" = unsigned
  imaging::Manifest manifest;
  fs::path file;
};

fs::path ManifestFile(const fs::path& store, const std::string& name, const std::string& version) {
  return store / "images" / (name + "_" + version + ".manifest.json");
}

// NAME or NAME=VERSION in a local store; version "" = the newest there.
Expected<LocalImage> FindLocal(const fs::path& store, const std::string& name, const std::string& version) {
  std::vector<LocalImage> found;
  std::error_code ec;
  for (fs::directory_iterator it(store / "images", ec), end; !ec && it != end; it.increment(ec)) {
    std::string f = it->path().filename().string();
    const std::string suffix = ".manifest.json";
    if (f.rfind(name + "_", 0) != 0 || f.size() <= suffix.size() || f.substr(f.size() - suffix.size()) != suffix) continue;
    auto text = ReadFile(it->path());
    if (!text) continue;
    auto m = imaging::ParseManifest(*text);
    if (!m || m->name != name) continue;
    if (!version.empty() && m->version != version) continue;
    LocalImage li{*text, "", *m, it->path()};
    fs::path sig = it->path();
    sig.replace_extension("").replace_extension(".sig");
    if (auto s = ReadFile(sig)) li.signature = *s;
    found.push_back(std::move(li));
  }
  if (found.empty())
    return Fail(Errc::kNotFound, "no image " + name + (version.empty() ? "" : " " + version) + " in the store " +
                                     store.string() + " (parcctl image capture ... -o " + store.string() + ")");
  std::sort(found.begin(), found.end(), [](const LocalImage& a, const LocalImage& b) {
    return pkg::CompareVersions(a.manifest.version, b.manifest.version) < 0;
  });
  return found.back();
}

std::string Mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

// A progress line on stderr about once a second and at the end of each phase.
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& err, bool quiet) : err_(err), quiet_(quiet) {}
  bool operator()(const imaging::Progress& p) {
    if (quiet_) return true;
    auto now = std::chrono::steady_clock::now();
    bool end = (p.total_bytes && p.done_bytes >= p.total_bytes) || (p.total_items && p.done_items >= p.total_items);
    if (p.phase == phase_ && !end && now - last_ < std::chrono::seconds(1)) return true;
    if (p.phase == phase_ && end && ended_) return true;
    ended_ = end;
    phase_ = std::string(p.phase);
    last_ = now;
    unsigned pct = p.total_bytes ? static_cast<unsigned>(p.done_bytes * 100 / p.total_bytes)
                   : p.total_items ? static_cast<unsigned>(p.done_items * 100 / p.total_items) : 0;
    err_ << p.phase << " " << pct << "%";
    if (p.total_bytes) err_ << "  " << Mib(p.done_bytes) << " of " << Mib(p.total_bytes) << " MiB";
    if (p.total_items) err_ << "  " << p.done_items << " of " << p.total_items;
    err_ << "\n";
    return true;
  }

 private:
  std::ostream& err_;
  bool quiet_;
  std::string phase_;
  bool ended_ = false;
  std::chrono::steady_clock::time_point last_{};
};

std::string RenderImage(const v1::ImageInfo& i) {
  FieldList f;
  f.Add("Image", i.name());
  f.Add("Version", i.version());
  f.Add("Kind", i.kind());
  f.Add("Size", HumanBytes(i.size()));
  f.Add(i.kind() == "block" ? "Chunks" : "Entries", std::to_string(i.entries()));
  f.Add("Distinct chunks", std::to_string(i.chunks()) + " (" + HumanBytes(i.stored_size()) + " stored)");
  f.Add("Publisher", i.publisher());
  f.Add("Key id", i.key_id());
  f.Add("Captured", i.created_at() ? FormatTime(i.created_at()) : "-");
  f.Add("Signed", i.signed_at() ? FormatTime(i.signed_at()) : "-");
  f.Add("Expires", i.expires_at() ? FormatTime(i.expires_at()) : "never");
  f.Add("Uploaded", i.uploaded_at() ? FormatTime(i.uploaded_at()) + (i.uploaded_by().empty() ? "" : " by " + i.uploaded_by()) : "-");
  f.Add("Image id", i.image_id());
  return f.Render();
}

void FillDiff(const imaging::ImageDiff& d, v1::ImageDiffInfo* out) {
  for (const auto& p : d.added) out->add_added(p);
  for (const auto& p : d.removed) out->add_removed(p);
  for (const auto& c : d.changed) {
    auto* o = out->add_changed();
    o->set_path(c.path);
    o->set_what(c.what);
    o->set_detail(c.detail);
  }
  out->set_added_bytes(d.added_bytes);
  out->set_removed_bytes(d.removed_bytes);
  out->set_changed_bytes(d.changed_bytes);
  out->set_changed_blocks(d.changed_blocks);
  out->set_chunks_to_transfer(d.chunks_to_transfer);
  out->set_bytes_to_transfer(d.bytes_to_transfer);
  out->set_chunks_total(d.chunks_total);
  out->set_bytes_total(d.bytes_total);
}

std::string RenderDiff(const std::string& a, const std::string& b, const v1::ImageDiffInfo& d) {
  std::string s = a + " -> " + b + ": " + std::to_string(d.added_size()) + " added (" + HumanBytes(d.added_bytes()) +
                  "), " + std::to_string(d.removed_size()) + " removed (" + HumanBytes(d.removed_bytes()) + "), " +
                  std::to_string(d.changed_size()) + " changed (" + HumanBytes(d.changed_bytes()) + ")";
  if (d.changed_blocks()) s += ", " + std::to_string(d.changed_blocks()) + " block chunk(s) differ";
  s += "\nto deploy " + b + " where " + a + " is: " + std::to_string(d.chunks_to_transfer()) + " of " +
       std::to_string(d.chunks_total()) + " chunks, " + HumanBytes(d.bytes_to_transfer()) + " of " +
       HumanBytes(d.bytes_total()) + "\n";
  for (const auto& p : d.added()) s += "  + " + Printable(p) + "\n";
  for (const auto& p : d.removed()) s += "  - " + Printable(p) + "\n";
  for (const auto& c : d.changed()) s += "  ~ " + Printable(c.path()) + "  (" + c.what() + ")\n";
  return s;
}

std::string RefLabel(const PackageRef& r) { return r.version.empty() ? r.name : r.name + "=" + r.version; }

}  // namespace

int Commands::ConnectImage() {
  if (int rc = ConnectDeploy()) return rc;
  image_ = v1::ImageService::NewStub(deploy_channel_);
  return kExitOk;
}

// Uploads every object of the image the server lacks, then registers it.
int Commands::PushImage(imaging::ChunkStore& store, const std::string& manifest_json, const std::string& signature,
                        v1::ImageInfo& info, uint64_t& uploaded, uint64_t& present) {
  if (signature.empty())
    return UsageError("the image is not signed: capture it with --key KEYFILE (the server and agents accept only "
                      "signed images)");
  auto m = imaging::ParseManifest(manifest_json);
  if (!m) return LocalError(m.error(), kExitFailure);
  auto image = imaging::LoadImage(*m, store, nullptr);
  if (!image) return LocalError(image.error().WithContext("reading the image from the local store"), kExitFailure);
  if (int rc = ConnectImage()) return rc;
  std::optional<grpc::Status> rpc_failed;  // reported by RpcFailed (hints, exit code)
  auto failed = [&](const grpc::Status& st) {
    rpc_failed = st;
    return Error(Errc::kUnavailable, st.error_message());
  };
  imaging::UploadHooks hooks;
  imaging::SetGrpcUploadHooks(
      hooks, *image_,
      [&](grpc::ClientContext& ctx, bool put) {
        // A batch may take long on a slow link: once connected, no deadline.
        if (!put || !conn_->WaitUntilConnected()) conn_->SetDeadline(ctx);
      },
      [&](const grpc::Status& st, bool) { return failed(st); });
  const auto started = std::chrono::steady_clock::now();
  bool announced = false;
  hooks.progress = [&](const imaging::Progress& p) {
    if (o_.json) return true;
    if (!announced) {
      err_ << "push: " << p.total_items << " chunks to upload (" << HumanBytes(p.total_bytes) << ")\n";
      announced = true;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (p.total_items) err_ << "uploading " << UploadProgress(p.done_bytes, p.total_bytes, p.done_bytes, seconds) << "\n";
    return true;
  };
  auto up = imaging::UploadImage(*m, *image, store, hooks);
  if (!up) return rpc_failed ? RpcFailed(*rpc_failed) : LocalError(up.error(), kExitFailure);
  present = up->objects - up->missing;
  uploaded = up->stored;
  if (!o_.json && up->missing == 0) err_ << "push: all " << up->objects << " chunks already on the server\n";
  v1::RegisterImageRequest reg;
  reg.set_manifest_json(manifest_json);
  reg.set_signature(signature);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = image_->RegisterImage(&ctx, reg, &info); !st.ok()) return RpcFailed(st);
  return kExitOk;
}

int Commands::ImageCapture() {
  if (!o_.on.empty()) {
    if (!o_.output.empty()) return UsageError("--on captures on the host and uploads to the server: no -o with it");
    if (o_.key.empty())
      return UsageError("--on needs --key KEYFILE: the image is signed here, once the host has uploaded it");
  } else if (o_.output.empty() && !o_.push) {
    return UsageError("say where the image goes: -o DIR (a local chunk store) and/or --push (to the server)");
  }
  if (o_.push && o_.key.empty()) return UsageError("--push needs --key KEYFILE: the server accepts only signed images");
  if (auto v = imaging::ValidateNameVersion(o_.name, o_.image_version); !v) return LocalError(v.error(), kExitUsage);
  std::error_code ec;
  if (o_.on.empty() && !fs::exists(o_.from, ec))
    return LocalError(Error(Errc::kNotFound, "--from " + o_.from + " does not exist"), kExitNotFound);
  std::optional<pkg::KeyPair> key;
  int64_t lifetime = 0;
  if (!o_.key.empty()) {
    auto k = pkg::LoadPrivateKey(o_.key);
    if (!k) return LocalError(k.error(), ExitCodeForError(k.error()));
    key = std::move(*k);
    auto l = ParseDuration(o_.expires);
    if (!l || *l <= 0) return UsageError("--expires: expected a duration such as 30d or 365d");
    lifetime = *l;
  }
  if (!o_.on.empty()) return CaptureOnHost(*key, lifetime);
  // Without -o the chunks go through a temporary store, removed afterwards.
  fs::path store_dir = o_.output;
  bool temporary = store_dir.empty();
  if (temporary) store_dir = fs::temp_directory_path() / ("parcctl-capture-" + RandomToken(8));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code e;
      if (!dir.empty()) fs::remove_all(dir, e);
    }
  } cleanup{temporary ? store_dir : fs::path()};
  auto store = imaging::DirChunkStore::Open(store_dir);
  if (!store) return LocalError(store.error(), kExitFailure);
  if (auto r = EnsureDirectory(store_dir / "images", 0755); !r) return LocalError(r.error(), kExitFailure);
  if (PathExists(ManifestFile(store_dir, o_.name, o_.image_version)))
    return LocalError(Error(Errc::kAlreadyExists, "the store already holds " + o_.name + " " + o_.image_version +
                                                      ": capture a new version"),
                      kExitConflict);

  imaging::CaptureOptions options;
  options.name = o_.name;
  options.version = o_.image_version;
  options.now = now_;
  for (const auto& e : o_.exclude) options.exclude.push_back(e);
  // The newest earlier version in the store: its unchanged chunks are referenced, not compressed again.
  std::optional<imaging::Image> previous;
  if (auto prev = FindLocal(store_dir, o_.name, "")) {
    if (auto img = imaging::LoadImage(prev->manifest, **store, nullptr)) previous = std::move(*img);
  }
  if (previous) options.reuse.push_back(&*previous);
  ProgressPrinter progress(err_, o_.json);
  options.progress = [&](const imaging::Progress& p) { return progress(p); };
  bool tree = fs::is_directory(o_.from, ec);
  auto captured = tree ? imaging::CaptureTree(o_.from, **store, options) : imaging::CaptureBlock(o_.from, **store, options);
  if (!captured) return LocalError(captured.error(), ExitCodeForError(captured.error()));
  std::string manifest_json = captured->manifest_json, signature;
  if (key) {
    auto s = imaging::SignManifest(captured->image.manifest, *key, now_, now_ + lifetime);
    if (!s) return LocalError(s.error(), kExitFailure);
    manifest_json = s->json;
    signature = s->signature;
  }
  fs::path mfile = ManifestFile(store_dir, o_.name, o_.image_version);
  if (!signature.empty()) {
    fs::path sig = mfile;
    sig.replace_extension("").replace_extension(".sig");
    if (auto r = WriteFileAtomic(sig, signature, 0644); !r) return LocalError(r.error(), kExitFailure);
  }
  if (auto r = WriteFileAtomic(mfile, manifest_json, 0644); !r) return LocalError(r.error(), kExitFailure);

  nlohmann::json out{{"name", o_.name},
                     {"version", o_.image_version},
                     {"kind", tree ? "tree" : "block"},
                     {"image_id", imaging::ManifestId(manifest_json)},
                     {"signed", !signature.empty()},
                     {"size", captured->image.manifest.size},
                     {"entries", captured->image.manifest.entries},
                     {"chunks", captured->image.manifest.chunks},
                     {"stored_size", captured->image.manifest.stored_size},
                     {"read_bytes", captured->read_bytes},
                     {"chunks_compressed", captured->chunks_compressed},
                     {"chunks_reused", captured->chunks_reused},
                     {"objects_written", captured->objects_written},
                     {"bytes_written", captured->bytes_written},
                     {"notes", captured->notes}};
  if (!temporary) out["store"] = store_dir.string();
  if (!o_.json) {
    out_ << "captured " << o_.name << " " << o_.image_version << " (" << (tree ? "tree" : "block") << "): "
         << HumanBytes(captured->image.manifest.size) << ", " << captured->image.manifest.chunks << " distinct chunks ("
         << HumanBytes(captured->image.manifest.stored_size) << " stored), " << captured->objects_written
         << " new objects in the store" << (signature.empty() ? "; NOT signed (no --key)" : "") << "\n";
    for (const auto& n : captured->notes) out_ << "  note: " << Printable(n) << "\n";
  }
  if (o_.push) {
    v1::ImageInfo info;
    uint64_t uploaded = 0, present = 0;
    if (int rc = PushImage(**store, manifest_json, signature, info, uploaded, present)) return rc;
    out["pushed"] = {{"uploaded", uploaded}, {"already_present", present}};
    if (!o_.json)
      out_ << "pushed: " << uploaded << " chunks uploaded, " << present << " already on the server; registered "
           << info.name() << " " << info.version() << "\n";
  }
  if (o_.json) out_ << out.dump() << "\n";
  return kExitOk;
}

// The capture runs as a job on the host; this waits for it, then signs the
// manifest the agent handed over and registers it (the key never leaves here).
int Commands::CaptureOnHost(const pkg::KeyPair& key, int64_t lifetime) {
  if (o_.on.rfind("host:", 0) != 0 || o_.on.size() == 5)
    return UsageError("--on takes host:HOST (the master to capture, an enrolled host)");
  if (o_.from.empty() || o_.from.front() != '/')
    return UsageError("--from must be an absolute path on that host: a directory (/ for the whole system), an image "
                      "file or /dev/X");
  if (int rc = ConnectImage()) return rc;
  v1::CaptureImageRequest req;
  req.set_name(o_.name);
  req.set_version(o_.image_version);
  req.set_host(o_.on.substr(5));
  req.set_source(o_.from);
  for (const auto& e : o_.exclude) req.add_exclude(e);
  req.set_comment(o_.comment);
  v1::DeploymentInfo info;
  {
    grpc::ClientContext ctx;
    conn_->SetDeadline(ctx);
    if (auto st = image_->CaptureImage(&ctx, req, &info); !st.ok()) return RpcFailed(st);
  }
  const std::string id = info.deployment_id();
  if (!o_.json)
    err_ << "capture " << id.substr(0, 8) << ": " << o_.name << " " << o_.image_version << " from " << o_.from << " on "
         << o_.on.substr(5) << " (follow it elsewhere: parcctl deploy status " << id.substr(0, 8) << " --watch)\n";
  {
    v1::GetDeploymentRequest wreq;
    wreq.set_deployment_id(id);
    grpc::ClientContext ctx;  // as long as the capture takes
    auto reader = deploy_->WatchDeployment(&ctx, wreq);
    std::string shown;
    v1::DeploymentInfo update;
    while (reader->Read(&update)) {
      info = update;
      if (info.jobs().empty()) continue;
      const auto& j = info.jobs(0);
      std::string now_shown = j.state() + " " + std::to_string(j.percent()) + "% " + j.message();
      if (!o_.json && now_shown != shown) err_ << "  " << Printable(now_shown) << "\n";
      shown = now_shown;
    }
    if (auto st = reader->Finish(); !st.ok()) return RpcFailed(st);
  }
  if (info.jobs().empty() || info.jobs(0).state() != "succeeded") {
    std::string why = info.jobs().empty() ? info.state() : info.jobs(0).state() + ": " + info.jobs(0).message();
    return LocalError(Error(Errc::kFailedPrecondition, "the capture did not succeed (" + Printable(why) + ")"),
                      kExitFailure);
  }
  auto out = nlohmann::json::parse(info.jobs(0).output(), nullptr, false);
  if (!out.is_object() || !out.contains("manifest_json") || !out["manifest_json"].is_string())
    return LocalError(Error(Errc::kParse, "the agent's answer holds no manifest (is it older than the server?)"),
                      kExitFailure);
  auto m = imaging::ParseManifest(out["manifest_json"].get<std::string>());
  if (!m) return LocalError(m.error().WithContext("the manifest the agent handed over"), kExitFailure);
  if (m->name != o_.name || m->version != o_.image_version)
    return LocalError(Error(Errc::kCrypto, "the agent handed over " + m->name + " " + m->version + ", not " + o_.name +
                                                " " + o_.image_version + ": not signed"),
                      kExitFailure);
  auto s = imaging::SignManifest(*m, key, now_, now_ + lifetime);
  if (!s) return LocalError(s.error(), kExitFailure);
  v1::RegisterImageRequest reg;
  reg.set_manifest_json(s->json);
  reg.set_signature(s->signature);
  v1::ImageInfo registered;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = image_->RegisterImage(&ctx, reg, &registered); !st.ok()) return RpcFailed(st);
  if (o_.json) {
    out.erase("manifest_json");
    out["name"] = registered.name();
    out["version"] = registered.version();
    out["image_id"] = registered.image_id();
    out["host"] = o_.on.substr(5);
    out["capture_id"] = id;
    out_ << out.dump() << "\n";
    return kExitOk;
  }
  out_ << "captured " << registered.name() << " " << registered.version() << " (" << registered.kind() << ") on "
       << o_.on.substr(5) << ": " << HumanBytes(registered.size()) << ", " << registered.chunks() << " distinct chunks ("
       << HumanBytes(registered.stored_size()) << " stored), " << out.value("uploaded", uint64_t{0})
       << " uploaded by the host; signed and registered\n";
  if (out.contains("notes") && out["notes"].is_array())
    for (const auto& n : out["notes"])
      if (n.is_string()) out_ << "  note: " << Printable(n.get<std::string>()) << "\n";
  return kExitOk;
}

int Commands::ImagePush() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  auto store = imaging::DirChunkStore::Open(o_.store);
  if (!store) return LocalError(store.error(), kExitFailure);
  auto local = FindLocal(o_.store, ref->name, ref->version);
  if (!local) return LocalError(local.error(), kExitNotFound);
  v1::ImageInfo info;
  uint64_t uploaded = 0, present = 0;
  if (int rc = PushImage(**store, local->manifest_json, local->signature, info, uploaded, present)) return rc;
  if (o_.json) {
    nlohmann::json out{{"name", info.name()}, {"version", info.version()}, {"uploaded", uploaded}, {"already_present", present}};
    out_ << out.dump() << "\n";
    return kExitOk;
  }
  out_ << "pushed " << info.name() << " " << info.version() << ": " << uploaded << " chunks uploaded, " << present
       << " already on the server\n";
  return kExitOk;
}

int Commands::ImageList() {
  if (int rc = ConnectImage()) return rc;
  v1::ListImagesRequest req;
  req.set_name(o_.name);
  v1::ListImagesResponse resp;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = image_->ListImages(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.images().empty()) return std::string("no image registered yet (parcctl image capture ... --push)\n");
    Table t({"NAME", "VERSION", "KIND", "SIZE", "CHUNKS", "STORED", "KEY", "UPLOADED"});
    for (const auto& i : resp.images())
      t.AddRow({i.name(), i.version(), i.kind(), HumanBytes(i.size()), std::to_string(i.chunks()),
                HumanBytes(i.stored_size()), i.key_id(), i.uploaded_at() ? FormatTime(i.uploaded_at()) : "-"});
    return t.Render(Render().max_width);
  });
}

int Commands::ImageShow() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  if (int rc = ConnectImage()) return rc;
  v1::GetImageRequest req;
  req.set_name(ref->name);
  req.set_version(ref->version);
  v1::ImageInfo resp;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = image_->GetImage(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderImage(resp); });
}

int Commands::ImageRemove() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  if (ref->version.empty()) return UsageError("give the image as NAME=VERSION: versions are removed one at a time");
  if (int rc = ConnectImage()) return rc;
  v1::RemoveImageRequest req;
  req.set_name(ref->name);
  req.set_version(ref->version);
  v1::RemoveImageResponse resp;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = image_->RemoveImage(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    return "removed image " + resp.name() + " " + resp.version() + ": " + std::to_string(resp.objects_deleted()) +
           " chunks deleted (" + HumanBytes(resp.bytes_freed()) + " freed), " + std::to_string(resp.objects_kept()) +
           " still used by other images kept\n";
  });
}

int Commands::ImageGc() {
  v1::CollectObjectsRequest req;
  if (!o_.older_than.empty()) {
    auto d = ParseDuration(o_.older_than);
    if (!d || *d <= 0) return UsageError("--older-than takes a duration such as 12h, 1d or 7d");
    req.set_older_than_seconds(static_cast<uint64_t>(*d));
  }
  req.set_dry_run(o_.dry_run);
  if (int rc = ConnectImage()) return rc;
  v1::CollectObjectsResponse resp;
  grpc::ClientContext ctx;
  if (!conn_->WaitUntilConnected()) conn_->SetDeadline(ctx);  // a large store takes a while to scan
  if (auto st = image_->CollectObjects(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    std::string text = std::string(resp.dry_run() ? "would delete " : "deleted ") +
                       std::to_string(resp.objects_deleted()) + " unused objects (" + HumanBytes(resp.bytes_freed()) + ")";
    if (resp.unregistered_deleted())
      text += ", " + std::to_string(resp.unregistered_deleted()) + " of them package or policy files never registered";
    text += "; scanned " + std::to_string(resp.objects_scanned()) + ", " + std::to_string(resp.objects_used()) +
            " in use, " + std::to_string(resp.objects_recent()) + " unused but within the grace period\n";
    if (resp.partial_uploads_deleted())
      text += std::string(resp.dry_run() ? "would delete " : "deleted ") + std::to_string(resp.partial_uploads_deleted()) +
              " unfinished uploads nobody resumed (" + HumanBytes(resp.partial_bytes_freed()) + ")\n";
    return text;
  });
}

int Commands::ImageDiff() {
  auto a = ParsePackageRef(o_.package_ref);
  if (!a) return LocalError(a.error(), kExitUsage);
  auto b = ParsePackageRef(o_.other_ref);
  if (!b) return LocalError(b.error(), kExitUsage);
  v1::ImageDiffInfo diff;
  if (!o_.store.empty()) {
    auto store = imaging::DirChunkStore::Open(o_.store);
    if (!store) return LocalError(store.error(), kExitFailure);
    std::optional<imaging::Image> images[2];
    const PackageRef* refs[2] = {&*a, &*b};
    for (int i = 0; i < 2; ++i) {
      auto local = FindLocal(o_.store, refs[i]->name, refs[i]->version);
      if (!local) return LocalError(local.error(), kExitNotFound);
      auto img = imaging::LoadImage(local->manifest, **store, nullptr);
      if (!img) return LocalError(img.error(), kExitFailure);
      images[i] = std::move(*img);
      auto* info = i == 0 ? diff.mutable_from() : diff.mutable_to();
      info->set_name(images[i]->manifest.name);
      info->set_version(images[i]->manifest.version);
      info->set_kind(std::string(imaging::KindName(images[i]->manifest.kind)));
      info->set_image_id(imaging::ManifestId(local->manifest_json));
    }
    FillDiff(imaging::DiffImages(*images[0], *images[1]), &diff);
  } else {
    if (int rc = ConnectImage()) return rc;
    v1::DiffImagesRequest req;
    req.mutable_from()->set_name(a->name);
    req.mutable_from()->set_version(a->version);
    req.mutable_to()->set_name(b->name);
    req.mutable_to()->set_version(b->version);
    grpc::ClientContext ctx;
    conn_->SetDeadline(ctx);
    if (auto st = image_->DiffImages(&ctx, req, &diff); !st.ok()) return RpcFailed(st);
  }
  return Emit(diff, [&] {
    return RenderDiff(diff.from().name() + " " + diff.from().version(), diff.to().name() + " " + diff.to().version(), diff);
  });
}

int Commands::ImageDeploy() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  v1::DeployImageRequest req;
  req.set_name(ref->name);
  req.set_version(ref->version);
  if (auto r = CheckTargets(o_.to); !r) return UsageError(r.error().message());
  for (const auto& t : o_.to) req.add_targets(t);
  if (o_.target.empty() || o_.target.front() != '/' || o_.target == "/")
    return UsageError("--target must be an absolute path other than /: a directory (tree image) or a file or /dev/X "
                      "(block image)");
  req.set_target(o_.target);
  if (!o_.max_parallel.empty()) {
    auto p = ParseMaxParallel(o_.max_parallel);
    if (!p) return LocalError(p.error(), kExitUsage);
    if (p->percent) return UsageError("image deploy --max-parallel takes a number of hosts");
    req.set_max_parallel(p->count);
  }
  req.set_comment(o_.comment);
  req.set_commit(o_.commit);
  if (int rc = ConnectImage()) return rc;
  v1::DeploymentInfo resp;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  if (auto st = image_->DeployImage(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  if (o_.watch) {
    // The same view as 'parcctl deploy status ID --watch', until every host is done.
    watch_id_ = resp.deployment_id();
    return WatchDeployment();
  }
  return Emit(resp, [&] {
    return "deployment " + resp.deployment_id() + ": image " + RefLabel(*ref) + " (" + resp.version() + ") to " +
           o_.target + " on " + std::to_string(resp.jobs_size()) + " host(s)\nfollow it: parcctl deploy status " +
           resp.deployment_id().substr(0, 8) + " --watch\n";
  });
}

int Commands::ImageVerify() {
  auto ref = ParsePackageRef(o_.package_ref);
  if (!ref) return LocalError(ref.error(), kExitUsage);
  if (o_.store.empty()) return UsageError("--store DIR: the local chunk store holding the image");
  auto store = imaging::DirChunkStore::Open(o_.store);
  if (!store) return LocalError(store.error(), kExitFailure);
  auto local = FindLocal(o_.store, ref->name, ref->version);
  if (!local) return LocalError(local.error(), kExitNotFound);
  nlohmann::json out{{"name", local->manifest.name}, {"version", local->manifest.version}};
  std::vector<std::string> problems;
  if (!o_.trust.empty()) {
    std::vector<pkg::PublicKey> trusted;
    for (const auto& t : o_.trust) {
      auto pem = ReadFile(t);
      if (!pem) return LocalError(pem.error(), ExitCodeForError(pem.error()));
      auto k = pkg::ParsePublicKey(*pem, t);
      if (!k) return LocalError(k.error(), kExitUsage);
      trusted.push_back(*k);
    }
    auto v = imaging::VerifyManifest(local->manifest_json, local->signature, trusted, now_);
    out["signature"] = v ? "valid" : v.error().message();
    if (!v) problems.push_back("signature: " + v.error().message());
  } else {
    out["signature"] = local->signature.empty() ? "unsigned" : "not checked (no --trust)";
  }
  auto image = imaging::LoadImage(local->manifest, **store, nullptr);
  if (!image) return LocalError(image.error().WithContext("the image's index"), kExitFailure);
  // Every chunk decoded and checked against both its digests.
  uint64_t bad = 0, checked = 0;
  ProgressPrinter progress(err_, o_.json);
  auto chunks = image->UniqueChunks();
  uint64_t total = 0, done = 0;
  for (const auto& c : chunks) total += c.size;
  for (const auto& c : chunks) {
    auto stored = (*store)->Get(c.object);
    auto plain = stored ? imaging::DecodeChunk(c, *stored) : Expected<std::string>(Fail(stored.error()));
    if (!plain) {
      if (bad++ < 20) problems.push_back("chunk " + c.object.Hex() + ": " + plain.error().message());
    }
    ++checked;
    done += c.size;
    progress({"store", done, total, checked, chunks.size()});
  }
  out["store"] = {{"chunks", checked}, {"bad", bad}};
  if (!o_.target.empty()) {
    imaging::VerifyOptions vo;
    vo.progress = [&](const imaging::Progress& p) { return progress(p); };
    auto r = image->manifest.kind == imaging::ImageKind::kBlock ? imaging::VerifyBlock(*image, o_.target, vo)
                                                                : imaging::VerifyTree(*image, o_.target, vo);
    if (!r) return LocalError(r.error(), ExitCodeForError(r.error()));
    nlohmann::json diffs = nlohmann::json::array();
    for (const auto& d : r->differences) {
      diffs.push_back({{"path", d.path}, {"what", d.what}, {"detail", d.detail}});
      if (problems.size() < 200) problems.push_back(d.path + ": " + d.what + (d.detail.empty() ? "" : " (" + d.detail + ")"));
    }
    out["target"] = {{"path", o_.target},
                     {"checked_entries", r->checked_entries},
                     {"checked_bytes", r->checked_bytes},
                     {"differing_bytes", r->differing_bytes},
                     {"differences", diffs}};
  }
  out["ok"] = problems.empty();
  if (o_.json) {
    out_ << out.dump() << "\n";
  } else {
    out_ << local->manifest.name << " " << local->manifest.version << ": signature " << out["signature"].get<std::string>()
         << "; " << checked << " chunks checked, " << bad << " bad";
    if (!o_.target.empty()) out_ << "; target " << o_.target << " " << (out["target"]["differences"].empty() ? "identical" : "differs");
    out_ << "\n";
    for (const auto& p : problems) out_ << "  " << Printable(p) << "\n";
  }
  return problems.empty() ? kExitOk : kExitFailure;
}

}  // namespace parc::ctl
