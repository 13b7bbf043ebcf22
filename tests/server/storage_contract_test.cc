// Contract of the parc database (server/include/parc/server/storage.h): every
// test case runs against every backend listed in storage_backends.h.
#include <atomic>
#include <thread>

#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

size_t HistoryCount(Storage& s, const std::string& host) { return Ok(s.GetHistory(host, 0, "")).size(); }

}  // namespace

TEST_CASE("enrollment tokens are single use, expire, and do not tell unknown from wrong secret", "[storage]") {
  FOR_EACH_BACKEND(db);
  Ok(db->CreateToken(MakeToken("t1", "s1", "lab", 5000)));
  CHECK(db->CreateToken(MakeToken("t1", "other")).error().Is(Errc::kAlreadyExists));
  CHECK(db->CreateToken(MakeToken("t2", "s2", "bad group!")).error().Is(Errc::kInvalidArgument));

  auto unknown = db->EnrollHost("nope", Sha256Hex("s1"), MakeHost("h1", "pc1"));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().Is(Errc::kNotFound));
  CHECK(unknown.error().message() == "unknown enrollment token");

  auto wrong = db->EnrollHost("t1", Sha256Hex("wrong"), MakeHost("h1", "pc1"));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().Is(Errc::kNotFound));
  CHECK(wrong.error().message() == unknown.error().message());

  auto host = Ok(db->EnrollHost("t1", Sha256Hex("s1"), MakeHost("h1", "pc1", {"uuid:abc"}, 1000)));
  CHECK(host.id == "h1");
  CHECK(host.hostname == "pc1");
  CHECK(host.groups == std::vector<std::string>{"lab"});
  CHECK(host.identity == std::vector<std::string>{"uuid:abc"});
  CHECK(host.last_seen == 0);
  auto groups = Ok(db->ListGroups());
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].name == "lab");
  CHECK(groups[0].host_ids == std::vector<std::string>{"h1"});

  auto again = db->EnrollHost("t1", Sha256Hex("s1"), MakeHost("h2", "pc2", {}, 1001));
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kFailedPrecondition));
  CHECK_THAT(again.error().message(), Catch::Contains("already used") && Catch::Contains("h1"));
  CHECK_FALSE(db->GetHost("h2"));

  Ok(db->CreateToken(MakeToken("t3", "s3", "", 5000)));
  auto expired = db->EnrollHost("t3", Sha256Hex("s3"), MakeHost("h3", "pc3", {}, 5000));
  REQUIRE_FALSE(expired);
  CHECK(expired.error().Is(Errc::kExpired));
  CHECK_THAT(expired.error().message(), Catch::StartsWith("enrollment token expired at "));
  // A refused enrollment leaves the token usable within its lifetime.
  Ok(db->EnrollHost("t3", Sha256Hex("s3"), MakeHost("h3", "pc3", {}, 4999)));
}

TEST_CASE("a failed enrollment changes nothing", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  Ok(db->CreateToken(MakeToken("t2", "s2", "newgroup")));
  NewHost clash = MakeHost("h2", "pc2");
  clash.cert_fingerprint = Ok(db->GetHost("h1")).cert_fingerprint;
  auto r = db->EnrollHost("t2", Sha256Hex("s2"), clash);
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kAlreadyExists));
  CHECK(Ok(db->ListGroups()).empty());
  Ok(db->EnrollHost("t2", Sha256Hex("s2"), MakeHost("h2", "pc2")));
}

TEST_CASE("hosts are found by id, id prefix or hostname, and ambiguity names the candidates", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "aaaa1111-0000", "web");
  Enroll(*db, "aaaa2222-0000", "web");
  Enroll(*db, "bbbb3333-0000", "Mail");

  CHECK(Ok(db->GetHost("aaaa1111-0000")).hostname == "web");
  CHECK(Ok(db->GetHost("aaaa2")).id == "aaaa2222-0000");
  CHECK(Ok(db->GetHost("bbbb")).id == "bbbb3333-0000");
  CHECK(Ok(db->GetHost("mail")).id == "bbbb3333-0000");  // hostname, case-insensitive
  CHECK(db->GetHost("bbb").error().Is(Errc::kNotFound)); // too short for a prefix

  auto prefix = db->GetHost("aaaa");
  REQUIRE_FALSE(prefix);
  CHECK(prefix.error().Is(Errc::kInvalidArgument));
  CHECK_THAT(prefix.error().message(), Catch::Contains("aaaa1111-0000") && Catch::Contains("aaaa2222-0000"));

  auto name = db->GetHost("web");
  REQUIRE_FALSE(name);
  CHECK(name.error().Is(Errc::kInvalidArgument));
  CHECK(name.error().message() == "'web' matches 2 hosts: aaaa1111-0000 (web), aaaa2222-0000 (web); use the host id");

  CHECK(db->GetHost("nothing-like-it").error().Is(Errc::kNotFound));
}

TEST_CASE("a full report stores the items and records them as added", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto items = MakeInventory(20);
  auto out = Ok(db->ApplyReport(FullReport("h1", "r1", items, 2000)));
  CHECK_FALSE(out.duplicate);
  CHECK_FALSE(out.full_wanted);
  CHECK(out.history_rows == items.size());
  CHECK(out.digest == inventory::Digest(items));
  CHECK(Stored(*db, "h1") == items);

  auto history = Ok(db->GetHistory("h1", 0, ""));
  REQUIRE(history.size() == items.size());
  for (const auto& h : history) {
    CHECK(h.change.change == "added");
    CHECK(h.at == 2000);
    CHECK(h.report_id == "r1");
  }
  auto host = Ok(db->GetHost("h1"));
  CHECK(host.inventory_digest == inventory::Digest(items));
  CHECK(host.inventory_updated_at == 2000);
  CHECK(host.os_pretty_name == "Debian GNU/Linux 12 (bookworm)");
  CHECK(host.identity == IdentityClaims(items));
  CHECK(Ok(db->SectionCounts("h1"))["software"] == 20);
  CHECK(Ok(db->GetInventory("h1", "software")).size() == 20);
  CHECK(Ok(db->GetHistory("h1", 0, "software")).size() == 20);
  CHECK(Ok(db->GetHistory("h1", 2001, "")).empty());
  CHECK(db->GetInventory("h1", "nonsense").error().Is(Errc::kInvalidArgument));
  CHECK(db->GetInventory("nobody", "").error().Is(Errc::kNotFound));
}

TEST_CASE("re-reporting the same inventory makes no history, volatile changes update silently", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto items = MakeInventory(50);
  Ok(db->ApplyReport(FullReport("h1", "r1", items, 2000)));
  const size_t after_first = HistoryCount(*db, "h1");

  // Identical (built in another order: the map sorts it anyway).
  inventory::ItemMap shuffled;
  for (auto it = items.rbegin(); it != items.rend(); ++it) shuffled.insert(*it);
  auto same = Ok(db->ApplyReport(FullReport("h1", "r2", shuffled, 3000)));
  CHECK(same.history_rows == 0);
  CHECK(HistoryCount(*db, "h1") == after_first);

  // Volatile fields only.
  auto moved = items;
  moved[{"filesystems", "/"}]["free_bytes"] = "42";
  moved[{"memory", ""}]["available_bytes"] = "7";
  moved[{"os", ""}]["boot_time"] = "1800000000";
  auto out = Ok(db->ApplyReport(FullReport("h1", "r3", moved, 4000)));
  CHECK(out.history_rows == 0);
  CHECK(HistoryCount(*db, "h1") == after_first);
  CHECK(Stored(*db, "h1") == moved);
  CHECK(Ok(db->GetHost("h1")).inventory_digest == inventory::Digest(moved));
}

TEST_CASE("a real change makes exactly its history rows", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto items = MakeInventory(10);
  Ok(db->ApplyReport(FullReport("h1", "r1", items, 2000)));
  auto next = items;
  next[{"software", "htop|amd64"}] = {{"name", "htop"}, {"architecture", "amd64"}, {"version", "3.2.2-2"}};
  next[{"interfaces", "eth0"}]["addresses"] = "192.168.1.99/24";
  next[{"interfaces", "eth0"}]["speed_mbps"] = "100";  // volatile: no row
  next.erase({"software", "package-3|amd64"});

  auto out = Ok(db->ApplyReport(FullReport("h1", "r2", next, 3000)));
  CHECK(out.history_rows == 3);
  auto rows = Ok(db->GetHistory("h1", 3000, ""));
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].change.section == "interfaces");
  CHECK(rows[0].change.change == "changed");
  CHECK(rows[0].change.field == "addresses");
  CHECK(rows[0].change.old_value == "192.168.1.10/24");
  CHECK(rows[0].change.new_value == "192.168.1.99/24");
  CHECK(rows[1].change.key == "htop|amd64");
  CHECK(rows[1].change.change == "added");
  CHECK(rows[2].change.key == "package-3|amd64");
  CHECK(rows[2].change.change == "removed");
  for (const auto& r : rows) CHECK(r.report_id == "r2");
  CHECK(Stored(*db, "h1") == next);
}

TEST_CASE("a delta gives the same result as the equivalent full report", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "by-delta", "a", {}, "", 1000);
  Enroll(*db, "by-full", "b", {}, "", 1000);
  auto before = MakeInventory(30);
  auto after = before;
  after[{"software", "htop|amd64"}] = {{"name", "htop"}, {"architecture", "amd64"}, {"version", "3.2.2-2"}};
  after[{"software", "package-5|amd64"}]["version"] = "9.9";
  after[{"filesystems", "/"}]["free_bytes"] = "1";
  after[{"os", ""}]["pretty_name"] = "Debian GNU/Linux 13 (trixie)";
  after[{"hardware", ""}]["system_uuid"] = "11111111-2222-3333-4444-555555555555";
  after.erase({"software", "package-7|amd64"});

  Ok(db->ApplyReport(FullReport("by-delta", "r1", before)));
  Ok(db->ApplyReport(FullReport("by-full", "r1", before)));
  auto d = Ok(db->ApplyReport(DeltaReport("by-delta", "r2", inventory::Diff(before, after), 3000)));
  auto f = Ok(db->ApplyReport(FullReport("by-full", "r2", after, 3000)));
  CHECK_FALSE(d.full_wanted);
  CHECK(d.digest == f.digest);
  CHECK(d.history_rows == f.history_rows);
  CHECK(Stored(*db, "by-delta") == after);
  CHECK(Stored(*db, "by-delta") == Stored(*db, "by-full"));

  auto hd = Ok(db->GetHistory("by-delta", 3000, ""));
  auto hf = Ok(db->GetHistory("by-full", 3000, ""));
  REQUIRE(hd.size() == hf.size());
  for (size_t i = 0; i < hd.size(); ++i) {
    CHECK(hd[i].change.key == hf[i].change.key);
    CHECK(hd[i].change.change == hf[i].change.change);
    CHECK(hd[i].change.field == hf[i].change.field);
    CHECK(hd[i].change.new_value == hf[i].change.new_value);
  }
  auto a = Ok(db->GetHost("by-delta"));
  auto b = Ok(db->GetHost("by-full"));
  CHECK(a.inventory_digest == b.inventory_digest);
  CHECK(a.os_pretty_name == "Debian GNU/Linux 13 (trixie)");
  CHECK(a.identity == b.identity);
  CHECK(a.identity == IdentityClaims(after));
}

TEST_CASE("a first delta applies to an empty inventory", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto items = MakeInventory(5);
  auto out = Ok(db->ApplyReport(DeltaReport("h1", "r1", inventory::Diff({}, items))));
  CHECK_FALSE(out.full_wanted);
  CHECK(Stored(*db, "h1") == items);
}

TEST_CASE("a delta on the wrong base asks for a full report and changes nothing", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto stored = MakeInventory(5);
  Ok(db->ApplyReport(FullReport("h1", "r1", stored)));
  auto other = MakeInventory(6);
  auto next = other;
  next[{"software", "x|all"}] = {{"name", "x"}};
  auto out = Ok(db->ApplyReport(DeltaReport("h1", "r2", inventory::Diff(other, next), 3000)));
  CHECK(out.full_wanted);
  CHECK(out.history_rows == 0);
  CHECK(Stored(*db, "h1") == stored);
  CHECK(Ok(db->GetHost("h1")).inventory_digest == inventory::Digest(stored));
  CHECK(HistoryCount(*db, "h1") == stored.size());
  // The refused report id was not recorded: the agent may send it again, on the right base.
  auto retry = Ok(db->ApplyReport(DeltaReport("h1", "r2", inventory::Diff(stored, next), 3000)));
  CHECK_FALSE(retry.duplicate);
  CHECK_FALSE(retry.full_wanted);
  CHECK(Stored(*db, "h1") == next);
}

TEST_CASE("a report id seen before is acknowledged and not applied again", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto items = MakeInventory(5);
  Ok(db->ApplyReport(FullReport("h1", "r1", items)));
  auto resent = Ok(db->ApplyReport(FullReport("h1", "r1", MakeInventory(9), 5000)));
  CHECK(resent.duplicate);
  CHECK(resent.digest == inventory::Digest(items));
  CHECK(Stored(*db, "h1") == items);
  CHECK(Ok(db->GetHost("h1")).inventory_updated_at == 2000);
  // Report ids are per host.
  Enroll(*db, "h2", "pc2");
  CHECK_FALSE(Ok(db->ApplyReport(FullReport("h2", "r1", items))).duplicate);
}

TEST_CASE("hostile reports are refused whole", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto items = MakeInventory(3);
  Ok(db->ApplyReport(FullReport("h1", "r1", items)));

  auto unknown_section = MakeInventory(4);
  unknown_section[{"'; DROP TABLE hosts; --", "x"}] = {{"a", "b"}};
  auto r1 = db->ApplyReport(FullReport("h1", "r2", unknown_section));
  REQUIRE_FALSE(r1);
  CHECK(r1.error().Is(Errc::kInvalidArgument));

  auto huge_key = MakeInventory(4);
  huge_key[{"software", std::string(100000, 'k')}] = {{"name", "k"}};
  auto r2 = db->ApplyReport(FullReport("h1", "r3", huge_key));
  REQUIRE_FALSE(r2);
  CHECK(r2.error().Is(Errc::kInvalidArgument));

  auto unknown_field = MakeInventory(4);
  unknown_field[{"software", "x|all"}] = {{"name", "x"}, {"evil", "1"}};
  CHECK(db->ApplyReport(FullReport("h1", "r4", unknown_field)).error().Is(Errc::kInvalidArgument));

  v1::InventoryDelta bad_delta = inventory::Diff(items, MakeInventory(4));
  auto* up = bad_delta.add_upserts();
  up->set_section("nonsense");
  up->set_key("x");
  CHECK(db->ApplyReport(DeltaReport("h1", "r5", bad_delta)).error().Is(Errc::kInvalidArgument));

  ReportIn neither;
  neither.host_id = "h1";
  neither.report_id = "r6";
  CHECK(db->ApplyReport(neither).error().Is(Errc::kInvalidArgument));
  CHECK(db->ApplyReport(FullReport("nobody", "r7", items)).error().Is(Errc::kNotFound));

  CHECK(Stored(*db, "h1") == items);
  CHECK(HistoryCount(*db, "h1") == items.size());
  // None of the refused ids were recorded.
  CHECK_FALSE(Ok(db->ApplyReport(FullReport("h1", "r2", items))).duplicate);
}

TEST_CASE("hosts sharing a firmware identity are listed as duplicates until one is retired", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  Enroll(*db, "h2", "pc2");
  Enroll(*db, "h3", "pc3");
  const std::string uuid = "4c4c4544-0042-3510-8051-b4c04f4e3232";
  Ok(db->ApplyReport(FullReport("h1", "r1", MakeInventory(2, uuid))));
  Ok(db->ApplyReport(FullReport("h2", "r1", MakeInventory(2, uuid))));
  Ok(db->ApplyReport(FullReport("h3", "r1", MakeInventory(2, "99999999-0042-3510-8051-b4c04f4e3232"))));

  auto dups = Ok(db->ListDuplicates());
  bool found = false;
  for (const auto& d : dups) {
    CHECK(d.host_ids.size() >= 2);
    CHECK(std::find(d.host_ids.begin(), d.host_ids.end(), "h3") == d.host_ids.end());
    if (d.identity == "uuid:" + uuid) {
      found = true;
      CHECK(d.host_ids == std::vector<std::string>{"h1", "h2"});
    }
  }
  CHECK(found);
  CHECK(std::is_sorted(dups.begin(), dups.end(),
                       [](const DuplicateSet& a, const DuplicateSet& b) { return a.identity < b.identity; }));

  Ok(db->MarkSuperseded("h1", "h2"));
  CHECK(Ok(db->ListDuplicates()).empty());
  CHECK(Ok(db->GetHost("h1")).superseded_by == "h2");
  CHECK(Ok(db->GetHost("h2")).previous_host_id == "h1");
  CHECK(db->MarkSuperseded("h1", "ghost").error().Is(Errc::kNotFound));

  Enroll(*db, "h4", "pc4");
  Ok(db->ApplyReport(FullReport("h4", "r1", MakeInventory(2, "99999999-0042-3510-8051-b4c04f4e3232"))));
  CHECK_FALSE(Ok(db->ListDuplicates()).empty());
  Ok(db->RevokeHost("h3", "stolen", 3000));
  CHECK(Ok(db->ListDuplicates()).empty());
}

TEST_CASE("placeholder serials and software MACs are no identity", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  Enroll(*db, "h2", "pc2");
  auto junk = [](const std::string& uuid, const std::string& serial) {
    inventory::ItemMap items;
    items[{"hardware", ""}] = {{"system_uuid", uuid}, {"serial_number", serial}, {"board_serial", "Default string"}};
    items[{"interfaces", "wlan0"}] = {{"name", "wlan0"}, {"mac", "da:a1:19:00:00:01"}, {"type", "wireless"}};
    items[{"disks", "vda"}] = {{"name", "vda"}, {"serial", "  "}};
    return items;
  };
  Ok(db->ApplyReport(FullReport("h1", "r1", junk("00000000-0000-0000-0000-000000000000", "To Be Filled By O.E.M."))));
  Ok(db->ApplyReport(FullReport("h2", "r1", junk("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", " to be filled by o.e.m. "))));
  CHECK(Ok(db->GetHost("h1")).identity.empty());
  CHECK(Ok(db->ListDuplicates()).empty());
}

TEST_CASE("a re-enrolled machine points at its earlier record", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "old-mac-only", "pc1", {"mac:00:1a:2b:3c:4d:5e"}, "", 1000);
  Enroll(*db, "old-strong", "pc1", {"serial:ABC123", "uuid:u-1"}, "", 1100);
  Enroll(*db, "older-strong", "pc1", {"uuid:u-1"}, "", 900);
  db->TouchHostAsync("old-mac-only", 9000, "1.0", "");  // seen most recently, but only a MAC
  db->TouchHostAsync("old-strong", 5000, "1.0", "");
  db->Flush();
  auto fresh = Enroll(*db, "new", "pc1", {"uuid:u-1", "mac:00:1a:2b:3c:4d:5e"}, "", 10000);
  CHECK(fresh.previous_host_id == "old-strong");
  auto weak = Enroll(*db, "new2", "pc9", {"disk:WD-1", "mac:00:1a:2b:3c:4d:5e"}, "", 10001);
  CHECK(weak.previous_host_id == "old-mac-only");
  CHECK(Enroll(*db, "stranger", "pc7", {"uuid:nobody-else"}).previous_host_id.empty());
  // A disk (or NIC) moved into a machine whose firmware says another identity
  // is not a reinstall: the earlier record must not be superseded by it.
  Enroll(*db, "donor", "pc3", {"uuid:u-3", "disk:SER-9", "mac:3c:52:82:aa:bb:10"}, "", 11000);
  CHECK(Enroll(*db, "moved-disk", "pc8", {"uuid:u-4", "disk:SER-9", "mac:3c:52:82:aa:bb:11"}).previous_host_id.empty());
  CHECK(Enroll(*db, "same-board", "pc3", {"uuid:u-3", "disk:NEW-1"}).previous_host_id == "donor");
}

TEST_CASE("groups: names checked, membership idempotent, unknown names refused", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1");
  auto g = Ok(db->CreateGroup("ring-1.pilot_A", "first ring", 100));
  CHECK(g.name == "ring-1.pilot_A");
  CHECK(g.description == "first ring");
  CHECK(g.created_at == 100);
  CHECK(db->CreateGroup("ring-1.pilot_A", "", 101).error().Is(Errc::kAlreadyExists));
  CHECK(db->CreateGroup("", "", 1).error().Is(Errc::kInvalidArgument));
  CHECK(db->CreateGroup("with space", "", 1).error().Is(Errc::kInvalidArgument));
  CHECK(db->CreateGroup(std::string(65, 'a'), "", 1).error().Is(Errc::kInvalidArgument));
  Ok(db->CreateGroup(std::string(64, 'a'), "", 1));

  CHECK(Ok(db->AddToGroup("ring-1.pilot_A", "h1")).host_ids == std::vector<std::string>{"h1"});
  CHECK(Ok(db->AddToGroup("ring-1.pilot_A", "h1")).host_ids == std::vector<std::string>{"h1"});
  CHECK(db->AddToGroup("nope", "h1").error().Is(Errc::kNotFound));
  CHECK(db->AddToGroup("ring-1.pilot_A", "ghost").error().Is(Errc::kNotFound));
  CHECK(Ok(db->GetHost("h1")).groups == std::vector<std::string>{"ring-1.pilot_A"});
  CHECK(Ok(db->RemoveFromGroup("ring-1.pilot_A", "h1")).host_ids.empty());
  CHECK(db->RemoveFromGroup("nope", "h1").error().Is(Errc::kNotFound));
  CHECK(Ok(db->ListGroups()).size() == 2);
}

TEST_CASE("hosts are listed by group and staleness, and revocation is kept", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "zeta", {}, "lab");
  Enroll(*db, "h2", "alpha", {}, "lab");
  Enroll(*db, "h3", "mid");
  db->TouchHostAsync("h1", 5000, "1.2.3", "zeta-renamed");
  db->TouchHostAsync("h2", 1000, "", "");
  db->TouchHostAsync("h1", 4000, "", "");  // late, older: last_seen does not go back
  db->Flush();
  auto h1 = Ok(db->GetHost("h1"));
  CHECK(h1.last_seen == 5000);
  CHECK(h1.agent_version == "1.2.3");
  CHECK(h1.hostname == "zeta-renamed");

  auto all = Ok(db->ListHosts({}));
  REQUIRE(all.size() == 3);
  CHECK(all[0].hostname == "alpha");
  CHECK(all[1].hostname == "mid");
  CHECK(all[0].groups == std::vector<std::string>{"lab"});

  HostFilter lab;
  lab.group = "lab";
  CHECK(Ok(db->ListHosts(lab)).size() == 2);
  HostFilter unknown;
  unknown.group = "nope";
  CHECK(db->ListHosts(unknown).error().Is(Errc::kNotFound));

  HostFilter stale;
  stale.not_seen_since = 3000;  // h2 seen at 1000, h3 never
  auto silent = Ok(db->ListHosts(stale));
  REQUIRE(silent.size() == 2);
  CHECK(silent[0].id == "h2");
  CHECK(silent[1].id == "h3");

  auto revoked = Ok(db->RevokeHost("h2", "lost laptop", 6000));
  CHECK(revoked.revoked);
  CHECK(revoked.revoked_at == 6000);
  CHECK(revoked.revoke_reason == "lost laptop");
  auto twice = Ok(db->RevokeHost("h2", "again", 7000));
  CHECK(twice.revoked_at == 6000);
  CHECK(twice.revoke_reason == "lost laptop");
  CHECK(db->RevokeHost("ghost", "", 1).error().Is(Errc::kNotFound));
  CHECK(Ok(db->RevokedCertificateFingerprints()) == std::vector<std::string>{revoked.cert_fingerprint});
  HostFilter active;
  active.include_revoked = false;
  CHECK(Ok(db->ListHosts(active)).size() == 2);
}

TEST_CASE("inventory export streams every matching row and can stop", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1", {}, "lab");
  Enroll(*db, "h2", "pc2");
  Ok(db->ApplyReport(FullReport("h1", "r1", MakeInventory(10))));
  Ok(db->ApplyReport(FullReport("h2", "r1", MakeInventory(5))));
  size_t n = 0;
  Ok(db->ExportInventory("software", "", [&](const StoredItem& item) {
    CHECK(item.section == "software");
    CHECK(!item.hostname.empty());
    CHECK(item.fields.at("source") == "dpkg");
    ++n;
    return true;
  }));
  CHECK(n == 15);
  n = 0;
  Ok(db->ExportInventory("software", "lab", [&](const StoredItem& item) {
    CHECK(item.host_id == "h1");
    ++n;
    return true;
  }));
  CHECK(n == 10);
  n = 0;
  Ok(db->ExportInventory("", "", [&](const StoredItem&) { return ++n < 3; }));
  CHECK(n == 3);
  CHECK(db->ExportInventory("software", "nope", [](const StoredItem&) { return true; }).error().Is(Errc::kNotFound));
}

TEST_CASE("the audit log keeps what was done", "[storage]") {
  FOR_EACH_BACKEND(db);
  Ok(db->AppendAudit({100, "alice", "host.revoke", "h1", "lost"}));
  Ok(db->AppendAudit({200, "bob", "group.create", "lab", ""}));
  Ok(db->AppendAudit({300, "bob", "token.create", "t1", ""}));
  auto all = Ok(db->ListAudit(0, 0));
  REQUIRE(all.size() == 3);
  CHECK(all[0].actor == "alice");
  CHECK(Ok(db->ListAudit(200, 0)).size() == 2);
  CHECK(Ok(db->ListAudit(0, 1)).size() == 1);
}

TEST_CASE("everything survives a restart", "[storage]") {
  FOR_EACH_BACKEND(db);
  Enroll(*db, "h1", "pc1", {}, "lab");
  auto items = MakeInventory(25);
  Ok(db->ApplyReport(FullReport("h1", "r1", items)));
  Ok(db->CreateToken(MakeToken("spare", "s")));
  Ok(db->AppendAudit({1, "a", "b", "c", "d"}));
  db->TouchHostAsync("h1", 7000, "2.0", "");
  // No Flush: closing must commit what was queued.
  db.Reopen();
  auto h = Ok(db->GetHost("h1"));
  CHECK(h.last_seen == 7000);
  CHECK(h.groups == std::vector<std::string>{"lab"});
  CHECK(h.inventory_digest == inventory::Digest(items));
  CHECK(Stored(*db, "h1") == items);
  CHECK(HistoryCount(*db, "h1") == items.size());
  CHECK(Ok(db->ApplyReport(FullReport("h1", "r1", items))).duplicate);
  CHECK(Ok(db->ListAudit(0, 0)).size() == 1);
  CHECK(db->CreateToken(MakeToken("spare", "s")).error().Is(Errc::kAlreadyExists));
  CHECK(db->EnrollHost("tok-h1", Sha256Hex("secret-h1"), MakeHost("h9", "x")).error().Is(Errc::kFailedPrecondition));
}

TEST_CASE("8 threads x 200 async reports all complete and are all stored", "[storage][concurrency]") {
  FOR_EACH_BACKEND(db);
  constexpr int kThreads = 8, kHostsPerThread = 25, kReportsPerHost = 8;
  for (int t = 0; t < kThreads; ++t)
    for (int h = 0; h < kHostsPerThread; ++h) {
      std::string id = "host-" + std::to_string(t) + "-" + std::to_string(h);
      Enroll(*db, id, id);
    }

  std::atomic<int> done{0}, failed{0}, full_wanted{0};
  std::vector<std::thread> threads;
  std::vector<std::map<std::string, inventory::ItemMap>> expected(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::map<std::string, inventory::ItemMap> current;
      for (int r = 0; r < kReportsPerHost; ++r) {
        for (int h = 0; h < kHostsPerThread; ++h) {
          std::string id = "host-" + std::to_string(t) + "-" + std::to_string(h);
          auto& inv = current[id];
          auto next = r == 0 ? MakeInventory(5 + h) : inv;
          if (r > 0) next[{"software", "extra-" + std::to_string(r) + "|all"}] = {{"name", "extra"}, {"version", "1"}};
          ReportIn report = r == 0 || r == 4 ? FullReport(id, "r" + std::to_string(r), next, 2000 + r)
                                             : DeltaReport(id, "r" + std::to_string(r), inventory::Diff(inv, next), 2000 + r);
          inv = next;
          db->ApplyReportAsync(std::move(report), [&](Expected<ReportOutcome> out) {
            if (!out) ++failed;
            else if (out->full_wanted) ++full_wanted;
            ++done;
          });
        }
      }
      expected[t] = std::move(current);
    });
  }
  for (auto& th : threads) th.join();
  db->Flush();
  CHECK(done == kThreads * kHostsPerThread * kReportsPerHost);
  CHECK(failed == 0);
  CHECK(full_wanted == 0);
  for (const auto& per_thread : expected)
    for (const auto& [id, inv] : per_thread) {
      CHECK(Ok(db->GetHost(id)).inventory_digest == inventory::Digest(inv));
      CHECK(Stored(*db, id) == inv);
    }
}

TEST_CASE("one failing write does not lose the others queued with it", "[storage][concurrency]") {
  FOR_EACH_BACKEND(db);
  for (int i = 0; i < 40; ++i) Enroll(*db, "h" + std::to_string(i), "pc");
  std::atomic<int> ok{0}, not_found{0};
  // A big report first keeps the writer busy while the rest queue up behind
  // it, so that they are committed together.
  db->ApplyReportAsync(FullReport("h0", "big", MakeInventory(3000)), [&](Expected<ReportOutcome> r) {
    if (r) ++ok;
  });
  for (int i = 1; i < 40; ++i) {
    std::string host = i == 20 ? "ghost" : "h" + std::to_string(i);
    db->ApplyReportAsync(FullReport(host, "r", MakeInventory(3)), [&](Expected<ReportOutcome> r) {
      if (r) ++ok;
      else if (r.error().Is(Errc::kNotFound)) ++not_found;
    });
  }
  db->Flush();
  CHECK(ok == 39);
  CHECK(not_found == 1);
  for (int i = 1; i < 40; ++i)
    if (i != 20) CHECK(Stored(*db, "h" + std::to_string(i)) == MakeInventory(3));
}

TEST_CASE("a full disk is reported as such and leaves the database consistent", "[storage][diskfull]") {
  FOR_EACH_BACKEND(db);
  if (!db.backend().limit_size) return;
  Enroll(*db, "h1", "pc1");
  auto small = MakeInventory(3);
  Ok(db->ApplyReport(FullReport("h1", "r1", small)));
  Ok(db.backend().limit_size(*db, 2));
  auto big = MakeInventory(3000);
  auto r = db->ApplyReport(FullReport("h1", "r2", big, 3000));
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kResourceExhausted));
  CHECK(Stored(*db, "h1") == small);
  CHECK(Ok(db->GetHost("h1")).inventory_digest == inventory::Digest(small));
  CHECK(HistoryCount(*db, "h1") == small.size());

  // Disk full in the middle of a batch: every write either happened whole and
  // says so, or failed as "resource exhausted" and left no trace.
  for (int i = 0; i < 10; ++i) Enroll(*db, "b" + std::to_string(i), "pc");
  Ok(db.backend().limit_size(*db, 40));
  std::vector<std::optional<Expected<ReportOutcome>>> outcomes(11);
  for (int i = 0; i <= 10; ++i) {
    ReportIn report = i == 5 ? FullReport("h1", "r3", big, 3000) : FullReport("b" + std::to_string(i < 5 ? i : i - 1), "r1", small);
    db->ApplyReportAsync(std::move(report), [&outcomes, i](Expected<ReportOutcome> out) { outcomes[i] = std::move(out); });
  }
  db->Flush();
  CHECK_FALSE(*outcomes[5]);
  for (int i = 0; i <= 10; ++i) {
    if (i == 5) continue;
    const std::string host = "b" + std::to_string(i < 5 ? i : i - 1);
    REQUIRE(outcomes[i].has_value());
    if (*outcomes[i]) {
      CHECK(Stored(*db, host) == small);
    } else {
      CHECK(outcomes[i]->error().Is(Errc::kResourceExhausted));
      CHECK(Stored(*db, host).empty());
      CHECK(Ok(db->GetHost(host)).inventory_digest.empty());
    }
  }
  CHECK(Stored(*db, "h1") == small);

  Ok(db.backend().limit_size(*db, 0));
  auto again = Ok(db->ApplyReport(FullReport("h1", "r2", big, 3000)));
  CHECK_FALSE(again.duplicate);
  CHECK(Stored(*db, "h1") == big);
}
