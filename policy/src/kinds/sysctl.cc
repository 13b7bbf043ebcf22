// sysctl: the persisted value in systemd-sysctl order and, on the live
// system, the runtime value.
#include <algorithm>
#include <map>

#include "kinds.h"
#include "parc/common/files.h"

namespace parc::policy::kinds {

namespace {

constexpr const char* kParcFile = "/etc/sysctl.d/99-parc-hardening.conf";

struct Assignment {
  std::string file;   // in-system path
  int line = 0;       // 1-based
  std::string value;  // collapsed
};

// Files in the order systemd-sysctl applies them.
std::vector<std::string> ConfigFiles(const Context& ctx) {
  static const char* kDirs[] = {"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"};
  std::map<std::string, std::string> by_name;  // file name -> first (highest priority) path
  for (const char* dir : kDirs) {
    auto files = ctx.Glob(std::string(dir) + "/*.conf");
    if (!files) continue;  // a sysctl.d linked above the root is not read
    for (const auto& p : *files) {
      std::string name = p.substr(p.rfind('/') + 1);
      by_name.emplace(name, p);
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, path] : by_name) out.push_back(path);
  if (ctx.Exists("/etc/sysctl.conf")) out.push_back("/etc/sysctl.conf");
  return out;
}

// Normalises "net/ipv4/ip_forward" and leading '-' (ignore errors) to dotted form.
std::string NormKey(std::string k) {
  if (!k.empty() && k[0] == '-') k.erase(0, 1);
  std::replace(k.begin(), k.end(), '/', '.');
  return k;
}

std::vector<Assignment> Assignments(const Context& ctx, const std::string& key) {
  std::vector<Assignment> out;
  for (const auto& file : ConfigFiles(ctx)) {
    auto text = ctx.Read(file);
    if (!text) continue;
    auto lines = Lines(*text);
    for (size_t i = 0; i < lines.size(); ++i) {
      std::string l = Trim(lines[i]);
      if (l.empty() || l[0] == '#' || l[0] == ';') continue;
      auto eq = l.find('=');
      if (eq == std::string::npos) continue;
      if (NormKey(Trim(l.substr(0, eq))) != key) continue;
      out.push_back({file, static_cast<int>(i + 1), CollapseSpaces(l.substr(eq + 1))});
    }
  }
  return out;
}

class Sysctl final : public Check {
 public:
  Sysctl(std::string key, std::string value) : key_(std::move(key)), value_(CollapseSpaces(value)) {}

  Finding Evaluate(const Context& ctx) const override {
    std::string expected = key_ + " = " + value_;
    std::string runtime;
    if (ctx.live()) {
      auto v = ReadSmallFile(ProcPath(), 4096);
      if (!v) return NotApplicable("the running kernel has no " + key_);
      runtime = CollapseSpaces(*v);
    }
    auto all = Assignments(ctx, key_);
    std::vector<std::string> wrong;
    for (const auto& a : all)
      if (a.value != value_) wrong.push_back(a.value + " in " + a.file + ":" + std::to_string(a.line));
    std::string found;
    if (all.empty()) found = "not set in any sysctl configuration file";
    else found = all.back().value + " in " + all.back().file + ":" + std::to_string(all.back().line);
    if (ctx.live()) found += "; running kernel: " + runtime;
    bool ok = !all.empty() && wrong.empty() && (!ctx.live() || runtime == value_);
    if (!wrong.empty() && all.back().value == value_) found += "; also " + wrong.front();
    return ok ? Pass(expected, found) : FailWith(expected, found);
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    // Rewrite conflicting lines, then make sure our file sets it. Files outside
    // /etc belong to packages (procps, systemd): editing them would be undone
    // by the next upgrade and break `dpkg --verify`. They are masked instead by
    // a file of the same name in /etc/sysctl.d, as systemd-sysctl intends.
    std::map<std::string, std::vector<int>> bad;
    for (const auto& a : Assignments(ctx, key_))
      if (a.value != value_) bad[a.file].push_back(a.line);
    for (const auto& [file, lines] : bad) {
      auto text = ctx.Read(file);
      if (!text) return Fail(text.error());
      auto ls = Lines(*text);
      for (int n : lines) ls[static_cast<size_t>(n - 1)] = key_ + " = " + value_;
      std::string out;
      bool in_etc = file.starts_with("/etc/");
      if (!in_etc) out = "# Masks " + file + " (written by parc-agent policy apply; same settings, " + key_ + " hardened).\n";
      for (const auto& l : ls) out += l + "\n";
      std::string target = in_etc ? file : "/etc/sysctl.d/" + file.substr(file.rfind('/') + 1);
      if (auto r = change.WriteFile(ctx, target, out); !r) return r;
    }
    std::string ours;
    if (auto t = ctx.Read(kParcFile)) ours = *t;
    bool present = false;
    for (const auto& l : Lines(ours)) {
      auto eq = l.find('=');
      if (eq != std::string::npos && NormKey(Trim(l.substr(0, eq))) == key_) present = true;
    }
    if (!present) {
      if (ours.empty()) ours = "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.\n";
      if (ours.back() != '\n') ours += "\n";
      ours += key_ + " = " + value_ + "\n";
      if (auto r = change.WriteFile(ctx, kParcFile, ours); !r) return r;
    }
    if (ctx.live()) return change.SetRuntimeSysctl(ctx, key_, value_);
    return {};
  }

 private:
  std::string ProcPath() const {
    std::string rel = key_;
    std::replace(rel.begin(), rel.end(), '.', '/');
    return "/proc/sys/" + rel;
  }
  std::string key_, value_;
};

}  // namespace

Expected<CheckPtr> MakeSysctl(Fields& f) {
  auto key = f.String("key");
  if (!key) return Fail(key.error());
  if (key->empty() || key->find_first_of(" /=") != std::string::npos || key->find("..") != std::string::npos)
    return Fail(f.Bad("key", "must be a dotted sysctl name such as kernel.dmesg_restrict"));
  auto value = f.String("value");
  if (!value) return Fail(value.error());
  return std::make_shared<Sysctl>(*key, *value);
}

}  // namespace parc::policy::kinds
