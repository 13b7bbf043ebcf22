// What is particular to the SQLite parc database: schema versioning, the
// asset managers' SQL views, identity claims extraction.
#include <nlohmann/json.hpp>

#include "fields_json.h"
#include "schema.h"
#include "parc/common/sqlite.h"
#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

int64_t ScalarInt(const std::filesystem::path& path, const std::string& sql) {
  auto db = Ok(sql::Database::Open(path));
  auto st = Ok(db.Prepare(sql));
  REQUIRE(Ok(st.Step()));
  return st.Int(0);
}

}  // namespace

TEST_CASE("migrations are applied once and recorded in user_version", "[storage][sqlite]") {
  parc::test::TempDir dir;
  const auto path = dir / "parc.db";
  {
    auto s = Ok(OpenSqliteStorage(path.string()));
    Enroll(*s, "h1", "pc1");
  }
  CHECK(ScalarInt(path, "PRAGMA user_version") == static_cast<int64_t>(detail::Migrations().size()));
  {
    auto s = Ok(OpenSqliteStorage(path.string()));  // would fail on CREATE TABLE if re-applied
    CHECK(Ok(s->GetHost("h1")).hostname == "pc1");
  }
  CHECK(ScalarInt(path, "PRAGMA user_version") == static_cast<int64_t>(detail::Migrations().size()));

  // A database from a newer Parc is refused rather than misread.
  {
    auto db = Ok(sql::Database::Open(path));
    Ok(db.Exec("PRAGMA user_version = 99"));
  }
  auto newer = OpenSqliteStorage(path.string());
  REQUIRE_FALSE(newer);
  CHECK(newer.error().Is(Errc::kFailedPrecondition));
}

TEST_CASE("asset managers can query the inventory views with plain SQL", "[storage][sqlite]") {
  parc::test::TempDir dir;
  const auto path = dir / "parc.db";
  auto s = Ok(OpenSqliteStorage(path.string()));
  Enroll(*s, "h1", "pc1");
  Ok(s->ApplyReport(FullReport("h1", "r1", MakeInventory(7))));
  CHECK(ScalarInt(path, "SELECT COUNT(*) FROM inv_software WHERE hostname = 'pc1'") == 7);
  CHECK(ScalarInt(path, "SELECT installed_size_bytes FROM inv_software WHERE name = 'package-3'") == 1003);
  CHECK(ScalarInt(path, "SELECT size_bytes FROM inv_disks") == 500107862016);
  CHECK(ScalarInt(path, "SELECT COUNT(*) FROM inv_interfaces WHERE mac = '00:1a:2b:4c:4c:45'") == 1);
  CHECK(ScalarInt(path, "SELECT COUNT(*) FROM inv_os WHERE pretty_name LIKE 'Debian%'") == 1);
  CHECK(ScalarInt(path, "SELECT COUNT(*) FROM inv_hardware WHERE system_vendor = 'Dell Inc.'") == 1);
  for (const char* view : {"inv_filesystems", "inv_services", "inv_users"})
    CHECK(ScalarInt(path, std::string("SELECT COUNT(*) >= 0 FROM ") + view) == 1);
  // Text that needs JSON escaping survives the round trip.
  auto db = Ok(sql::Database::Open(path));
  auto st = Ok(db.Prepare("SELECT summary FROM inv_software WHERE name = 'package-1'"));
  REQUIRE(Ok(st.Step()));
  CHECK(st.Text(0) == "the \"package-1\" package, éàü");
}

TEST_CASE("identity claims come from firmware, physical NICs and disks", "[storage][identity]") {
  inventory::ItemMap items;
  items[{"hardware", ""}] = {{"system_uuid", " 4C4C4544-0042-3510-8051-B4C04F4E3232 "},
                             {"serial_number", "8XK2L13"},
                             {"board_serial", ".8XK2L13.CN1296"}};
  items[{"interfaces", "eno1"}] = {{"mac", "00:1A:2B:3C:4D:5E"}, {"type", "ether"}};
  items[{"interfaces", "wlp2s0"}] = {{"mac", "f8:59:71:00:00:01"}, {"type", "wireless"}};
  items[{"interfaces", "wlp-random"}] = {{"mac", "fa:59:71:00:00:01"}, {"type", "wireless"}};  // locally administered
  items[{"interfaces", "docker0"}] = {{"mac", "00:42:ab:00:00:01"}, {"type", "bridge"}};
  items[{"interfaces", "eth9"}] = {{"mac", "00:00:00:00:00:00"}, {"type", "ether"}};
  items[{"disks", "nvme0n1"}] = {{"serial", "S4EWNX0R123456"}};
  items[{"disks", "sdb"}] = {{"serial", "0123456789"}};
  CHECK(IdentityClaims(items) == std::vector<std::string>{
                                     "board:.8XK2L13.CN1296", "disk:S4EWNX0R123456", "mac:00:1a:2b:3c:4d:5e",
                                     "mac:f8:59:71:00:00:01", "serial:8XK2L13",
                                     "uuid:4c4c4544-0042-3510-8051-b4c04f4e3232"});

  for (const char* junk : {"", "None", "N/A", "Not Specified", "Not Applicable", " To Be Filled By O.E.M. ",
                           "Default string", "System Serial Number", "Chassis Serial Number", "0", "0123456789",
                           "123456789", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
                           "03000200-0400-0500-0006-000700080009", "XXXXXXXX", "........"}) {
    inventory::ItemMap j;
    j[{"hardware", ""}] = {{"system_uuid", junk}, {"serial_number", junk}, {"board_serial", junk}};
    j[{"disks", "sda"}] = {{"serial", junk}};
    INFO("placeholder: '" << junk << "'");
    CHECK(IdentityClaims(j).empty());
  }
}

TEST_CASE("stored fields are the canonical JSON text", "[storage][sqlite]") {
  // The writer skips unchanged items by comparing texts, so equal fields must
  // always give equal text, the same as nlohmann::json would write.
  inventory::Fields fields = {{"plain", "abc"},        {"quote", "say \"hi\""}, {"slash", "C:\\Windows"},
                              {"ctrl", "a\tb\nc\x01"}, {"utf8", "éàü €"},      {"bad", "\xff\xfe ok"}};
  auto text = detail::EncodeFields(fields);
  CHECK(text == nlohmann::json(fields).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  auto back = Ok(detail::DecodeFields(text));
  fields["bad"] = "\xef\xbf\xbd\xef\xbf\xbd ok";  // invalid UTF-8 stored as U+FFFD
  CHECK(back == fields);
  CHECK_FALSE(detail::DecodeFields("[1,2]"));
  CHECK_FALSE(detail::DecodeFields("{\"a\": 1}"));
}
