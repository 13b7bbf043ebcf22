// directive: one setting of a configuration file family (sshd_config and its
// Includes, login.defs, pwquality.conf/faillock.conf, sudoers and its include
// directories), judged with the precedence of the program that reads it.
#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

// sshd refuses deeper nesting (SERVCONF_MAX_DEPTH); the same bound stops
// include loops in sudoers.
constexpr int kMaxIncludeDepth = 16;
constexpr const char* kSshdDropin = "/etc/ssh/sshd_config.d/00-parc-hardening.conf";
constexpr const char* kSshDir = "/etc/ssh";
constexpr const char* kSudoersDir = "/etc/sudoers.d";
constexpr const char* kSudoersDropin = "/etc/sudoers.d/parc-hardening";
constexpr const char* kHeader = "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.";
constexpr const char* kCommentPrefix = "# parc-agent policy apply: ";

enum class Syntax { kSshd, kSpace, kEquals, kSudoers };
enum class Match { kExact, kMin, kMax, kContains };

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// sshd's convtime(): "90", "1m30s", "2h" -> seconds.
std::optional<int64_t> ParseSshdTime(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i) return std::nullopt;
    auto n = ParseInt(s.substr(i, j - i));
    if (!n) return std::nullopt;
    int64_t mult = 1;
    if (j < s.size()) {
      switch (std::tolower(static_cast<unsigned char>(s[j]))) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 604800; break;
        default: return std::nullopt;
      }
      ++j;
    }
    total += *n * mult;
    i = j;
  }
  return total;
}

std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string_view::npos) j = s.size();
    std::string item = Trim(s.substr(i, j - i));
    if (!item.empty()) out.push_back(item);
    i = j + 1;
  }
  return out;
}

// One line of the family setting the key, in the order the program reads them.
struct Setting {
  std::string file;
  int line = 0;             // 1-based, first physical line
  int physical = 1;         // physical lines (sudoers continuations)
  std::string value;        // as the program sees it, blanks collapsed
  bool negated = false;     // sudoers "!key"
  std::string op = "=";     // sudoers "+=", "-="
  bool global = true;       // sshd: outside any Match block
  // Where the value sits in the raw line (space/equals), so that a rewrite
  // keeps the key, separator, quotes and comment as they were.
  size_t value_begin = 0, value_end = 0;
  // sudoers: the raw option texts of the whole Defaults line and which is ours.
  std::vector<std::string> options;
  size_t option_index = 0;
  std::string Where() const { return file + ":" + std::to_string(line); }
};

struct Scan {
  std::vector<Setting> settings;  // of the key, in reading order
  std::string error;              // the family could not be read
  // sshd: the main file has a global Include covering kSshdDropin before
  // any global setting of the key.
  bool dropin_first = false;
  bool dropin_decided = false;
  // sudoers: directories read through @includedir (in-system, resolved).
  std::vector<std::string> include_dirs;
};

struct Spec {
  std::string file, key, value, dropins;
  Syntax syntax = Syntax::kSpace;
  Match match = Match::kExact;
  bool absent = false;
  int64_t number = 0;  // min/max
};

// ---- sshd -------------------------------------------------------------------

struct SshdLine {
  std::string keyword;  // lower case
  std::vector<std::string> args;
};

// One sshd_config line as servconf.c splits it (strdelim for the keyword,
// argv_split with comments for the arguments); nullopt for comments and
// blank lines; error for unbalanced quotes.
Expected<std::optional<SshdLine>> ParseSshdLine(std::string_view raw) {
  std::string_view s = raw;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n' || s.back() == '\f'))
    s.remove_suffix(1);
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
  size_t k = i;
  while (k < s.size() && s[k] != ' ' && s[k] != '\t' && s[k] != '=') ++k;
  std::string keyword(s.substr(i, k - i));
  if (keyword.empty() || keyword[0] == '#') return std::optional<SshdLine>{};
  i = k;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  if (i < s.size() && s[i] == '=') ++i;
  SshdLine out{Lower(keyword), {}};
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == '\t') {
      ++i;
      continue;
    }
    if (s[i] == '#') break;
    std::string arg;
    char quote = 0;
    for (; i < s.size(); ++i) {
      char c = s[i];
      if (c == '\\' && i + 1 < s.size() &&
          (s[i + 1] == '\'' || s[i + 1] == '"' || s[i + 1] == '\\' || (quote == 0 && s[i + 1] == ' '))) {
        arg += s[++i];
      } else if (quote == 0 && (c == ' ' || c == '\t')) {
        break;
      } else if (quote == 0 && (c == '"' || c == '\'')) {
        quote = c;
      } else if (quote != 0 && c == quote) {
        quote = 0;
      } else {
        arg += c;
      }
    }
    if (quote != 0) return Fail(Errc::kParse, "unbalanced quotes");
    out.args.push_back(std::move(arg));
  }
  return std::optional<SshdLine>{std::move(out)};
}

std::string Joined(const std::vector<std::string>& args) {
  std::string v;
  for (const auto& a : args) v += (v.empty() ? "" : " ") + a;
  return v;
}

void ScanSshdFile(const Context& ctx, const Spec& spec, const std::string& file, int depth, bool active, bool main,
                  Scan& scan) {
  if (depth > kMaxIncludeDepth) {
    scan.error = "Include nesting deeper than " + std::to_string(kMaxIncludeDepth) + " at " + file + " (an include loop?)";
    return;
  }
  auto text = ctx.Read(file);
  if (!text) {
    scan.error = "cannot read " + file + ": " + text.error().message();
    return;
  }
  const std::string key = Lower(spec.key);
  // Files included from inside a Match block are parsed with
  // SSHCFG_NEVERMATCH: nothing in them is global, not even after "Match all".
  const bool never = !active;
  auto lines = Lines(*text);
  for (size_t n = 0; n < lines.size() && scan.error.empty(); ++n) {
    auto parsed = ParseSshdLine(lines[n]);
    if (!parsed) {
      scan.error = file + ":" + std::to_string(n + 1) + ": " + parsed.error().message() + " (sshd refuses this file)";
      return;
    }
    if (!*parsed) continue;
    const SshdLine& l = **parsed;
    if (l.keyword == "match") {
      active = !never && l.args.size() == 1 && Lower(l.args[0]) == "all";
      continue;
    }
    if (l.keyword == "include") {
      if (l.args.empty()) {
        scan.error = file + ":" + std::to_string(n + 1) + ": Include without a file name (sshd refuses this file)";
        return;
      }
      for (const auto& arg : l.args) {
        if (arg.empty() || arg[0] == '~') continue;  // sshd does not expand '~': no match
        std::string pattern = arg[0] == '/' ? arg : std::string(kSshDir) + "/" + arg;
        if (main && active && !scan.dropin_decided && ::fnmatch(pattern.c_str(), kSshdDropin, FNM_PATHNAME | FNM_PERIOD) == 0) {
          scan.dropin_decided = true;
          scan.dropin_first = std::none_of(scan.settings.begin(), scan.settings.end(), [](const Setting& s) { return s.global; });
        }
        auto files = ctx.Glob(pattern);
        if (!files) {
          scan.error = file + ":" + std::to_string(n + 1) + ": Include " + arg + ": " + files.error().message();
          return;
        }
        // Each included file starts from, and cannot change, the includer's Match state.
        for (const auto& f : *files) {
          ScanSshdFile(ctx, spec, f, depth + 1, active, false, scan);
          if (!scan.error.empty()) return;
        }
      }
      continue;
    }
    if (l.keyword != key) continue;
    if (l.args.empty()) {
      scan.error = file + ":" + std::to_string(n + 1) + ": " + spec.key + " has no value (sshd refuses this file)";
      return;
    }
    Setting s;
    s.file = file;
    s.line = static_cast<int>(n + 1);
    s.value = CollapseSpaces(Joined(l.args));
    s.global = active;
    scan.settings.push_back(std::move(s));
  }
}

// ---- login.defs (space) and pwquality/faillock (equals) -----------------------

// getdef.c: NAME, blanks, then the value up to a double quote (leading blanks
// and quotes skipped); a line with one field is ignored.
std::optional<Setting> ParseSpaceLine(std::string_view raw, const std::string& key) {
  size_t end = raw.size();
  while (end > 0 && std::isspace(static_cast<unsigned char>(raw[end - 1]))) --end;
  std::string_view s = raw.substr(0, end);
  size_t i = s.find_first_not_of(" \t");
  if (i == std::string_view::npos || s[i] == '#') return std::nullopt;
  size_t k = s.find_first_of(" \t", i);
  if (k == std::string_view::npos) return std::nullopt;
  if (s.substr(i, k - i) != key) return std::nullopt;
  size_t v = s.find_first_not_of(" \"\t", k);
  if (v == std::string_view::npos) v = s.size();
  size_t ve = s.find('"', v);
  if (ve == std::string_view::npos) ve = s.size();
  Setting out;
  out.value = CollapseSpaces(s.substr(v, ve - v));
  out.value_begin = v;
  out.value_end = ve;
  return out;
}

// libpwquality / pam_faillock: '#' starts a comment anywhere; the name ends
// at a blank or '='; one '=' with blanks around it separates the value.
std::optional<Setting> ParseEqualsLine(std::string_view raw, const std::string& key) {
  std::string_view s = raw.substr(0, std::min(raw.find('#'), raw.size()));
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (i == s.size()) return std::nullopt;
  size_t k = i;
  while (k < s.size() && !std::isspace(static_cast<unsigned char>(s[k])) && s[k] != '=') ++k;
  if (s.substr(i, k - i) != key) return std::nullopt;
  bool eq = false;
  size_t v = k;
  while (v < s.size() && (std::isspace(static_cast<unsigned char>(s[v])) || (s[v] == '=' && !eq))) {
    if (s[v] == '=') eq = true;
    ++v;
  }
  Setting out;
  out.value = CollapseSpaces(s.substr(v));
  out.value_begin = v;
  out.value_end = s.size();
  return out;
}

void ScanLineFile(const Context& ctx, const Spec& spec, const std::string& file, Scan& scan) {
  auto text = ctx.Read(file);
  if (!text) {
    scan.error = "cannot read " + file + ": " + text.error().message();
    return;
  }
  auto lines = Lines(*text);
  for (size_t n = 0; n < lines.size(); ++n) {
    auto s = spec.syntax == Syntax::kSpace ? ParseSpaceLine(lines[n], spec.key) : ParseEqualsLine(lines[n], spec.key);
    if (!s) continue;
    s->file = file;
    s->line = static_cast<int>(n + 1);
    scan.settings.push_back(std::move(*s));
  }
}

// ---- sudoers ------------------------------------------------------------------

struct LogicalLine {
  std::string text;
  int first = 0;     // 0-based physical index
  int physical = 1;
};

// Joins lines ending in an unescaped backslash, as the sudoers lexer does.
std::vector<LogicalLine> SudoersLines(const std::string& text) {
  std::vector<LogicalLine> out;
  auto lines = Lines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    LogicalLine l{"", static_cast<int>(n), 0};
    for (;;) {
      std::string part = lines[n];
      if (!part.empty() && part.back() == '\r') part.pop_back();
      size_t bs = 0;
      while (bs < part.size() && part[part.size() - 1 - bs] == '\\') ++bs;
      ++l.physical;
      if (bs % 2 == 1 && n + 1 < lines.size()) {
        l.text += part.substr(0, part.size() - 1);
        ++n;
        continue;
      }
      l.text += part;
      break;
    }
    out.push_back(std::move(l));
  }
  return out;
}

// Splits the option list of a Defaults line at commas outside quotes, and
// drops a trailing comment (an unquoted '#' at a word start, not a uid "#0").
std::vector<std::string> SudoersOptions(std::string_view list) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < list.size(); ++i) {
    char c = list[i];
    if (c == '\\' && i + 1 < list.size()) {
      cur += c;
      cur += list[++i];
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(list[i - 1]))) &&
        !(i + 1 < list.size() && std::isdigit(static_cast<unsigned char>(list[i + 1]))))
      break;
    if (!quoted && c == ',') {
      out.push_back(Trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!Trim(cur).empty() || !out.empty()) out.push_back(Trim(cur));
  return out;
}

struct SudoOption {
  std::string name, op, value;  // op "" for a flag
  bool negated = false;
};

SudoOption ParseSudoOption(std::string_view o) {
  SudoOption out;
  std::string s = Trim(o);
  while (!s.empty() && s[0] == '!') {
    out.negated = !out.negated;
    s = Trim(s.substr(1));
  }
  size_t k = 0;
  while (k < s.size() && (std::isalnum(static_cast<unsigned char>(s[k])) || s[k] == '_')) ++k;
  out.name = s.substr(0, k);
  std::string rest = Trim(s.substr(k));
  if (rest.starts_with("+=") || rest.starts_with("-=")) {
    out.op = rest.substr(0, 2);
    rest = Trim(rest.substr(2));
  } else if (rest.starts_with("=")) {
    out.op = "=";
    rest = Trim(rest.substr(1));
  }
  if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') {
    std::string v;
    for (size_t i = 1; i + 1 < rest.size(); ++i) {
      if (rest[i] == '\\' && i + 2 < rest.size()) ++i;
      v += rest[i];
    }
    rest = v;
  }
  out.value = CollapseSpaces(rest);
  return out;
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "@include x" / "#include x": the path, relative to the including file's directory.
std::string SudoersIncludePath(const std::string& arg, const std::string& from) {
  std::string p = Trim(arg);
  if (p.size() >= 2 && p.front() == '"' && p.back() == '"') p = p.substr(1, p.size() - 2);
  if (!p.empty() && p[0] != '/') p = DirName(from) + "/" + p;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

void ScanSudoersFile(const Context& ctx, const Spec& spec, const std::string& file, int depth, Scan& scan);

void ScanSudoersDir(const Context& ctx, const Spec& spec, const std::string& dir, int depth, Scan& scan) {
  auto host = ctx.Resolve(dir);
  if (!host) {
    scan.error = "@includedir " + dir + ": " + host.error().message();
    return;
  }
  scan.include_dirs.push_back(dir);
  auto entries = ctx.Glob((dir == "/" ? "" : dir) + "/*");
  if (!entries) {
    scan.error = "@includedir " + dir + ": " + entries.error().message();
    return;
  }
  for (const auto& f : *entries) {
    std::string name = f.substr(f.rfind('/') + 1);
    // sudo skips names ending in '~' or holding a '.' (editor and package manager leftovers).
    if (name.find('.') != std::string::npos || name.ends_with("~")) continue;
    auto h = ctx.Resolve(f);
    std::error_code ec;
    if (h && !fs::is_regular_file(*h, ec)) continue;
    ScanSudoersFile(ctx, spec, f, depth + 1, scan);
    if (!scan.error.empty()) return;
  }
}

void ScanSudoersFile(const Context& ctx, const Spec& spec, const std::string& file, int depth, Scan& scan) {
  if (depth > kMaxIncludeDepth) {
    scan.error = "sudoers include nesting deeper than " + std::to_string(kMaxIncludeDepth) + " at " + file + " (an include loop?)";
    return;
  }
  auto text = ctx.Read(file);
  if (!text) {
    scan.error = "cannot read " + file + ": " + text.error().message();
    return;
  }
  for (const auto& l : SudoersLines(*text)) {
    std::string t = Trim(l.text);
    auto directive = [&](const char* word) {
      std::string w = word;
      return (t.starts_with("@" + w) || t.starts_with("#" + w)) && t.size() > w.size() + 1 &&
             std::isspace(static_cast<unsigned char>(t[w.size() + 1]));
    };
    if (directive("includedir")) {
      ScanSudoersDir(ctx, spec, SudoersIncludePath(t.substr(11), file), depth, scan);
    } else if (directive("include")) {
      ScanSudoersFile(ctx, spec, SudoersIncludePath(t.substr(8), file), depth + 1, scan);
    } else if (t.starts_with("Defaults") && t.size() > 8 && (t[8] == ' ' || t[8] == '\t')) {
      // Defaults:user, Defaults@host, Defaults>runas, Defaults!cmnd are scoped, not global.
      auto options = SudoersOptions(t.substr(8));
      for (size_t i = 0; i < options.size(); ++i) {
        auto o = ParseSudoOption(options[i]);
        if (o.name != spec.key) continue;
        Setting s;
        s.file = file;
        s.line = l.first + 1;
        s.physical = l.physical;
        s.value = o.value;
        s.negated = o.negated;
        s.op = o.op.empty() ? "=" : o.op;
        s.options = options;
        s.option_index = i;
        scan.settings.push_back(std::move(s));
      }
    }
    if (!scan.error.empty()) return;
  }
}

// ---- the check ----------------------------------------------------------------

class Directive final : public Check {
 public:
  explicit Directive(Spec spec) : s_(std::move(spec)) {}

  Finding Evaluate(const Context& ctx) const override {
    // A main file linked above the root is refused, not taken for absent.
    if (auto host = ctx.Resolve(s_.file); !host) return ErrorFinding(s_.file + ": " + host.error().message());
    if (!ctx.Exists(s_.file)) return NotApplicable(s_.file + " does not exist");
    Scan scan = Read(ctx);
    if (!scan.error.empty()) return ErrorFinding(scan.error);
    const Setting* eff = Effective(scan);
    std::string expected = ExpectedText();
    if (s_.syntax == Syntax::kSudoers && eff && eff->op != "=")
      return ErrorFinding("Defaults " + s_.key + eff->op + " at " + eff->Where() + " is a list operation, which this kind does not evaluate");
    if (s_.absent) {
      if (!eff || eff->negated) return Pass(expected, eff ? "negated at " + eff->Where() : NotSetText(scan));
      return FailWith(expected, Describe(*eff));
    }
    if (!eff) return FailWith(expected, NotSetText(scan));
    return Satisfies(*eff) ? Pass(expected, Describe(*eff)) : FailWith(expected, Describe(*eff));
  }

  std::string CannotRemediate(const Context& ctx) const override {
    if (s_.syntax != Syntax::kSudoers) return "";
    Scan scan = Read(ctx);
    if (!scan.error.empty()) return "";  // reported as error, never remediated
    for (const auto& d : scan.include_dirs)
      if (d == kSudoersDir) return "";
    return s_.file + " has no @includedir " + kSudoersDir +
           ": Parc does not edit the main sudoers file; add the Defaults line there with visudo";
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    Scan scan = Read(ctx);
    if (!scan.error.empty()) return Fail(Errc::kFailedPrecondition, scan.error);
    switch (s_.syntax) {
      case Syntax::kSshd: {
        auto r = RemediateSshd(ctx, change, scan);
        if (r) change.Note(s_.key + ": sshd reads its configuration when it starts or reloads ('systemctl reload ssh')");
        return r;
      }
      case Syntax::kSpace:
      case Syntax::kEquals: return RemediateLines(ctx, change, scan);
      case Syntax::kSudoers: return RemediateSudoers(ctx, change, scan);
    }
    return {};
  }

 private:
  Scan Read(const Context& ctx) const {
    Scan scan;
    switch (s_.syntax) {
      case Syntax::kSshd: ScanSshdFile(ctx, s_, s_.file, 0, true, true, scan); break;
      case Syntax::kSpace: ScanLineFile(ctx, s_, s_.file, scan); break;
      case Syntax::kEquals: {
        // libpwquality reads <file>.d/*.conf first and the main file last.
        if (!s_.dropins.empty()) {
          auto files = ctx.Glob(s_.dropins);
          if (!files) {
            scan.error = "drop-ins " + s_.dropins + ": " + files.error().message();
            return scan;
          }
          for (const auto& f : *files) {
            ScanLineFile(ctx, s_, f, scan);
            if (!scan.error.empty()) return scan;
          }
        }
        ScanLineFile(ctx, s_, s_.file, scan);
        break;
      }
      case Syntax::kSudoers: ScanSudoersFile(ctx, s_, s_.file, 0, scan); break;
    }
    return scan;
  }

  // sshd: the first global value; the others: the last value read.
  const Setting* Effective(const Scan& scan) const {
    if (s_.syntax == Syntax::kSshd) {
      for (const auto& s : scan.settings)
        if (s.global) return &s;
      return nullptr;
    }
    return scan.settings.empty() ? nullptr : &scan.settings.back();
  }

  bool Satisfies(const Setting& s) const {
    if (s_.absent) return false;
    if (s_.syntax == Syntax::kSudoers && (s.negated || s.op != "=")) return false;
    switch (s_.match) {
      case Match::kExact:
        if (s_.syntax == Syntax::kSshd) return Lower(s.value) == Lower(s_.value);
        // A bare flag is set by its name whatever follows (pam_faillock, libpwquality).
        if (s_.value.empty() && s_.syntax == Syntax::kEquals) return true;
        return s.value == s_.value;
      case Match::kMin:
      case Match::kMax: {
        auto n = s_.syntax == Syntax::kSshd ? ParseSshdTime(s.value) : ParseInt(s.value);
        if (!n) return false;
        return s_.match == Match::kMin ? *n >= s_.number : *n <= s_.number;
      }
      case Match::kContains: {
        auto items = SplitList(s.value);
        return std::find(items.begin(), items.end(), s_.value) != items.end();
      }
    }
    return false;
  }

  // The value a remediation writes where `current` was found.
  std::string Desired(const Setting* current) const {
    if (s_.match == Match::kContains && current && !current->value.empty() && !current->negated)
      return current->value + "," + s_.value;
    return s_.value;
  }

  std::string ExpectedText() const {
    std::string base;
    switch (s_.syntax) {
      case Syntax::kSshd:
      case Syntax::kSpace: base = s_.key + " " + s_.value; break;
      case Syntax::kEquals: base = s_.value.empty() ? s_.key + " (flag)" : s_.key + " = " + s_.value; break;
      case Syntax::kSudoers: base = "Defaults " + s_.key + (s_.value.empty() ? "" : "=" + s_.value); break;
    }
    std::string name = s_.syntax == Syntax::kSudoers ? "Defaults " + s_.key : s_.key;
    if (s_.absent) return name + " not set" + (s_.syntax == Syntax::kSudoers ? " (or negated)" : "");
    switch (s_.match) {
      case Match::kExact: return base;
      case Match::kMin: return base + " or more";
      case Match::kMax: return base + " or less";
      case Match::kContains: return name + " includes " + s_.value;
    }
    return base;
  }

  std::string Describe(const Setting& s) const {
    std::string v;
    if (s_.syntax == Syntax::kSudoers) v = "Defaults " + std::string(s.negated ? "!" : "") + s_.key + (s.value.empty() && s.op == "=" ? "" : s.op + s.value);
    else if (s_.syntax == Syntax::kEquals) v = s_.key + (s.value.empty() ? "" : " = " + s.value);
    else v = s_.key + " " + s.value;
    std::string rule = s_.syntax == Syntax::kSshd ? "the first value wins" : "the last value wins";
    return v + " at " + s.Where() + " (" + rule + ")";
  }

  std::string NotSetText(const Scan& scan) const {
    if (s_.syntax == Syntax::kSshd) {
      std::string t = "not set outside Match blocks (sshd's built-in default applies)";
      for (const auto& s : scan.settings)
        if (!s.global) return t + "; set only inside a Match block at " + s.Where();
      return t;
    }
    if (s_.syntax == Syntax::kSudoers) return "not set by any global Defaults line in " + s_.file + " or its includes";
    return "not set in " + s_.file + (s_.dropins.empty() ? "" : " or " + s_.dropins);
  }

  // Loaded files being edited, written back once each at the end.
  class Edits {
   public:
    explicit Edits(const Context& ctx) : ctx_(ctx) {}
    Expected<std::vector<std::optional<std::string>>*> Get(const std::string& file) {
      auto it = files_.find(file);
      if (it != files_.end()) return &it->second.second;
      auto text = ctx_.Read(file);
      if (!text) return Fail(text.error());
      std::vector<std::optional<std::string>> lines;
      for (auto& l : Lines(*text)) lines.emplace_back(std::move(l));
      return &files_.emplace(file, std::make_pair(*text, std::move(lines))).first->second.second;
    }
    ExpectedVoid CommentOut(const Setting& s) {
      auto lines = Get(s.file);
      if (!lines) return Fail(lines.error());
      auto& ls = **lines;
      size_t first = static_cast<size_t>(s.line - 1);
      if (!ls[first] || ls[first]->starts_with(kCommentPrefix)) return {};
      for (int i = 0; i < s.physical; ++i) {
        auto& l = ls[first + static_cast<size_t>(i)];
        if (l) l = kCommentPrefix + *l;
      }
      return {};
    }
    ExpectedVoid Commit(Change& change) {
      for (const auto& [file, content] : files_) {
        std::vector<std::string> out;
        for (const auto& l : content.second)
          if (l) out.push_back(*l);
        std::string text = JoinLines(out);
        if (text == content.first) continue;
        if (auto r = change.WriteFile(ctx_, file, text); !r) return r;
      }
      return {};
    }

   private:
    const Context& ctx_;
    std::map<std::string, std::pair<std::string, std::vector<std::optional<std::string>>>> files_;
  };

  ExpectedVoid RemediateSshd(const Context& ctx, Change& change, const Scan& scan) const {
    const Setting* eff = Effective(scan);
    std::string line = s_.key + " " + Desired(eff);
    Edits edits(ctx);
    // Where a line at the top of the main file goes: after its leading
    // comments, decided before lines are commented out below.
    auto main_lines = edits.Get(s_.file);
    if (!main_lines) return Fail(main_lines.error());
    size_t top = 0;
    for (const auto& l : **main_lines) {
      std::string t = Trim(*l);
      if (!t.empty() && t[0] != '#') break;
      ++top;
    }
    bool compliant_left = false;
    for (const auto& s : scan.settings) {
      if (!s.global) continue;  // Match blocks are not the global value: left alone
      if (!s_.absent && Satisfies(s)) {
        compliant_left = true;
        continue;
      }
      if (s.file == kSshdDropin && scan.dropin_first && !s_.absent) continue;  // rewritten below
      if (auto r = edits.CommentOut(s); !r) return r;
    }
    if (s_.absent || compliant_left) return edits.Commit(change);
    if (scan.dropin_first) {
      std::vector<std::string> kept;
      if (auto text = ctx.Read(kSshdDropin)) {
        for (const auto& l : Lines(*text)) {
          auto p = ParseSshdLine(l);
          if (p && *p && (*p)->keyword == Lower(s_.key)) continue;
          kept.push_back(l);
        }
      } else {
        kept.push_back(kHeader);
      }
      // First value wins inside the file too: ours goes before any setting.
      size_t at = 0;
      while (at < kept.size() && (Trim(kept[at]).empty() || Trim(kept[at])[0] == '#')) ++at;
      kept.insert(kept.begin() + static_cast<std::ptrdiff_t>(at), line);
      if (auto r = edits.Commit(change); !r) return r;
      return change.WriteFile(ctx, kSshdDropin, JoinLines(kept), 0644);
    }
    auto& ls = **main_lines;
    ls.insert(ls.begin() + static_cast<std::ptrdiff_t>(top), line);
    return edits.Commit(change);
  }

  ExpectedVoid RemediateLines(const Context& ctx, Change& change, const Scan& scan) const {
    Edits edits(ctx);
    for (const auto& s : scan.settings) {
      if (s_.absent) {
        if (auto r = edits.CommentOut(s); !r) return r;
        continue;
      }
      if (Satisfies(s)) continue;
      auto lines = edits.Get(s.file);
      if (!lines) return Fail(lines.error());
      auto& l = (**lines)[static_cast<size_t>(s.line - 1)];
      std::string value = Desired(&s);
      if (s.value_end > s.value_begin || s_.syntax == Syntax::kSpace) {
        l = l->substr(0, s.value_begin) + value + l->substr(s.value_end);
      } else {
        l = l->substr(0, s.value_begin) + (l->find('=') == std::string::npos ? " = " : " ") + value + l->substr(s.value_end);
      }
    }
    if (!s_.absent && scan.settings.empty()) {
      auto lines = edits.Get(s_.file);
      if (!lines) return Fail(lines.error());
      std::string line = s_.syntax == Syntax::kSpace ? s_.key + " " + s_.value
                         : s_.value.empty()          ? s_.key
                                                     : s_.key + " = " + s_.value;
      (*lines)->emplace_back(line);
    }
    return edits.Commit(change);
  }

  static std::string SudoQuote(const std::string& v) {
    if (v.find_first_of(" \t,\"\\#=:!") == std::string::npos) return v;
    std::string out = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }

  ExpectedVoid RemediateSudoers(const Context& ctx, Change& change, const Scan& scan) const {
    std::string option = s_.absent ? "!" + s_.key : s_.key + (s_.value.empty() ? "" : "=" + SudoQuote(Desired(Effective(scan))));
    std::vector<std::string> lines;
    bool replaced = false;
    if (auto text = ctx.Read(kSudoersDropin)) {
      for (const auto& l : SudoersLines(*text)) {
        std::string t = Trim(l.text);
        if (t.starts_with("Defaults") && t.size() > 8 && std::isspace(static_cast<unsigned char>(t[8]))) {
          auto opts = SudoersOptions(t.substr(8));
          if (opts.size() == 1 && ParseSudoOption(opts[0]).name == s_.key) {
            if (!replaced) lines.push_back("Defaults " + option);
            replaced = true;
            continue;
          }
        }
        lines.push_back(l.text);
      }
    } else {
      lines.push_back(kHeader);
    }
    if (!replaced) lines.push_back("Defaults " + option);
    if (auto r = change.WriteFile(ctx, kSudoersDropin, JoinLines(lines), 0440); !r) return r;

    // Defaults read after our file still win: drop their conflicting option.
    Scan after = Read(ctx);
    if (!after.error.empty()) return Fail(Errc::kFailedPrecondition, after.error);
    bool ours_seen = false;
    Edits edits(ctx);
    std::map<std::pair<std::string, int>, std::vector<std::string>> rewritten;
    for (const auto& s : after.settings) {
      if (s.file == kSudoersDropin) {
        ours_seen = true;
        continue;
      }
      if (!ours_seen) continue;
      bool ok = s_.absent ? s.negated : Satisfies(s);
      if (ok) continue;
      auto key = std::make_pair(s.file, s.line);
      if (!rewritten.contains(key)) rewritten[key] = s.options;
      rewritten[key][s.option_index].clear();
      auto file_lines = edits.Get(s.file);
      if (!file_lines) return Fail(file_lines.error());
      std::vector<std::string> left;
      for (const auto& o : rewritten[key])
        if (!o.empty()) left.push_back(o);
      auto& ls = **file_lines;
      size_t first = static_cast<size_t>(s.line - 1);
      for (int i = 1; i < s.physical; ++i) ls[first + static_cast<size_t>(i)].reset();
      if (left.empty()) {
        // The logical line, so that no continuation backslash is left in a comment.
        std::string original;
        for (const auto& o : s.options) original += (original.empty() ? "" : ", ") + o;
        ls[first] = std::string(kCommentPrefix) + "Defaults " + original;
      } else {
        std::string joined;
        for (const auto& o : left) joined += (joined.empty() ? "" : ", ") + o;
        ls[first] = "Defaults " + joined;
      }
    }
    return edits.Commit(change);
  }

  Spec s_;
};

bool ValidKeyword(const std::string& k, bool allow_underscore) {
  if (k.empty() || !std::isalpha(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k)
    if (!std::isalnum(static_cast<unsigned char>(c)) && !(allow_underscore && (c == '_' || c == '-'))) return false;
  return true;
}

}  // namespace

Expected<CheckPtr> MakeDirective(Fields& f) {
  Spec s;
  auto file = f.Path("file");
  if (!file) return Fail(file.error());
  s.file = *file;
  auto syntax = f.OneOf("syntax", {"sshd", "space", "equals", "sudoers"});
  if (!syntax) return Fail(syntax.error());
  s.syntax = *syntax == "sshd" ? Syntax::kSshd : *syntax == "space" ? Syntax::kSpace : *syntax == "equals" ? Syntax::kEquals : Syntax::kSudoers;
  auto key = f.String("key");
  if (!key) return Fail(key.error());
  s.key = *key;
  switch (s.syntax) {
    case Syntax::kSshd:
      if (!ValidKeyword(s.key, false)) return Fail(f.Bad("key", "must be an sshd keyword such as PermitRootLogin (letters and digits)"));
      if (Lower(s.key) == "include" || Lower(s.key) == "match") return Fail(f.Bad("key", "Include and Match are structure, not settings"));
      break;
    case Syntax::kSpace:
    case Syntax::kEquals:
      if (!ValidKeyword(s.key, true)) return Fail(f.Bad("key", "must be a setting name (letters, digits, '_' and '-')"));
      break;
    case Syntax::kSudoers:
      if (s.key.empty() || s.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
        return Fail(f.Bad("key", "must be a sudoers Defaults option such as use_pty or logfile"));
      break;
  }
  auto absent = f.BoolOr("absent", false);
  if (!absent) return Fail(absent.error());
  s.absent = *absent;
  if (s.absent) {
    if (f.Has("value")) return Fail(f.Bad("value", "not used with absent = true (the key must not be set at all)"));
    if (f.Has("match")) return Fail(f.Bad("match", "not used with absent = true"));
  } else {
    auto value = f.String("value");
    if (!value) return Fail(value.error());
    s.value = CollapseSpaces(*value);
    if (value->find_first_of("\n\r#") != std::string::npos)
      return Fail(f.Bad("value", "must not contain a newline or '#'"));
    auto match = f.OneOf("match", {"exact", "min", "max", "contains"}, std::string("exact"));
    if (!match) return Fail(match.error());
    s.match = *match == "exact" ? Match::kExact : *match == "min" ? Match::kMin : *match == "max" ? Match::kMax : Match::kContains;
    if (s.match == Match::kMin || s.match == Match::kMax) {
      auto n = ParseInt(s.value);
      if (!n) return Fail(f.Bad("value", "'" + s.value + "' is not an integer (match = " + *match + ")"));
      s.number = *n;
    }
    if (s.match == Match::kContains && (s.value.empty() || s.value.find(',') != std::string::npos || s.value.find(' ') != std::string::npos))
      return Fail(f.Bad("value", "match = contains needs one list item (no comma, no blank)"));
    if (s.match == Match::kContains && s.syntax == Syntax::kSudoers)
      return Fail(f.Bad("match", "sudoers lists (env_keep += ...) are not evaluated; use exact, min or max"));
    if (s.value.empty() && (s.syntax == Syntax::kSshd || s.syntax == Syntax::kSpace))
      return Fail(f.Bad("value", "must not be empty for syntax = " + *syntax));
    if (s.syntax == Syntax::kSudoers && s.value.find('"') != std::string::npos)
      return Fail(f.Bad("value", "must not contain a double quote"));
  }
  if (f.Has("dropins")) {
    if (s.syntax != Syntax::kEquals)
      return Fail(f.Bad("dropins", s.syntax == Syntax::kSshd      ? "sshd reads what Include names; dropins is not used"
                                   : s.syntax == Syntax::kSudoers ? "sudoers reads what @includedir names; dropins is not used"
                                                                  : "login.defs has no drop-in directory"));
    auto d = f.Path("dropins");
    if (!d) return Fail(d.error());
    s.dropins = *d;
  }
  return std::make_shared<Directive>(std::move(s));
}

}  // namespace parc::policy::kinds
