// Human renderings of admin API answers. Pure functions of the message and the
// current time, so they are tested without a server.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/v1/admin.pb.h"

namespace google::protobuf {
class Message;
}

namespace parc::ctl {

// host id -> hostname, to show names next to bare ids where we have them.
using HostNames = std::map<std::string, std::string>;

struct RenderOptions {
  int64_t now = 0;
  size_t max_width = 160;  // 0 = --wide (never truncate)
};

// The --json form: proto field names, every field present.
Expected<std::string> ToJson(const google::protobuf::Message& message);

std::string RenderToken(const v1::CreateTokenResponse& token, const std::string& server, const RenderOptions& opts);
std::string RenderHosts(const v1::ListHostsResponse& hosts, const RenderOptions& opts);
std::string HostStatus(const v1::HostSummary& host);
std::string RenderHostDetail(const v1::HostDetail& host, const RenderOptions& opts);
std::string RenderRevoked(const v1::HostDetail& host, const std::string& reason);
// `sections` are the sections asked for, in display order.
std::string RenderInventory(const v1::GetInventoryResponse& inventory, const std::vector<std::string>& sections,
                            const RenderOptions& opts);
std::string RenderHistory(const v1::GetHistoryResponse& history, const RenderOptions& opts);
std::string RenderGroups(const v1::ListGroupsResponse& groups, const RenderOptions& opts);
std::string RenderDuplicates(const v1::ListDuplicatesResponse& duplicates, const HostNames& names,
                             const RenderOptions& opts);
std::string RenderCollect(const v1::CollectInventoryResponse& collect, const HostNames& names);
std::string RenderAudit(const v1::ListAuditResponse& audit, const RenderOptions& opts);

// "abcd1234 (pc-01)" when the name is known, the short id otherwise.
std::string HostLabel(const std::string& host_id, const HostNames& names);

}  // namespace parc::ctl
