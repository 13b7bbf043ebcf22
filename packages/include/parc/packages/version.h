// Debian version ordering ([epoch:]upstream[-revision], '~' sorts before
// everything, even the end) and dependency constraints ("libfoo (>= 1.2)").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::pkg {

// <0, 0, >0 like strcmp, following deb-version(7). Malformed input compares as text.
int CompareVersions(std::string_view a, std::string_view b);
// Empty, or [epoch:]upstream[-revision] with Debian's allowed characters.
ExpectedVoid ValidateVersion(std::string_view version);

enum class Relation { kAny, kLess, kLessEqual, kEqual, kGreaterEqual, kGreater };  // <<, <=, =, >=, >>

struct Constraint {
  std::string name;
  Relation relation = Relation::kAny;
  std::string version;  // empty when relation is kAny
  std::string String() const;  // "libfoo (>= 1.2)"
};

// "name", "name (>= 1.0)", "name (<< 2~beta)"; '<' and '>' alone are refused (ambiguous).
Expected<Constraint> ParseConstraint(std::string_view text);
bool Satisfies(std::string_view version, const Constraint& c);

}  // namespace parc::pkg
