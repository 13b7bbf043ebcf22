// The generic form of an inventory, derived from inventory.proto by reflection:
// a sorted map (section, key) -> fields. Digest, delta, history and export all
// work on this form, so adding a field to the .proto needs no code here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "parc/common/error.h"
#include "parc/v1/inventory.pb.h"

namespace parc::inventory {

using Fields = std::map<std::string, std::string>;
using ItemId = std::pair<std::string, std::string>;  // (section, key)
using ItemMap = std::map<ItemId, Fields>;

// One history row: what changed in one item.
struct Change {
  std::string section;
  std::string key;
  std::string change;  // "added", "removed", "changed"
  std::string field;   // for "changed"
  std::string old_value;
  std::string new_value;
};

// Section names in proto field order ("os", "hardware", ..., "security").
const std::vector<std::string>& SectionNames();
bool IsSection(const std::string& section);
bool IsField(const std::string& section, const std::string& field);
bool IsVolatile(const std::string& section, const std::string& field);
// Field names of a section in proto order (for tables and CSV headers).
const std::vector<std::string>& FieldNames(const std::string& section);

// Typed inventory -> generic items. Empty values and unset singular sections are omitted.
ItemMap Flatten(const v1::Inventory& inventory);
// Generic items -> typed inventory (for display of stored data).
v1::Inventory Unflatten(const ItemMap& items);

// SHA-256 (hex) over the canonical encoding of every item, volatile fields included.
std::string Digest(const ItemMap& items);

// The delta that turns `from` into `to`.
v1::InventoryDelta Diff(const ItemMap& from, const ItemMap& to);
// Applies a delta; fails if `items` is not the delta's base or the result does not
// match the delta's digest. `items` is unchanged on failure.
ExpectedVoid Apply(ItemMap& items, const v1::InventoryDelta& delta);

// Checks that every section and field exists and that sizes are sane
// (defence against a malformed or hostile agent).
ExpectedVoid Validate(const ItemMap& items);
ExpectedVoid Validate(const v1::InventoryDelta& delta);

// History rows between two inventories: added / removed items, and one row per
// changed non-volatile field. Volatile-only changes produce nothing.
std::vector<Change> HistoryChanges(const ItemMap& before, const ItemMap& after);

v1::InventoryItem ToProto(const ItemId& id, const Fields& fields);

}  // namespace parc::inventory
