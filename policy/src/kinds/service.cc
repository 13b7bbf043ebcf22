// service: a systemd unit enabled, disabled or masked, judged from the unit
// files and links on disk the way `systemctl --root` (systemd 252, Debian 12)
// judges them, and changed the way it changes them.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

// systemd's unit search path for the system manager, in priority order; the
// first file of a name wins. (Debian 12's systemd searches /lib before /usr/lib,
// and names /lib/... in the links it makes.)
const char* const kUnitDirs[] = {"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                                 "/lib/systemd/system", "/usr/lib/systemd/system"};
constexpr const char* kEtc = "/etc/systemd/system";
const char* const kDepSuffixes[] = {".wants", ".requires", ".upholds"};

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

std::string Basename(const std::string& p) { return p.substr(p.rfind('/') + 1); }

std::optional<std::string> ReadLinkAt(const Context& ctx, const std::string& path) {
  auto host = ctx.Resolve(path, false);
  if (!host) return std::nullopt;
  struct stat st {};
  if (::lstat(host->c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return std::nullopt;
  std::string target(4096, '\0');
  ssize_t n = ::readlink(host->c_str(), target.data(), target.size());
  if (n < 0) return std::nullopt;
  target.resize(static_cast<size_t>(n));
  return target;
}

// lstat of an in-system path (links on the way resolved in the root).
bool LstatAt(const Context& ctx, const std::string& path, struct stat& st) {
  auto host = ctx.Resolve(path, false);
  return host && ::lstat(host->c_str(), &st) == 0;
}

struct Install {
  std::vector<std::string> wanted_by, required_by, upheld_by, alias, also;
  bool Empty() const { return wanted_by.empty() && required_by.empty() && upheld_by.empty() && alias.empty() && also.empty(); }
};

// The [Install] section; an empty assignment resets the list, as in systemd.
Install ParseInstall(const std::string& text) {
  Install in;
  std::string section;
  for (const auto& raw : Lines(text)) {
    std::string t = Trim(raw);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = t;
      continue;
    }
    if (section != "[Install]") continue;
    auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(t.substr(0, eq));
    std::vector<std::string>* list = key == "WantedBy"     ? &in.wanted_by
                                     : key == "RequiredBy" ? &in.required_by
                                     : key == "UpheldBy"   ? &in.upheld_by
                                     : key == "Alias"      ? &in.alias
                                     : key == "Also"       ? &in.also
                                                           : nullptr;
    if (!list) continue;
    auto words = SplitWords(t.substr(eq + 1));
    if (words.empty()) list->clear();
    for (auto& w : words)
      if (std::find(list->begin(), list->end(), w) == list->end()) list->push_back(std::move(w));
  }
  return in;
}

// Where a unit name leads in the search path.
struct Unit {
  enum class Kind { kNone, kMasked, kFile } kind = Kind::kNone;
  std::string name;       // the name links carry (an instance keeps its own name)
  std::string path;       // in-system path of the unit file as found (the target of the links)
  std::string mask;       // when masked: the masking path
  bool mask_is_link = false;  // a link to /dev/null (else an empty file)
  std::string alias_of;   // the requested name is an alias of `name`
  std::string text;       // unit file content
};

std::optional<std::string> TemplateOf(const std::string& unit) {
  auto at = unit.find('@');
  auto dot = unit.rfind('.');
  if (at == std::string::npos || dot == std::string::npos || dot <= at + 1) return std::nullopt;
  return unit.substr(0, at + 1) + unit.substr(dot);
}

Unit Lookup(const Context& ctx, const std::string& unit, int depth = 0) {
  Unit u;
  u.name = unit;
  if (depth > 8) return u;
  for (const char* dir : kUnitDirs) {
    std::string p = std::string(dir) + "/" + unit;
    struct stat st {};
    if (!LstatAt(ctx, p, st)) continue;
    if (S_ISLNK(st.st_mode)) {
      auto target = ReadLinkAt(ctx, p).value_or("");
      if (target == "/dev/null") {
        u.kind = Unit::Kind::kMasked;
        u.mask = p;
        u.mask_is_link = true;
        return u;
      }
      if (!ctx.Exists(p)) continue;  // dangling, or leading out of the root
      std::string real = Basename(target);
      if (real != unit) {
        Unit r = Lookup(ctx, real, depth + 1);
        if (r.alias_of.empty()) r.alias_of = real;
        return r;
      }
    } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
      u.kind = Unit::Kind::kMasked;  // systemd treats an empty unit file as a mask too
      u.mask = p;
      return u;
    } else if (!S_ISREG(st.st_mode)) {
      continue;
    }
    auto text = ctx.Read(p);
    if (!text) continue;
    u.kind = Unit::Kind::kFile;
    u.path = p;
    u.text = *text;
    return u;
  }
  if (auto tmpl = TemplateOf(unit)) {
    Unit t = Lookup(ctx, *tmpl, depth + 1);
    if (t.kind == Unit::Kind::kFile) t.name = unit;
    return t;
  }
  return u;
}

// Links in /etc/systemd/system enabling `name`: in *.wants, *.requires,
// *.upholds directories, named after it or pointing to a file of that name,
// and top-level aliases pointing to it.
std::vector<std::string> EnablementLinks(const Context& ctx, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& entry : ListDir(ctx, kEtc)) {
    std::string p = std::string(kEtc) + "/" + entry;
    bool dep_dir = false;
    for (const char* s : kDepSuffixes) dep_dir = dep_dir || (entry.size() > std::strlen(s) && entry.ends_with(s));
    struct stat st {};
    if (!LstatAt(ctx, p, st)) continue;
    if (dep_dir && S_ISDIR(st.st_mode)) {
      for (const auto& l : ListDir(ctx, p)) {
        auto target = ReadLinkAt(ctx, p + "/" + l);
        if (target && (l == name || Basename(*target) == name)) out.push_back(p + "/" + l);
      }
    } else if (S_ISLNK(st.st_mode) && entry != name) {
      auto target = ReadLinkAt(ctx, p);
      if (target && *target != "/dev/null" && Basename(*target) == name) out.push_back(p);
    }
  }
  return out;
}

std::string List(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// What `systemctl enable` would create: link -> target.
struct Link {
  std::string path, target;
};

class Service final : public Check {
 public:
  enum class Want { kEnabled, kDisabled, kMasked };
  Service(std::string unit, Want want) : unit_(std::move(unit)), want_(want) {}

  Finding Evaluate(const Context& ctx) const override {
    static const char* kNames[] = {"enabled", "disabled", "masked"};
    std::string expected = unit_ + " " + kNames[static_cast<int>(want_)];
    Unit u = Lookup(ctx, unit_);
    if (u.kind == Unit::Kind::kMasked) {
      std::string found = "masked (" + u.mask + (u.mask_is_link ? " -> /dev/null)" : " is empty)");
      if (want_ == Want::kDisabled) return Pass(expected, found + ", which is stronger than disabled");
      return want_ == Want::kMasked ? Pass(expected, found) : FailWith(expected, found);
    }
    if (u.kind == Unit::Kind::kNone) {
      if (want_ == Want::kMasked) return FailWith(expected, "no unit file of that name, and not masked");
      return NotApplicable("no unit " + unit_ + " in " + List(std::vector<std::string>(std::begin(kUnitDirs), std::end(kUnitDirs))));
    }
    std::string where = u.alias_of.empty() ? u.path : "alias of " + u.name + " (" + u.path + ")";
    auto links = EnablementLinks(ctx, u.name);
    bool is_static = ParseInstall(u.text).Empty();
    std::string found;
    if (!links.empty()) found = "enabled by " + List(links);
    else if (is_static) found = "static: " + where + " has no [Install] section, so it is not enabled (it starts only when another unit pulls it in)";
    else found = "disabled (" + where + ", no link in " + kEtc + ")";
    if (want_ == Want::kMasked) return FailWith(expected, found + "; not masked");
    bool ok = want_ == Want::kEnabled ? !links.empty() : links.empty();
    return ok ? Pass(expected, found) : FailWith(expected, found);
  }

  std::string CannotRemediate(const Context& ctx) const override {
    if (want_ == Want::kMasked) {
      std::string p = std::string(kEtc) + "/" + unit_;
      struct stat st {};
      if (LstatAt(ctx, p, st) && !IsMask(ctx, p))
        return p + " already exists and is not a mask; systemctl mask refuses to replace it (move it away first)";
      return "";
    }
    if (want_ == Want::kEnabled) {
      auto plan = EnablePlan(ctx);
      if (!plan) return plan.error().message();
    }
    return "";
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    switch (want_) {
      case Want::kMasked: {
        if (auto why = CannotRemediate(ctx); !why.empty()) return Fail(Errc::kFailedPrecondition, why);
        if (auto r = MakeDirs(ctx, change, kEtc); !r) return r;
        return change.Symlink(ctx, std::string(kEtc) + "/" + unit_, "/dev/null");
      }
      case Want::kEnabled: {
        // Unmask first, as `systemctl unmask` would, then enable.
        std::string mask = std::string(kEtc) + "/" + unit_;
        if (IsMask(ctx, mask))
          if (auto r = change.Remove(ctx, mask); !r) return r;
        auto plan = EnablePlan(ctx);
        if (!plan) return Fail(plan.error());
        for (const auto& l : *plan) {
          auto existing = ReadLinkAt(ctx, l.path);
          if (existing && *existing == l.target) continue;
          if (auto r = MakeDirs(ctx, change, l.path.substr(0, l.path.rfind('/'))); !r) return r;
          if (auto r = change.Symlink(ctx, l.path, l.target); !r) return r;
        }
        return {};
      }
      case Want::kDisabled: return Disable(ctx, change);
    }
    return {};
  }

 private:
  static bool IsMask(const Context& ctx, const std::string& p) {
    struct stat st {};
    if (!LstatAt(ctx, p, st)) return false;
    if (S_ISLNK(st.st_mode)) return ReadLinkAt(ctx, p).value_or("") == "/dev/null";
    return S_ISREG(st.st_mode) && st.st_size == 0;
  }

  // The links `systemctl enable` makes for the unit and its Also= units, or
  // why it cannot.
  Expected<std::vector<Link>> EnablePlan(const Context& ctx) const {
    std::vector<Link> plan;
    std::set<std::string> seen;
    std::vector<std::string> todo{unit_};
    while (!todo.empty()) {
      std::string name = todo.back();
      todo.pop_back();
      if (!seen.insert(name).second) continue;
      Unit u = Lookup(ctx, name);
      if (u.kind == Unit::Kind::kMasked) {
        if (u.mask == std::string(kEtc) + "/" + name) {
          // Unmasked by Remediate before the plan is carried out.
          Unit behind = LookupBehindMask(ctx, name);
          if (behind.kind != Unit::Kind::kFile) return Fail(Errc::kNotFound, name + " is masked and has no unit file behind the mask");
          u = behind;
        } else {
          return Fail(Errc::kFailedPrecondition, name + " is masked by " + u.mask + ": Parc only unmasks " + kEtc);
        }
      }
      if (u.kind == Unit::Kind::kNone) return Fail(Errc::kNotFound, "no unit file for " + name);
      if (u.name.find("@.") != std::string::npos)
        return Fail(Errc::kInvalidArgument, name + " is a template: name an instance (" + u.name.substr(0, u.name.find('@') + 1) + "NAME" +
                                                u.name.substr(u.name.find('@') + 1) + ")");
      Install in = ParseInstall(u.text);
      if (in.Empty())
        return Fail(Errc::kFailedPrecondition, u.path + " has no [Install] section (static unit): it cannot be enabled, only pulled in by another unit");
      auto add = [&](const std::string& path) { plan.push_back({path, u.path}); };
      for (const auto& t : in.wanted_by) add(std::string(kEtc) + "/" + t + ".wants/" + u.name);
      for (const auto& t : in.required_by) add(std::string(kEtc) + "/" + t + ".requires/" + u.name);
      for (const auto& t : in.upheld_by) add(std::string(kEtc) + "/" + t + ".upholds/" + u.name);
      for (const auto& a : in.alias) add(std::string(kEtc) + "/" + a);
      for (const auto& a : in.also) todo.push_back(a);
    }
    for (const auto& l : plan) {
      struct stat st {};
      if (!LstatAt(ctx, l.path, st)) continue;
      auto existing = ReadLinkAt(ctx, l.path);
      if (!existing || *existing != l.target)
        return Fail(Errc::kAlreadyExists, l.path + " already exists" + (existing ? " and points to " + *existing : std::string(" and is not a link")) +
                                              "; systemctl enable refuses to replace it");
    }
    return plan;
  }

  // The unit file a mask in /etc/systemd/system hides.
  static Unit LookupBehindMask(const Context& ctx, const std::string& name) {
    for (size_t i = 1; i < std::size(kUnitDirs); ++i) {
      std::string p = std::string(kUnitDirs[i]) + "/" + name;
      struct stat st {};
      if (!LstatAt(ctx, p, st) || !ctx.Exists(p)) continue;
      if (S_ISLNK(st.st_mode)) {
        std::string real = Basename(ReadLinkAt(ctx, p).value_or(""));
        if (real != name) return Lookup(ctx, real, 1);
      }
      auto text = ctx.Read(p);
      if (!text || text->empty()) continue;
      Unit u;
      u.kind = Unit::Kind::kFile;
      u.name = name;
      u.path = p;
      u.text = *text;
      return u;
    }
    if (auto tmpl = TemplateOf(name)) {
      Unit t = LookupBehindMask(ctx, *tmpl);
      if (t.kind == Unit::Kind::kFile) t.name = name;
      return t;
    }
    return {};
  }

  // Removes the enablement links of the unit and its Also= units, then the
  // dependency directories they leave empty (as systemctl disable does).
  ExpectedVoid Disable(const Context& ctx, Change& change) const {
    std::set<std::string> seen, dirs;
    std::vector<std::string> todo{unit_};
    while (!todo.empty()) {
      std::string name = todo.back();
      todo.pop_back();
      if (!seen.insert(name).second) continue;
      Unit u = Lookup(ctx, name);
      std::string real = u.kind == Unit::Kind::kFile ? u.name : name;
      for (const auto& l : EnablementLinks(ctx, real)) {
        if (auto r = change.Remove(ctx, l); !r) return r;
        std::string dir = l.substr(0, l.rfind('/'));
        if (dir != kEtc) dirs.insert(dir);
      }
      if (u.kind == Unit::Kind::kFile)
        for (const auto& a : ParseInstall(u.text).also) todo.push_back(a);
    }
    for (const auto& d : dirs) {
      if (!ListDir(ctx, d).empty()) continue;
      auto host = ctx.Resolve(d, false);
      if (!host) return Fail(host.error());
      if (auto r = change.Record(ctx.InSystem(*host)); !r) return r;
      if (::rmdir(host->c_str()) != 0 && errno != ENOENT) return Fail(ErrnoError(errno, "cannot remove " + host->string()));
    }
    return {};
  }

  // Creates the missing directories of an in-system path (links on the way
  // resolved in the root), each recorded (absent) first.
  static ExpectedVoid MakeDirs(const Context& ctx, Change& change, const std::string& dir) {
    auto host = ctx.Resolve(dir);
    if (!host) return Fail(host.error());
    std::vector<fs::path> missing;
    for (fs::path d = *host; d != ctx.root() && d != d.root_path(); d = d.parent_path()) {
      struct stat st {};
      if (::stat(d.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return Fail(Errc::kFailedPrecondition, ctx.InSystem(d) + " exists and is not a directory");
        break;
      }
      missing.push_back(d);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (auto r = change.Record(ctx.InSystem(*it)); !r) return r;
      if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) return Fail(ErrnoError(errno, "cannot create " + it->string()));
      if (::chmod(it->c_str(), 0755) != 0) return Fail(ErrnoError(errno, "cannot set the mode of " + it->string()));
    }
    return {};
  }

  std::string unit_;
  Want want_;
};

// NAME[@INSTANCE].TYPE with systemd's unit name characters (\ for its escapes).
bool ValidUnitName(const std::string& unit) {
  static const char* const kTypes[] = {".service", ".socket", ".target", ".timer", ".path", ".mount",
                                       ".automount", ".swap", ".slice", ".scope", ".device"};
  const char* type = nullptr;
  for (const char* t : kTypes)
    if (unit.size() > std::strlen(t) && unit.ends_with(t)) type = t;
  if (!type) return false;
  std::string stem = unit.substr(0, unit.size() - std::strlen(type));
  if (stem.empty() || stem[0] == '@' || std::count(stem.begin(), stem.end(), '@') > 1) return false;
  for (char c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view(":_.\\-@").find(c) == std::string_view::npos) return false;
  return true;
}

}  // namespace

Expected<CheckPtr> MakeService(Fields& f) {
  auto unit = f.String("unit");
  if (!unit) return Fail(unit.error());
  if (!ValidUnitName(*unit))
    return Fail(f.Bad("unit", "'" + *unit + "' is not a systemd unit name (such as ctrl-alt-del.target or ssh.service)"));
  auto state = f.OneOf("state", {"enabled", "disabled", "masked"});
  if (!state) return Fail(state.error());
  auto want = *state == "enabled" ? Service::Want::kEnabled : *state == "disabled" ? Service::Want::kDisabled : Service::Want::kMasked;
  return std::make_shared<Service>(*unit, want);
}

}  // namespace parc::policy::kinds
