#include <set>

#include "parc/common/hash.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "services.h"

namespace parc::server {

namespace {
grpc::Status Bad(const Error& e) { return ToStatus(e); }

void FillItem(const StoredItem& item, v1::InventoryItem* out) {
  out->set_section(item.section);
  out->set_key(item.key);
  for (const auto& [k, v] : item.fields) (*out->mutable_fields())[k] = v;
}
}  // namespace

Expected<PeerIdentity> ServerState::Admin(grpc::ServerContext* context) const {
  return Authenticate(*context, revoked, kAdminOrganization);
}

void ServerState::Audit(const PeerIdentity& who, const std::string& action, const std::string& target,
                        const std::string& detail) const {
  auto r = storage->AppendAudit({NowUnix(), who.common_name, action, target, detail});
  if (!r) spdlog::error("cannot write audit log entry {} {}: {}", action, target, r.error().message());
}

void AdminServiceImpl::FillSummary(const HostRecord& host, v1::HostSummary* out) {
  out->set_host_id(host.id);
  out->set_hostname(host.hostname);
  auto session = state_.registry.Find(host.id);
  out->set_online(session != nullptr);
  if (session) out->set_peer(session->peer());
  out->set_last_seen(session ? NowUnix() : host.last_seen);
  out->set_enrolled_at(host.enrolled_at);
  out->set_revoked(host.revoked);
  for (const auto& g : host.groups) out->add_groups(g);
  out->set_os(host.os_pretty_name.empty() ? host.distribution : host.os_pretty_name);
  out->set_agent_version(host.agent_version);
}

grpc::Status AdminServiceImpl::CreateToken(grpc::ServerContext* context, const v1::CreateTokenRequest* request,
                                           v1::CreateTokenResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  int64_t ttl = request->ttl_seconds() > 0 ? request->ttl_seconds() : state_.config->default_token_ttl;
  if (ttl > 365LL * 86400) return {grpc::StatusCode::INVALID_ARGUMENT, "token lifetime above one year refused"};
  if (!request->group().empty()) {
    // Creating the group on first use keeps "token create --group lab" a one-liner.
    auto groups = state_.storage->ListGroups();
    if (!groups) return Bad(groups.error());
    bool exists = false;
    for (const auto& g : *groups) exists = exists || g.name == request->group();
    if (!exists) {
      auto g = state_.storage->CreateGroup(request->group(), "", NowUnix());
      if (!g) return Bad(g.error());
      state_.Audit(*who, "group.create", request->group(), "created for an enrollment token");
    }
  }
  TokenRecord token;
  token.id = RandomToken(5);
  std::string secret = RandomToken(20);
  token.secret_hash = Sha256Hex(secret);
  token.group = request->group();
  token.comment = request->comment().substr(0, 256);
  token.created_at = NowUnix();
  token.expires_at = token.created_at + ttl;
  if (auto r = state_.storage->CreateToken(token); !r) return Bad(r.error());
  state_.Audit(*who, "token.create", token.id, "group=" + token.group + " ttl=" + std::to_string(ttl) + "s");
  response->set_token(token.id + "." + secret);
  response->set_expires_at(token.expires_at);
  response->set_ca_fingerprint(state_.ca->fingerprint());
  response->set_group(token.group);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListHosts(grpc::ServerContext* context, const v1::ListHostsRequest* request,
                                         v1::ListHostsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  HostFilter filter;
  filter.group = request->group();
  if (request->stale_seconds() > 0) filter.not_seen_since = NowUnix() - request->stale_seconds();
  auto hosts = state_.storage->ListHosts(filter);
  if (!hosts) return Bad(hosts.error());
  for (const auto& h : *hosts) {
    bool online = state_.registry.IsOnline(h.id);
    if (request->online_only() && !online) continue;
    if (request->offline_only() && online) continue;
    if (request->stale_seconds() > 0 && online) continue;
    FillSummary(h, response->add_hosts());
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::GetHost(grpc::ServerContext* context, const v1::GetHostRequest* request,
                                       v1::HostDetail* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return Bad(host.error());
  FillSummary(*host, response->mutable_summary());
  response->set_certificate_fingerprint(host->cert_fingerprint);
  response->set_certificate_expires_at(host->cert_expires_at);
  response->set_inventory_digest(host->inventory_digest);
  response->set_inventory_updated_at(host->inventory_updated_at);
  for (const auto& c : host->identity) response->add_fingerprint(c);
  response->set_previous_host_id(host->previous_host_id);
  auto dups = state_.storage->ListDuplicates();
  if (dups) {
    std::set<std::string> others;  // one entry per other host, however many claims they share
    for (const auto& d : *dups) {
      bool mine = std::find(d.host_ids.begin(), d.host_ids.end(), host->id) != d.host_ids.end();
      if (!mine) continue;
      for (const auto& other : d.host_ids)
        if (other != host->id) others.insert(other);
    }
    for (const auto& other : others) response->add_duplicate_of(other);
  }
  auto counts = state_.storage->SectionCounts(host->id);
  if (counts)
    for (const auto& [s, n] : *counts) (*response->mutable_section_counts())[s] = n;
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::RevokeHost(grpc::ServerContext* context, const v1::RevokeHostRequest* request,
                                          v1::HostDetail* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return Bad(host.error());
  auto revoked = state_.storage->RevokeHost(host->id, request->reason().substr(0, 512), NowUnix());
  if (!revoked) return Bad(revoked.error());
  state_.revoked.Add(revoked->cert_fingerprint);
  if (auto session = state_.registry.Find(host->id))
    session->Close("this host has been revoked by an administrator",
                   grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "host revoked"));
  state_.Audit(*who, "host.revoke", host->id, "hostname=" + host->hostname + " reason=" + request->reason());
  spdlog::info("host {} ({}) revoked by {}", host->hostname, host->id, who->common_name);
  FillSummary(*revoked, response->mutable_summary());
  response->mutable_summary()->set_online(false);
  response->set_certificate_fingerprint(revoked->cert_fingerprint);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::GetInventory(grpc::ServerContext* context, const v1::GetInventoryRequest* request,
                                            v1::GetInventoryResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  if (!request->section().empty() && !inventory::IsSection(request->section()))
    return {grpc::StatusCode::INVALID_ARGUMENT, "unknown inventory section '" + request->section() + "'"};
  auto host = state_.storage->GetHost(request->host());
  if (!host) return Bad(host.error());
  auto items = state_.storage->GetInventory(host->id, request->section());
  if (!items) return Bad(items.error());
  response->set_host_id(host->id);
  for (const auto& item : *items) FillItem(item, response->add_items());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ExportInventory(grpc::ServerContext* context, const v1::ExportInventoryRequest* request,
                                               grpc::ServerWriter<v1::InventoryRow>* writer) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  if (!request->section().empty() && !inventory::IsSection(request->section()))
    return {grpc::StatusCode::INVALID_ARGUMENT, "unknown inventory section '" + request->section() + "'"};
  bool write_failed = false;
  auto r = state_.storage->ExportInventory(request->section(), request->group(), [&](const StoredItem& item) {
    v1::InventoryRow row;
    row.set_host_id(item.host_id);
    row.set_hostname(item.hostname);
    FillItem(item, row.mutable_item());
    if (!writer->Write(row)) write_failed = true;
    return !write_failed && !context->IsCancelled();
  });
  if (!r) return Bad(r.error());
  if (write_failed) return {grpc::StatusCode::CANCELLED, "client went away"};
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::GetHistory(grpc::ServerContext* context, const v1::GetHistoryRequest* request,
                                          v1::GetHistoryResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return Bad(host.error());
  auto rows = state_.storage->GetHistory(host->id, request->since(), request->section());
  if (!rows) return Bad(rows.error());
  response->set_host_id(host->id);
  for (const auto& r : *rows) {
    auto* e = response->add_entries();
    e->set_at(r.at);
    e->set_report_id(r.report_id);
    e->set_section(r.change.section);
    e->set_key(r.change.key);
    e->set_change(r.change.change);
    e->set_field(r.change.field);
    e->set_old_value(r.change.old_value);
    e->set_new_value(r.change.new_value);
  }
  return grpc::Status::OK;
}

namespace {
void FillGroup(const GroupRecord& g, v1::GroupInfo* out) {
  out->set_name(g.name);
  out->set_description(g.description);
  for (const auto& h : g.host_ids) out->add_host_ids(h);
}
}  // namespace

grpc::Status AdminServiceImpl::CreateGroup(grpc::ServerContext* context, const v1::GroupRequest* request,
                                           v1::GroupInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto g = state_.storage->CreateGroup(request->name(), request->description(), NowUnix());
  if (!g) return Bad(g.error());
  state_.Audit(*who, "group.create", g->name, request->description());
  FillGroup(*g, response);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListGroups(grpc::ServerContext* context, const v1::ListGroupsRequest*,
                                          v1::ListGroupsResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto groups = state_.storage->ListGroups();
  if (!groups) return Bad(groups.error());
  for (const auto& g : *groups) FillGroup(g, response->add_groups());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::AddToGroup(grpc::ServerContext* context, const v1::GroupMembershipRequest* request,
                                          v1::GroupInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return Bad(host.error());
  auto g = state_.storage->AddToGroup(request->group(), host->id);
  if (!g) return Bad(g.error());
  state_.Audit(*who, "group.add", request->group(), host->id);
  FillGroup(*g, response);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::RemoveFromGroup(grpc::ServerContext* context, const v1::GroupMembershipRequest* request,
                                               v1::GroupInfo* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto host = state_.storage->GetHost(request->host());
  if (!host) return Bad(host.error());
  auto g = state_.storage->RemoveFromGroup(request->group(), host->id);
  if (!g) return Bad(g.error());
  state_.Audit(*who, "group.remove", request->group(), host->id);
  FillGroup(*g, response);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListDuplicates(grpc::ServerContext* context, const v1::ListDuplicatesRequest*,
                                              v1::ListDuplicatesResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto dups = state_.storage->ListDuplicates();
  if (!dups) return Bad(dups.error());
  for (const auto& d : *dups) {
    auto* out = response->add_duplicates();
    out->set_identity(d.identity);
    for (const auto& h : d.host_ids) out->add_host_ids(h);
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::CollectInventory(grpc::ServerContext* context, const v1::CollectInventoryRequest* request,
                                                v1::CollectInventoryResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  std::vector<std::string> targets;
  if (!request->host().empty()) {
    auto host = state_.storage->GetHost(request->host());
    if (!host) return Bad(host.error());
    targets.push_back(host->id);
  } else {
    HostFilter filter;
    filter.group = request->group();
    filter.include_revoked = false;
    auto hosts = state_.storage->ListHosts(filter);
    if (!hosts) return Bad(hosts.error());
    for (const auto& h : *hosts)
      if (!h.revoked) targets.push_back(h.id);
  }
  std::string command_id = RandomToken(8);
  for (const auto& id : targets) {
    v1::ServerMessage msg;
    msg.mutable_command()->set_command_id(command_id);
    msg.mutable_command()->mutable_collect_inventory()->set_full(request->full());
    auto session = state_.registry.Find(id);
    if (session && session->Push(std::move(msg))) response->add_sent_to(id);
    else response->add_offline(id);
  }
  state_.Audit(*who, "inventory.collect", request->host().empty() ? "group:" + request->group() : request->host(),
        "sent=" + std::to_string(response->sent_to_size()) + " offline=" + std::to_string(response->offline_size()));
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ListAudit(grpc::ServerContext* context, const v1::ListAuditRequest* request,
                                         v1::ListAuditResponse* response) {
  auto who = state_.Admin(context);
  if (!who) return Bad(who.error());
  auto rows = state_.storage->ListAudit(request->since(), request->limit() ? request->limit() : 1000);
  if (!rows) return Bad(rows.error());
  for (const auto& r : *rows) {
    auto* e = response->add_entries();
    e->set_at(r.at);
    e->set_actor(r.actor);
    e->set_action(r.action);
    e->set_target(r.target);
    e->set_detail(r.detail);
  }
  return grpc::Status::OK;
}

}  // namespace parc::server
