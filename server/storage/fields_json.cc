#include "fields_json.h"

#include <nlohmann/json.hpp>

namespace parc::server::detail {
namespace {

// Most inventory text is plain ASCII; only strings that need escaping or
// UTF-8 checking go through nlohmann::json, which defines the canonical form.
void AppendJsonString(std::string& out, const std::string& s) {
  bool plain = true;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x80 || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  // dump() with the replace handler does not throw; the guard is for allocation failures.
  try {
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception&) {
    out += "\"\"";
  }
}

}  // namespace

std::string EncodeFields(const inventory::Fields& fields) {
  std::string out;
  out.reserve(16 + fields.size() * 24);
  out += '{';
  bool first = true;
  for (const auto& [k, v] : fields) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, k);
    out += ':';
    AppendJsonString(out, v);
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
