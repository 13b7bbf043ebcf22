// The parc database schema as numbered migrations (fixed text: a database
// migrated once must never see a migration change under it).
#pragma once

#include <string_view>
#include <vector>

namespace parc::server::detail {

const std::vector<std::string_view>& Migrations();

}  // namespace parc::server::detail
