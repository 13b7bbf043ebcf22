// parcctl's network installation commands: machines to install (by MAC),
// their boot files, answer file templates and the site dnsmasq configuration,
// through the server's NetbootService (same admin certificate and server as
// the admin API). docs/netboot.md.
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "parc/common/files.h"
#include "parc/common/timeutil.h"
#include "parc/ctl/exit_codes.h"
#include "parc/ctl/table.h"
#include "parc/ctl/text.h"

namespace parc::ctl {
namespace {

std::string TimeOrDash(int64_t t) { return t > 0 ? FormatTime(t) : "-"; }

std::string StateCell(const v1::NetbootHost& h) {
  if (h.state() == "armed") return "armed until " + FormatTime(h.armed_until());
  if (h.state() == "enrolled") return "enrolled " + ShortId(h.enrolled_host_id());
  if (h.state() == "installing") return "installing since " + FormatTime(h.answer_fetched_at());
  return h.state();
}

std::string RenderHost(const v1::NetbootHost& h) {
  FieldList f;
  f.Add("MAC", h.mac());
  f.Add("Host name", Printable(h.hostname()));
  f.Add("Group", Printable(h.group()));
  f.Add("OS", h.os() + " (boot files: " + Printable(h.asset()) + ", answer file: " + h.answer_file() + ")");
  f.Add("Disk", Printable(h.disk()));
  f.Add("Locale", h.locale() + ", keyboard " + h.keyboard() + ", time zone " + h.timezone());
  f.Add("State", StateCell(h));
  if (h.answer_fetched_at())
    f.Add("Answer file", "served " + FormatTime(h.answer_fetched_at()) + " to " + Printable(h.answer_fetched_by()));
  if (!h.token_id().empty())
    f.Add("Token", h.token_id() + (h.enrolled_at() ? " used " + FormatTime(h.enrolled_at())
                                                   : " expires " + FormatTime(h.token_expires_at())));
  if (!h.enrolled_host_id().empty()) f.Add("Enrolled as", h.enrolled_host_id());
  if (!h.boot_url().empty()) f.Add("iPXE script", h.boot_url());
  f.Add("Recorded", FormatTime(h.created_at()) + (h.created_by().empty() ? "" : " by " + h.created_by()));
  if (!h.comment().empty()) f.Add("Comment", Printable(h.comment()));
  return f.Render();
}

// "NAME=PATH" or "PATH" (the name is then the file's base name).
std::pair<std::string, std::string> NameAndPath(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq != std::string::npos && eq > 0 && arg.substr(0, eq).find('/') == std::string::npos)
    return {arg.substr(0, eq), arg.substr(eq + 1)};
  return {std::filesystem::path(arg).filename().string(), arg};
}

}  // namespace

int Commands::ConnectNetboot() {
  if (int rc = ConnectDeploy()) return rc;
  if (!netboot_) netboot_ = v1::NetbootService::NewStub(deploy_channel_);
  return kExitOk;
}

int Commands::NetbootAdd() {
  v1::NetbootHost req;
  req.set_mac(o_.mac);
  req.set_hostname(o_.hostname);
  req.set_group(o_.group);
  req.set_os(o_.os);
  req.set_disk(o_.disk);
  req.set_locale(o_.locale);
  req.set_keyboard(o_.keyboard);
  req.set_timezone(o_.timezone);
  req.set_asset(o_.asset);
  req.set_comment(o_.comment);
  if (!o_.arm_for.empty()) {
    auto d = ParseDuration(o_.arm_for);
    if (!d) return UsageError("bad --arm-for '" + o_.arm_for + "' (use 30m, 4h, 1d ...)");
    req.set_arm_seconds(*d);
  }
  if (int rc = ConnectNetboot()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootHost host;
  if (auto st = netboot_->AddHost(&ctx, req, &host); !st.ok()) return RpcFailed(st);
  // Recorded either way (boot files may come later), but a technician who
  // boots the machine now should know it cannot install yet.
  std::string warning;
  {
    grpc::ClientContext list_ctx;
    conn_->SetDeadline(list_ctx);
    v1::ListNetbootAssetsResponse assets;
    if (netboot_->ListAssets(&list_ctx, v1::ListNetbootAssetsRequest(), &assets).ok()) {
      bool found = false;
      for (const auto& a : assets.assets()) found = found || a.name() == host.asset();
      if (!found)
        warning = "warning: no boot files registered as '" + host.asset() +
                  "' yet: parcctl netboot assets add --name " + host.asset() + " --kernel FILE --initrd FILE\n";
    }
  }
  if (!warning.empty() && !o_.json) err_ << warning;
  return Emit(host, [&] {
    return RenderHost(host) + "Next: boot " + host.hostname() + " from the network (PXE); check with: parcctl netboot show " +
           host.mac() + "\n";
  });
}

int Commands::NetbootList() {
  if (int rc = ConnectNetboot()) return rc;
  v1::ListNetbootHostsRequest req;
  req.set_group(o_.group);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListNetbootHostsResponse resp;
  if (auto st = netboot_->ListHosts(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.hosts().empty())
      return std::string("no machine recorded for network installation (parcctl netboot add --mac MAC ...)\n");
    Table t({"MAC", "HOSTNAME", "GROUP", "OS", "DISK", "LOCALE", "STATE", "ANSWER SERVED"});
    for (const auto& h : resp.hosts())
      t.AddRow({h.mac(), h.hostname(), h.group(), h.os(), h.disk(), h.locale(), StateCell(h),
                TimeOrDash(h.answer_fetched_at())});
    return t.Render(Render().max_width);
  });
}

int Commands::NetbootShow() {
  if (int rc = ConnectNetboot()) return rc;
  v1::GetNetbootHostRequest req;
  req.set_host(o_.host);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootHost host;
  if (auto st = netboot_->GetHost(&ctx, req, &host); !st.ok()) return RpcFailed(st);
  return Emit(host, [&] { return RenderHost(host); });
}

int Commands::NetbootRemove() {
  if (int rc = ConnectNetboot()) return rc;
  v1::GetNetbootHostRequest req;
  req.set_host(o_.host);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootHost host;
  if (auto st = netboot_->RemoveHost(&ctx, req, &host); !st.ok()) return RpcFailed(st);
  return Emit(host, [&] {
    return "removed " + host.mac() + " (" + Printable(host.hostname()) +
           "); its unused enrollment token, if any, no longer works\n";
  });
}

int Commands::NetbootArm() {
  v1::ArmNetbootHostRequest req;
  req.set_host(o_.host);
  if (!o_.arm_for.empty()) {
    auto d = ParseDuration(o_.arm_for);
    if (!d) return UsageError("bad --for '" + o_.arm_for + "' (use 30m, 4h, 1d ...)");
    req.set_seconds(*d);
  }
  if (int rc = ConnectNetboot()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootHost host;
  if (auto st = netboot_->ArmHost(&ctx, req, &host); !st.ok()) return RpcFailed(st);
  return Emit(host, [&] {
    return host.mac() + " (" + Printable(host.hostname()) + ") armed until " + FormatTime(host.armed_until()) +
           ": its next network boot installs it\n";
  });
}

int Commands::NetbootPreview() {
  if (int rc = ConnectNetboot()) return rc;
  v1::PreviewAnswerRequest req;
  req.set_host(o_.host);
  req.set_file(o_.answer_file);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::PreviewAnswerResponse resp;
  if (auto st = netboot_->PreviewAnswer(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return resp.content(); });
}

int Commands::NetbootAssetsAdd() {
  struct Pending {
    std::string name, role, path;
  };
  std::vector<Pending> pending;
  if (!o_.kernel.empty()) {
    auto [name, path] = NameAndPath(o_.kernel);
    pending.push_back({name, "kernel", path});
  }
  for (const auto& a : o_.initrds) {
    auto [name, path] = NameAndPath(a);
    pending.push_back({name, "initrd", path});
  }
  for (const auto& a : o_.files) {
    auto [name, path] = NameAndPath(a);
    pending.push_back({name, "file", path});
  }
  if (pending.empty()) return UsageError("give at least one of --kernel, --initrd, --file");
  v1::NetbootAsset req;
  req.set_name(o_.name);
  req.set_cmdline(o_.cmdline);
  for (const auto& p : pending) {
    if (!o_.json) err_ << p.role << " " << p.name << ": " << p.path << "\n";
    FileDigest digest;
    if (int rc = UploadContent(p.path, digest)) return rc;
    auto* f = req.add_files();
    f->set_name(p.name);
    f->set_role(p.role);
    f->set_sha256(digest.sha256);
  }
  if (int rc = ConnectNetboot()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootAsset asset;
  if (auto st = netboot_->AddAsset(&ctx, req, &asset); !st.ok()) return RpcFailed(st);
  return Emit(asset, [&] {
    Table t({"FILE", "ROLE", "SIZE", "SHA-256"});
    for (const auto& f : asset.files()) t.AddRow({f.name(), f.role(), HumanBytes(f.size()), f.sha256()});
    return "registered boot files '" + asset.name() + "'\n" + t.Render(Render().max_width);
  });
}

int Commands::NetbootAssetsList() {
  if (int rc = ConnectNetboot()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListNetbootAssetsResponse resp;
  if (auto st = netboot_->ListAssets(&ctx, v1::ListNetbootAssetsRequest(), &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    if (resp.assets().empty())
      return std::string("no boot files registered (parcctl netboot assets add --name debian12 --kernel linux "
                         "--initrd initrd.gz)\n");
    Table t({"ASSET", "FILE", "ROLE", "SIZE", "SHA-256", "CMDLINE"});
    for (const auto& a : resp.assets())
      for (const auto& f : a.files())
        t.AddRow({a.name(), f.name(), f.role(), HumanBytes(f.size()), f.sha256().substr(0, 12),
                  f.role() == "kernel" ? a.cmdline() : ""});
    return t.Render(Render().max_width);
  });
}

int Commands::NetbootAssetsRemove() {
  if (int rc = ConnectNetboot()) return rc;
  v1::RemoveNetbootAssetRequest req;
  req.set_name(o_.name);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootAsset asset;
  if (auto st = netboot_->RemoveAsset(&ctx, req, &asset); !st.ok()) return RpcFailed(st);
  return Emit(asset, [&] { return "removed boot files '" + asset.name() + "'\n"; });
}

int Commands::NetbootDnsmasqConfig() {
  if (int rc = ConnectNetboot()) return rc;
  v1::DnsmasqConfigRequest req;
  req.set_interface(o_.interface);
  req.set_subnet(o_.subnet);
  req.set_netmask(o_.netmask);
  req.set_tftp_root(o_.tftp_root);
  req.set_chain(o_.chain);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::DnsmasqConfigResponse resp;
  if (auto st = netboot_->GetDnsmasqConfig(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  std::string root = o_.tftp_root.empty() ? "/srv/parc/tftp" : o_.tftp_root;
  if (o_.tftp_copy) {
    // The files come from this machine's ipxe package: dnsmasq runs here.
    if (auto r = EnsureDirectory(root, 0755); !r) return LocalError(r.error(), kExitFailure);
    for (const auto& f : resp.tftp_files()) {
      auto data = ReadFile(f.source());
      if (!data)
        return LocalError(data.error().WithContext("TFTP file " + f.name() + " (apt-get install ipxe)"), kExitFailure);
      if (auto r = WriteFileAtomic(std::filesystem::path(root) / f.name(), *data, 0644); !r)
        return LocalError(r.error(), kExitFailure);
      if (!o_.json) err_ << "copied " << f.source() << " to " << root << "/" << f.name() << "\n";
    }
  }
  if (!o_.output.empty()) {
    if (auto r = WriteFileAtomic(o_.output, resp.config(), 0644); !r) return LocalError(r.error(), kExitFailure);
  }
  if (o_.json) return Emit(resp, [] { return std::string(); });
  if (o_.output.empty()) out_ << resp.config();
  else err_ << "wrote " << o_.output << "\n";
  if (!o_.tftp_copy) {
    err_ << "The TFTP root " << root << " must hold (or run again with --tftp-copy):\n";
    for (const auto& f : resp.tftp_files())
      err_ << "  " << f.name() << "  from " << f.source() << "  (" << f.purpose() << ")\n";
  }
  err_ << "iPXE then chains to " << resp.chain_url() << "\n";
  return kExitOk;
}

int Commands::NetbootTemplateShow() {
  if (int rc = ConnectNetboot()) return rc;
  v1::GetNetbootTemplateRequest req;
  req.set_os(o_.os);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootTemplate t;
  if (auto st = netboot_->GetTemplate(&ctx, req, &t); !st.ok()) return RpcFailed(st);
  return Emit(t, [&] { return t.text(); });
}

int Commands::NetbootTemplateSet() {
  auto text = ReadSmallFile(o_.path, 256 * 1024);
  if (!text) return LocalError(text.error(), ExitCodeForError(text.error()));
  if (int rc = ConnectNetboot()) return rc;
  v1::NetbootTemplate req;
  req.set_os(o_.os);
  req.set_text(*text);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootTemplate t;
  if (auto st = netboot_->SetTemplate(&ctx, req, &t); !st.ok()) return RpcFailed(st);
  return Emit(t, [&] {
    return "the " + t.os() + " answer file (" + t.file() + ") now comes from " + o_.path +
           "; check it with: parcctl netboot preview HOST\n";
  });
}

int Commands::NetbootTemplateReset() {
  if (int rc = ConnectNetboot()) return rc;
  v1::GetNetbootTemplateRequest req;
  req.set_os(o_.os);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::NetbootTemplate t;
  if (auto st = netboot_->ResetTemplate(&ctx, req, &t); !st.ok()) return RpcFailed(st);
  return Emit(t, [&] { return "the " + t.os() + " answer file comes from the shipped template again\n"; });
}

}  // namespace parc::ctl
