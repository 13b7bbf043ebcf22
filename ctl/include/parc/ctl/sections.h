// Inventory section names as people type them: aliases that group related
// sections ("hardware" = hardware, cpu, memory, disks, monitors), exact section
// names, and comma-separated lists of both.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::ctl {

struct SectionAlias {
  std::string name;
  std::vector<std::string> sections;
};
const std::vector<SectionAlias>& SectionAliases();

// The inventory sections `text` stands for, in inventory.proto order, without
// duplicates. "" means every section. Unknown names fail with kInvalidArgument
// and a message listing the valid ones.
Expected<std::vector<std::string>> ExpandSections(std::string_view text);

// "aliases: hardware, network, ...; sections: os, hardware, ..." for --help and errors.
std::string ValidSectionNames();

// True for sections holding many items (software, disks ...), false for the
// singular ones (os, hardware ...), decided by inventory.proto.
bool IsRepeatedSection(const std::string& section);

}  // namespace parc::ctl
