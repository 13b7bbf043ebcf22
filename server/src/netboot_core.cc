#include "netboot_core.h"

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"

namespace parc::server {
namespace {

constexpr const char* kIpxeType = "text/plain; charset=utf-8";
constexpr const char* kAgentAsset = "parc-agent";
constexpr const char* kPreviewToken = "PREVIEW.no-token-is-minted-for-a-preview";

BootReply Text(int status, std::string body, const char* type = "text/plain; charset=utf-8") {
  BootReply r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = type;
  return r;
}

std::string ContentTypeOf(const std::string& file) {
  if (file.ends_with(".xml")) return "application/xml; charset=utf-8";
  if (file == "user-data" || file == "meta-data") return "text/cloud-config; charset=utf-8";
  return "text/plain; charset=utf-8";
}

// Names of the agent package the answer files install, per os.
std::string AgentFileFor(const std::string& os) { return os == "windows11" ? "parc-agent.msi" : "parc-agent.deb"; }

}  // namespace

netboot::HostSpec NetbootCore::Spec(const NetbootHostRecord& h) {
  return {h.mac, h.hostname, h.group, h.os, h.disk, h.locale, h.keyboard, h.timezone, h.asset, h.comment};
}

std::string NetbootCore::State(const NetbootHostRecord& h, int64_t now) {
  if (h.armed_until > now) return "armed";
  if (h.token_used_at > 0) return "enrolled";
  if (h.answer_fetched_at > 0 && h.token_expires_at > now) return "installing";
  return "idle";
}

ExpectedVoid NetbootCore::EnsureGroup(const std::string& group, const PeerIdentity& who) {
  auto groups = state_.storage->ListGroups();
  if (!groups) return Fail(groups.error());
  for (const auto& g : *groups)
    if (g.name == group) return {};
  auto g = state_.storage->CreateGroup(group, "", NowUnix());
  if (!g && !g.error().Is(Errc::kAlreadyExists)) return Fail(g.error());
  state_.Audit(who, "group.create", group, "created for network installation");
  return {};
}

Expected<NetbootTemplateRecord> NetbootCore::EffectiveTemplate(const std::string& os) {
  auto custom = store_.GetTemplate(os);
  if (!custom) return Fail(custom.error());
  if (*custom) return **custom;
  std::string_view text = netboot::DefaultTemplate(os);
  if (text.empty()) return Fail(Errc::kNotFound, "no template for os '" + os + "'");
  return NetbootTemplateRecord{os, std::string(text), 0, ""};
}

Expected<std::string> NetbootCore::RenderAnswer(const NetbootHostRecord& host, const std::string& file,
                                                const std::string& token, int64_t token_expires_at) {
  const netboot::OsInfo* os = netboot::FindOs(host.os);
  if (!os) return Fail(Errc::kInternal, "machine " + host.mac + " has an unknown os '" + host.os + "'");
  if (file == "meta-data" && host.os == "ubuntu-cloud") return netboot::RenderMetaData(Spec(host));
  if (file != os->answer_file)
    return Fail(Errc::kNotFound, "a " + host.os + " install has no " + file + " (its answer file is " +
                                     os->answer_file + ")");
  auto tmpl = EffectiveTemplate(host.os);
  if (!tmpl) return Fail(tmpl.error());
  netboot::AnswerContext ctx;
  ctx.host = Spec(host);
  ctx.token = token;
  ctx.token_expires_at = token_expires_at;
  ctx.server = urls_.enroll;
  ctx.ca_fingerprint = state_.ca->fingerprint();
  ctx.boot_url = urls_.https;
  if (auto agent = store_.GetAsset(kAgentAsset)) {
    for (const auto& f : agent->files) {
      if (f.name != AgentFileFor(host.os)) continue;
      ctx.agent_url = urls_.https + "/boot/files/" + kAgentAsset + "/" + f.name;
      ctx.agent_sha256 = f.sha256;
    }
  }
  auto text = netboot::Render(tmpl->text, netboot::AnswerVariables(ctx), os->format);
  if (!text) return Fail(text.error().WithContext(std::string(tmpl->updated_at ? "custom" : "shipped") + " " +
                                                  host.os + " template"));
  return *text;
}

Expected<std::string> NetbootCore::Preview(const NetbootHostRecord& host, const std::string& file) {
  if (file == "boot.ipxe") return RenderScript(host, urls_.https.empty() ? urls_.http : urls_.https);
  return RenderAnswer(host, file, kPreviewToken, NowUnix() + state_.config->netboot_token_ttl);
}

Expected<std::string> NetbootCore::RenderScript(const NetbootHostRecord& host, const std::string& files_base) {
  auto asset = store_.GetAsset(host.asset);
  if (!asset) return Fail(asset.error());
  netboot::IpxeInstall in;
  in.host = Spec(host);
  in.cmdline = asset->cmdline;
  in.answer_url = urls_.https + "/answer/" + host.mac + "/";
  for (const auto& f : asset->files)
    in.files.push_back({f.name, f.role, files_base + "/boot/files/" + asset->name + "/" + f.name});
  return netboot::IpxeInstallScript(in);
}

BootReply NetbootCore::Script(const std::string& mac_text, bool https, bool ipxe_client) {
  auto mac = netboot::NormalizeMac(mac_text);
  if (!mac) return Text(400, "#!ipxe\necho Parc: the URL holds no MAC address (expected /boot/MAC.ipxe)\nexit\n", kIpxeType);
  auto host = store_.GetHost(*mac);
  if (!host) {
    if (!host.error().Is(Errc::kNotFound)) return Text(500, "#!ipxe\necho Parc: server error\nexit\n", kIpxeType);
    spdlog::info("netboot: iPXE script asked for unknown MAC {}", *mac);
    return Text(ipxe_client ? 200 : 404, netboot::IpxeUnknownScript(*mac), kIpxeType);
  }
  int64_t now = NowUnix();
  std::string state = State(*host, now);
  if (state != "armed") {
    std::string reason = state == "enrolled"     ? "installed and enrolled as host " + host->token_used_by
                         : state == "installing" ? "installation started at " + FormatTime(host->answer_fetched_at)
                                                 : "not armed for installation";
    return Text(200, netboot::IpxeLocalBootScript(*mac, host->hostname, reason), kIpxeType);
  }
  // Kernel and initrd come the way the script came; answer files only over HTTPS.
  auto script = RenderScript(*host, https ? urls_.https : urls_.http);
  if (!script) {
    spdlog::warn("netboot: no iPXE script for {} ({}): {}", host->hostname, *mac, script.error().message());
    return Text(200, netboot::IpxeLocalBootScript(*mac, host->hostname, "cannot install: " + script.error().message()),
                kIpxeType);
  }
  spdlog::info("netboot: install script for {} ({}) served", host->hostname, *mac);
  return Text(200, *script, kIpxeType);
}

BootReply NetbootCore::File(const std::string& asset_name, const std::string& name) {
  if (!netboot::ValidateName("asset", asset_name) || !netboot::ValidateName("file", name))
    return Text(404, "no such boot file\n");
  auto asset = store_.GetAsset(asset_name);
  if (!asset) return Text(404, "no boot files registered as '" + asset_name + "'\n");
  for (const auto& f : asset->files) {
    if (f.name != name) continue;
    auto size = state_.content->Size(f.sha256);
    if (!size) return Text(404, "boot file " + asset_name + "/" + name + " is missing from the content store\n");
    BootReply r;
    r.content_type = "application/octet-stream";
    r.file = state_.content->ObjectPath(f.sha256);
    r.size = *size;
    return r;
  }
  return Text(404, "asset '" + asset_name + "' has no file '" + name + "'\n");
}

BootReply NetbootCore::Answer(const std::string& mac_text, const std::string& file, bool https,
                              const std::string& peer) {
  PeerIdentity who{"netboot:" + peer, "", "", peer};
  if (!https) return Text(403, "answer files hold enrollment tokens and are only served over HTTPS\n");
  auto mac = netboot::NormalizeMac(mac_text);
  if (!mac) return Text(400, "the URL holds no MAC address (expected /answer/MAC/FILE)\n");
  auto host = store_.GetHost(*mac);
  if (!host) {
    if (!host.error().Is(Errc::kNotFound)) return Text(500, "server error\n");
    state_.Audit(who, "netboot.answer.refused", *mac, "file=" + file.substr(0, 64) + " unknown machine");
    return Text(404, "machine " + *mac + " is not recorded: parcctl netboot add --mac " + *mac + " ...\n");
  }
  int64_t now = NowUnix();
  if (file == "meta-data" && host->os == "ubuntu-cloud") {
    // No secret in it: served whatever the machine's state.
    auto text = netboot::RenderMetaData(Spec(*host));
    if (!text) return Text(500, text.error().message() + "\n");
    return Text(200, *text, "text/cloud-config; charset=utf-8");
  }
  const netboot::OsInfo* os = netboot::FindOs(host->os);
  if (!os || file != os->answer_file)
    return Text(404, "a " + host->os + " install has no " + file + "\n");
  if (host->armed_until <= now) {
    state_.Audit(who, "netboot.answer.refused", *mac, "file=" + file + " not armed (state " + State(*host, now) + ")");
    spdlog::warn("netboot: answer file for {} ({}) refused to {}: not armed", host->hostname, *mac, peer);
    return Text(403, "machine " + *mac + " is not armed for installation: parcctl netboot arm " + *mac + "\n");
  }

  // The token, exactly as AdminService.CreateToken makes one: single-use,
  // expiring, bound to the machine's group, only the hash of the secret kept.
  if (auto r = EnsureGroup(host->group, who); !r) return Text(500, "cannot create group: " + r.error().message() + "\n");
  TokenRecord token;
  token.id = RandomToken(5);
  std::string secret = RandomToken(20);
  token.secret_hash = Sha256Hex(secret);
  token.group = host->group;
  token.comment = "netboot " + host->hostname + " " + *mac;
  token.created_at = now;
  token.expires_at = now + state_.config->netboot_token_ttl;
  if (auto r = state_.storage->CreateToken(token); !r) {
    spdlog::error("netboot: cannot create a token for {}: {}", *mac, r.error().message());
    return Text(500, "cannot create an enrollment token\n");
  }
  auto text = RenderAnswer(*host, file, token.id + "." + secret, token.expires_at);
  if (!text) {
    (void)store_.ExpireToken(token.id, now);
    spdlog::error("netboot: cannot render {} for {}: {}", file, *mac, text.error().message());
    return Text(500, "cannot render " + file + ": " + text.error().message() + "\n");
  }
  if (auto r = store_.RecordAnswer(*mac, token.id, now, peer); !r) {
    (void)store_.ExpireToken(token.id, now);
    return Text(r.error().Is(Errc::kFailedPrecondition) ? 403 : 500, r.error().message() + "\n");
  }
  state_.Audit(who, "netboot.answer", *mac,
               "file=" + file + " hostname=" + host->hostname + " group=" + host->group + " token=" + token.id +
                   " expires=" + FormatTime(token.expires_at));
  spdlog::info("netboot: {} for {} ({}) served to {} with token {}", file, host->hostname, *mac, peer, token.id);
  return Text(200, *text, ContentTypeOf(file).c_str());
}

}  // namespace parc::server
