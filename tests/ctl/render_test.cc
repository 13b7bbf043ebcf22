#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "parc/ctl/render.h"

using namespace parc::ctl;
namespace v1 = parc::v1;

namespace {
constexpr int64_t kNow = 1'800'000'000;

v1::InventoryItem Item(const std::string& section, const std::string& key,
                       std::initializer_list<std::pair<const std::string, std::string>> fields) {
  v1::InventoryItem item;
  item.set_section(section);
  item.set_key(key);
  for (const auto& [k, v] : fields) (*item.mutable_fields())[k] = v;
  return item;
}

bool Contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }
}  // namespace

TEST_CASE("Token output includes the ready-to-paste enroll command", "[ctl]") {
  v1::CreateTokenResponse t;
  t.set_token("tok-abc");
  t.set_expires_at(kNow + 2 * 3600);
  t.set_ca_fingerprint("deadbeef");
  t.set_group("lab");
  std::string out = RenderToken(t, "parc.example:7443", {kNow, 160});
  CHECK(Contains(out, "tok-abc"));
  CHECK(Contains(out, "deadbeef"));
  CHECK(Contains(out, "(in 2h)"));
  CHECK(Contains(out, "lab"));
  CHECK(Contains(out, "parc-agent enroll --server parc.example:7443 --token tok-abc --ca-fingerprint deadbeef\n"));
  CHECK_FALSE(Contains(out, "loopback"));
  CHECK(Contains(RenderToken(t, "127.0.0.1:7443", {kNow, 160}), "loopback"));
}

TEST_CASE("Hosts table: short ids, status, age, groups", "[ctl]") {
  v1::ListHostsResponse r;
  auto* a = r.add_hosts();
  a->set_host_id("0123456789abcdef");
  a->set_hostname("pc-01");
  a->set_online(true);
  a->set_last_seen(kNow - 5);
  a->set_os("Debian GNU/Linux 12 (bookworm)");
  a->add_groups("lab");
  a->add_groups("ring1");
  auto* b = r.add_hosts();
  b->set_host_id("fedcba9876543210");
  b->set_hostname("pc-02");
  b->set_last_seen(kNow - 3 * 86400);
  auto* c = r.add_hosts();
  c->set_host_id("aaaaaaaabbbbbbbb");
  c->set_hostname("stolen");
  c->set_revoked(true);
  c->set_online(true);
  std::string out = RenderHosts(r, {kNow, 160});
  CHECK(out ==
        "HOST ID   HOSTNAME  STATUS   LAST SEEN  OS                              GROUPS\n"
        "01234567  pc-01     online   now        Debian GNU/Linux 12 (bookworm)  lab,ring1\n"
        "fedcba98  pc-02     offline  3d ago\n"
        "aaaaaaaa  stolen    revoked  now\n");
  CHECK(RenderHosts(v1::ListHostsResponse(), {kNow, 160}) == "no hosts match\n");
}

TEST_CASE("Host detail lists what is known, in inventory order", "[ctl]") {
  v1::HostDetail d;
  d.mutable_summary()->set_host_id("0123456789abcdef");
  d.mutable_summary()->set_hostname("pc-01");
  d.mutable_summary()->set_last_seen(kNow - 120);
  d.set_certificate_fingerprint("cafe");
  (*d.mutable_section_counts())["software"] = 1500;
  (*d.mutable_section_counts())["os"] = 1;
  d.add_duplicate_of("fedcba9876543210");
  std::string out = RenderHostDetail(d, {kNow, 160});
  CHECK(Contains(out, "Host ID:"));
  CHECK(Contains(out, "0123456789abcdef"));
  CHECK(Contains(out, "offline"));
  CHECK(Contains(out, "(2m ago)"));
  CHECK(Contains(out, "os 1, software 1500"));
  CHECK(Contains(out, "fedcba9876543210"));
  CHECK_FALSE(Contains(out, "Peer:"));  // empty values are left out
}

TEST_CASE("Revocation says what happened", "[ctl]") {
  v1::HostDetail d;
  d.mutable_summary()->set_host_id("0123456789abcdef");
  d.mutable_summary()->set_hostname("pc-01");
  d.mutable_summary()->set_revoked(true);
  std::string out = RenderRevoked(d, "stolen");
  CHECK(Contains(out, "revoked host 0123456789abcdef (pc-01): stolen"));
  CHECK(Contains(out, "refused"));
}

TEST_CASE("Inventory: field list for singular sections, table of used fields for repeated ones", "[ctl]") {
  v1::GetInventoryResponse inv;
  *inv.add_items() = Item("os", "", {{"pretty_name", "Debian GNU/Linux 12"}, {"hostname", "pc-01"}});
  *inv.add_items() = Item("memory", "", {{"total_bytes", "17179869184"}});
  *inv.add_items() = Item("software", "bash|amd64", {{"name", "bash"}, {"architecture", "amd64"}, {"version", "5.2"}});
  *inv.add_items() =
      Item("software", "vim|amd64", {{"name", "vim"}, {"architecture", "amd64"}, {"version", "9.0"}, {"vendor", "Debian"}});

  std::string software = RenderInventory(inv, {"software"}, {kNow, 160});
  // Columns in proto order (name, architecture, version, ..., vendor), only those with a value.
  CHECK(software ==
        "NAME  ARCHITECTURE  VERSION  VENDOR\n"
        "bash  amd64         5.2\n"
        "vim   amd64         9.0      Debian\n");

  std::string os = RenderInventory(inv, {"os"}, {kNow, 160});
  // proto order: pretty_name (4) before hostname (10)
  CHECK(os == "pretty_name: Debian GNU/Linux 12\nhostname:    pc-01\n");

  std::string several = RenderInventory(inv, {"os", "memory", "software"}, {kNow, 160});
  CHECK(Contains(several, "[os]\n"));
  CHECK(Contains(several, "\n[memory]\ntotal_bytes: 16.0 GiB\n"));
  CHECK(Contains(several, "\n[software]\nNAME"));

  CHECK(RenderInventory(inv, {"monitors"}, {kNow, 160}) == "no monitors items reported for this host\n");
  CHECK(RenderInventory(v1::GetInventoryResponse(), {"os", "cpu"}, {kNow, 160}) ==
        "no inventory reported for this host yet\n");
}

TEST_CASE("History table", "[ctl]") {
  v1::GetHistoryResponse h;
  auto* e = h.add_entries();
  e->set_at(86400);
  e->set_section("software");
  e->set_key("bash|amd64");
  e->set_change("changed");
  e->set_field("version");
  e->set_old_value("5.1");
  e->set_new_value("5.2");
  CHECK(RenderHistory(h, {kNow, 160}) ==
        "AT                    SECTION   ITEM        CHANGE   FIELD    OLD  NEW\n"
        "1970-01-02 00:00:00Z  software  bash|amd64  changed  version  5.1  5.2\n");
  CHECK(RenderHistory(v1::GetHistoryResponse(), {kNow, 160}) == "no changes recorded\n");
}

TEST_CASE("Duplicates and collect name hosts when names are known", "[ctl]") {
  v1::ListDuplicatesResponse d;
  auto* set = d.add_duplicates();
  set->set_identity("uuid:4c4c4544");
  set->add_host_ids("0123456789abcdef");
  set->add_host_ids("fedcba9876543210");
  HostNames names = {{"0123456789abcdef", "pc-01"}};
  CHECK(RenderDuplicates(d, names, {kNow, 160}) ==
        "IDENTITY       HOSTS\n"
        "uuid:4c4c4544  01234567 (pc-01), fedcba98\n");

  v1::CollectInventoryResponse c;
  c.add_sent_to("0123456789abcdef");
  c.add_offline("fedcba9876543210");
  std::string out = RenderCollect(c, names);
  CHECK(Contains(out, "requested on 1 online host(s):\n  01234567 (pc-01)\n"));
  CHECK(Contains(out, "1 host(s) offline"));
  CHECK(Contains(out, "  fedcba98\n"));
}

TEST_CASE("Groups and audit tables", "[ctl]") {
  v1::ListGroupsResponse g;
  auto* lab = g.add_groups();
  lab->set_name("lab");
  lab->set_description("room B12");
  lab->add_host_ids("a");
  lab->add_host_ids("b");
  CHECK(RenderGroups(g, {kNow, 160}) == "NAME  HOSTS  DESCRIPTION\nlab   2      room B12\n");

  v1::ListAuditResponse a;
  auto* e = a.add_entries();
  e->set_at(0);
  e->set_actor("CN=admin");
  e->set_action("revoke");
  e->set_target("pc-01");
  CHECK(RenderAudit(a, {kNow, 160}) == "AT     ACTOR     ACTION  TARGET  DETAIL\nnever  CN=admin  revoke  pc-01\n");
}

TEST_CASE("JSON uses proto field names and prints default values", "[ctl]") {
  v1::HostSummary h;
  h.set_host_id("0123");
  auto json = ToJson(h);
  REQUIRE(json.has_value());
  auto j = nlohmann::json::parse(*json);
  CHECK(j["host_id"] == "0123");
  CHECK(j.contains("last_seen"));  // zero, still printed
  CHECK(j["online"] == false);
  CHECK(j.contains("agent_version"));
}
