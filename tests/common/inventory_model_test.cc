// The generic inventory model: flatten, digest, diff/apply, validation and the
// history rules (no phantom churn).
#include <catch2/catch.hpp>

#include "parc/common/inventory_model.h"

using namespace parc;
using namespace parc::inventory;

namespace {
v1::Inventory Sample() {
  v1::Inventory inv;
  inv.mutable_os()->set_hostname("pc-01");
  inv.mutable_os()->set_pretty_name("Debian GNU/Linux 12 (bookworm)");
  inv.mutable_os()->set_boot_time(1000);
  inv.mutable_memory()->set_total_bytes(8ull << 30);
  inv.mutable_memory()->set_available_bytes(3ull << 30);
  auto* p = inv.add_software();
  p->set_name("bash");
  p->set_architecture("amd64");
  p->set_version("5.2.15-2+b2");
  p = inv.add_software();
  p->set_name("zstd");
  p->set_architecture("amd64");
  p->set_version("1.5.4+dfsg2-5");
  auto* fs = inv.add_filesystems();
  fs->set_mount_point("/");
  fs->set_type("ext4");
  fs->set_size_bytes(100);
  fs->set_free_bytes(40);
  auto* n = inv.add_interfaces();
  n->set_name("eth0");
  n->set_mac("52:54:00:12:34:56");
  n->add_addresses("10.0.0.5/24");
  n->add_addresses("fe80::1/64");
  return inv;
}
}  // namespace

TEST_CASE("sections and their options come from inventory.proto") {
  CHECK(SectionNames().front() == "os");
  CHECK(IsSection("software"));
  CHECK_FALSE(IsSection("nope"));
  CHECK(IsVolatile("filesystems", "free_bytes"));
  CHECK(IsVolatile("memory", "available_bytes"));
  CHECK_FALSE(IsVolatile("software", "version"));
  CHECK(FieldNames("software").front() == "name");
}

TEST_CASE("flatten keys repeated items by their key fields and omits empty values") {
  auto items = Flatten(Sample());
  REQUIRE(items.count({"software", "bash|amd64"}) == 1);
  CHECK(items.at({"software", "bash|amd64"}).at("version") == "5.2.15-2+b2");
  CHECK(items.at({"os", ""}).count("fqdn") == 0);
  CHECK(items.at({"interfaces", "eth0"}).at("addresses") == "10.0.0.5/24,fe80::1/64");
  // Round trip through the typed form.
  CHECK(Flatten(Unflatten(items)) == items);
}

TEST_CASE("digest depends on content, not on order of collection") {
  auto a = Sample();
  auto b = Sample();
  std::swap(*b.mutable_software(0), *b.mutable_software(1));
  CHECK(Digest(Flatten(a)) == Digest(Flatten(b)));
  b.mutable_software(0)->set_version("9");
  CHECK(Digest(Flatten(a)) != Digest(Flatten(b)));
}

TEST_CASE("a delta turns one inventory into the other and refuses the wrong base") {
  auto before = Flatten(Sample());
  auto inv = Sample();
  inv.mutable_software()->RemoveLast();
  auto* p = inv.add_software();
  p->set_name("curl");
  p->set_architecture("amd64");
  p->set_version("7.88.1-10");
  auto after = Flatten(inv);
  auto delta = Diff(before, after);
  CHECK(delta.upserts_size() == 1);
  CHECK(delta.removals_size() == 1);
  auto copy = before;
  REQUIRE(Apply(copy, delta));
  CHECK(copy == after);
  // Applying twice: base no longer matches, nothing changes.
  auto again = Apply(copy, delta);
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kFailedPrecondition));
  CHECK(copy == after);
  // A delta whose claimed result digest is a lie is refused.
  auto bad = delta;
  bad.set_digest("00");
  auto fresh = before;
  REQUIRE_FALSE(Apply(fresh, bad));
  CHECK(fresh == before);
}

TEST_CASE("history: added, removed, changed fields - volatile-only changes make none") {
  auto before = Flatten(Sample());
  SECTION("identical inventory") { CHECK(HistoryChanges(before, before).empty()); }
  SECTION("volatile values only") {
    auto inv = Sample();
    inv.mutable_filesystems(0)->set_free_bytes(1);
    inv.mutable_memory()->set_available_bytes(1);
    inv.mutable_os()->set_boot_time(2000);
    CHECK(HistoryChanges(before, Flatten(inv)).empty());
  }
  SECTION("real changes") {
    auto inv = Sample();
    inv.mutable_software(0)->set_version("5.2.15-3");
    inv.mutable_interfaces(0)->set_addresses(0, "10.0.0.6/24");
    auto* p = inv.add_software();
    p->set_name("vim");
    p->set_architecture("amd64");
    p->set_version("2:9.0");
    inv.mutable_filesystems()->Clear();
    auto changes = HistoryChanges(before, Flatten(inv));
    REQUIRE(changes.size() == 4);
    int added = 0, removed = 0, changed = 0;
    for (const auto& c : changes) {
      if (c.change == "added") {
        ++added;
        CHECK(c.key == "vim|amd64");
      } else if (c.change == "removed") {
        ++removed;
        CHECK(c.section == "filesystems");
      } else {
        ++changed;
        if (c.section == "software") {
          CHECK(c.field == "version");
          CHECK(c.old_value == "5.2.15-2+b2");
          CHECK(c.new_value == "5.2.15-3");
        } else {
          CHECK(c.section == "interfaces");
          CHECK(c.new_value == "10.0.0.6/24,fe80::1/64");
        }
      }
    }
    CHECK(added == 1);
    CHECK(removed == 1);
    CHECK(changed == 2);
  }
}

TEST_CASE("validation refuses unknown sections, fields and oversized values") {
  ItemMap items = Flatten(Sample());
  CHECK(Validate(items));
  auto bad = items;
  bad[{"rootkits", ""}] = {{"x", "1"}};
  CHECK(Validate(bad).error().Is(Errc::kInvalidArgument));
  bad = items;
  bad[{"software", "x|y"}] = {{"evil", "1"}};
  CHECK_FALSE(Validate(bad));
  bad = items;
  bad[{"software", "x|y"}] = {{"name", std::string(70000, 'a')}};
  CHECK_FALSE(Validate(bad));
  bad = items;
  bad[{"os", "key-on-singular"}] = {{"hostname", "x"}};
  CHECK_FALSE(Validate(bad));
  v1::InventoryDelta delta;
  auto* up = delta.add_upserts();
  up->set_section("software");
  up->set_key(std::string(5000, 'k'));
  CHECK_FALSE(Validate(delta));
}
