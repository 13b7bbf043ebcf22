// Baseline files: TOML parsed with toml++ (exceptions stop here), validated
// strictly, each rule's kind fields handed to its factory.
#include "parc/policy/baseline.h"

#include <map>
#include <set>

#include "fields.h"
#include "kinds/kinds.h"
#include "parc/common/files.h"

namespace parc::policy {

std::optional<Level> ParseLevel(std::string_view text) {
  if (text == "minimal") return Level::kMinimal;
  if (text == "intermediary") return Level::kIntermediary;
  if (text == "enhanced" || text == "reinforced") return Level::kEnhanced;
  if (text == "high") return Level::kHigh;
  return std::nullopt;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kMinimal: return "minimal";
    case Level::kIntermediary: return "intermediary";
    case Level::kEnhanced: return "enhanced";
    case Level::kHigh: return "high";
  }
  return "?";
}

std::string_view StatusName(Status status) {
  switch (status) {
    case Status::kPass: return "pass";
    case Status::kFail: return "fail";
    case Status::kNotApplicable: return "na";
    case Status::kError: return "error";
  }
  return "?";
}

namespace {

using Factory = Expected<kinds::CheckPtr> (*)(Fields&);

const std::map<std::string, Factory>& Factories() {
  static const std::map<std::string, Factory> m = {
      {"sysctl", &kinds::MakeSysctl},
      {"permissions", &kinds::MakePermissions},
      {"find", &kinds::MakeFind},
      {"directive", &kinds::MakeDirective},
      {"pam", &kinds::MakePam},
      {"package", &kinds::MakePackage},
      {"service", &kinds::MakeService},
      {"mount", &kinds::MakeMount},
      {"kernel_cmdline", &kinds::MakeKernelCmdline},
      {"audit_rule", &kinds::MakeAuditRule},
      {"registry", &kinds::MakeRegistry},
      {"service_start", &kinds::MakeServiceStart},
      {"audit_policy", &kinds::MakeAuditPolicy},
  };
  return m;
}

const std::set<std::string> kPlatforms = {"linux", "debian", "debian12", "ubuntu", "rhel", "windows"};
// [a-z0-9][a-z0-9._-]* (hand-written: <regex> trips a g++ 12 -Wmaybe-uninitialized
// false positive under -fsanitize=address, which breaks -Werror sanitizer builds).
bool ValidId(std::string_view s) {
  auto lower_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (s.empty() || !lower_digit(s[0])) return false;
  for (char c : s)
    if (!lower_digit(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

// R[0-9]+
bool ValidAnssiRef(std::string_view s) {
  return s.size() >= 2 && s[0] == 'R' && s.find_first_not_of("0123456789", 1) == std::string_view::npos;
}

ExpectedVoid CheckUnused(const Fields& f) {
  auto unused = f.Unused();
  if (!unused.empty()) return Fail(f.Bad(unused.front(), "unknown key (typo?)"));
  return {};
}

Expected<std::vector<std::string>> ReadPlatforms(Fields& f) {
  auto p = f.Strings("platforms");
  if (!p) return p;
  for (const auto& x : *p)
    if (!kPlatforms.contains(x))
      return Fail(f.Bad("platforms", "unknown platform '" + x + "' (linux, debian, debian12, ubuntu, rhel, windows)"));
  return p;
}

Expected<Rule> ParseRule(const toml::table& t, const std::string& file, const std::vector<std::string>& default_platforms) {
  Rule r;
  r.line = static_cast<int>(t.source().begin.line);
  std::string id;
  if (const auto* n = t.get("id"); n && n->is_string()) id = n->as_string()->get();
  Fields f(t, file, id);
  auto sid = f.String("id");
  if (!sid) return Fail(sid.error());
  if (!ValidId(*sid)) return Fail(f.Bad("id", "must match [a-z0-9][a-z0-9._-]*"));
  r.id = *sid;
#define PARC_FIELD(expr, target)          \
  {                                       \
    auto v = (expr);                      \
    if (!v) return Fail(v.error());       \
    target = std::move(*v);               \
  }
  PARC_FIELD(f.String("title"), r.title);
  PARC_FIELD(f.StringOr("rationale", ""), r.rationale);
  PARC_FIELD(f.StringOr("anssi", ""), r.anssi);
  PARC_FIELD(f.StringOr("source", ""), r.source);
  PARC_FIELD(f.StringOr("note", ""), r.note);
  std::string level;
  PARC_FIELD(f.OneOf("level", {"minimal", "intermediary", "enhanced", "high"}), level);
  r.level = *ParseLevel(level);
  PARC_FIELD(ReadPlatforms(f), r.platforms);
  if (r.platforms.empty()) r.platforms = default_platforms;
  PARC_FIELD(f.BoolOr("remediate", true), r.remediate);
  PARC_FIELD(f.StringOr("when_package", ""), r.when_package);
  PARC_FIELD(f.StringOr("when_path", ""), r.when_path);
  if (!r.when_path.empty())
    if (auto v = ValidateSystemPath(r.when_path); !v) return Fail(f.Bad("when_path", v.error().message()));
  if (!r.anssi.empty() && !ValidAnssiRef(r.anssi))
    return Fail(f.Bad("anssi", "must be an ANSSI-BP-028 R-number such as \"R12\""));
  if (r.anssi.empty() && r.source.empty()) return Fail(f.Bad("anssi", "a rule needs its reference: 'anssi' (R-number) or 'source'"));
  std::vector<std::string> names;
  for (const auto& [k, v] : Factories()) names.push_back(k);
  PARC_FIELD(f.OneOf("kind", names), r.kind);
#undef PARC_FIELD
  auto check = Factories().at(r.kind)(f);
  if (!check) return Fail(check.error());
  r.check = std::move(*check);
  if (auto u = CheckUnused(f); !u) return Fail(u.error());
  return r;
}

}  // namespace

Expected<Baseline> ParseBaseline(std::string_view text, const std::string& file_label) {
  toml::table doc;
  try {
    doc = toml::parse(text, file_label);
  } catch (const toml::parse_error& e) {
    return Fail(Errc::kParse, file_label + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  Baseline b;
  b.file = file_label;
  for (const auto& [k, v] : doc) {
    if (k.str() != "baseline" && k.str() != "rule")
      return Fail(Errc::kParse, file_label + ":" + std::to_string(v.source().begin.line) + ": unknown section '" +
                                    std::string(k.str()) + "' (expected [baseline] and [[rule]])");
  }
  const auto* head = doc.get_as<toml::table>("baseline");
  if (!head) return Fail(Errc::kParse, file_label + ":1: missing [baseline] table (name, title, version)");
  Fields hf(*head, file_label, "");
  auto name = hf.String("name");
  if (!name) return Fail(name.error());
  if (!ValidId(*name)) return Fail(hf.Bad("name", "must match [a-z0-9][a-z0-9._-]*"));
  b.name = *name;
  auto title = hf.String("title");
  if (!title) return Fail(title.error());
  b.title = *title;
  auto version = hf.String("version");
  if (!version) return Fail(version.error());
  b.version = *version;
  auto source = hf.StringOr("source", "");
  if (!source) return Fail(source.error());
  b.source = *source;
  auto plats = ReadPlatforms(hf);
  if (!plats) return Fail(plats.error());
  b.platforms = *plats;
  if (auto u = CheckUnused(hf); !u) return Fail(u.error());

  const auto* rules = doc.get("rule");
  if (!rules) return b;
  const auto* arr = rules->as_array();
  if (!arr || !arr->is_array_of_tables())
    return Fail(Errc::kParse, file_label + ":" + std::to_string(rules->source().begin.line) + ": 'rule' must be written [[rule]]");
  std::map<std::string, int> seen;
  for (const auto& node : *arr) {
    auto rule = ParseRule(*node.as_table(), file_label, b.platforms);
    if (!rule) return Fail(rule.error());
    if (auto it = seen.find(rule->id); it != seen.end())
      return Fail(Errc::kParse, file_label + ":" + std::to_string(rule->line) + ": rule id '" + rule->id +
                                    "' is already used at line " + std::to_string(it->second));
    seen[rule->id] = rule->line;
    b.rules.push_back(std::move(*rule));
  }
  return b;
}

Expected<Baseline> LoadBaseline(const std::filesystem::path& file) {
  auto text = ReadFile(file);
  if (!text) return Fail(text.error().WithContext("cannot read the baseline"));
  return ParseBaseline(*text, file.string());
}

Expected<Baseline> FindBaseline(const std::string& name_or_path, const std::vector<std::filesystem::path>& search) {
  if (name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".toml")) return LoadBaseline(name_or_path);
  std::string looked;
  for (const auto& dir : search) {
    auto p = dir / (name_or_path + ".toml");
    if (PathExists(p)) return LoadBaseline(p);
    looked += (looked.empty() ? "" : ", ") + dir.string();
  }
  return Fail(Errc::kNotFound, "no baseline named '" + name_or_path + "' (looked in " + (looked.empty() ? "nowhere" : looked) +
                                   "); give a file path or one of the names listed by 'parc-agent policy list'");
}

}  // namespace parc::policy
