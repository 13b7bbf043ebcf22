// The image table of the parc database (SQLite): one manifest per
// name=version (the same again is accepted, another refused), the newest by
// Debian version ordering, and records that survive a reopen.
#include <catch2/catch.hpp>

#include "parc/server/image_store.h"
#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

ImageRecord Img(const std::string& name, const std::string& version, const std::string& id) {
  ImageRecord r;
  r.name = name;
  r.version = version;
  r.kind = "tree";
  r.key_id = "0123456789abcdef";
  r.image_id = id;
  r.manifest_json = "{\"id\":\"" + id + "\"}";
  r.signature = std::string("\x00\x01sig", 5);  // binary, kept as is
  r.size = 1000;
  r.chunks = 3;
  return r;
}

}  // namespace

TEST_CASE("images: one manifest per version, newest by Debian ordering, kept across a reopen", "[image_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  {
    auto store = Ok(OpenSqliteImageStore(path));
    for (const auto& [v, id] : std::vector<std::pair<std::string, std::string>>{{"1.0", "a"}, {"1.10", "b"}, {"1.9", "c"}})
      Ok(store->AddImage(Img("ws", v, id)));
    Ok(store->AddImage(Img("thin", "1", "t")));
    // The same manifest again is fine; another one under the same version is not.
    CHECK(Ok(store->AddImage(Img("ws", "1.9", "c"))).image_id == "c");
    auto clash = store->AddImage(Img("ws", "1.9", "other"));
    REQUIRE(!clash);
    CHECK(clash.error().Is(Errc::kAlreadyExists));
  }
  auto store = Ok(OpenSqliteImageStore(path));
  auto newest = Ok(store->GetImage("ws", ""));
  CHECK(newest.version == "1.10");
  CHECK(newest.signature == std::string("\x00\x01sig", 5));
  CHECK(newest.manifest_json == "{\"id\":\"b\"}");
  auto ws = Ok(store->ListImages("ws"));
  REQUIRE(ws.size() == 3);
  CHECK(ws[0].version == "1.0");
  CHECK(ws[1].version == "1.9");
  CHECK(Ok(store->ListImages("")).size() == 4);
  CHECK(!store->GetImage("ws", "2.0"));
  CHECK(store->GetImage("nope", "").error().Is(Errc::kNotFound));
}

TEST_CASE("images: a version is removed alone, an absent one is reported", "[image_store]") {
  parc::test::TempDir dir;
  auto path = (dir / "parc.db").string();
  auto storage = Ok(OpenSqliteStorage(path));
  auto store = Ok(OpenSqliteImageStore(path));
  Ok(store->AddImage(Img("ws", "1", "a")));
  Ok(store->AddImage(Img("ws", "2", "b")));
  Ok(store->RemoveImage("ws", "1"));
  auto left = Ok(store->ListImages("ws"));
  REQUIRE(left.size() == 1);
  CHECK(left[0].version == "2");
  CHECK(store->RemoveImage("ws", "1").error().Is(Errc::kNotFound));
  CHECK(store->RemoveImage("other", "2").error().Is(Errc::kNotFound));
  // The same version can be registered again afterwards (a new capture, say).
  CHECK(Ok(store->AddImage(Img("ws", "1", "c"))).image_id == "c");
}
