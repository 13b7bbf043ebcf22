#include <catch2/catch.hpp>

#include "parc/common/inventory_model.h"
#include "parc/ctl/sections.h"

using namespace parc::ctl;
using Sections = std::vector<std::string>;

TEST_CASE("Section aliases expand in inventory.proto order", "[ctl]") {
  CHECK(ExpandSections("hardware").value() == Sections{"hardware", "cpu", "memory", "disks", "monitors"});
  CHECK(ExpandSections("network").value() == Sections{"interfaces", "network"});
  CHECK(ExpandSections("software").value() == Sections{"software"});
  CHECK(ExpandSections("os").value() == Sections{"os"});
  CHECK(ExpandSections("storage").value() == Sections{"disks", "filesystems"});
  CHECK(ExpandSections("accounts").value() == Sections{"users", "groups"});
  CHECK(ExpandSections("security").value() == Sections{"virtualization", "security"});
}

TEST_CASE("Exact section names and comma lists", "[ctl]") {
  CHECK(ExpandSections("services").value() == Sections{"services"});
  CHECK(ExpandSections("monitors,cpu").value() == Sections{"cpu", "monitors"});
  CHECK(ExpandSections("storage, disks").value() == Sections{"disks", "filesystems"});
}

TEST_CASE("Empty section means every section", "[ctl]") {
  CHECK(ExpandSections("").value() == parc::inventory::SectionNames());
}

TEST_CASE("Unknown section fails and lists the valid names", "[ctl]") {
  auto r = ExpandSections("hardwear");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().Is(parc::Errc::kInvalidArgument));
  CHECK(r.error().message().find("hardwear") != std::string::npos);
  CHECK(r.error().message().find("accounts") != std::string::npos);
  CHECK(r.error().message().find("filesystems") != std::string::npos);
  CHECK_FALSE(ExpandSections("cpu,nope").has_value());
}

TEST_CASE("Repeated and singular sections follow the proto", "[ctl]") {
  CHECK(IsRepeatedSection("software"));
  CHECK(IsRepeatedSection("disks"));
  CHECK_FALSE(IsRepeatedSection("os"));
  CHECK_FALSE(IsRepeatedSection("memory"));
  CHECK_FALSE(IsRepeatedSection("nonsense"));
}
