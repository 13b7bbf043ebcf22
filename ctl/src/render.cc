#include "parc/ctl/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "parc/common/inventory_model.h"
#include "parc/common/timeutil.h"
#include "parc/ctl/sections.h"
#include "parc/ctl/table.h"
#include "parc/ctl/text.h"

namespace parc::ctl {
namespace {

std::string TimeAndAge(int64_t t, int64_t now) {
  if (t <= 0) return "never";
  if (t > now) return FormatTime(t);
  return FormatTime(t) + " (" + FormatAge(t, now) + ")";
}

std::string Until(int64_t t, int64_t now) {
  if (t <= 0) return "never";
  int64_t left = t - now;
  if (left <= 0) return FormatTime(t) + " (expired)";
  // FormatAge measures backwards; mirror the instant to say "in 2h".
  std::string age = FormatAge(now - left, now);
  if (age.ends_with(" ago")) age.resize(age.size() - 4);
  return FormatTime(t) + " (in " + age + ")";
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& values) {
  return {values.begin(), values.end()};
}

bool IsLoopback(const std::string& server) {
  return server.starts_with("localhost") || server.starts_with("127.") || server.starts_with("[::1]") ||
         server.starts_with("ip6-localhost");
}

}  // namespace

Expected<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return Fail(Errc::kInternal, "cannot print " + message.GetTypeName() + " as JSON: " + status.ToString());
  return out;
}

std::string HostLabel(const std::string& host_id, const HostNames& names) {
  auto it = names.find(host_id);
  if (it == names.end() || it->second.empty()) return ShortId(host_id);
  return ShortId(host_id) + " (" + it->second + ")";
}

std::string RenderToken(const v1::CreateTokenResponse& token, const std::string& server, const RenderOptions& opts) {
  FieldList fields;
  fields.Add("Token", token.token());
  fields.Add("Expires", Until(token.expires_at(), opts.now));
  fields.Add("Group", token.group().empty() ? "(none)" : token.group());
  fields.Add("CA fingerprint", token.ca_fingerprint());
  std::string out = fields.Render();
  out += "\nThe token is shown only once and works for one enrollment. On the new machine, run:\n\n";
  out += "  parc-agent enroll --server " + Printable(server) + " --token " + Printable(token.token()) +
         " --ca-fingerprint " + Printable(token.ca_fingerprint()) + "\n";
  if (IsLoopback(server))
    out += "\n(" + Printable(server) +
           " is this machine's loopback address: replace it with an address of the server the new machine can reach.)\n";
  return out;
}

std::string HostStatus(const v1::HostSummary& host) {
  if (host.revoked()) return "revoked";
  return host.online() ? "online" : "offline";
}

std::string RenderHosts(const v1::ListHostsResponse& hosts, const RenderOptions& opts) {
  if (hosts.hosts().empty()) return "no hosts match\n";
  Table table({"host id", "hostname", "status", "last seen", "os", "groups"});
  for (const auto& h : hosts.hosts()) {
    std::string seen = h.online() ? "now" : FormatAge(h.last_seen(), opts.now);
    table.AddRow({ShortId(h.host_id()), h.hostname(), HostStatus(h), seen, h.os(), Join(Strings(h.groups()), ",")});
  }
  return table.Render(opts.max_width);
}

std::string RenderHostDetail(const v1::HostDetail& host, const RenderOptions& opts) {
  const auto& s = host.summary();
  FieldList fields;
  fields.Add("Host ID", s.host_id());
  fields.Add("Hostname", s.hostname());
  fields.Add("Status", HostStatus(s));
  fields.Add("Last seen", s.online() ? "now" : TimeAndAge(s.last_seen(), opts.now));
  fields.Add("Peer", s.peer());
  fields.Add("Enrolled", TimeAndAge(s.enrolled_at(), opts.now));
  fields.Add("Groups", s.groups().empty() ? "(none)" : Join(Strings(s.groups()), ", "));
  fields.Add("OS", s.os());
  fields.Add("Agent version", s.agent_version());
  fields.Add("Certificate", host.certificate_fingerprint());
  if (host.certificate_expires_at() > 0) fields.Add("Certificate expires", Until(host.certificate_expires_at(), opts.now));
  fields.Add("Inventory digest", host.inventory_digest());
  fields.Add("Inventory updated", host.inventory_updated_at() > 0 ? TimeAndAge(host.inventory_updated_at(), opts.now) : "");
  fields.Add("Hardware identity", Join(Strings(host.fingerprint()), ", "));
  fields.Add("Duplicate of", Join(Strings(host.duplicate_of()), ", "));
  fields.Add("Previous host ID", host.previous_host_id());
  if (!host.section_counts().empty()) {
    // The map's order is unspecified; proto order reads like the inventory.
    std::vector<std::string> counts;
    for (const auto& section : inventory::SectionNames()) {
      auto it = host.section_counts().find(section);
      if (it != host.section_counts().end()) counts.push_back(section + " " + std::to_string(it->second));
    }
    fields.Add("Inventory items", Join(counts, ", "));
  }
  return fields.Render();
}

std::string RenderRevoked(const v1::HostDetail& host, const std::string& reason) {
  const auto& s = host.summary();
  std::string out = "revoked host " + Printable(s.host_id());
  if (!s.hostname().empty()) out += " (" + Printable(s.hostname()) + ")";
  if (!reason.empty()) out += ": " + Printable(reason);
  out += "\nits certificate is refused from now on";
  out += s.online() ? "; its live session is being closed.\n" : ".\n";
  return out;
}

std::string RenderInventory(const v1::GetInventoryResponse& inventory, const std::vector<std::string>& sections,
                            const RenderOptions& opts) {
  std::map<std::string, std::vector<const v1::InventoryItem*>> by_section;
  for (const auto& item : inventory.items()) by_section[item.section()].push_back(&item);

  std::string out;
  bool headings = sections.size() > 1;
  for (const auto& section : sections) {
    auto it = by_section.find(section);
    if (it == by_section.end()) {
      // Saying nothing for a section asked for by name would look like a bug.
      if (!headings) out += "no " + section + " items reported for this host\n";
      continue;
    }
    if (headings) out += (out.empty() ? "" : "\n") + std::string("[") + section + "]\n";
    const auto& names = inventory::FieldNames(section);
    if (!IsRepeatedSection(section)) {
      FieldList list;
      for (const auto* item : it->second)
        for (const auto& field : names) {
          auto v = item->fields().find(field);
          if (v != item->fields().end()) list.Add(field, HumanFieldValue(field, v->second));
        }
      out += list.Render();
      continue;
    }
    // Columns are the fields some item has a value for: a VM has no serial
    // numbers and showing empty columns only pushes the useful ones off screen.
    std::vector<std::string> columns;
    for (const auto& field : names)
      if (std::any_of(it->second.begin(), it->second.end(), [&](const v1::InventoryItem* item) {
            auto v = item->fields().find(field);
            return v != item->fields().end() && !v->second.empty();
          }))
        columns.push_back(field);
    if (columns.empty()) continue;
    Table table(columns);
    for (const auto* item : it->second) {
      std::vector<std::string> row;
      for (const auto& field : columns) {
        auto v = item->fields().find(field);
        row.push_back(v == item->fields().end() ? "" : HumanFieldValue(field, v->second));
      }
      table.AddRow(std::move(row));
    }
    out += table.Render(opts.max_width);
  }
  if (out.empty()) out = "no inventory reported for this host yet\n";
  return out;
}

std::string RenderHistory(const v1::GetHistoryResponse& history, const RenderOptions& opts) {
  if (history.entries().empty()) return "no changes recorded\n";
  Table table({"at", "section", "item", "change", "field", "old", "new"});
  for (const auto& e : history.entries())
    table.AddRow({FormatTime(e.at()), e.section(), e.key(), e.change(), e.field(), e.old_value(), e.new_value()});
  return table.Render(opts.max_width);
}

std::string RenderGroups(const v1::ListGroupsResponse& groups, const RenderOptions& opts) {
  if (groups.groups().empty()) return "no groups yet (create one with: parcctl group create NAME)\n";
  Table table({"name", "hosts", "description"});
  for (const auto& g : groups.groups())
    table.AddRow({g.name(), std::to_string(g.host_ids_size()), g.description()});
  return table.Render(opts.max_width);
}

std::string RenderDuplicates(const v1::ListDuplicatesResponse& duplicates, const HostNames& names,
                             const RenderOptions& opts) {
  if (duplicates.duplicates().empty()) return "no duplicates: every hardware identity belongs to one host\n";
  Table table({"identity", "hosts"});
  for (const auto& d : duplicates.duplicates()) {
    std::vector<std::string> hosts;
    for (const auto& id : d.host_ids()) hosts.push_back(HostLabel(id, names));
    table.AddRow({d.identity(), Join(hosts, ", ")});
  }
  return table.Render(opts.max_width);
}

std::string RenderCollect(const v1::CollectInventoryResponse& collect, const HostNames& names) {
  auto list = [&](const google::protobuf::RepeatedPtrField<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += "  " + Printable(HostLabel(id, names)) + "\n";
    return out;
  };
  std::string out;
  if (collect.sent_to().empty() && collect.offline().empty()) return "no hosts matched\n";
  if (!collect.sent_to().empty())
    out += "inventory collection requested on " + std::to_string(collect.sent_to_size()) + " online host(s):\n" +
           list(collect.sent_to());
  if (!collect.offline().empty())
    out += std::to_string(collect.offline_size()) +
           " host(s) offline, not reached (they send a full inventory when they reconnect):\n" + list(collect.offline());
  return out;
}

std::string RenderAudit(const v1::ListAuditResponse& audit, const RenderOptions& opts) {
  if (audit.entries().empty()) return "no audit entries\n";
  Table table({"at", "actor", "action", "target", "detail"});
  for (const auto& e : audit.entries()) table.AddRow({FormatTime(e.at()), e.actor(), e.action(), e.target(), e.detail()});
  return table.Render(opts.max_width);
}

}  // namespace parc::ctl
