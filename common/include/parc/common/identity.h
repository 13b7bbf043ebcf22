// Hardware identity claims of a machine, derived from its inventory. The server
// uses them to flag two hosts claiming the same identity (clones, duplicate
// BIOS UUIDs) and to recognise a reinstalled machine; the agent sends them at
// enrollment.
#pragma once

#include <string>
#include <vector>

#include "parc/common/inventory_model.h"

namespace parc {

// "uuid:<system uuid>", "serial:<system serial>", "board:<board serial>",
// "mac:<mac of a physical NIC>", "disk:<disk serial>"; sorted, unique.
// Placeholder values firmware vendors ship ("To be filled by O.E.M.", all-zero
// UUIDs, "Default string", ...) and locally administered MACs are ignored.
std::vector<std::string> IdentityClaims(const inventory::ItemMap& items);

}  // namespace parc
