#include "commands.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "parc/common/timeutil.h"
#include "parc/ctl/exit_codes.h"
#include "parc/ctl/export.h"
#include "parc/ctl/sections.h"
#include "parc/ctl/table.h"
#include "parc/ctl/text.h"

namespace parc::ctl {
namespace {

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED: return "cancelled";
    case grpc::StatusCode::INVALID_ARGUMENT: return "invalid argument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "deadline exceeded";
    case grpc::StatusCode::NOT_FOUND: return "not found";
    case grpc::StatusCode::ALREADY_EXISTS: return "already exists";
    case grpc::StatusCode::PERMISSION_DENIED: return "permission denied";
    case grpc::StatusCode::UNAUTHENTICATED: return "unauthenticated";
    case grpc::StatusCode::FAILED_PRECONDITION: return "failed precondition";
    case grpc::StatusCode::UNAVAILABLE: return "unavailable";
    case grpc::StatusCode::UNIMPLEMENTED: return "not implemented by this server";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "resource exhausted";
    default: return "error " + std::to_string(static_cast<int>(code));
  }
}

bool MentionsTls(std::string message) {
  std::transform(message.begin(), message.end(), message.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* word : {"ssl", "tls", "handshake", "certificate", "x509"})
    if (message.find(word) != std::string::npos) return true;
  return false;
}

// Sections to show, and whether the server can be asked for just one of them
// (the API takes one section or all; aliases spanning several are filtered here).
struct SectionChoice {
  std::vector<std::string> sections;
  std::string request;  // "" = ask for all
  bool filter = false;  // drop what the server sent beyond `sections`
};

Expected<SectionChoice> ChooseSections(const std::string& text) {
  auto sections = ExpandSections(text);
  if (!sections) return Fail(sections.error());
  SectionChoice choice{*sections, "", false};
  if (!text.empty() && sections->size() == 1) choice.request = sections->front();
  else if (!text.empty()) choice.filter = true;
  return choice;
}

template <typename Repeated, typename SectionOf>
void KeepSections(Repeated& items, const std::vector<std::string>& sections, SectionOf section_of) {
  auto drop = std::remove_if(items.begin(), items.end(), [&](const auto& item) {
    return std::find(sections.begin(), sections.end(), section_of(item)) == sections.end();
  });
  items.erase(drop, items.end());
}

}  // namespace

Commands::Commands(const Options& options, std::ostream& out, std::ostream& err, const Hooks& hooks)
    : o_(options), out_(out), err_(err), hooks_(hooks), now_(hooks.now ? hooks.now() : NowUnix()) {}

RenderOptions Commands::Render() const { return {now_, o_.wide ? 0 : kDefaultTableWidth}; }

int Commands::UsageError(const std::string& message) {
  err_ << "parcctl: error: " << message << "\n";
  return kExitUsage;
}

int Commands::LocalError(const Error& error, int exit_code) {
  err_ << "parcctl: error: " << error.message() << "\n";
  return exit_code;
}

int Commands::Connect() {
  auto conn = Connection::Open(o_.connection, hooks_);
  if (!conn) {
    // A missing or unreadable credentials file is a local setup problem, not
    // "host not found": only usage mistakes get their own code here.
    return LocalError(conn.error(), conn.error().Is(Errc::kInvalidArgument) ? kExitUsage : kExitFailure);
  }
  conn_.emplace(std::move(*conn));
  return kExitOk;
}

int Commands::RpcFailed(const grpc::Status& status) {
  const std::string& server = conn_->server();
  std::string message = status.error_message().empty() ? StatusCodeName(status.error_code()) : status.error_message();
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    message = "no answer from " + server + " within " + std::to_string(conn_->timeout_seconds()) + "s";
  err_ << "parcctl: error: " << Printable(message) << "\n";
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      if (MentionsTls(message))
        err_ << "parcctl: hint: the TLS handshake failed: does " << conn_->credentials_path()
             << " belong to this server, and does --server-name match the name in its certificate?\n";
      else
        err_ << "parcctl: hint: is parc-server running on " << server << "?\n";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      err_ << "parcctl: hint: is parc-server running on " << server << "? (raise --timeout on a slow link)\n";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      err_ << "parcctl: hint: the server did not accept the admin certificate of " << conn_->credentials_path() << "\n";
      break;
    default: break;
  }
  return ExitCodeForStatus(status.error_code());
}

int Commands::Emit(const google::protobuf::Message& message, const std::function<std::string()>& human) {
  if (!o_.json) {
    out_ << human();
    return kExitOk;
  }
  auto json = ToJson(message);
  if (!json) return LocalError(json.error(), kExitFailure);
  out_ << *json << "\n";
  return kExitOk;
}

HostNames Commands::FetchHostNames() {
  // Only to decorate ids with names; the command succeeds without them.
  HostNames names;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListHostsResponse hosts;
  if (conn_->stub().ListHosts(&ctx, v1::ListHostsRequest(), &hosts).ok())
    for (const auto& h : hosts.hosts()) names[h.host_id()] = h.hostname();
  return names;
}

int Commands::TokenCreate() {
  v1::CreateTokenRequest req;
  req.set_group(o_.group);
  req.set_comment(o_.comment);
  if (!o_.ttl.empty()) {
    auto ttl = ParseDuration(o_.ttl);
    if (!ttl) return UsageError("bad --ttl: " + ttl.error().message());
    if (*ttl <= 0) return UsageError("bad --ttl: must be longer than 0s");
    req.set_ttl_seconds(*ttl);
  }
  if (int rc = Connect()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::CreateTokenResponse resp;
  if (auto st = conn_->stub().CreateToken(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderToken(resp, conn_->server(), Render()); });
}

int Commands::Hosts() {
  v1::ListHostsRequest req;
  req.set_group(o_.group);
  req.set_online_only(o_.online);
  req.set_offline_only(o_.offline);
  if (!o_.stale.empty()) {
    auto stale = ParseDuration(o_.stale);
    if (!stale) return UsageError("bad --stale: " + stale.error().message());
    req.set_stale_seconds(*stale);
  }
  if (int rc = Connect()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListHostsResponse resp;
  if (auto st = conn_->stub().ListHosts(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderHosts(resp, Render()); });
}

int Commands::HostShow() {
  if (int rc = Connect()) return rc;
  v1::GetHostRequest req;
  req.set_host(o_.host);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::HostDetail resp;
  if (auto st = conn_->stub().GetHost(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderHostDetail(resp, Render()); });
}

int Commands::HostRevoke() {
  if (int rc = Connect()) return rc;
  v1::RevokeHostRequest req;
  req.set_host(o_.host);
  req.set_reason(o_.reason);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::HostDetail resp;
  if (auto st = conn_->stub().RevokeHost(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderRevoked(resp, o_.reason); });
}

int Commands::Inventory() {
  if (o_.host.empty()) return UsageError("which host? (parcctl inventory HOST, or parcctl inventory export)");
  auto choice = ChooseSections(o_.section);
  if (!choice) return LocalError(choice.error(), kExitUsage);
  if (int rc = Connect()) return rc;
  v1::GetInventoryRequest req;
  req.set_host(o_.host);
  req.set_section(choice->request);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::GetInventoryResponse resp;
  if (auto st = conn_->stub().GetInventory(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  if (choice->filter)
    KeepSections(*resp.mutable_items(), choice->sections, [](const v1::InventoryItem& i) { return i.section(); });
  return Emit(resp, [&] { return RenderInventory(resp, choice->sections, Render()); });
}

int Commands::InventoryExport() {
  std::string format_name = !o_.format.empty() ? o_.format : (o_.json ? "json" : "csv");
  auto format = ParseExportFormat(format_name);
  if (!format) return LocalError(format.error(), kExitUsage);
  auto sections = ExpandSections(o_.section);
  if (!sections) return LocalError(sections.error(), kExitUsage);
  // The API exports one section or all: an alias spanning several sections
  // becomes one stream per section, in proto order.
  std::vector<std::string> requests = o_.section.empty() ? std::vector<std::string>{""} : *sections;
  std::optional<std::string> single;
  if (!o_.section.empty() && sections->size() == 1) single = sections->front();
  if (int rc = Connect()) return rc;

  // Written beside the target and renamed at the end, so a failed export never
  // leaves a truncated file that looks complete.
  std::filesystem::path partial;
  std::ofstream file;
  if (!o_.output.empty()) {
    partial = o_.output + ".partial";
    file.open(partial, std::ios::binary | std::ios::trunc);
    if (!file) return LocalError(Error(Errc::kIo, "cannot write " + partial.string()), kExitFailure);
  }
  auto discard = [&] {
    if (partial.empty()) return;
    file.close();
    std::error_code ec;
    std::filesystem::remove(partial, ec);
  };
  std::ostream& sink = o_.output.empty() ? out_ : file;

  ExportWriter writer(sink, *format, single);
  writer.Begin();
  for (const auto& section : requests) {
    v1::ExportInventoryRequest req;
    req.set_section(section);
    req.set_group(o_.group);
    grpc::ClientContext ctx;
    if (!conn_->WaitUntilConnected()) conn_->SetDeadline(ctx);
    auto reader = conn_->stub().ExportInventory(&ctx, req);
    v1::InventoryRow row;
    while (reader->Read(&row)) writer.Row(row);
    if (auto st = reader->Finish(); !st.ok()) {
      discard();
      return RpcFailed(st);
    }
  }
  writer.End();
  if (partial.empty()) return kExitOk;

  file.close();
  if (!file) {
    discard();
    return LocalError(Error(Errc::kIo, "cannot write " + partial.string()), kExitFailure);
  }
  std::error_code ec;
  std::filesystem::rename(partial, o_.output, ec);
  if (ec) {
    discard();
    return LocalError(Error(Errc::kIo, "cannot rename " + partial.string() + " to " + o_.output + ": " + ec.message()),
                      kExitFailure);
  }
  err_ << "exported " << writer.rows() << " row(s) to " << o_.output << "\n";
  return kExitOk;
}

int Commands::History() {
  auto choice = ChooseSections(o_.section);
  if (!choice) return LocalError(choice.error(), kExitUsage);
  v1::GetHistoryRequest req;
  req.set_host(o_.host);
  req.set_section(choice->request);
  if (!o_.since.empty()) {
    auto since = ParseTimePoint(o_.since, now_);
    if (!since) return UsageError("bad --since: " + since.error().message());
    req.set_since(*since);
  }
  if (int rc = Connect()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::GetHistoryResponse resp;
  if (auto st = conn_->stub().GetHistory(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  if (choice->filter)
    KeepSections(*resp.mutable_entries(), choice->sections, [](const v1::HistoryEntry& e) { return e.section(); });
  return Emit(resp, [&] { return RenderHistory(resp, Render()); });
}

int Commands::GroupCreate() {
  if (int rc = Connect()) return rc;
  v1::GroupRequest req;
  req.set_name(o_.name);
  req.set_description(o_.description);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::GroupInfo resp;
  if (auto st = conn_->stub().CreateGroup(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return "created group " + Printable(resp.name()) + "\n"; });
}

int Commands::GroupList() {
  if (int rc = Connect()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListGroupsResponse resp;
  if (auto st = conn_->stub().ListGroups(&ctx, v1::ListGroupsRequest(), &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderGroups(resp, Render()); });
}

int Commands::GroupMembership(bool add) {
  if (int rc = Connect()) return rc;
  v1::GroupMembershipRequest req;
  req.set_group(o_.name);
  req.set_host(o_.host);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::GroupInfo resp;
  auto st = add ? conn_->stub().AddToGroup(&ctx, req, &resp) : conn_->stub().RemoveFromGroup(&ctx, req, &resp);
  if (!st.ok()) return RpcFailed(st);
  return Emit(resp, [&] {
    return std::string(add ? "added " : "removed ") + Printable(o_.host) + (add ? " to group " : " from group ") +
           Printable(resp.name()) + " (" + std::to_string(resp.host_ids_size()) + " host(s) now)\n";
  });
}

int Commands::GroupAdd() { return GroupMembership(true); }
int Commands::GroupRemove() { return GroupMembership(false); }

int Commands::Duplicates() {
  if (int rc = Connect()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListDuplicatesResponse resp;
  if (auto st = conn_->stub().ListDuplicates(&ctx, v1::ListDuplicatesRequest(), &resp); !st.ok()) return RpcFailed(st);
  if (o_.json) return Emit(resp, {});
  HostNames names = resp.duplicates().empty() ? HostNames{} : FetchHostNames();
  return Emit(resp, [&] { return RenderDuplicates(resp, names, Render()); });
}

int Commands::Collect() {
  int targets = !o_.host.empty() + !o_.group.empty() + o_.all;
  if (targets != 1) return UsageError("say which hosts: a HOST, --group GROUP or --all (exactly one)");
  if (int rc = Connect()) return rc;
  v1::CollectInventoryRequest req;
  req.set_host(o_.host);
  req.set_group(o_.group);
  req.set_full(o_.full);
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::CollectInventoryResponse resp;
  if (auto st = conn_->stub().CollectInventory(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  if (o_.json) return Emit(resp, {});
  HostNames names = FetchHostNames();
  return Emit(resp, [&] { return RenderCollect(resp, names); });
}

int Commands::Audit() {
  v1::ListAuditRequest req;
  req.set_limit(o_.limit);
  if (!o_.since.empty()) {
    auto since = ParseTimePoint(o_.since, now_);
    if (!since) return UsageError("bad --since: " + since.error().message());
    req.set_since(*since);
  }
  if (int rc = Connect()) return rc;
  grpc::ClientContext ctx;
  conn_->SetDeadline(ctx);
  v1::ListAuditResponse resp;
  if (auto st = conn_->stub().ListAudit(&ctx, req, &resp); !st.ok()) return RpcFailed(st);
  return Emit(resp, [&] { return RenderAudit(resp, Render()); });
}

}  // namespace parc::ctl
