#include "fields_json.h"

#include <nlohmann/json.hpp>

#include "parc/common/canonical_json.h"

namespace parc::server::detail {

std::string EncodeFields(const inventory::Fields& fields) {
  std::string out;
  out.reserve(16 + fields.size() * 24);
  out += '{';
  bool first = true;
  for (const auto& [k, v] : fields) {
    if (!first) out += ',';
    first = false;
    cjson::AppendString(out, k);
    out += ':';
    cjson::AppendString(out, v);
  }
  out += '}';
  return out;
}

Expected<inventory::Fields> DecodeFields(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Fail(Errc::kDatabase, "stored inventory item is not a JSON object (database edited by hand?)");
  inventory::Fields fields;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string())
      return Fail(Errc::kDatabase, "stored inventory field '" + it.key() + "' is not text (database edited by hand?)");
    fields.emplace(it.key(), it.value().get_ref<const std::string&>());
  }
  return fields;
}

}  // namespace parc::server::detail
