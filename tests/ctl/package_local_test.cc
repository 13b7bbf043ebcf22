// parcctl key create / package build|sign|verify: local commands on files.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sys/stat.h>

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

Result Ctl(std::vector<std::string> args, int64_t now = kNow) {
  args.insert(args.begin(), "parcctl");
  Hooks hooks;
  hooks.now = [now] { return now; };
  std::ostringstream out, err;
  int code = Run(args, out, err, hooks);
  return {code, out.str(), err.str()};
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void MakeSource(const fs::path& dir) {
  parc::test::WriteFile(dir / "package.json",
                        R"({"name": "hello", "version": "1.0-1", "publisher": "Acme", "summary": "says hello"})");
  parc::test::WriteFile(dir / "root/opt/hello/bin/hello", "#!/bin/sh\necho hello\n");
  ::chmod((dir / "root/opt/hello/bin/hello").c_str(), 0755);
  parc::test::WriteFile(dir / "root/etc/hello.conf", "greeting=hello\n");
  parc::test::WriteFile(dir / "scripts/post_install", "#!/bin/sh\ntrue\n");
}
}  // namespace

TEST_CASE("parcctl key create writes a key pair and refuses to overwrite it") {
  parc::test::TempDir dir;
  auto r = Ctl({"key", "create", "--name", "acme", "--dir", dir.path().string()});
  REQUIRE(r.code == kExitOk);
  CHECK(Contains(r.out, "key id:"));
  CHECK(Contains(r.out, (dir / "acme.key").string()));
  struct stat st {};
  REQUIRE(::stat((dir / "acme.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(parc::test::ReadFileOrEmpty(dir / "acme.pub").starts_with("-----BEGIN PUBLIC KEY-----"));
  auto again = Ctl({"key", "create", "--name", "acme", "--dir", dir.path().string()});
  CHECK(again.code == kExitConflict);
  CHECK(Contains(again.err, "refusing to overwrite"));
  CHECK(Ctl({"key", "create"}).code == kExitUsage);
}

TEST_CASE("parcctl package build, sign and verify end to end") {
  parc::test::TempDir dir;
  REQUIRE(Ctl({"key", "create", "--name", "acme", "--dir", dir.path().string()}).code == 0);
  REQUIRE(Ctl({"key", "create", "--name", "other", "--dir", dir.path().string()}).code == 0);
  MakeSource(dir / "src");
  std::string pkg = (dir / "hello.parc").string();

  auto built = Ctl({"package", "build", (dir / "src").string(), "-o", pkg, "--key", (dir / "acme.key").string(),
                    "--expires", "30d"});
  REQUIRE(built.code == kExitOk);
  CHECK(Contains(built.out, "hello 1.0-1, 2 files"));
  CHECK(Contains(built.out, "signed with key "));

  auto ok = Ctl({"package", "verify", pkg, "--trust", (dir / "acme.pub").string()});
  CHECK(ok.code == kExitOk);
  CHECK(Contains(ok.out, ": valid"));
  CHECK(Contains(ok.out, "publisher  Acme"));
  CHECK(Contains(ok.out, "(acme)"));

  auto js = Ctl({"package", "verify", pkg, "--trust", (dir / "acme.pub").string(), "--json"});
  REQUIRE(js.code == kExitOk);
  auto j = nlohmann::json::parse(js.out);
  CHECK(j["valid"] == true);
  CHECK(j["name"] == "hello");
  CHECK(j["files"] == 2);
  CHECK(j["expires_at"] == kNow + 30 * 86400);
  CHECK(j["scripts"] == nlohmann::json::array({"post_install"}));

  SECTION("untrusted key and expiry are refused with exit code 4") {
    auto untrusted = Ctl({"package", "verify", pkg, "--trust", (dir / "other.pub").string()});
    CHECK(untrusted.code == kExitRefused);
    CHECK(Contains(untrusted.err, "which this machine does not trust"));
    auto none = Ctl({"package", "verify", pkg});
    CHECK(none.code == kExitRefused);
    CHECK(Contains(none.err, "--trust"));
    auto expired = Ctl({"package", "verify", pkg, "--trust", (dir / "acme.pub").string()}, kNow + 31 * 86400);
    CHECK(expired.code == kExitRefused);
    CHECK(Contains(expired.err, "signature expired on"));
    auto refused_json = Ctl({"package", "verify", pkg, "--json"});
    CHECK(refused_json.code == kExitRefused);
    CHECK(nlohmann::json::parse(refused_json.out)["valid"] == false);
  }
  SECTION("re-signing switches the trusted key") {
    auto signed_ = Ctl({"package", "sign", pkg, "--key", (dir / "other.key").string(), "--expires", "7d"});
    REQUIRE(signed_.code == kExitOk);
    CHECK(Ctl({"package", "verify", pkg, "--trust", (dir / "other.pub").string()}).code == kExitOk);
    CHECK(Ctl({"package", "verify", pkg, "--trust", (dir / "acme.pub").string()}).code == kExitRefused);
  }
  SECTION("a damaged package is refused") {
    std::string bytes = parc::test::ReadFileOrEmpty(pkg);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x40);
    parc::test::WriteFile(pkg, bytes);
    auto r = Ctl({"package", "verify", pkg, "--trust", (dir / "acme.pub").string()});
    CHECK(r.code == kExitRefused);
    CHECK(Contains(r.err, "parcctl: refused:"));
  }
}

TEST_CASE("parcctl package build without a key makes an unsigned package, usage errors exit 2") {
  parc::test::TempDir dir;
  MakeSource(dir / "src");
  std::string pkg = (dir / "hello.parc").string();
  auto built = Ctl({"package", "build", (dir / "src").string(), "-o", pkg});
  REQUIRE(built.code == kExitOk);
  CHECK(Contains(built.out, "unsigned"));
  auto v = Ctl({"package", "verify", pkg});
  CHECK(v.code == kExitRefused);
  CHECK(Contains(v.err, "package is not signed"));
  CHECK(Ctl({"package", "build", (dir / "src").string()}).code == kExitUsage);  // no -o
  CHECK(Ctl({"package", "sign", pkg}).code == kExitUsage);                      // no --key
  CHECK(Ctl({"package"}).code == kExitUsage);
  parc::test::WriteFile(dir / "bad/package.json", R"({"name": "Bad Name", "version": "1"})");
  auto bad = Ctl({"package", "build", (dir / "bad").string(), "-o", (dir / "bad.parc").string()});
  CHECK(bad.code == kExitUsage);
  CHECK(Contains(bad.err, "name: 'Bad Name' is not a valid package name"));
  CHECK_FALSE(fs::exists(dir / "bad.parc"));
  CHECK(Ctl({"package", "verify", (dir / "missing.parc").string()}).code == kExitFailure);
}
