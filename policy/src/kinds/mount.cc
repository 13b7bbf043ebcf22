// mount: the /etc/fstab entry of a mount point carries options (nodev,
// nosuid, noexec, hidepid=2, ...). The remediation rewrites only that entry's
// options field; the rest of the file stays byte for byte.
#include <map>
#include <optional>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

constexpr const char* kFstab = "/etc/fstab";

// Flags where the later of a pair wins (mount(8) reads options left to right).
const std::map<std::string, std::string>& Opposites() {
  static const std::map<std::string, std::string> m = [] {
    std::map<std::string, std::string> x;
    for (auto [a, b] : {std::pair{"nodev", "dev"}, {"nosuid", "suid"}, {"noexec", "exec"}, {"ro", "rw"},
                        {"noauto", "auto"}, {"sync", "async"}, {"noatime", "atime"}, {"nodiratime", "diratime"},
                        {"norelatime", "relatime"}, {"nostrictatime", "strictatime"}, {"nouser", "user"}}) {
      x[a] = b;
      x[b] = a;
    }
    return x;
  }();
  return m;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string JoinComma(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string KeyOf(const std::string& opt) { return opt.substr(0, opt.find('=')); }

// Whether the options, read left to right as mount(8) does, end up with `want`.
bool Carries(const std::vector<std::string>& opts, const std::string& want) {
  if (want.find('=') != std::string::npos) {
    std::optional<std::string> last;
    for (const auto& o : opts)
      if (KeyOf(o) == KeyOf(want)) last = o;
    return last && *last == want;
  }
  auto opp = Opposites().find(want);
  if (opp == Opposites().end()) return std::find(opts.begin(), opts.end(), want) != opts.end();
  // "defaults" means rw,suid,dev,exec,auto,nouser,async; "user", "users",
  // "owner" and "group" imply noexec,nosuid,nodev.
  static const std::vector<std::string> kDefaults{"rw", "suid", "dev", "exec", "auto", "nouser", "async"};
  static const std::vector<std::string> kUserImplies{"noexec", "nosuid", "nodev"};
  bool on = false;
  for (const auto& o : opts) {
    if (o == want) on = true;
    else if (o == opp->second) on = false;
    else if (o == "defaults") on = std::find(kDefaults.begin(), kDefaults.end(), want) != kDefaults.end();
    else if ((o == "user" || o == "users" || o == "owner" || o == "group") &&
             std::find(kUserImplies.begin(), kUserImplies.end(), want) != kUserImplies.end())
      on = true;
  }
  return on;
}

// fstab escapes blanks and backslashes in paths as \040, \011, \012, \134.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    bool octal = s[i] == '\\' && i + 4 <= s.size();
    for (size_t k = 1; octal && k <= 3; ++k) octal = s[i + k] >= '0' && s[i + k] <= '7';
    if (octal) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string NormalizeMountPoint(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

struct Entry {
  int line = 0;                     // 1-based
  std::string text;                 // the whole line
  size_t fields = 0;
  size_t opt_begin = 0, opt_end = 0;  // options field as offsets in the file (when fields >= 4)
  size_t line_end = 0;              // offset just after the last field of the line
  std::vector<std::string> options;
};

std::vector<Entry> EntriesFor(const std::string& text, const std::string& mount_point) {
  std::vector<Entry> out;
  size_t pos = 0;
  int number = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl;
    ++number;
    struct Field {
      size_t b, e;
    };
    std::vector<Field> fields;
    size_t i = pos;
    while (i < end) {
      while (i < end && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
      if (i >= end) break;
      if (fields.empty() && text[i] == '#') break;  // a comment line
      size_t b = i;
      while (i < end && text[i] != ' ' && text[i] != '\t' && text[i] != '\r') ++i;
      fields.push_back({b, i});
    }
    if (fields.size() >= 2 &&
        NormalizeMountPoint(Unescape(text.substr(fields[1].b, fields[1].e - fields[1].b))) == mount_point) {
      Entry e;
      e.line = number;
      e.text = text.substr(pos, end - pos);
      e.fields = fields.size();
      e.line_end = fields.back().e;
      if (fields.size() >= 4) {
        e.opt_begin = fields[3].b;
        e.opt_end = fields[3].e;
        e.options = SplitComma(text.substr(e.opt_begin, e.opt_end - e.opt_begin));
      }
      out.push_back(std::move(e));
    }
    pos = end + 1;
  }
  return out;
}

class Mount final : public Check {
 public:
  Mount(std::string mount_point, std::vector<std::string> options, bool required)
      : mount_point_(std::move(mount_point)), options_(std::move(options)), required_(required) {}

  Finding Evaluate(const Context& ctx) const override {
    std::string expected = mount_point_ + " mounted with " + JoinComma(options_) + " (" + kFstab + ")";
    auto text = ctx.Read(kFstab);
    if (!text) {
      if (!text.error().Is(Errc::kNotFound)) return ErrorFinding(text.error().message());
      if (!required_) return NotApplicable(std::string(kFstab) + " does not exist");
      return FailWith(expected, std::string(kFstab) + " does not exist");
    }
    auto entries = EntriesFor(*text, mount_point_);
    if (entries.empty()) {
      std::string why = "no entry for " + mount_point_ + " in " + kFstab;
      if (!required_) return NotApplicable(why + " (not a separate mount)");
      return FailWith(expected, why);
    }
    std::string found;
    bool ok = true;
    for (const auto& e : entries) {
      auto missing = Missing(e);
      std::string where = std::string(kFstab) + ":" + std::to_string(e.line) + ": " + Trim(e.text);
      if (!missing.empty()) {
        ok = false;
        where += " (missing " + JoinComma(missing) + ")";
      }
      found += (found.empty() ? "" : "; ") + where;
    }
    return ok ? Pass(expected, found) : FailWith(expected, found);
  }

  std::string CannotRemediate(const Context& ctx) const override {
    auto text = ctx.Read(kFstab);
    if (!text || EntriesFor(*text, mount_point_).empty())
      return "add an entry for " + mount_point_ + " to " + kFstab + " (its own partition or a tmpfs): Parc does not create mounts";
    for (const auto& e : EntriesFor(*text, mount_point_))
      if (e.fields < 3)
        return std::string(kFstab) + ":" + std::to_string(e.line) + " has no filesystem type field: fix the entry by hand";
    return "";
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    auto text = ctx.Read(kFstab);
    if (!text) return Fail(text.error());
    if (auto why = CannotRemediate(ctx); !why.empty()) return Fail(Errc::kFailedPrecondition, why);
    std::string out = *text;
    auto entries = EntriesFor(*text, mount_point_);
    // Last entry first: earlier offsets stay valid.
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      if (Missing(*it).empty()) continue;
      if (it->fields >= 4) {
        out.replace(it->opt_begin, it->opt_end - it->opt_begin, JoinComma(Fixed(it->options)));
      } else {
        out.insert(it->line_end, "\t" + JoinComma(Fixed({"defaults"})));
      }
    }
    if (out == *text) return {};
    if (auto r = change.WriteFile(ctx, kFstab, out); !r) return r;
    change.Note("the new options of " + mount_point_ + " take effect when it is next mounted (mount -o remount " +
                mount_point_ + ", or a reboot)");
    return {};
  }

 private:
  std::vector<std::string> Missing(const Entry& e) const {
    std::vector<std::string> out;
    std::vector<std::string> opts = e.fields >= 4 ? e.options : std::vector<std::string>{"defaults"};
    for (const auto& o : options_)
      if (!Carries(opts, o)) out.push_back(o);
    return out;
  }

  // The options with ours added: a contradicting flag (dev for nodev) or
  // another value of the same key is dropped, then what is still missing is
  // appended (after "defaults", which it overrides).
  std::vector<std::string> Fixed(std::vector<std::string> opts) const {
    for (const auto& want : options_) {
      if (Carries(opts, want)) continue;
      auto opp = Opposites().find(want);
      std::erase_if(opts, [&](const std::string& o) {
        if (want.find('=') != std::string::npos) return KeyOf(o) == KeyOf(want);
        return opp != Opposites().end() && o == opp->second;
      });
      if (!Carries(opts, want)) opts.push_back(want);
    }
    return opts;
  }

  std::string mount_point_;
  std::vector<std::string> options_;
  bool required_;
};

}  // namespace

Expected<CheckPtr> MakeMount(Fields& f) {
  auto mp = f.Path("mount_point");
  if (!mp) return Fail(mp.error());
  auto options = f.Strings("options", true);
  if (!options) return Fail(options.error());
  for (const auto& o : *options)
    if (o.empty() || o.find_first_of(", \t\n#") != std::string::npos || o.front() == '=')
      return Fail(f.Bad("options", "'" + o + "' is not a mount option (one option per string, such as \"nodev\")"));
  auto required = f.BoolOr("required", false);
  if (!required) return Fail(required.error());
  return std::make_shared<Mount>(NormalizeMountPoint(*mp), *options, *required);
}

}  // namespace parc::policy::kinds
