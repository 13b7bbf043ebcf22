// systemd services: unit file state from the unit directories, activity from
// the running systemd (live system only).
#include <algorithm>
#include <map>
#include <set>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

// systemd's search path, highest precedence first: a unit in /etc hides the
// packaged one of the same name.
struct UnitDir {
  std::string_view path;
  bool generated;
};
constexpr UnitDir kUnitDirs[] = {
    {"/etc/systemd/system", false},        {"/run/systemd/system", false},
    {"/run/systemd/generator.early", true}, {"/run/systemd/generator", true},
    {"/usr/local/lib/systemd/system", false}, {"/usr/lib/systemd/system", false},
    {"/lib/systemd/system", false},        {"/run/systemd/generator.late", true},
};

struct UnitFile {
  std::string description;
  bool install_targets = false;  // WantedBy=, RequiredBy=, UpheldBy= or Alias=
  bool install_also = false;     // only Also=: enabled through other units
  bool generated = false;
};

UnitFile ParseUnit(std::string_view text) {
  UnitFile unit;
  std::string_view section;
  ForEachLine(text, [&](std::string_view line) {
    line = Trim(line);
    if (line.empty() || line.front() == '#' || line.front() == ';') return;
    if (line.front() == '[') {
      section = line;
      return;
    }
    std::string_view key, value;
    if (!SplitKeyValue(line, '=', key, value) || value.empty()) return;
    if (section == "[Unit]" && key == "Description") {
      unit.description = value;
    } else if (section == "[Install]") {
      if (key == "WantedBy" || key == "RequiredBy" || key == "UpheldBy" || key == "Alias") unit.install_targets = true;
      else if (key == "Also") unit.install_also = true;
    }
  });
  return unit;
}

bool IsTemplate(std::string_view name) { return name.find("@.") != std::string_view::npos; }

// "getty@tty1.service" -> "getty@.service"
std::string TemplateOf(std::string_view instance) {
  size_t at = instance.find('@');
  size_t dot = instance.rfind('.');
  if (at == std::string_view::npos || dot == std::string_view::npos || dot < at) return {};
  return std::string(instance.substr(0, at + 1)) + std::string(instance.substr(dot));
}

struct Scan {
  std::map<std::string, UnitFile> units;      // concrete units
  std::map<std::string, UnitFile> templates;  // foo@.service
  std::set<std::string> masked;
  std::set<std::string> enabled;
};

void ScanUnitDir(Context& ctx, const UnitDir& dir, Scan& scan) {
  std::string base(dir.path);
  for (const std::string& name : ctx.List(dir.path)) {
    if (!name.ends_with(".service")) continue;
    std::string path = base + "/" + name;
    std::string target = ctx.LinkTarget(path);
    if (!target.empty()) {
      if (target == "/dev/null") {
        scan.masked.insert(name);
        continue;
      }
      if (Basename(target) != name) {
        // An alias; one in /etc is how Alias= gets enabled (display-manager.service).
        if (dir.path == "/etc/systemd/system") scan.enabled.insert(Basename(target));
        continue;
      }
      // A linked unit file: read where the link leads, inside the root.
      if (!target.starts_with('/')) target = base + "/" + target;
      path = target;
    }
    auto& into = IsTemplate(name) ? scan.templates : scan.units;
    if (into.contains(name)) continue;  // hidden by a higher-precedence directory
    auto text = ctx.Read(path, 256 * 1024);
    if (!text) continue;
    UnitFile unit = ParseUnit(*text);
    unit.generated = dir.generated;
    into.emplace(name, std::move(unit));
  }
}

// Enabling a unit is a symlink in some target's .wants/ or .requires/ directory.
void ScanEnablementLinks(Context& ctx, Scan& scan) {
  for (const std::string& dir : ctx.List("/etc/systemd/system")) {
    if (!dir.ends_with(".wants") && !dir.ends_with(".requires")) continue;
    std::string path = "/etc/systemd/system/" + dir;
    for (const std::string& name : ctx.List(path)) {
      if (!name.ends_with(".service")) continue;
      scan.enabled.insert(name);
      std::string target = ctx.LinkTarget(path + "/" + name);
      if (!target.empty()) scan.enabled.insert(Basename(target));
      // An enabled instance of a template is a unit of its own (getty@tty1.service).
      if (!IsTemplate(name) && !scan.units.contains(name)) {
        auto tmpl = scan.templates.find(TemplateOf(name));
        if (tmpl != scan.templates.end()) scan.units.emplace(name, tmpl->second);
      }
    }
  }
}

std::set<std::string> ActiveServices(Context& ctx) {
  std::set<std::string> active;
  if (!ctx.IsDirectory("/run/systemd/system")) {
    ctx.Warn("systemd is not running: service activity unknown");
    return active;
  }
  auto out = RunProgram({"systemctl", "list-units", "--type=service", "--state=active", "--no-legend",
                         "--plain", "--no-pager"});
  if (!out || out->exit_code != 0) {
    ctx.Warn("systemctl list-units failed: service activity unknown");
    return active;
  }
  ForEachLine(out->out, [&](std::string_view line) {
    auto words = SplitWords(line);
    if (!words.empty()) active.insert(std::string(words[0]));
  });
  return active;
}

}  // namespace

void CollectServices(Context& ctx, v1::Inventory& inv) {
  Scan scan;
  for (const auto& dir : kUnitDirs) ScanUnitDir(ctx, dir, scan);
  ScanEnablementLinks(ctx, scan);
  for (const auto& name : scan.masked) scan.units.try_emplace(name);
  std::set<std::string> active;
  if (ctx.live) active = ActiveServices(ctx);

  for (const auto& [name, unit] : scan.units) {  // std::map: already sorted by name
    auto* s = inv.add_services();
    s->set_name(name);
    std::string state;
    if (scan.masked.contains(name)) state = "masked";
    else if (scan.enabled.contains(name)) state = "enabled";
    else if (unit.generated) state = "generated";
    else if (unit.install_targets) state = "disabled";
    else if (unit.install_also) state = "indirect";
    else state = "static";
    s->set_enabled(state);
    s->set_active(active.contains(name));
    s->set_description(unit.description);
  }
}

}  // namespace parc::agent::linux_inventory
