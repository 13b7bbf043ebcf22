// parcctl image capture / verify / diff on a local chunk store (no server),
// and the usage errors of the image commands.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <set>
#include <sstream>

#include "parc/ctl/cli.h"
#include "parc/ctl/exit_codes.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace parc::ctl;

namespace {
constexpr int64_t kNow = 1'800'000'000;

struct Result {
  int code;
  std::string out, err;
};

Result Ctl(std::vector<std::string> args) {
  args.insert(args.begin(), "parcctl");
  Hooks hooks;
  hooks.now = [] { return kNow; };
  std::ostringstream out, err;
  int code = Run(args, out, err, hooks);
  return {code, out.str(), err.str()};
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("image capture into a local store, verify a copy, diff two versions", "[ctl][image]") {
  parc::test::TempDir dir("parcctl-image");
  fs::path src = dir / "src", store = dir / "store";
  parc::test::WriteFile(src / "etc/motd", "hello\n");
  parc::test::WriteFile(src / "opt/data.bin", std::string(300000, 'x') + "tail");
  REQUIRE(Ctl({"key", "create", "--name", "acme", "--dir", dir.path().string()}).code == 0);
  std::string key = (dir / "acme.key").string(), pub = (dir / "acme.pub").string();

  auto v1 = Ctl({"image", "capture", "--from", src.string(), "--name", "ws", "--version", "1", "--key", key, "-o",
                 store.string(), "--json"});
  INFO(v1.out << v1.err);
  REQUIRE(v1.code == 0);
  auto j1 = nlohmann::json::parse(v1.out);
  CHECK(j1["signed"] == true);
  CHECK(j1["kind"] == "tree");
  CHECK(fs::exists(store / "images/ws_1.manifest.json"));
  CHECK(fs::exists(store / "images/ws_1.sig"));
  // The same version again is refused; the store keeps the first.
  CHECK(Ctl({"image", "capture", "--from", src.string(), "--name", "ws", "--version", "1", "-o", store.string()}).code ==
        kExitConflict);

  auto ok = Ctl({"image", "verify", "ws=1", "--store", store.string(), "--target", src.string(), "--trust", pub});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK(Contains(ok.out, "signature valid"));

  parc::test::WriteFile(src / "etc/motd", "hello, version 2\n");
  auto differs = Ctl({"image", "verify", "ws=1", "--store", store.string(), "--target", src.string(), "--json"});
  CHECK(differs.code == kExitFailure);
  auto dj = nlohmann::json::parse(differs.out);
  CHECK(dj["ok"] == false);
  REQUIRE(!dj["target"]["differences"].empty());
  CHECK(dj["target"]["differences"][0]["path"] == "/etc/motd");

  auto v2 = Ctl({"image", "capture", "--from", src.string(), "--name", "ws", "--version", "2", "--key", key, "-o",
                 store.string(), "--json"});
  REQUIRE(v2.code == 0);
  auto j2 = nlohmann::json::parse(v2.out);
  CHECK(j2["chunks_reused"].get<uint64_t>() >= 1);  // data.bin's chunks came from version 1
  auto diff = Ctl({"image", "diff", "ws=1", "ws=2", "--store", store.string()});
  INFO(diff.out << diff.err);
  CHECK(diff.code == 0);
  CHECK(Contains(diff.out, "~ /etc/motd"));
  CHECK(!Contains(diff.out, "data.bin"));

  // A content chunk altered in the store is found (the body is read first, so
  // it is left alone: every other object is altered).
  auto manifest = nlohmann::json::parse(parc::test::ReadFileOrEmpty(store / "images/ws_2.manifest.json"));
  std::set<std::string> body;
  for (const auto& c : manifest["body"]["chunks"]) body.insert(c["object"].get<std::string>());
  int altered = 0;
  for (const auto& e : fs::recursive_directory_iterator(store / "objects")) {
    if (!e.is_regular_file() || body.count(e.path().filename().string())) continue;
    std::string bytes = parc::test::ReadFileOrEmpty(e.path());
    bytes[bytes.size() / 2] ^= 1;
    parc::test::WriteFile(e.path(), bytes);
    ++altered;
  }
  REQUIRE(altered > 0);
  auto bad = Ctl({"image", "verify", "ws=2", "--store", store.string(), "--json"});
  CHECK(bad.code == kExitFailure);
  auto bj = nlohmann::json::parse(bad.out);
  CHECK(bj["store"]["bad"].get<uint64_t>() >= 1);
}

TEST_CASE("image commands: usage errors say what is wrong", "[ctl][image]") {
  auto nowhere = Ctl({"image", "capture", "--from", "/nonexistent", "--name", "ws", "--version", "1"});
  CHECK(nowhere.code == kExitUsage);
  CHECK(Contains(nowhere.err, "-o DIR"));
  auto unsigned_push = Ctl({"image", "capture", "--from", "/tmp", "--name", "ws", "--version", "1", "--push"});
  CHECK(unsigned_push.code == kExitUsage);
  CHECK(Contains(unsigned_push.err, "--key"));
  auto bad_name = Ctl({"image", "capture", "--from", "/tmp", "--name", "WS", "--version", "1", "-o", "/tmp/x"});
  CHECK(bad_name.code == kExitUsage);
  auto no_to = Ctl({"image", "deploy", "ws", "--target", "/srv/ws"});
  CHECK(no_to.code == kExitUsage);
  auto rel = Ctl({"image", "deploy", "ws", "--to", "group:lab", "--target", "srv/ws"});
  CHECK(rel.code == kExitUsage);
  auto help = Ctl({"image", "capture", "--help"});
  CHECK(help.code == 0);
  CHECK(Contains(help.out, "--push"));
  CHECK(Contains(help.out, "Examples:"));
}
