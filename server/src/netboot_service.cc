// NetbootService: machines to install, their boot files and the answer file
// templates, administered over the admin API (netboot.proto).
#include <algorithm>
#include <set>

#include "netboot_core.h"
#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"

namespace parc::server {
namespace {

grpc::Status Bad(const Error& e) { return ToStatus(e); }
grpc::Status Invalid(const std::string& message) { return {grpc::StatusCode::INVALID_ARGUMENT, message}; }

// A MAC in any accepted spelling, else a host name (stored lower case).
std::string HostKey(const std::string& text) {
  if (auto mac = netboot::NormalizeMac(text)) return *mac;
  std::string out = text.substr(0, 253);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

constexpr int64_t kMaxArmSeconds = 30LL * 86400;

}  // namespace

v1::NetbootHost NetbootServiceImpl::Describe(const NetbootHostRecord& h) {
  v1::NetbootHost out;
  out.set_mac(h.mac);
  out.set_hostname(h.hostname);
  out.set_group(h.group);
  out.set_os(h.os);
  out.set_disk(h.disk);
  out.set_locale(h.locale);
  out.set_keyboard(h.keyboard);
  out.set_timezone(h.timezone);
  out.set_asset(h.asset);
  out.set_comment(h.comment);
  out.set_created_at(h.created_at);
  out.set_created_by(h.created_by);
  int64_t now = NowUnix();
  out.set_armed_until(h.armed_until > now ? h.armed_until : 0);
  out.set_state(NetbootCore::State(h, now));
  out.set_answer_fetched_at(h.answer_fetched_at);
  out.set_answer_fetched_by(h.answer_fetched_by);
  out.set_token_id(h.token_id);
  out.set_token_expires_at(h.token_expires_at);
  out.set_enrolled_host_id(h.token_used_by);
  out.set_enrolled_at(h.token_used_at);
  if (const auto* os = netboot::FindOs(h.os)) out.set_answer_file(os->answer_file);
  const auto& urls = core_.urls();
  std::string base = urls.https.empty() ? urls.http : urls.https;
  if (!base.empty()) out.set_boot_url(base + "/boot/" + h.mac + ".ipxe");
  return out;
}

grpc::Status NetbootServiceImpl::AddHost(grpc::ServerContext* context, const v1::NetbootHost* request,
                                         v1::NetbootHost* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto spec = netboot::NormalizeHostSpec({request->mac(), request->hostname(), request->group(), request->os(),
                                          request->disk(), request->locale(), request->keyboard(),
                                          request->timezone(), request->asset(), request->comment()});
  if (!spec) return Bad(spec.error());
  int64_t arm = request->arm_seconds() > 0 ? request->arm_seconds() : state_.config->netboot_arm_seconds;
  if (arm > kMaxArmSeconds) return Invalid("arming for more than 30 days refused");
  if (auto r = core_.EnsureGroup(spec->group, *who); !r) return Bad(r.error());
  auto& store = core_.store();
  int64_t now = NowUnix();
  if (auto old = store.GetHost(spec->mac); old && !old->token_id.empty()) {
    // A replaced record must not leave a live token behind.
    (void)store.ExpireToken(old->token_id, now);
  }
  NetbootHostRecord rec;
  rec.mac = spec->mac;
  rec.hostname = spec->hostname;
  rec.group = spec->group;
  rec.os = spec->os;
  rec.disk = spec->disk;
  rec.locale = spec->locale;
  rec.keyboard = spec->keyboard;
  rec.timezone = spec->timezone;
  rec.asset = spec->asset;
  rec.comment = spec->comment;
  rec.created_at = now;
  rec.created_by = who->common_name;
  rec.armed_until = now + arm;
  if (auto r = store.PutHost(rec); !r) return Bad(r.error());
  state_.Audit(*who, "netboot.add", rec.mac,
               "hostname=" + rec.hostname + " group=" + rec.group + " os=" + rec.os + " disk=" + rec.disk +
                   " armed_until=" + FormatTime(rec.armed_until));
  auto stored = store.GetHost(rec.mac);
  if (!stored) return Bad(stored.error());
  *response = Describe(*stored);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::ListHosts(grpc::ServerContext* context, const v1::ListNetbootHostsRequest* request,
                                           v1::ListNetbootHostsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto hosts = core_.store().ListHosts(request->group());
  if (!hosts) return Bad(hosts.error());
  for (const auto& h : *hosts) *response->add_hosts() = Describe(h);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::GetHost(grpc::ServerContext* context, const v1::GetNetbootHostRequest* request,
                                         v1::NetbootHost* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = core_.store().GetHost(HostKey(request->host()));
  if (!host) return Bad(host.error());
  *response = Describe(*host);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::RemoveHost(grpc::ServerContext* context, const v1::GetNetbootHostRequest* request,
                                            v1::NetbootHost* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto& store = core_.store();
  auto host = store.GetHost(HostKey(request->host()));
  if (!host) return Bad(host.error());
  if (!host->token_id.empty()) (void)store.ExpireToken(host->token_id, NowUnix());
  if (auto r = store.RemoveHost(host->mac); !r) return Bad(r.error());
  state_.Audit(*who, "netboot.remove", host->mac, "hostname=" + host->hostname);
  *response = Describe(*host);
  response->set_state("removed");
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::ArmHost(grpc::ServerContext* context, const v1::ArmNetbootHostRequest* request,
                                         v1::NetbootHost* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  int64_t arm = request->seconds() > 0 ? request->seconds() : state_.config->netboot_arm_seconds;
  if (arm > kMaxArmSeconds) return Invalid("arming for more than 30 days refused");
  auto& store = core_.store();
  auto host = store.GetHost(HostKey(request->host()));
  if (!host) return Bad(host.error());
  int64_t until = NowUnix() + arm;
  if (auto r = store.Arm(host->mac, until); !r) return Bad(r.error());
  state_.Audit(*who, "netboot.arm", host->mac, "hostname=" + host->hostname + " until=" + FormatTime(until));
  auto stored = store.GetHost(host->mac);
  if (!stored) return Bad(stored.error());
  *response = Describe(*stored);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::PreviewAnswer(grpc::ServerContext* context, const v1::PreviewAnswerRequest* request,
                                               v1::PreviewAnswerResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = core_.store().GetHost(HostKey(request->host()));
  if (!host) return Bad(host.error());
  std::string file = request->file();
  if (file.empty()) {
    const auto* os = netboot::FindOs(host->os);
    file = os ? os->answer_file : "";
  }
  auto text = core_.Preview(*host, file);
  if (!text) return Bad(text.error());
  response->set_file(file);
  response->set_content(*text);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::AddAsset(grpc::ServerContext* context, const v1::NetbootAsset* request,
                                          v1::NetbootAsset* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  if (auto r = netboot::ValidateName("asset name", request->name()); !r) return Bad(r.error());
  if (auto r = netboot::ValidateCmdline(request->cmdline()); !r) return Bad(r.error());
  if (request->files().empty()) return Invalid("an asset needs at least one file");
  if (request->files_size() > 32) return Invalid("at most 32 files per asset");
  NetbootAssetRecord asset;
  asset.name = request->name();
  asset.cmdline = request->cmdline();
  asset.created_at = NowUnix();
  asset.created_by = who->common_name;
  std::set<std::string> names;
  int kernels = 0;
  for (const auto& f : request->files()) {
    if (auto r = netboot::ValidateName("file name", f.name()); !r) return Bad(r.error());
    if (!names.insert(f.name()).second) return Invalid("file name " + f.name() + " given twice");
    if (f.role() != "kernel" && f.role() != "initrd" && f.role() != "file")
      return Invalid("file role '" + f.role().substr(0, 32) + "' is not kernel, initrd or file");
    kernels += f.role() == "kernel";
    if (!ContentStore::ValidDigest(f.sha256())) return Invalid("bad SHA-256 for " + f.name());
    auto size = state_.content->Size(f.sha256());
    if (!size)
      return {grpc::StatusCode::FAILED_PRECONDITION,
              f.name() + " (" + f.sha256().substr(0, 12) + ") is not in the content store: upload it first"};
    asset.files.push_back({f.name(), f.role(), f.sha256(), *size});
  }
  if (kernels > 1) return Invalid("an asset has at most one kernel");
  if (auto r = core_.store().PutAsset(asset); !r) return Bad(r.error());
  std::string detail;
  for (const auto& f : asset.files) detail += (detail.empty() ? "" : " ") + f.role + ":" + f.name + "=" + f.sha256.substr(0, 12);
  state_.Audit(*who, "netboot.asset.add", asset.name, detail);
  auto stored = core_.store().GetAsset(asset.name);
  if (!stored) return Bad(stored.error());
  FillAsset(*stored, response);
  return grpc::Status::OK;
}

void NetbootServiceImpl::FillAsset(const NetbootAssetRecord& a, v1::NetbootAsset* out) {
  out->set_name(a.name);
  out->set_cmdline(a.cmdline);
  out->set_created_at(a.created_at);
  out->set_created_by(a.created_by);
  for (const auto& f : a.files) {
    auto* o = out->add_files();
    o->set_name(f.name);
    o->set_role(f.role);
    o->set_sha256(f.sha256);
    o->set_size(f.size);
  }
}

grpc::Status NetbootServiceImpl::ListAssets(grpc::ServerContext* context, const v1::ListNetbootAssetsRequest*,
                                            v1::ListNetbootAssetsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto assets = core_.store().ListAssets();
  if (!assets) return Bad(assets.error());
  for (const auto& a : *assets) FillAsset(a, response->add_assets());
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::RemoveAsset(grpc::ServerContext* context, const v1::RemoveNetbootAssetRequest* request,
                                             v1::NetbootAsset* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto asset = core_.store().GetAsset(request->name());
  if (!asset) return Bad(asset.error());
  if (auto r = core_.store().RemoveAsset(request->name()); !r) return Bad(r.error());
  state_.Audit(*who, "netboot.asset.remove", request->name(), "");
  FillAsset(*asset, response);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::GetDnsmasqConfig(grpc::ServerContext* context, const v1::DnsmasqConfigRequest* request,
                                                  v1::DnsmasqConfigResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  const auto& urls = core_.urls();
  std::string chain = request->chain();
  if (chain.empty()) chain = urls.http.empty() ? "https" : "http";
  std::string base;
  if (chain == "https") base = urls.https;
  else if (chain == "http") base = urls.http;
  else return Invalid("chain must be https or http");
  if (base.empty())
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the boot server's " + chain + " listener is off (parc-server --boot-listen / --boot-http-listen)"};
  netboot::DnsmasqSpec spec;
  spec.interface = request->interface();
  spec.subnet = request->subnet();
  if (!request->netmask().empty()) spec.netmask = request->netmask();
  if (!request->tftp_root().empty()) spec.tftp_root = request->tftp_root();
  spec.chain_url = base + "/boot/${net0/mac}.ipxe";
  auto config = netboot::DnsmasqConfig(spec);
  if (!config) return Bad(config.error());
  response->set_config(*config);
  response->set_chain_url(spec.chain_url);
  for (const auto& f : netboot::TftpFiles()) {
    auto* t = response->add_tftp_files();
    t->set_name(f.name);
    t->set_source(f.source);
    t->set_purpose(f.purpose);
  }
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::SetTemplate(grpc::ServerContext* context, const v1::NetbootTemplate* request,
                                             v1::NetbootTemplate* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  const auto* os = netboot::FindOs(request->os());
  if (!os) return Invalid("unknown os '" + request->os().substr(0, 32) + "' (supported: " + netboot::SupportedOsNames() + ")");
  if (auto r = netboot::CheckTemplate(request->text(), os->format); !r) return Bad(r.error());
  NetbootTemplateRecord t{os->name, request->text(), NowUnix(), who->common_name};
  if (auto r = core_.store().SetTemplate(t); !r) return Bad(r.error());
  state_.Audit(*who, "netboot.template.set", os->name, "sha256=" + Sha256Hex(t.text).substr(0, 12));
  return GetTemplate(context, nullptr, response, os->name);
}

grpc::Status NetbootServiceImpl::GetTemplate(grpc::ServerContext* context, const v1::GetNetbootTemplateRequest* request,
                                             v1::NetbootTemplate* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  return GetTemplate(context, request, response, request->os());
}

grpc::Status NetbootServiceImpl::GetTemplate(grpc::ServerContext*, const v1::GetNetbootTemplateRequest*,
                                             v1::NetbootTemplate* response, const std::string& os_name) {
  const auto* os = netboot::FindOs(os_name);
  if (!os) return Invalid("unknown os '" + os_name.substr(0, 32) + "' (supported: " + netboot::SupportedOsNames() + ")");
  auto t = core_.EffectiveTemplate(os->name);
  if (!t) return Bad(t.error());
  response->set_os(os->name);
  response->set_text(t->text);
  response->set_custom(t->updated_at > 0);
  response->set_updated_at(t->updated_at);
  response->set_updated_by(t->updated_by);
  response->set_file(os->answer_file);
  return grpc::Status::OK;
}

grpc::Status NetbootServiceImpl::ResetTemplate(grpc::ServerContext* context, const v1::GetNetbootTemplateRequest* request,
                                               v1::NetbootTemplate* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  const auto* os = netboot::FindOs(request->os());
  if (!os) return Invalid("unknown os '" + request->os().substr(0, 32) + "'");
  if (auto r = core_.store().RemoveTemplate(os->name); !r) return Bad(r.error());
  state_.Audit(*who, "netboot.template.reset", os->name, "");
  return GetTemplate(context, nullptr, response, os->name);
}

}  // namespace parc::server
