#include "fields.h"

#include <algorithm>

namespace parc::policy {

Fields::Fields(const toml::table& table, std::string file, std::string rule_id)
    : table_(table), file_(std::move(file)), rule_(std::move(rule_id)) {}

int Fields::LineOf(const std::string& key) const {
  if (const auto* n = table_.get(key)) return static_cast<int>(n->source().begin.line);
  return static_cast<int>(table_.source().begin.line);
}

Error Fields::Bad(const std::string& key, const std::string& message) const {
  std::string where = file_ + ":" + std::to_string(LineOf(key)) + ": ";
  if (!rule_.empty()) where += "rule '" + rule_ + "': ";
  return Error(Errc::kParse, where + "key '" + key + "': " + message);
}

bool Fields::Has(const std::string& key) const { return table_.contains(key); }

std::vector<std::string> Fields::Unused() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : table_) {
    std::string key(k.str());
    if (!used_.contains(key)) out.push_back(key);
  }
  return out;
}

Expected<std::string> Fields::String(const std::string& key) {
  used_.insert(key);
  const auto* n = table_.get(key);
  if (!n) return Fail(Bad(key, "is required"));
  if (!n->is_string()) return Fail(Bad(key, "must be a string"));
  return n->as_string()->get();
}

Expected<std::string> Fields::StringOr(const std::string& key, const std::string& fallback) {
  if (!Has(key)) {
    used_.insert(key);
    return fallback;
  }
  return String(key);
}

Expected<bool> Fields::BoolOr(const std::string& key, bool fallback) {
  used_.insert(key);
  const auto* n = table_.get(key);
  if (!n) return fallback;
  if (!n->is_boolean()) return Fail(Bad(key, "must be true or false"));
  return n->as_boolean()->get();
}

Expected<int64_t> Fields::IntOr(const std::string& key, int64_t fallback) {
  used_.insert(key);
  const auto* n = table_.get(key);
  if (!n) return fallback;
  if (!n->is_integer()) return Fail(Bad(key, "must be an integer"));
  return n->as_integer()->get();
}

Expected<std::vector<std::string>> Fields::Strings(const std::string& key, bool required) {
  used_.insert(key);
  const auto* n = table_.get(key);
  if (!n) {
    if (required) return Fail(Bad(key, "is required"));
    return std::vector<std::string>{};
  }
  const auto* arr = n->as_array();
  if (!arr) return Fail(Bad(key, "must be an array of strings"));
  std::vector<std::string> out;
  for (const auto& e : *arr) {
    if (!e.is_string()) return Fail(Bad(key, "must be an array of strings"));
    out.push_back(e.as_string()->get());
  }
  if (required && out.empty()) return Fail(Bad(key, "must not be empty"));
  return out;
}

Expected<std::map<std::string, std::string>> Fields::StringTable(const std::string& key) {
  used_.insert(key);
  std::map<std::string, std::string> out;
  const auto* n = table_.get(key);
  if (!n) return out;
  const auto* t = n->as_table();
  if (!t) return Fail(Bad(key, "must be a table of strings ({ name = \"value\" })"));
  for (const auto& [k, v] : *t) {
    if (!v.is_string()) return Fail(Bad(key, "value of '" + std::string(k.str()) + "' must be a string"));
    out[std::string(k.str())] = v.as_string()->get();
  }
  return out;
}

ExpectedVoid ValidateSystemPath(const std::string& path) {
  if (path.empty() || path[0] != '/') return Fail(Errc::kInvalidArgument, "'" + path + "' is not an absolute path");
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string_view comp(path.data() + i, j - i);
    if (comp == "..") return Fail(Errc::kInvalidArgument, "'" + path + "' contains '..' (it would leave the root)");
    if (comp == "." || (comp.empty() && j != path.size()))
      return Fail(Errc::kInvalidArgument, "'" + path + "' has an empty or '.' component");
    i = j + 1;
  }
  return {};
}

Expected<std::string> Fields::Path(const std::string& key) {
  auto s = String(key);
  if (!s) return s;
  if (auto v = ValidateSystemPath(*s); !v) return Fail(Bad(key, v.error().message()));
  return s;
}

Expected<std::vector<std::string>> Fields::Paths(const std::string& key, bool required) {
  auto v = Strings(key, required);
  if (!v) return v;
  for (const auto& p : *v)
    if (auto ok = ValidateSystemPath(p); !ok) return Fail(Bad(key, ok.error().message()));
  return v;
}

Expected<unsigned> Fields::Mode(const std::string& key) {
  auto s = String(key);
  if (!s) return Fail(s.error());
  if (s->empty() || s->size() > 5 || s->find_first_not_of("01234567") != std::string::npos)
    return Fail(Bad(key, "must be an octal mode string such as \"0644\""));
  unsigned m = static_cast<unsigned>(std::stoul(*s, nullptr, 8));
  if (m > 07777) return Fail(Bad(key, "mode out of range"));
  return m;
}

Expected<std::string> Fields::OneOf(const std::string& key, const std::vector<std::string>& choices,
                                    const std::optional<std::string>& fallback) {
  if (!Has(key) && fallback) {
    used_.insert(key);
    return *fallback;
  }
  auto s = String(key);
  if (!s) return s;
  if (std::find(choices.begin(), choices.end(), *s) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    return Fail(Bad(key, "'" + *s + "' is not one of: " + list));
  }
  return s;
}

}  // namespace parc::policy
