// Small text encodings used by the index.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace parc::imaging::internal {

std::string Base64Encode(std::string_view bytes);
// Strict: standard alphabet, padded, no whitespace.
std::optional<std::string> Base64Decode(std::string_view text);
bool ValidUtf8(std::string_view s);

}  // namespace parc::imaging::internal
