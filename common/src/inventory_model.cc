#include "parc/common/inventory_model.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <set>
#include <unordered_map>

#include "parc/common/hash.h"
#include "parc/v1/options.pb.h"

namespace parc::inventory {
namespace pb = google::protobuf;

namespace {

constexpr size_t kMaxItems = 500000;
constexpr size_t kMaxKey = 4096;
constexpr size_t kMaxValue = 65536;

struct SectionInfo {
  const pb::FieldDescriptor* field = nullptr;  // the Inventory field
  std::vector<std::string> field_names;
  std::set<std::string> volatile_fields;
  std::vector<const pb::FieldDescriptor*> key_fields;
};

struct Catalogue {
  std::vector<std::string> names;
  std::unordered_map<std::string, SectionInfo> sections;

  Catalogue() {
    const pb::Descriptor* inv = v1::Inventory::descriptor();
    for (int i = 0; i < inv->field_count(); ++i) {
      const pb::FieldDescriptor* f = inv->field(i);
      SectionInfo info;
      info.field = f;
      const pb::Descriptor* m = f->message_type();
      for (int j = 0; j < m->field_count(); ++j) {
        const pb::FieldDescriptor* sf = m->field(j);
        info.field_names.push_back(sf->name());
        if (sf->options().GetExtension(v1::volatile_)) info.volatile_fields.insert(sf->name());
        if (sf->options().GetExtension(v1::item_key)) info.key_fields.push_back(sf);
      }
      names.push_back(f->name());
      sections.emplace(f->name(), std::move(info));
    }
  }
};

const Catalogue& Cat() {
  static const Catalogue c;
  return c;
}

std::string ScalarText(const pb::Message& m, const pb::FieldDescriptor* f) {
  const pb::Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING: return r->GetString(m, f);
    case pb::FieldDescriptor::CPPTYPE_INT32: return std::to_string(r->GetInt32(m, f));
    case pb::FieldDescriptor::CPPTYPE_INT64: return std::to_string(r->GetInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_UINT32: return std::to_string(r->GetUInt32(m, f));
    case pb::FieldDescriptor::CPPTYPE_UINT64: return std::to_string(r->GetUInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(m, f) ? "true" : "false";
    default: return {};
  }
}

bool IsDefault(const pb::Message& m, const pb::FieldDescriptor* f) {
  const pb::Reflection* r = m.GetReflection();
  if (f->is_repeated()) return r->FieldSize(m, f) == 0;
  return !r->HasField(m, f);  // proto3 scalars: HasField means "not the default"
}

Fields ItemFields(const pb::Message& m) {
  Fields out;
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (IsDefault(m, f)) continue;
    if (f->is_repeated()) {
      std::string joined;
      for (int k = 0; k < r->FieldSize(m, f); ++k) {
        if (k) joined += ',';
        joined += r->GetRepeatedString(m, f, k);
      }
      out[f->name()] = std::move(joined);
    } else {
      out[f->name()] = ScalarText(m, f);
    }
  }
  return out;
}

std::string ItemKey(const pb::Message& m, const SectionInfo& info) {
  std::string key;
  for (size_t i = 0; i < info.key_fields.size(); ++i) {
    if (i) key += '|';
    key += ScalarText(m, info.key_fields[i]);
  }
  return key;
}

void SetField(pb::Message* m, const pb::FieldDescriptor* f, const std::string& v) {
  const pb::Reflection* r = m->GetReflection();
  if (f->is_repeated()) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      if (comma == std::string::npos) comma = v.size();
      r->AddString(m, f, v.substr(start, comma - start));
      start = comma + 1;
    }
    return;
  }
  try {
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING: r->SetString(m, f, v); break;
      case pb::FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, std::stoi(v)); break;
      case pb::FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, std::stoll(v)); break;
      case pb::FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, static_cast<uint32_t>(std::stoul(v))); break;
      case pb::FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, std::stoull(v)); break;
      case pb::FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, v == "true"); break;
      default: break;
    }
  } catch (const std::exception&) {
    // A stored value that is not a number is shown as unset rather than failing the whole view.
  }
}

void AppendLengthPrefixed(std::string& out, const std::string& s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

}  // namespace

const std::vector<std::string>& SectionNames() { return Cat().names; }
bool IsSection(const std::string& section) { return Cat().sections.count(section) != 0; }

bool IsField(const std::string& section, const std::string& field) {
  auto it = Cat().sections.find(section);
  if (it == Cat().sections.end()) return false;
  for (const auto& n : it->second.field_names)
    if (n == field) return true;
  return false;
}

bool IsVolatile(const std::string& section, const std::string& field) {
  auto it = Cat().sections.find(section);
  return it != Cat().sections.end() && it->second.volatile_fields.count(field) != 0;
}

const std::vector<std::string>& FieldNames(const std::string& section) {
  static const std::vector<std::string> kNone;
  auto it = Cat().sections.find(section);
  return it == Cat().sections.end() ? kNone : it->second.field_names;
}

ItemMap Flatten(const v1::Inventory& inventory) {
  ItemMap items;
  const pb::Reflection* r = inventory.GetReflection();
  for (const auto& name : Cat().names) {
    const SectionInfo& info = Cat().sections.at(name);
    if (info.field->is_repeated()) {
      for (int i = 0; i < r->FieldSize(inventory, info.field); ++i) {
        const pb::Message& m = r->GetRepeatedMessage(inventory, info.field, i);
        items[{name, ItemKey(m, info)}] = ItemFields(m);
      }
    } else if (r->HasField(inventory, info.field)) {
      items[{name, ""}] = ItemFields(r->GetMessage(inventory, info.field));
    }
  }
  return items;
}

v1::Inventory Unflatten(const ItemMap& items) {
  v1::Inventory inv;
  const pb::Reflection* r = inv.GetReflection();
  for (const auto& [id, fields] : items) {
    auto it = Cat().sections.find(id.first);
    if (it == Cat().sections.end()) continue;
    const SectionInfo& info = it->second;
    pb::Message* m = info.field->is_repeated() ? r->AddMessage(&inv, info.field) : r->MutableMessage(&inv, info.field);
    const pb::Descriptor* d = m->GetDescriptor();
    for (const auto& [fname, value] : fields) {
      if (const pb::FieldDescriptor* f = d->FindFieldByName(fname)) SetField(m, f, value);
    }
  }
  return inv;
}

std::string Digest(const ItemMap& items) {
  std::string canon;
  for (const auto& [id, fields] : items) {
    AppendLengthPrefixed(canon, id.first);
    AppendLengthPrefixed(canon, id.second);
    canon += std::to_string(fields.size());
    canon += '{';
    for (const auto& [k, v] : fields) {
      AppendLengthPrefixed(canon, k);
      AppendLengthPrefixed(canon, v);
    }
    canon += '}';
  }
  return Sha256Hex(canon);
}

v1::InventoryItem ToProto(const ItemId& id, const Fields& fields) {
  v1::InventoryItem item;
  item.set_section(id.first);
  item.set_key(id.second);
  for (const auto& [k, v] : fields) (*item.mutable_fields())[k] = v;
  return item;
}

v1::InventoryDelta Diff(const ItemMap& from, const ItemMap& to) {
  v1::InventoryDelta delta;
  delta.set_base_digest(Digest(from));
  delta.set_digest(Digest(to));
  for (const auto& [id, fields] : to) {
    auto it = from.find(id);
    if (it == from.end() || it->second != fields) *delta.add_upserts() = ToProto(id, fields);
  }
  for (const auto& [id, fields] : from) {
    if (!to.count(id)) {
      auto* rm = delta.add_removals();
      rm->set_section(id.first);
      rm->set_key(id.second);
    }
  }
  return delta;
}

ExpectedVoid Apply(ItemMap& items, const v1::InventoryDelta& delta) {
  if (Digest(items) != delta.base_digest())
    return Fail(Errc::kFailedPrecondition, "inventory delta does not apply to the stored inventory");
  ItemMap next = items;
  for (const auto& rm : delta.removals()) next.erase({rm.section(), rm.key()});
  for (const auto& up : delta.upserts()) {
    Fields f(up.fields().begin(), up.fields().end());
    next[{up.section(), up.key()}] = std::move(f);
  }
  if (Digest(next) != delta.digest())
    return Fail(Errc::kInvalidArgument, "inventory delta result does not match its digest");
  items = std::move(next);
  return {};
}

namespace {
ExpectedVoid ValidateItem(const std::string& section, const std::string& key, const Fields* fields) {
  auto it = Cat().sections.find(section);
  if (it == Cat().sections.end()) return Fail(Errc::kInvalidArgument, "unknown inventory section '" + section.substr(0, 64) + "'");
  if (key.size() > kMaxKey) return Fail(Errc::kInvalidArgument, "inventory item key too long in section " + section);
  if (!it->second.field->is_repeated() && !key.empty())
    return Fail(Errc::kInvalidArgument, "section " + section + " holds a single item and takes no key");
  if (!fields) return {};
  for (const auto& [k, v] : *fields) {
    if (!IsField(section, k)) return Fail(Errc::kInvalidArgument, "unknown field '" + k.substr(0, 64) + "' in section " + section);
    if (v.size() > kMaxValue) return Fail(Errc::kInvalidArgument, "value of " + section + "." + k + " too long");
  }
  return {};
}
}  // namespace

ExpectedVoid Validate(const ItemMap& items) {
  if (items.size() > kMaxItems) return Fail(Errc::kResourceExhausted, "inventory has too many items");
  for (const auto& [id, fields] : items)
    if (auto r = ValidateItem(id.first, id.second, &fields); !r) return r;
  return {};
}

ExpectedVoid Validate(const v1::InventoryDelta& delta) {
  if (static_cast<size_t>(delta.upserts_size() + delta.removals_size()) > kMaxItems)
    return Fail(Errc::kResourceExhausted, "inventory delta has too many items");
  for (const auto& up : delta.upserts()) {
    Fields f(up.fields().begin(), up.fields().end());
    if (auto r = ValidateItem(up.section(), up.key(), &f); !r) return r;
  }
  for (const auto& rm : delta.removals())
    if (auto r = ValidateItem(rm.section(), rm.key(), nullptr); !r) return r;
  return {};
}

std::vector<Change> HistoryChanges(const ItemMap& before, const ItemMap& after) {
  std::vector<Change> out;
  auto b = before.begin();
  auto a = after.begin();
  while (b != before.end() || a != after.end()) {
    if (a == after.end() || (b != before.end() && b->first < a->first)) {
      out.push_back({b->first.first, b->first.second, "removed", "", "", ""});
      ++b;
    } else if (b == before.end() || a->first < b->first) {
      out.push_back({a->first.first, a->first.second, "added", "", "", ""});
      ++a;
    } else {
      const std::string& section = a->first.first;
      std::set<std::string> names;
      for (const auto& [k, v] : b->second) names.insert(k);
      for (const auto& [k, v] : a->second) names.insert(k);
      for (const auto& name : names) {
        if (IsVolatile(section, name)) continue;
        auto ob = b->second.find(name);
        auto oa = a->second.find(name);
        std::string old_v = ob == b->second.end() ? "" : ob->second;
        std::string new_v = oa == a->second.end() ? "" : oa->second;
        if (old_v != new_v) out.push_back({section, a->first.second, "changed", name, old_v, new_v});
      }
      ++a;
      ++b;
    }
  }
  return out;
}

}  // namespace parc::inventory
