// Typed, line-aware access to one [[rule]] table of a baseline file. Every
// getter marks its key as used; the parser refuses keys nobody used.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "parc/common/error.h"

namespace parc::policy {

class Fields {
 public:
  Fields(const toml::table& table, std::string file, std::string rule_id);

  Expected<std::string> String(const std::string& key);  // required
  Expected<std::string> StringOr(const std::string& key, const std::string& fallback);
  Expected<bool> BoolOr(const std::string& key, bool fallback);
  Expected<int64_t> IntOr(const std::string& key, int64_t fallback);
  // Array of strings; missing key = empty unless required.
  Expected<std::vector<std::string>> Strings(const std::string& key, bool required = false);
  // Table of string values ({ retry = "3", enforce_for_root = "" }); missing = empty.
  Expected<std::map<std::string, std::string>> StringTable(const std::string& key);
  // Required absolute in-system path without "..", "." or empty components.
  Expected<std::string> Path(const std::string& key);
  Expected<std::vector<std::string>> Paths(const std::string& key, bool required = true);
  // Octal mode string "0644" -> 0644.
  Expected<unsigned> Mode(const std::string& key);
  // Value must be one of choices.
  Expected<std::string> OneOf(const std::string& key, const std::vector<std::string>& choices,
                              const std::optional<std::string>& fallback = std::nullopt);
  bool Has(const std::string& key) const;

  // "file:line: rule 'id': key 'k': message"
  Error Bad(const std::string& key, const std::string& message) const;
  // Keys present and never read (typos).
  std::vector<std::string> Unused() const;

 private:
  int LineOf(const std::string& key) const;
  const toml::table& table_;
  std::string file_, rule_;
  std::set<std::string> used_;
};

// Checks an in-system path: absolute, no "..", no "." or empty components.
ExpectedVoid ValidateSystemPath(const std::string& path);

}  // namespace parc::policy
