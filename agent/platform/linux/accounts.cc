// Local users and groups from the passwd, shadow and group files.
#include <algorithm>
#include <map>
#include <set>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

constexpr uint32_t kNobody = 65534;

uint32_t UidMin(Context& ctx) {
  uint32_t uid_min = 1000;  // login.defs' documented default
  if (auto defs = ctx.Read("/etc/login.defs")) {
    ForEachLine(*defs, [&](std::string_view line) {
      auto words = SplitWords(line);
      if (words.size() >= 2 && words[0] == "UID_MIN") {
        if (auto n = ParseU64(words[1])) uid_min = static_cast<uint32_t>(*n);
      }
    });
  }
  return uid_min;
}

}  // namespace

void CollectAccounts(Context& ctx, v1::Inventory& inv) {
  // shadow is root-only; without it, "locked" cannot be known and stays false.
  std::optional<std::map<std::string, bool>> locked_by_name;
  if (auto shadow = ctx.Read("/etc/shadow")) {
    locked_by_name.emplace();
    ForEachLine(*shadow, [&](std::string_view line) {
      auto f = Split(line, ':');
      if (f.size() < 2 || f[0].empty()) return;
      bool locked = f[1].starts_with('!') || f[1].starts_with('*');
      (*locked_by_name)[std::string(f[0])] = locked;
    });
  }
  uint32_t uid_min = UidMin(ctx);

  std::map<std::string, v1::User> users;
  if (auto passwd = ctx.Read("/etc/passwd")) {
    ForEachLine(*passwd, [&](std::string_view line) {
      auto f = Split(line, ':');
      // NIS "+" lines and malformed entries name no local account.
      if (f.size() < 7 || f[0].empty() || f[0].starts_with('+') || f[0].starts_with('-')) return;
      auto uid = ParseU64(f[2]), gid = ParseU64(f[3]);
      if (!uid || !gid) return;
      v1::User u;
      u.set_name(std::string(f[0]));
      u.set_uid(static_cast<uint32_t>(*uid));
      u.set_gid(static_cast<uint32_t>(*gid));
      u.set_gecos(std::string(f[4]));
      u.set_home(std::string(f[5]));
      u.set_shell(std::string(f[6]));
      u.set_system(u.uid() < uid_min || u.uid() == kNobody);
      if (locked_by_name) {
        // An account missing from shadow cannot log in with a password either.
        auto it = locked_by_name->find(u.name());
        u.set_locked(it == locked_by_name->end() || it->second);
      }
      users.try_emplace(u.name(), std::move(u));  // the first entry is the one login uses
    });
  } else {
    ctx.Warn("cannot read /etc/passwd: users unknown");
  }
  for (auto& [name, u] : users) *inv.add_users() = std::move(u);

  std::map<std::string, v1::Group> groups;
  if (auto group = ctx.Read("/etc/group")) {
    ForEachLine(*group, [&](std::string_view line) {
      auto f = Split(line, ':');
      if (f.size() < 4 || f[0].empty() || f[0].starts_with('+') || f[0].starts_with('-')) return;
      auto gid = ParseU64(f[2]);
      if (!gid) return;
      v1::Group g;
      g.set_name(std::string(f[0]));
      g.set_gid(static_cast<uint32_t>(*gid));
      std::set<std::string> members;
      for (auto m : Split(f[3], ',')) {
        if (!Trim(m).empty()) members.insert(std::string(Trim(m)));
      }
      for (const auto& m : members) g.add_members(m);
      groups.try_emplace(g.name(), std::move(g));
    });
  } else {
    ctx.Warn("cannot read /etc/group: groups unknown");
  }
  for (auto& [name, g] : groups) *inv.add_groups() = std::move(g);
}

}  // namespace parc::agent::linux_inventory
