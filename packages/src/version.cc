#include "parc/packages/version.h"

#include <cctype>

namespace parc::pkg {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// deb-version(7): '~' sorts before everything, even the end of the part;
// letters sort before non-letters.
int Order(int c) {
  if (c == 0) return 0;
  if (IsDigit(static_cast<char>(c))) return 0;
  if (IsAlpha(static_cast<char>(c))) return c;
  if (c == '~') return -1;
  return c + 256;
}

int ComparePart(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    int first_diff = 0;
    while ((i < a.size() && !IsDigit(a[i])) || (j < b.size() && !IsDigit(b[j]))) {
      int ac = i < a.size() ? Order(static_cast<unsigned char>(a[i])) : 0;
      int bc = j < b.size() ? Order(static_cast<unsigned char>(b[j])) : 0;
      if (ac != bc) return ac - bc;
      ++i;
      ++j;
    }
    while (i < a.size() && a[i] == '0') ++i;
    while (j < b.size() && b[j] == '0') ++j;
    while (i < a.size() && IsDigit(a[i]) && j < b.size() && IsDigit(b[j])) {
      if (!first_diff) first_diff = a[i] - b[j];
      ++i;
      ++j;
    }
    if (i < a.size() && IsDigit(a[i])) return 1;
    if (j < b.size() && IsDigit(b[j])) return -1;
    if (first_diff) return first_diff;
  }
  return 0;
}

struct Parts {
  unsigned long long epoch = 0;
  std::string_view upstream;
  std::string_view revision;
};

Parts Split(std::string_view v) {
  Parts p;
  size_t colon = v.find(':');
  if (colon != std::string_view::npos) {
    unsigned long long e = 0;
    bool ok = colon > 0;
    for (size_t i = 0; i < colon && ok; ++i) {
      if (!IsDigit(v[i]) || e > 100'000'000) ok = false;
      else e = e * 10 + static_cast<unsigned>(v[i] - '0');
    }
    if (ok) {
      p.epoch = e;
      v.remove_prefix(colon + 1);
    }
  }
  size_t dash = v.rfind('-');
  if (dash != std::string_view::npos) {
    p.upstream = v.substr(0, dash);
    p.revision = v.substr(dash + 1);
  } else {
    p.upstream = v;
  }
  return p;
}

}  // namespace

int CompareVersions(std::string_view a, std::string_view b) {
  Parts pa = Split(a), pb = Split(b);
  if (pa.epoch != pb.epoch) return pa.epoch < pb.epoch ? -1 : 1;
  int r = ComparePart(pa.upstream, pb.upstream);
  if (r) return r < 0 ? -1 : 1;
  r = ComparePart(pa.revision, pb.revision);
  return r < 0 ? -1 : (r > 0 ? 1 : 0);
}

ExpectedVoid ValidateVersion(std::string_view version) {
  auto bad = [&](const std::string& why) {
    return Fail(Errc::kInvalidArgument, "bad version '" + std::string(version) + "': " + why);
  };
  if (version.empty()) return bad("empty");
  if (version.size() > 128) return bad("longer than 128 characters");
  std::string_view v = version;
  size_t colon = v.find(':');
  if (colon != std::string_view::npos) {
    if (colon == 0) return bad("empty epoch");
    if (colon > 9) return bad("epoch too large");
    for (size_t i = 0; i < colon; ++i)
      if (!IsDigit(v[i])) return bad("epoch must be a number");
    v.remove_prefix(colon + 1);
  }
  std::string_view upstream = v, revision;
  size_t dash = v.rfind('-');
  if (dash != std::string_view::npos) {
    upstream = v.substr(0, dash);
    revision = v.substr(dash + 1);
    if (revision.empty()) return bad("empty revision after '-'");
  }
  if (upstream.empty()) return bad("empty upstream version");
  if (!IsDigit(upstream.front())) return bad("upstream version must start with a digit");
  for (char c : upstream)
    if (!IsDigit(c) && !IsAlpha(c) && c != '.' && c != '+' && c != '~' && c != '-')
      return bad(std::string("character '") + c + "' is not allowed");
  for (char c : upstream)
    if (c == ':') return bad("':' is only allowed once, after the epoch");
  for (char c : revision)
    if (!IsDigit(c) && !IsAlpha(c) && c != '.' && c != '+' && c != '~')
      return bad(std::string("character '") + c + "' is not allowed in the revision");
  return {};
}

std::string Constraint::String() const {
  const char* op = "";
  switch (relation) {
    case Relation::kAny: return name;
    case Relation::kLess: op = "<<"; break;
    case Relation::kLessEqual: op = "<="; break;
    case Relation::kEqual: op = "="; break;
    case Relation::kGreaterEqual: op = ">="; break;
    case Relation::kGreater: op = ">>"; break;
  }
  return name + " (" + op + " " + version + ")";
}

namespace {
bool ValidPackageName(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  auto ok_first = [](char c) { return IsDigit(c) || (c >= 'a' && c <= 'z'); };
  if (!ok_first(n.front())) return false;
  for (char c : n)
    if (!ok_first(c) && c != '+' && c != '.' && c != '-') return false;
  return true;
}
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

Expected<Constraint> ParseConstraint(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Fail(Errc::kInvalidArgument, "bad dependency '" + std::string(text) + "': " + why);
  };
  std::string_view s = Trim(text);
  Constraint c;
  size_t paren = s.find('(');
  std::string_view name = Trim(s.substr(0, paren));
  if (!ValidPackageName(name))
    return bad("package name must be lower-case letters, digits and '+.-', starting with a letter or digit");
  c.name = std::string(name);
  if (paren == std::string_view::npos) return c;
  std::string_view rest = s.substr(paren + 1);
  if (rest.empty() || rest.back() != ')') return bad("missing ')'");
  rest.remove_suffix(1);
  rest = Trim(rest);
  struct Op { const char* text; Relation rel; };
  static constexpr Op kOps[] = {{"<<", Relation::kLess},         {"<=", Relation::kLessEqual},
                                {">=", Relation::kGreaterEqual}, {">>", Relation::kGreater},
                                {"=", Relation::kEqual}};
  bool found = false;
  for (const auto& op : kOps) {
    std::string_view t = op.text;
    if (rest.substr(0, t.size()) == t) {
      c.relation = op.rel;
      rest.remove_prefix(t.size());
      found = true;
      break;
    }
  }
  if (!found) {
    if (!rest.empty() && (rest.front() == '<' || rest.front() == '>'))
      return bad("'<' and '>' are ambiguous: use '<<', '<=', '>=' or '>>'");
    return bad("relation must be one of << <= = >= >>");
  }
  if (!rest.empty() && (rest.front() == '<' || rest.front() == '>' || rest.front() == '='))
    return bad("relation must be one of << <= = >= >>");
  rest = Trim(rest);
  if (auto v = ValidateVersion(rest); !v) return bad(v.error().message());
  c.version = std::string(rest);
  return c;
}

bool Satisfies(std::string_view version, const Constraint& c) {
  if (c.relation == Relation::kAny) return true;
  int r = CompareVersions(version, c.version);
  switch (c.relation) {
    case Relation::kAny: return true;
    case Relation::kLess: return r < 0;
    case Relation::kLessEqual: return r <= 0;
    case Relation::kEqual: return r == 0;
    case Relation::kGreaterEqual: return r >= 0;
    case Relation::kGreater: return r > 0;
  }
  return false;
}

}  // namespace parc::pkg
