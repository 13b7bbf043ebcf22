// pam: the options of one module line in a /etc/pam.d file. Only options are
// ever edited: adding or removing a module line changes who can log in, so
// that stays a decision for a person.
#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

const std::vector<std::string> kTypes = {"auth", "account", "password", "session"};

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One logical module line as libpam splits it: the part before '#', with
// backslash-continued physical lines joined.
struct PamLine {
  int first = 0;       // 0-based physical index
  int physical = 1;
  std::string type;    // lower case, without the leading '-'
  std::string prefix;  // the text up to the end of the module path, kept as written
  std::string module;
  std::vector<std::string> args;  // raw ("minlen=12", "[query=a b]")
  std::string comment;            // "# ..." tail, kept on rewrite
};

bool Blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Tokens with '['...']' kept whole (controls and bracketed arguments may hold blanks).
struct Token {
  std::string text;
  size_t end = 0;
};
std::vector<Token> Tokens(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && Blank(s[i])) ++i;
    if (i >= s.size()) break;
    size_t b = i;
    if (s[i] == '[') {
      while (i < s.size() && !(s[i] == ']' && s[i - 1] != '\\')) ++i;
      if (i < s.size()) ++i;
    }
    while (i < s.size() && !Blank(s[i])) ++i;
    out.push_back({s.substr(b, i - b), i});
  }
  return out;
}

std::vector<PamLine> ParsePam(const std::string& text) {
  std::vector<PamLine> out;
  auto lines = Lines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    PamLine l;
    l.first = static_cast<int>(n);
    l.physical = 0;
    std::string logical;
    for (;;) {
      std::string part = lines[n];
      ++l.physical;
      size_t hash = part.find('#');
      if (hash != std::string::npos) {
        l.comment = part.substr(hash);
        logical += part.substr(0, hash);
        break;
      }
      while (!part.empty() && (part.back() == '\r' || part.back() == ' ' || part.back() == '\t')) part.pop_back();
      if (!part.empty() && part.back() == '\\' && n + 1 < lines.size()) {
        logical += part.substr(0, part.size() - 1) + " ";
        ++n;
        continue;
      }
      logical += part;
      break;
    }
    auto toks = Tokens(logical);
    if (toks.size() < 3) continue;
    std::string type = toks[0].text;
    if (!type.empty() && type[0] == '-') type.erase(0, 1);
    l.type = Lower(type);
    if (std::find(kTypes.begin(), kTypes.end(), l.type) == kTypes.end()) continue;
    l.module = toks[2].text;
    l.prefix = logical.substr(0, toks[2].end);
    for (size_t t = 3; t < toks.size(); ++t) l.args.push_back(toks[t].text);
    out.push_back(std::move(l));
  }
  return out;
}

std::string OptionName(const std::string& arg) {
  if (!arg.empty() && arg[0] == '[') return arg;
  return arg.substr(0, arg.find('='));
}

std::string Render(const std::string& name, const std::string& value) { return value.empty() ? name : name + "=" + value; }

class Pam final : public Check {
 public:
  Pam(std::string file, std::string type, std::string module, std::map<std::string, std::string> options,
      std::vector<std::string> absent_options, bool present)
      : file_(std::move(file)), type_(std::move(type)), module_(std::move(module)), options_(std::move(options)),
        absent_(std::move(absent_options)), present_(present) {}

  Finding Evaluate(const Context& ctx) const override {
    auto text = ctx.Read(file_);
    if (!text) {
      if (text.error().Is(Errc::kNotFound)) return NotApplicable(file_ + " does not exist");
      return ErrorFinding("cannot read " + file_ + ": " + text.error().message());
    }
    auto lines = ParsePam(*text);
    const PamLine* l = Find(lines);
    std::string expected = ExpectedText();
    if (!present_) {
      if (!l) return Pass(expected, "no " + type_ + " line for " + module_ + " in " + file_);
      return FailWith(expected, Show(*l));
    }
    if (!l) return FailWith(expected, "no " + type_ + " line for " + module_ + " in " + file_);
    auto problems = Problems(*l);
    if (problems.empty()) return Pass(expected, Show(*l));
    return FailWith(expected, Show(*l) + " (" + problems + ")");
  }

  std::string CannotRemediate(const Context& ctx) const override {
    auto text = ctx.Read(file_);
    if (!text) return "";
    const PamLine* l = Find(ParsePam(*text));
    if (!present_) return "Parc never removes PAM module lines: remove the " + type_ + " " + module_ + " line of " + file_ + " by hand";
    if (!l)
      return "Parc never adds PAM module lines: install and enable " + module_ + " (pam-auth-update on Debian), then apply again";
    return "";
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    auto text = ctx.Read(file_);
    if (!text) return Fail(text.error());
    auto parsed = ParsePam(*text);
    auto it = std::find_if(parsed.begin(), parsed.end(), [&](const PamLine& l) { return Matches(l); });
    if (it == parsed.end() || !present_) return Fail(Errc::kFailedPrecondition, CannotRemediate(ctx));
    const PamLine& l = *it;
    std::vector<std::string> args;
    std::set<std::string> placed;
    for (const auto& a : l.args) {
      std::string name = OptionName(a);
      if (std::find(absent_.begin(), absent_.end(), name) != absent_.end()) continue;
      auto want = options_.find(name);
      if (want == options_.end()) {
        args.push_back(a);
      } else if (placed.insert(name).second) {
        args.push_back(Render(name, want->second));  // in place of the first; later duplicates dropped
      }
    }
    for (const auto& [name, value] : options_)
      if (!placed.contains(name)) args.push_back(Render(name, value));
    std::string line = l.prefix;
    for (const auto& a : args) line += " " + a;
    if (!l.comment.empty()) line += " " + l.comment;
    auto lines = Lines(*text);
    lines[static_cast<size_t>(l.first)] = line;
    lines.erase(lines.begin() + l.first + 1, lines.begin() + l.first + l.physical);
    return change.WriteFile(ctx, file_, JoinLines(lines));
  }

 private:
  bool Matches(const PamLine& l) const {
    if (l.type != type_) return false;
    if (module_.find('/') != std::string::npos) return l.module == module_;
    return l.module.substr(l.module.rfind('/') + 1) == module_;
  }

  const PamLine* Find(const std::vector<PamLine>& lines) const {
    for (const auto& l : lines)
      if (Matches(l)) return &l;
    return nullptr;
  }

  // The last occurrence of an option wins, as modules parse argv in order.
  static std::optional<std::string> Last(const PamLine& l, const std::string& name) {
    std::optional<std::string> out;
    for (const auto& a : l.args)
      if (OptionName(a) == name) out = a;
    return out;
  }

  std::string Problems(const PamLine& l) const {
    std::string out;
    auto add = [&](const std::string& p) { out += (out.empty() ? "" : "; ") + p; };
    for (const auto& [name, value] : options_) {
      auto have = Last(l, name);
      std::string want = Render(name, value);
      if (!have) add("missing " + want);
      else if (*have != want) add(*have + " instead of " + want);
    }
    for (const auto& name : absent_)
      if (auto have = Last(l, name)) add("has " + *have);
    return out;
  }

  std::string Show(const PamLine& l) const {
    std::string args;
    for (const auto& a : l.args) args += " " + a;
    return CollapseSpaces(l.prefix) + args + " at " + file_ + ":" + std::to_string(l.first + 1);
  }

  std::string ExpectedText() const {
    if (!present_) return "no " + type_ + " line for " + module_;
    std::string out = type_ + " " + module_;
    for (const auto& [name, value] : options_) out += " " + Render(name, value);
    for (const auto& name : absent_) out += " without " + name;
    return out;
  }

  std::string file_, type_, module_;
  std::map<std::string, std::string> options_;
  std::vector<std::string> absent_;
  bool present_;
};

bool ValidOptionName(const std::string& n) {
  if (n.empty()) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

}  // namespace

Expected<CheckPtr> MakePam(Fields& f) {
  auto file = f.Path("file");
  if (!file) return Fail(file.error());
  auto type = f.OneOf("type", kTypes);
  if (!type) return Fail(type.error());
  auto module = f.String("module");
  if (!module) return Fail(module.error());
  if (module->empty() || module->find_first_of(" \t#[]=") != std::string::npos || !module->ends_with(".so"))
    return Fail(f.Bad("module", "must be a module file name such as pam_pwquality.so"));
  auto options = f.StringTable("options");
  if (!options) return Fail(options.error());
  for (const auto& [name, value] : *options) {
    if (!ValidOptionName(name)) return Fail(f.Bad("options", "'" + name + "' is not a module option name"));
    if (value.find_first_of(" \t\r\n#[]") != std::string::npos)
      return Fail(f.Bad("options", "value of '" + name + "' must not contain blanks, '#' or brackets"));
  }
  auto absent = f.Strings("absent_options");
  if (!absent) return Fail(absent.error());
  for (const auto& name : *absent) {
    if (!ValidOptionName(name)) return Fail(f.Bad("absent_options", "'" + name + "' is not a module option name"));
    if (options->contains(name)) return Fail(f.Bad("absent_options", "'" + name + "' is also in options"));
  }
  auto present = f.BoolOr("present", true);
  if (!present) return Fail(present.error());
  if (!*present && (!options->empty() || !absent->empty()))
    return Fail(f.Bad("present", "present = false checks that the line does not exist: options and absent_options are not used"));
  return std::make_shared<Pam>(*file, *type, *module, *options, *absent, *present);
}

}  // namespace parc::policy::kinds
