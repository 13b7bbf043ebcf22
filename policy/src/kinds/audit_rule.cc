// audit_rule: an auditd rule present in /etc/audit/rules.d/*.rules, the files
// augenrules compiles into the loaded rule set. Rules are compared by what
// they audit, not by how they are written: option order, blanks, the key
// (-k, -F key=), the order of -F fields and of syscall lists do not matter.
#include <string.h>  // strverscmp (GNU), the order of "ls -v" that augenrules uses

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

constexpr const char* kRulesGlob = "/etc/audit/rules.d/*.rules";
constexpr const char* kParcRules = "/etc/audit/rules.d/99-parc-hardening.rules";
constexpr const char* kCommentPrefix = "# parc-agent policy apply: ";

// Options that set auditd state rather than add a rule; augenrules keeps the last of each.
const std::set<std::string> kControl = {"-e", "-b", "-f", "-r", "--backlog_wait_time", "--loginuid-immutable", "--reset-lost"};
const std::set<std::string> kNoValueControl = {"--loginuid-immutable", "--reset-lost"};
// Fields whose "unset" is also written -1 or 4294967295.
const std::set<std::string> kIdFields = {"auid", "uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "loginuid"};

std::string SortedChars(std::string s) {
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

// What a rule audits.
struct Rule {
  enum class Type { kWatch, kSyscall, kControl } type = Type::kWatch;
  std::string path, perms;                 // watch; perms as a sorted set
  std::string list_action;                 // "always,exit"
  std::multiset<std::string> fields;       // "arch=b64", "-C uid!=euid"
  std::set<std::string> syscalls;
  std::string control, control_value;      // "-e" "2"

  // Watch permissions may be wider than asked: more is audited, never less.
  bool Covers(const Rule& want) const {
    if (type != want.type) return false;
    switch (type) {
      case Type::kWatch:
        return path == want.path && std::includes(perms.begin(), perms.end(), want.perms.begin(), want.perms.end());
      case Type::kSyscall: {
        if (list_action != want.list_action || syscalls != want.syscalls) return false;
        if (fields == want.fields) return true;
        // Same fields but a wider perm= set.
        auto strip = [](const std::multiset<std::string>& f, std::string& perm) {
          std::multiset<std::string> out;
          for (const auto& x : f) {
            if (x.starts_with("perm=")) perm = x.substr(5);
            else out.insert(x);
          }
          return out;
        };
        std::string p1, p2;
        auto f1 = strip(fields, p1), f2 = strip(want.fields, p2);
        return f1 == f2 && !p2.empty() && std::includes(p1.begin(), p1.end(), p2.begin(), p2.end());
      }
      case Type::kControl: return control == want.control && control_value == want.control_value;
    }
    return false;
  }
};

std::string NormField(const std::string& spec) {
  static const char* kOps[] = {"<=", ">=", "!=", "&=", "=", "<", ">", "&"};
  for (const char* op : kOps) {
    size_t at = spec.find(op);
    if (at == std::string::npos || at == 0) continue;
    std::string name = spec.substr(0, at), value = spec.substr(at + std::string(op).size());
    if (kIdFields.contains(name) && (value == "-1" || value == "4294967295")) value = "unset";
    if (name == "perm") value = SortedChars(value);
    return name + op + value;
  }
  return spec;
}

// Parses one auditctl line; an error names what is wrong.
Expected<Rule> ParseRule(const std::string& line) {
  auto words = SplitWords(line);
  if (words.empty()) return Fail(Errc::kParse, "empty rule");
  Rule r;
  bool watch = false, syscall = false;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    auto arg = [&](const char* what) -> Expected<std::string> {
      if (i + 1 >= words.size()) return Fail(Errc::kParse, w + " needs " + what);
      return words[++i];
    };
    if (w == "-w" || w == "-W") {
      if (w == "-W") return Fail(Errc::kParse, "-W removes a watch; a baseline only adds rules");
      auto p = arg("a path");
      if (!p) return Fail(p.error());
      if (p->empty() || (*p)[0] != '/') return Fail(Errc::kParse, "-w needs an absolute path");
      r.path = *p;
      while (r.path.size() > 1 && r.path.back() == '/') r.path.pop_back();
      watch = true;
    } else if (w == "-p") {
      auto p = arg("permissions (r, w, x, a)");
      if (!p) return Fail(p.error());
      if (p->empty() || p->find_first_not_of("rwxa") != std::string::npos) return Fail(Errc::kParse, "-p takes letters among r, w, x, a");
      r.perms = SortedChars(*p);
    } else if (w == "-a" || w == "-A") {
      auto p = arg("list,action");
      if (!p) return Fail(p.error());
      size_t comma = p->find(',');
      if (comma == std::string::npos) return Fail(Errc::kParse, w + " takes list,action such as always,exit");
      std::string a = p->substr(0, comma), b = p->substr(comma + 1);
      static const std::set<std::string> kActions = {"always", "never"};
      static const std::set<std::string> kLists = {"exit", "task", "user", "exclude", "filesystem", "io_uring"};
      if (kLists.contains(a) && kActions.contains(b)) std::swap(a, b);
      if (!kActions.contains(a) || !kLists.contains(b)) return Fail(Errc::kParse, "'" + *p + "' is not list,action (always,exit, never,task, ...)");
      r.list_action = a + "," + b;
      syscall = true;
    } else if (w == "-S") {
      auto p = arg("syscalls");
      if (!p) return Fail(p.error());
      size_t start = 0;
      while (start <= p->size()) {
        size_t comma = p->find(',', start);
        if (comma == std::string::npos) comma = p->size();
        std::string s = p->substr(start, comma - start);
        if (!s.empty()) r.syscalls.insert(s);
        start = comma + 1;
      }
    } else if (w == "-F" || w == "-C") {
      auto p = arg("a field comparison");
      if (!p) return Fail(p.error());
      if (p->starts_with("key=")) continue;  // the key names the rule, it does not change what is audited
      if (p->find_first_of("=<>&") == std::string::npos) return Fail(Errc::kParse, w + " " + *p + " has no operator");
      r.fields.insert(w == "-C" ? "-C " + *p : NormField(*p));
    } else if (w == "-k") {
      if (!arg("a key")) return Fail(Errc::kParse, "-k needs a key");
    } else if (kControl.contains(w)) {
      r.type = Rule::Type::kControl;
      r.control = w;
      if (!kNoValueControl.contains(w)) {
        auto p = arg("a value");
        if (!p) return Fail(p.error());
        r.control_value = *p;
      }
      if (words.size() != (kNoValueControl.contains(w) ? 1u : 2u)) return Fail(Errc::kParse, w + " stands alone on its line");
    } else if (w == "-D") {
      return Fail(Errc::kParse, "-D deletes every rule; it is not a rule to check");
    } else {
      return Fail(Errc::kParse, "unsupported auditctl option '" + w + "'");
    }
  }
  if (r.type == Rule::Type::kControl) return r;
  if (watch && syscall) return Fail(Errc::kParse, "a rule is either a watch (-w) or a syscall rule (-a), not both");
  if (watch) {
    if (!r.syscalls.empty() || !r.fields.empty()) return Fail(Errc::kParse, "-w takes -p and -k only");
    r.type = Rule::Type::kWatch;
    if (r.perms.empty()) r.perms = "arwx";  // auditctl's default: all
    return r;
  }
  if (!syscall) return Fail(Errc::kParse, "a rule needs -w PATH or -a ACTION,LIST");
  if (!r.perms.empty()) return Fail(Errc::kParse, "-p belongs to -w rules (use -F perm= with -a)");
  r.type = Rule::Type::kSyscall;
  return r;
}

struct Found {
  std::string file;
  int line = 0;
  std::string text;
  Rule rule;
};

// Every parsable rule line, in augenrules order ("ls -v" of rules.d).
Expected<std::vector<Found>> ReadRules(const Context& ctx) {
  auto files = ctx.Glob(kRulesGlob);
  if (!files) return Fail(files.error());
  std::sort(files->begin(), files->end(), [](const std::string& a, const std::string& b) { return ::strverscmp(a.c_str(), b.c_str()) < 0; });
  std::vector<Found> out;
  for (const auto& f : *files) {
    auto text = ctx.Read(f);
    if (!text) return Fail(text.error().WithContext("cannot read " + f));
    auto lines = Lines(*text);
    for (size_t n = 0; n < lines.size(); ++n) {
      std::string t = Trim(lines[n]);
      if (t.empty() || t[0] == '#') continue;
      auto r = ParseRule(t);
      if (!r) continue;  // auditctl reports it and goes on; it cannot match either
      out.push_back({f, static_cast<int>(n + 1), CollapseSpaces(t), std::move(*r)});
    }
  }
  return out;
}

class AuditRule final : public Check {
 public:
  AuditRule(std::string text, Rule rule) : text_(std::move(text)), rule_(std::move(rule)) {}

  Finding Evaluate(const Context& ctx) const override {
    if (!ctx.PackageInstalled("auditd")) return NotApplicable("auditd is not installed");
    auto rules = ReadRules(ctx);
    if (!rules) return ErrorFinding(rules.error().message());
    if (rule_.type == Rule::Type::kControl) {
      const Found* last = nullptr;
      for (const auto& f : *rules)
        if (f.rule.type == Rule::Type::kControl && f.rule.control == rule_.control) last = &f;
      if (!last) return FailWith(text_, rule_.control + " not set in " + kRulesGlob);
      std::string where = last->text + " at " + last->file + ":" + std::to_string(last->line) + " (the last one wins)";
      return last->rule.Covers(rule_) ? Pass(text_, where) : FailWith(text_, where);
    }
    for (const auto& f : *rules)
      if (f.rule.Covers(rule_)) return Pass(text_, f.text + " at " + f.file + ":" + std::to_string(f.line));
    std::string found = "no matching rule among " + std::to_string(rules->size()) + " in " + kRulesGlob;
    if (const Found* near = Nearest(*rules)) found += "; closest: " + near->text + " at " + near->file + ":" + std::to_string(near->line);
    return FailWith(text_, found);
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    if (rule_.type == Rule::Type::kControl) {
      // The last setting wins: conflicting ones are commented out wherever they are.
      auto rules = ReadRules(ctx);
      if (!rules) return Fail(rules.error());
      std::map<std::string, std::vector<int>> bad;
      for (const auto& f : *rules)
        if (f.rule.type == Rule::Type::kControl && f.rule.control == rule_.control && !f.rule.Covers(rule_)) bad[f.file].push_back(f.line);
      for (const auto& [file, lines] : bad) {
        auto text = ctx.Read(file);
        if (!text) return Fail(text.error());
        auto ls = Lines(*text);
        for (int n : lines) ls[static_cast<size_t>(n - 1)] = kCommentPrefix + ls[static_cast<size_t>(n - 1)];
        if (auto r = change.WriteFile(ctx, file, JoinLines(ls)); !r) return r;
      }
    }
    std::string ours;
    if (auto t = ctx.Read(kParcRules)) ours = *t;
    if (ours.empty()) ours = "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.\n";
    if (ours.back() != '\n') ours += "\n";
    ours += text_ + "\n";
    if (auto r = change.WriteFile(ctx, kParcRules, ours, 0640); !r) return r;
    change.Note("audit rule '" + text_ + "' is in " + kParcRules + "; it is loaded by 'augenrules --load' or at the next boot");
    return {};
  }

 private:
  // A rule on the same path or the same syscalls, to show what differs.
  const Found* Nearest(const std::vector<Found>& rules) const {
    for (const auto& f : rules) {
      if (f.rule.type != rule_.type) continue;
      if (rule_.type == Rule::Type::kWatch && f.rule.path == rule_.path) return &f;
      if (rule_.type == Rule::Type::kSyscall && f.rule.syscalls == rule_.syscalls) return &f;
    }
    return nullptr;
  }

  std::string text_;
  Rule rule_;
};

}  // namespace

Expected<CheckPtr> MakeAuditRule(Fields& f) {
  auto text = f.String("rule");
  if (!text) return Fail(text.error());
  std::string rule = CollapseSpaces(*text);
  if (rule.find_first_of("\n\r#\"'") != std::string::npos)
    return Fail(f.Bad("rule", "must be one auditctl line without quotes or comments"));
  auto parsed = ParseRule(rule);
  if (!parsed) return Fail(f.Bad("rule", parsed.error().message()));
  return std::make_shared<AuditRule>(rule, std::move(*parsed));
}

}  // namespace parc::policy::kinds
