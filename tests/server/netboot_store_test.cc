// The network installation tables of the parc database (SQLite,
// server/storage/netboot_store_sqlite.cc): one record per MAC, host names
// unique, and the answer-file bookkeeping that makes a token single-serve:
// served only while armed, disarmed by serving, the previous unused token
// ended.
#include <catch2/catch.hpp>

#include "parc/server/netboot_store.h"
#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

NetbootHostRecord Machine(const std::string& mac, const std::string& hostname, int64_t armed_until) {
  NetbootHostRecord h;
  h.mac = mac;
  h.hostname = hostname;
  h.group = "lab";
  h.os = "debian12";
  h.disk = "/dev/sda";
  h.locale = "fr_FR.UTF-8";
  h.keyboard = "fr";
  h.timezone = "Europe/Paris";
  h.asset = "debian12";
  h.created_at = 100;
  h.armed_until = armed_until;
  return h;
}

}  // namespace

TEST_CASE("netboot store: machines by MAC or host name, host names unique", "[netboot]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteNetbootStore(path));
  Ok(store->PutHost(Machine("52:54:00:00:00:01", "pc-1", 5000)));
  Ok(store->PutHost(Machine("52:54:00:00:00:02", "pc-2", 0)));
  CHECK(Ok(store->GetHost("pc-1")).mac == "52:54:00:00:00:01");
  CHECK(Ok(store->GetHost("52:54:00:00:00:02")).hostname == "pc-2");
  auto dup = store->PutHost(Machine("52:54:00:00:00:03", "pc-1", 0));
  REQUIRE_FALSE(dup);
  CHECK(dup.error().Is(Errc::kAlreadyExists));
  CHECK_THAT(dup.error().message(), Catch::Contains("52:54:00:00:00:01"));
  // The same MAC again replaces its record (a renamed machine).
  Ok(store->PutHost(Machine("52:54:00:00:00:01", "pc-1b", 5000)));
  CHECK(Ok(store->ListHosts("")).size() == 2);
  CHECK(Ok(store->ListHosts("office")).empty());
  CHECK(store->GetHost("pc-1").error().Is(Errc::kNotFound));
  Ok(store->RemoveHost("52:54:00:00:00:02"));
  CHECK(store->RemoveHost("52:54:00:00:00:02").error().Is(Errc::kNotFound));
}

TEST_CASE("netboot store: an answer file is recorded once per arming and ends the previous unused token",
          "[netboot]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteNetbootStore(path));
  const std::string mac = "52:54:00:00:00:01";
  Ok(store->PutHost(Machine(mac, "pc-1", 5000)));
  Ok(storage->CreateToken(MakeToken("tok1", "secret1", "lab", 90000)));
  Ok(storage->CreateToken(MakeToken("tok2", "secret2", "lab", 90000)));
  Ok(storage->CreateToken(MakeToken("tok3", "secret3", "lab", 90000)));

  Ok(store->RecordAnswer(mac, "tok1", 1000, "10.0.0.5"));
  auto h = Ok(store->GetHost(mac));
  CHECK(h.armed_until == 0);
  CHECK(h.answer_fetched_at == 1000);
  CHECK(h.answer_fetched_by == "10.0.0.5");
  CHECK(h.token_id == "tok1");
  CHECK(h.token_expires_at == 90000);

  // Disarmed: the next fetch is refused, and its token is not recorded.
  auto again = store->RecordAnswer(mac, "tok2", 1001, "10.0.0.6");
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kFailedPrecondition));
  CHECK(Ok(store->GetHost(mac)).token_id == "tok1");
  // An arming that has run out counts as disarmed.
  Ok(store->Arm(mac, 1500));
  CHECK(store->RecordAnswer(mac, "tok2", 1500, "10.0.0.6").error().Is(Errc::kFailedPrecondition));

  // Re-armed and served again: tok1, never used, stops working at once.
  Ok(store->Arm(mac, 5000));
  Ok(store->RecordAnswer(mac, "tok2", 2000, "10.0.0.5"));
  CHECK(Ok(store->GetHost(mac)).token_id == "tok2");
  auto late = storage->EnrollHost("tok1", Sha256Hex("secret1"), MakeHost("h1", "pc-1", {}, 2001));
  REQUIRE_FALSE(late);
  CHECK(late.error().Is(Errc::kExpired));

  // A used token keeps its record: the machine shows as enrolled.
  Ok(storage->EnrollHost("tok2", Sha256Hex("secret2"), MakeHost("h2", "pc-1", {}, 2100)));
  h = Ok(store->GetHost(mac));
  CHECK(h.token_used_at == 2100);
  CHECK(h.token_used_by == "h2");
  // Re-armed for a reinstall: serving again does not touch the used token.
  Ok(store->Arm(mac, 9000));
  Ok(store->RecordAnswer(mac, "tok3", 3000, "10.0.0.5"));
  CHECK(Ok(store->GetHost(mac)).token_id == "tok3");
  // ExpireToken ends an unused one (a fetch refused after minting).
  Ok(store->ExpireToken("tok3", 3001));
  CHECK(storage->EnrollHost("tok3", Sha256Hex("secret3"), MakeHost("h3", "pc-1", {}, 3002))
            .error()
            .Is(Errc::kExpired));
}
