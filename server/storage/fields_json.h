// The stored form of an item's fields: a JSON object with sorted keys, so that
// SQLite's json_extract() works for ad-hoc queries and equal fields give equal
// text (the writer compares texts to skip unchanged items without parsing).
#pragma once

#include <string>
#include <string_view>

#include "parc/common/error.h"
#include "parc/common/inventory_model.h"

namespace parc::server::detail {

// Byte-identical to nlohmann::json(fields).dump() (invalid UTF-8 replaced by U+FFFD).
std::string EncodeFields(const inventory::Fields& fields);
Expected<inventory::Fields> DecodeFields(std::string_view json);

}  // namespace parc::server::detail
