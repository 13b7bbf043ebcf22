// Strict manifest parsing and the canonical JSON form. nlohmann::json throws;
// every call that can throw stays inside this file's try blocks.
#include "parc/packages/manifest.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>
#include <set>

#include "parc/common/canonical_json.h"

namespace parc::pkg {
namespace {
using json = nlohmann::json;

constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;  // what every JSON tool keeps exact

std::unexpected<Error> Bad(const std::string& field, const std::string& why) {
  return Fail(Errc::kParse, field + ": " + why);
}

// Manifest strings never hold control characters: they have no business in
// names, paths or arguments, and refusing them keeps string escaping identical
// across JSON tools (only '"' and '\' are then escaped).
ExpectedVoid CheckText(const std::string& field, const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return Bad(field, "control characters are not allowed");
  return {};
}

class Obj {
 public:
  Obj(const json& j, std::string field) : j_(j), field_(std::move(field)) {}

  ExpectedVoid Keys(std::initializer_list<const char*> allowed) const {
    if (!j_.is_object()) return Bad(Where(), "must be an object");
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      bool ok = false;
      for (const char* a : allowed)
        if (it.key() == a) ok = true;
      if (!ok) return Bad(Sub(it.key()), "unknown field");
    }
    return {};
  }
  bool Has(const char* key) const { return j_.contains(key); }
  std::string Sub(const std::string& key) const { return field_.empty() ? key : field_ + "." + key; }

  Expected<std::string> Str(const char* key, bool required, const std::string& def = "") const {
    if (!j_.contains(key)) {
      if (required) return Bad(Sub(key), "is required");
      return def;
    }
    const json& v = j_.at(key);
    if (!v.is_string()) return Bad(Sub(key), "must be a string");
    std::string s = v.get<std::string>();
    if (auto c = CheckText(Sub(key), s); !c) return Fail(c.error());
    return s;
  }
  Expected<uint64_t> UInt(const char* key, uint64_t def, uint64_t max = kMaxSafeInteger) const {
    if (!j_.contains(key)) return def;
    const json& v = j_.at(key);
    if (!v.is_number_integer()) return Bad(Sub(key), "must be an integer");
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > max) return Bad(Sub(key), "must be at most " + std::to_string(max));
      return u;
    }
    int64_t i = v.get<int64_t>();
    if (i < 0) return Bad(Sub(key), "must not be negative");
    if (static_cast<uint64_t>(i) > max) return Bad(Sub(key), "must be at most " + std::to_string(max));
    return static_cast<uint64_t>(i);
  }
  Expected<bool> Bool(const char* key, bool def) const {
    if (!j_.contains(key)) return def;
    const json& v = j_.at(key);
    if (!v.is_boolean()) return Bad(Sub(key), "must be true or false");
    return v.get<bool>();
  }
  // Array (possibly absent = empty) of anything; items checked by the caller.
  Expected<const json*> Array(const char* key) const {
    static const json kEmpty = json::array();
    if (!j_.contains(key)) return &kEmpty;
    const json& v = j_.at(key);
    if (!v.is_array()) return Bad(Sub(key), "must be an array");
    return &v;
  }
  const json& Raw(const char* key) const { return j_.at(key); }
  const std::string& Where() const { return field_.empty() ? kTop : field_; }

 private:
  static inline const std::string kTop = "manifest";
  const json& j_;
  std::string field_;
};

bool IsHex(const std::string& s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 128) return false;
  auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_alnum(n.front())) return false;
  for (char c : n)
    if (!lower_alnum(c) && c != '+' && c != '.' && c != '-') return false;
  return true;
}

// A plain file name for native payloads and scripts: one path component.
ExpectedVoid CheckFileName(const std::string& field, const std::string& n) {
  if (n.empty()) return Bad(field, "must not be empty");
  if (n.size() > 255) return Bad(field, "longer than 255 bytes");
  if (n == "." || n == "..") return Bad(field, "'" + n + "' is not allowed");
  if (n.find('/') != std::string::npos || n.find('\\') != std::string::npos)
    return Bad(field, "must be a plain file name without '/' or '\\'");
  return {};
}

bool ValidAccount(const std::string& s) {
  if (s.empty() || s.size() > 32 || s.front() == '-') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return false;
  return true;
}

Expected<unsigned> ParseMode(const std::string& field, const std::string& s) {
  if (s.size() != 4) return Bad(field, "must be 4 octal digits, e.g. \"0755\"");
  unsigned m = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return Bad(field, "must be 4 octal digits, e.g. \"0755\"");
    m = m * 8 + static_cast<unsigned>(c - '0');
  }
  return m;
}

std::string ModeString(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
  return buf;
}

const char* TypeName(EntryType t) {
  switch (t) {
    case EntryType::kFile: return "file";
    case EntryType::kDirectory: return "directory";
    case EntryType::kSymlink: return "symlink";
  }
  return "file";
}

const char* KindName(NativeKind k) {
  switch (k) {
    case NativeKind::kDeb: return "deb";
    case NativeKind::kMsi: return "msi";
    case NativeKind::kExe: return "exe";
  }
  return "deb";
}

}  // namespace

// Absolute, normalised target path: "/a/b", never "/", no empty, "." or ".." component.
ExpectedVoid CheckTargetPath(const std::string& field, const std::string& p) {
  if (auto c = CheckText(field, p); !c) return c;
  if (p.empty()) return Bad(field, "must not be empty");
  if (p.size() > 4096) return Bad(field, "longer than 4096 bytes");
  if (p.front() != '/') return Bad(field, "must be an absolute path (start with '/'), got '" + p + "'");
  if (p == "/") return Bad(field, "'/' itself cannot be a package entry");
  if (p.back() == '/') return Bad(field, "must not end with '/'");
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string_view comp(p.data() + start, end - start);
    if (comp.empty()) return Bad(field, "empty path component ('//') is not allowed");
    if (comp == "..") return Bad(field, "'..' is not allowed");
    if (comp == ".") return Bad(field, "'.' is not allowed");
    if (comp.size() > 255) return Bad(field, "a path component is longer than 255 bytes");
    start = end + 1;
  }
  return {};
}

// Does a symlink at `link_path` (absolute, inside the root) pointing to
// `target` stay inside the root? Absolute targets are read inside the root.
bool SymlinkStaysInside(const std::string& link_path, const std::string& target) {
  if (target.empty()) return false;
  std::vector<std::string_view> stack;
  if (target.front() != '/') {
    // Start from the directory holding the link.
    std::string_view dir(link_path);
    dir = dir.substr(0, dir.rfind('/'));
    size_t s = 1;
    while (s <= dir.size() && !dir.empty()) {
      size_t e = dir.find('/', s);
      if (e == std::string_view::npos) e = dir.size();
      if (e > s) stack.push_back(dir.substr(s, e - s));
      s = e + 1;
    }
  }
  std::string_view t(target);
  size_t s = 0;
  while (s <= t.size()) {
    size_t e = t.find('/', s);
    if (e == std::string_view::npos) e = t.size();
    std::string_view comp = t.substr(s, e - s);
    if (comp == "..") {
      if (stack.empty()) return false;
      stack.pop_back();
    } else if (!comp.empty() && comp != ".") {
      stack.push_back(comp);
    }
    s = e + 1;
  }
  return true;
}

Expected<Manifest> ParseManifest(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Fail(Errc::kParse, std::string("manifest is not valid JSON: ") + e.what());
  }
  try {
    Manifest m;
    Obj top(j, "");
    if (auto k = top.Keys({"format", "name", "version", "summary", "publisher", "platforms", "architectures", "depends",
                           "conflicts", "provides", "files", "native", "scripts", "script_timeout_seconds", "services",
                           "config", "key_id", "signed_at", "expires_at"});
        !k)
      return Fail(k.error());

    if (!top.Has("format")) return Bad("format", "is required (1)");
    auto format = top.UInt("format", 0);
    if (!format) return Fail(format.error());
    if (*format != static_cast<uint64_t>(kFormatVersion))
      return Bad("format", "unsupported format " + std::to_string(*format) + " (this Parc reads format " +
                               std::to_string(kFormatVersion) + ")");
    m.format = kFormatVersion;

    auto name = top.Str("name", true);
    if (!name) return Fail(name.error());
    if (name->find('/') != std::string::npos) return Bad("name", "'/' is not allowed in a package name");
    if (!ValidName(*name))
      return Bad("name", "'" + *name + "' is not a valid package name (lower-case letters, digits, '+', '.', '-'; "
                                         "starting with a letter or digit; at most 128)");
    m.name = *name;
    auto version = top.Str("version", true);
    if (!version) return Fail(version.error());
    if (auto v = ValidateVersion(*version); !v) return Bad("version", v.error().message());
    m.version = *version;
    auto summary = top.Str("summary", false);
    if (!summary) return Fail(summary.error());
    m.summary = *summary;
    auto publisher = top.Str("publisher", false);
    if (!publisher) return Fail(publisher.error());
    m.publisher = *publisher;

    auto strings = [&](const char* key, std::vector<std::string>& out,
                       const std::function<ExpectedVoid(const std::string&, const std::string&)>& check) -> ExpectedVoid {
      auto arr = top.Array(key);
      if (!arr) return Fail(arr.error());
      for (size_t i = 0; i < (*arr)->size(); ++i) {
        std::string f = std::string(key) + "[" + std::to_string(i) + "]";
        const json& v = (**arr)[i];
        if (!v.is_string()) return Bad(f, "must be a string");
        std::string s = v.get<std::string>();
        if (auto c = CheckText(f, s); !c) return c;
        if (auto c = check(f, s); !c) return c;
        out.push_back(s);
      }
      return {};
    };
    if (auto r = strings("platforms", m.platforms,
                         [](const std::string& f, const std::string& s) -> ExpectedVoid {
                           if (s != "linux" && s != "windows") return Bad(f, "must be \"linux\" or \"windows\"");
                           return {};
                         });
        !r)
      return Fail(r.error());
    if (auto r = strings("architectures", m.architectures,
                         [](const std::string& f, const std::string& s) -> ExpectedVoid {
                           if (s.empty() || s.size() > 32) return Bad(f, "must be an architecture such as x86_64");
                           for (char c : s)
                             if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                               return Bad(f, "must be an architecture such as x86_64, aarch64 or all");
                           return {};
                         });
        !r)
      return Fail(r.error());
    for (const char* key : {"depends", "conflicts", "provides"}) {
      std::vector<std::string> raw;
      if (auto r = strings(key, raw, [](const std::string&, const std::string&) -> ExpectedVoid { return {}; }); !r)
        return Fail(r.error());
      auto& out = std::string(key) == "depends" ? m.depends : std::string(key) == "conflicts" ? m.conflicts : m.provides;
      for (size_t i = 0; i < raw.size(); ++i) {
        std::string f = std::string(key) + "[" + std::to_string(i) + "]";
        auto c = ParseConstraint(raw[i]);
        if (!c) return Bad(f, c.error().message());
        if (std::string(key) == "provides" && c->relation != Relation::kAny && c->relation != Relation::kEqual)
          return Bad(f, "a provided name can only carry '=' (an exact version)");
        out.push_back(*c);
      }
    }

    // files
    auto files = top.Array("files");
    if (!files) return Fail(files.error());
    std::map<std::string, EntryType> seen;
    m.files.reserve((*files)->size());
    for (size_t i = 0; i < (*files)->size(); ++i) {
      std::string f = "files[" + std::to_string(i) + "]";
      Obj o((**files)[i], f);
      if (auto k = o.Keys({"path", "type", "sha256", "size", "mode", "owner", "group", "target", "config"}); !k)
        return Fail(k.error());
      FileEntry e;
      auto path = o.Str("path", true);
      if (!path) return Fail(path.error());
      if (auto c = CheckTargetPath(o.Sub("path"), *path); !c) return Fail(c.error());
      e.path = *path;
      auto type = o.Str("type", true);
      if (!type) return Fail(type.error());
      if (*type == "file") e.type = EntryType::kFile;
      else if (*type == "directory") e.type = EntryType::kDirectory;
      else if (*type == "symlink") e.type = EntryType::kSymlink;
      else return Bad(o.Sub("type"), "must be \"file\", \"directory\" or \"symlink\", got \"" + *type + "\"");
      auto mode = o.Str("mode", true);
      if (!mode) return Fail(mode.error());
      auto mode_value = ParseMode(o.Sub("mode"), *mode);
      if (!mode_value) return Fail(mode_value.error());
      e.mode = *mode_value;
      auto owner = o.Str("owner", false, "root");
      if (!owner) return Fail(owner.error());
      if (!ValidAccount(*owner)) return Bad(o.Sub("owner"), "'" + *owner + "' is not a valid user name");
      e.owner = *owner;
      auto group = o.Str("group", false, "root");
      if (!group) return Fail(group.error());
      if (!ValidAccount(*group)) return Bad(o.Sub("group"), "'" + *group + "' is not a valid group name");
      e.group = *group;
      auto sha = o.Str("sha256", false);
      if (!sha) return Fail(sha.error());
      auto size = o.UInt("size", 0);
      if (!size) return Fail(size.error());
      auto target = o.Str("target", false);
      if (!target) return Fail(target.error());
      auto config = o.Bool("config", false);
      if (!config) return Fail(config.error());
      e.config = *config;
      if (e.type == EntryType::kFile) {
        if (!IsHex(*sha, 64)) return Bad(o.Sub("sha256"), "must be 64 lower-case hex digits");
        if (!target->empty()) return Bad(o.Sub("target"), "only symlinks have a target");
        e.sha256 = *sha;
        e.size = *size;
      } else {
        if (!sha->empty()) return Bad(o.Sub("sha256"), "only files have a digest");
        if (*size != 0) return Bad(o.Sub("size"), "only files have a size");
        if (e.config) return Bad(o.Sub("config"), "only files can be configuration files");
      }
      if (e.type == EntryType::kSymlink) {
        if (target->empty()) return Bad(o.Sub("target"), "a symlink needs a target");
        if (target->size() > 4096) return Bad(o.Sub("target"), "longer than 4096 bytes");
        if (!SymlinkStaysInside(e.path, *target))
          return Bad(o.Sub("target"), "'" + *target + "' leaves the target root");
        if (e.mode != 0777) return Bad(o.Sub("mode"), "a symlink's mode is always \"0777\"");
        e.target = *target;
      } else if (e.type == EntryType::kDirectory && !target->empty()) {
        return Bad(o.Sub("target"), "only symlinks have a target");
      }
      if (seen.contains(e.path)) return Bad(o.Sub("path"), "'" + e.path + "' is listed twice");
      // A declared parent must be a directory: writing "/a/b" through a
      // symlink or file "/a" would place it somewhere else.
      for (size_t slash = e.path.find('/', 1); slash != std::string::npos; slash = e.path.find('/', slash + 1)) {
        auto parent = seen.find(e.path.substr(0, slash));
        if (parent != seen.end() && parent->second != EntryType::kDirectory)
          return Bad(o.Sub("path"), "parent '" + parent->first + "' is declared as a " + TypeName(parent->second));
      }
      seen.emplace(e.path, e.type);
      m.files.push_back(std::move(e));
    }
    // Children listed before their non-directory parent.
    for (size_t i = 0; i < m.files.size(); ++i) {
      const auto& p = m.files[i].path;
      auto it = seen.upper_bound(p + "/");
      if (m.files[i].type != EntryType::kDirectory && it != seen.end() && it->first.starts_with(p + "/"))
        return Bad("files[" + std::to_string(i) + "].path",
                   "'" + p + "' is a " + TypeName(m.files[i].type) + " but '" + it->first + "' is declared inside it");
    }

    // native
    auto native = top.Array("native");
    if (!native) return Fail(native.error());
    std::set<std::string> native_names;
    for (size_t i = 0; i < (*native)->size(); ++i) {
      std::string f = "native[" + std::to_string(i) + "]";
      Obj o((**native)[i], f);
      if (auto k = o.Keys({"kind", "name", "sha256", "size", "silent_args"}); !k) return Fail(k.error());
      NativePayload n;
      auto kind = o.Str("kind", true);
      if (!kind) return Fail(kind.error());
      if (*kind == "deb") n.kind = NativeKind::kDeb;
      else if (*kind == "msi") n.kind = NativeKind::kMsi;
      else if (*kind == "exe") n.kind = NativeKind::kExe;
      else return Bad(o.Sub("kind"), "must be \"deb\", \"msi\" or \"exe\"");
      auto nm = o.Str("name", true);
      if (!nm) return Fail(nm.error());
      if (auto c = CheckFileName(o.Sub("name"), *nm); !c) return Fail(c.error());
      if (!native_names.insert(*nm).second) return Bad(o.Sub("name"), "'" + *nm + "' is listed twice");
      n.name = *nm;
      auto sha = o.Str("sha256", true);
      if (!sha) return Fail(sha.error());
      if (!IsHex(*sha, 64)) return Bad(o.Sub("sha256"), "must be 64 lower-case hex digits");
      n.sha256 = *sha;
      if (!o.Has("size")) return Bad(o.Sub("size"), "is required");
      auto size = o.UInt("size", 0);
      if (!size) return Fail(size.error());
      n.size = *size;
      auto args = o.Str("silent_args", false);
      if (!args) return Fail(args.error());
      if (n.kind == NativeKind::kDeb && !args->empty())
        return Bad(o.Sub("silent_args"), "a .deb takes no installer arguments");
      n.silent_args = *args;
      m.native.push_back(std::move(n));
    }

    // scripts
    if (top.Has("scripts")) {
      const json& s = top.Raw("scripts");
      if (!s.is_object()) return Bad("scripts", "must be an object");
      std::set<std::string> script_names;
      for (auto it = s.begin(); it != s.end(); ++it) {
        const std::string& key = it.key();
        std::string f = "scripts." + key;
        if (key != "pre_install" && key != "post_install" && key != "pre_remove" && key != "post_remove")
          return Bad(f, "unknown script (pre_install, post_install, pre_remove, post_remove)");
        Obj o(it.value(), f);
        if (auto k = o.Keys({"name", "sha256", "size"}); !k) return Fail(k.error());
        Script sc;
        auto nm = o.Str("name", true);
        if (!nm) return Fail(nm.error());
        if (auto c = CheckFileName(o.Sub("name"), *nm); !c) return Fail(c.error());
        if (!script_names.insert(*nm).second) return Bad(o.Sub("name"), "'" + *nm + "' is used twice");
        sc.name = *nm;
        auto sha = o.Str("sha256", true);
        if (!sha) return Fail(sha.error());
        if (!IsHex(*sha, 64)) return Bad(o.Sub("sha256"), "must be 64 lower-case hex digits");
        sc.sha256 = *sha;
        if (!o.Has("size")) return Bad(o.Sub("size"), "is required");
        auto size = o.UInt("size", 0);
        if (!size) return Fail(size.error());
        sc.size = *size;
        m.scripts.emplace(key, std::move(sc));
      }
    }
    auto timeout = top.UInt("script_timeout_seconds", 300, 86400);
    if (!timeout) return Fail(timeout.error());
    if (*timeout == 0) return Bad("script_timeout_seconds", "must be at least 1");
    m.script_timeout_seconds = static_cast<uint32_t>(*timeout);

    auto services = top.Array("services");
    if (!services) return Fail(services.error());
    for (size_t i = 0; i < (*services)->size(); ++i) {
      std::string f = "services[" + std::to_string(i) + "]";
      Obj o((**services)[i], f);
      if (auto k = o.Keys({"unit", "enable", "restart"}); !k) return Fail(k.error());
      ServiceAction a;
      auto unit = o.Str("unit", true);
      if (!unit) return Fail(unit.error());
      if (unit->empty() || unit->size() > 255 || unit->front() == '-') return Bad(o.Sub("unit"), "bad unit name");
      for (char c : *unit)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '@' || c == '.' ||
              c == '_' || c == ':' || c == '-' || c == '\\'))
          return Bad(o.Sub("unit"), "'" + *unit + "' is not a valid unit name");
      a.unit = *unit;
      auto en = o.Bool("enable", false);
      if (!en) return Fail(en.error());
      auto re = o.Bool("restart", false);
      if (!re) return Fail(re.error());
      a.enable = *en;
      a.restart = *re;
      m.services.push_back(std::move(a));
    }

    auto config = top.Array("config");
    if (!config) return Fail(config.error());
    for (size_t i = 0; i < (*config)->size(); ++i) {
      std::string f = "config[" + std::to_string(i) + "]";
      Obj o((**config)[i], f);
      if (auto k = o.Keys({"file", "separator", "set"}); !k) return Fail(k.error());
      ConfigAction a;
      auto file = o.Str("file", true);
      if (!file) return Fail(file.error());
      if (auto c = CheckTargetPath(o.Sub("file"), *file); !c) return Fail(c.error());
      a.file = *file;
      auto sep = o.Str("separator", false, "=");
      if (!sep) return Fail(sep.error());
      if (sep->empty()) return Bad(o.Sub("separator"), "must not be empty");
      a.separator = *sep;
      auto set = o.Array("set");
      if (!set) return Fail(set.error());
      for (size_t k = 0; k < (*set)->size(); ++k) {
        Obj kv((**set)[k], o.Sub("set") + "[" + std::to_string(k) + "]");
        if (auto ks = kv.Keys({"key", "value"}); !ks) return Fail(ks.error());
        auto key = kv.Str("key", true);
        if (!key) return Fail(key.error());
        if (key->empty()) return Bad(kv.Sub("key"), "must not be empty");
        auto value = kv.Str("value", true);
        if (!value) return Fail(value.error());
        a.set.emplace_back(*key, *value);
      }
      m.config.push_back(std::move(a));
    }

    auto key_id = top.Str("key_id", false);
    if (!key_id) return Fail(key_id.error());
    if (!key_id->empty() && !IsHex(*key_id, 16)) return Bad("key_id", "must be 16 lower-case hex digits");
    m.key_id = *key_id;
    auto signed_at = top.UInt("signed_at", 0);
    if (!signed_at) return Fail(signed_at.error());
    m.signed_at = static_cast<int64_t>(*signed_at);
    auto expires_at = top.UInt("expires_at", 0);
    if (!expires_at) return Fail(expires_at.error());
    m.expires_at = static_cast<int64_t>(*expires_at);
    return m;
  } catch (const json::exception& e) {
    return Fail(Errc::kParse, std::string("manifest: ") + e.what());
  }
}

std::string CanonicalJson(const Manifest& m) {
  // Written directly (parc/common/canonical_json.h): a manifest of tens of
  // thousands of files is re-serialized on every verification.
  auto strings = [](const std::vector<std::string>& v) {
    cjson::Array a;
    for (const auto& s : v) a.Str(s);
    return a.Done();
  };
  auto constraints = [](const std::vector<Constraint>& v) {
    cjson::Array a;
    for (const auto& c : v) a.Str(c.String());
    return a.Done();
  };
  cjson::Array files;
  for (const auto& f : m.files) {
    cjson::Object o;
    o.Str("path", f.path)
        .Str("type", TypeName(f.type))
        .Str("sha256", f.sha256)
        .UInt("size", f.size)
        .Str("mode", ModeString(f.mode))
        .Str("owner", f.owner)
        .Str("group", f.group)
        .Str("target", f.target)
        .Bool("config", f.config);
    files.Object(o);
  }
  cjson::Array native;
  for (const auto& n : m.native) {
    cjson::Object o;
    o.Str("kind", KindName(n.kind)).Str("name", n.name).Str("sha256", n.sha256).UInt("size", n.size).Str("silent_args", n.silent_args);
    native.Object(o);
  }
  cjson::Object scripts;  // keyed by the map's own keys, which outlive it
  for (const auto& [key, s] : m.scripts) {
    cjson::Object o;
    o.Str("name", s.name).Str("sha256", s.sha256).UInt("size", s.size);
    scripts.Raw(key, o.Done());
  }
  cjson::Array services;
  for (const auto& s : m.services) {
    cjson::Object o;
    o.Str("unit", s.unit).Bool("enable", s.enable).Bool("restart", s.restart);
    services.Object(o);
  }
  cjson::Array config;
  for (const auto& c : m.config) {
    cjson::Array set;
    for (const auto& [k, v] : c.set) {
      cjson::Object kv;
      kv.Str("key", k).Str("value", v);
      set.Object(kv);
    }
    cjson::Object o;
    o.Str("file", c.file).Str("separator", c.separator).Raw("set", set.Done());
    config.Object(o);
  }
  cjson::Object j;
  j.Int("format", m.format)
      .Str("name", m.name)
      .Str("version", m.version)
      .Str("summary", m.summary)
      .Str("publisher", m.publisher)
      .Raw("platforms", strings(m.platforms))
      .Raw("architectures", strings(m.architectures))
      .Raw("depends", constraints(m.depends))
      .Raw("conflicts", constraints(m.conflicts))
      .Raw("provides", constraints(m.provides))
      .Raw("files", files.Done())
      .Raw("native", native.Done())
      .Raw("scripts", scripts.Done())
      .UInt("script_timeout_seconds", m.script_timeout_seconds)
      .Raw("services", services.Done())
      .Raw("config", config.Done())
      .Str("key_id", m.key_id)
      .Int("signed_at", m.signed_at)
      .Int("expires_at", m.expires_at);
  // Strings that are not UTF-8 cannot come from ParseManifest; for a Manifest
  // built by hand they are replaced (U+FFFD) and the result then fails verification.
  return j.Done();
}

std::string FileMember(const FileEntry& f) { return "files" + f.path; }
std::string NativeMember(const NativePayload& n) { return "native/" + n.name; }
std::string ScriptMember(const Script& s) { return "scripts/" + s.name; }

}  // namespace parc::pkg
