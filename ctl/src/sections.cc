#include "parc/ctl/sections.h"

#include <algorithm>
#include <set>

#include "parc/common/inventory_model.h"
#include "parc/ctl/text.h"

namespace parc::ctl {

const std::vector<SectionAlias>& SectionAliases() {
  // Aliases win over the section of the same name: someone asking for
  // "hardware" wants the CPU and memory too, not only the DMI strings.
  static const std::vector<SectionAlias> kAliases = {
      {"hardware", {"hardware", "cpu", "memory", "disks", "monitors"}},
      {"network", {"interfaces", "network"}},
      {"software", {"software"}},
      {"os", {"os"}},
      {"storage", {"disks", "filesystems"}},
      {"accounts", {"users", "groups"}},
      {"security", {"security", "virtualization"}},
  };
  return kAliases;
}

std::string ValidSectionNames() {
  std::vector<std::string> aliases;
  for (const auto& a : SectionAliases()) aliases.push_back(a.name);
  return "aliases: " + Join(aliases, ", ") + "; sections: " + Join(inventory::SectionNames(), ", ");
}

Expected<std::vector<std::string>> ExpandSections(std::string_view text) {
  std::set<std::string> wanted;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string name = Trim(text.substr(start, comma - start));
    start = comma + 1;
    if (name.empty()) continue;
    auto alias = std::find_if(SectionAliases().begin(), SectionAliases().end(),
                              [&](const SectionAlias& a) { return a.name == name; });
    if (alias != SectionAliases().end()) {
      wanted.insert(alias->sections.begin(), alias->sections.end());
    } else if (inventory::IsSection(name)) {
      wanted.insert(name);
    } else {
      return Fail(Errc::kInvalidArgument, "unknown inventory section '" + name + "' (" + ValidSectionNames() + ")");
    }
  }
  std::vector<std::string> out;
  for (const auto& s : inventory::SectionNames())
    if (wanted.empty() || wanted.count(s)) out.push_back(s);
  return out;
}

bool IsRepeatedSection(const std::string& section) {
  const auto* field = v1::Inventory::descriptor()->FindFieldByName(section);
  return field != nullptr && field->is_repeated();
}

}  // namespace parc::ctl
