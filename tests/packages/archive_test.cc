// Building, signing, verifying and extracting real package files.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/packages/archive.h"
#include "pkg_fixture.h"
#include "test_support.h"

using namespace parc::pkg;
using namespace parc::pkg::testing;
using parc::Errc;
namespace fs = std::filesystem;

namespace {
unsigned ModeOf(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
}  // namespace

TEST_CASE("build, verify and extract give back the same bytes, modes and symlinks") {
  parc::test::TempDir dir;
  KeyPair key = TestKey();
  auto built = BuildHelloPackage(dir / "src", dir / "hello.parc", key);
  REQUIRE(built);
  CHECK(built->key_id == key.public_key.key_id);

  auto opened = VerifyPackage(dir / "hello.parc", {key.public_key}, kTestNow + 60);
  REQUIRE(opened);
  CHECK(opened->manifest.Id() == "hello=1.0-1");
  CHECK(opened->signature.size() == 64);
  CHECK(opened->manifest_bytes == CanonicalJson(opened->manifest));
  // Directories the package does not declare ("/opt/hello/bin") are not listed.
  std::vector<std::string> paths;
  for (const auto& f : opened->manifest.files) paths.push_back(f.path);
  CHECK(paths == std::vector<std::string>{"/etc", "/etc/hello.conf", "/opt", "/opt/hello", "/opt/hello/bin",
                                          "/opt/hello/bin/hello", "/opt/hello/share", "/opt/hello/share/readme.txt",
                                          "/usr", "/usr/bin", "/usr/bin/hello"});

  fs::path staging = dir / "staging";
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  auto r = ExtractPayload(dir / "hello.parc", *opened, staging, {},
                          [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); });
  REQUIRE(r);
  for (const auto& f : opened->manifest.files) {
    fs::path p = staging / FileMember(f);
    INFO(p);
    if (f.type == EntryType::kFile) {
      std::string source = parc::test::ReadFileOrEmpty(dir / "src/root" / f.path.substr(1));
      CHECK(parc::test::ReadFileOrEmpty(p) == source);
      CHECK(parc::Sha256Hex(source) == f.sha256);
      CHECK(ModeOf(p) == f.mode);
      CHECK(ModeOf(p) == ModeOf(dir / "src/root" / f.path.substr(1)));
    } else if (f.type == EntryType::kDirectory) {
      CHECK(fs::is_directory(fs::symlink_status(p)));
      CHECK(ModeOf(p) == f.mode);
    } else {
      CHECK(fs::is_symlink(fs::symlink_status(p)));
      CHECK(fs::read_symlink(p) == "../../opt/hello/bin/hello");
    }
  }
  CHECK(ModeOf(staging / "files/etc/hello.conf") == 0640);
  CHECK(ModeOf(staging / "files/opt/hello/bin/hello") == 0755);
  CHECK(parc::test::ReadFileOrEmpty(staging / "scripts/post_install") == "#!/bin/sh\necho installed\n");
  REQUIRE_FALSE(progress.empty());
  uint64_t declared = 0;
  for (const auto& f : opened->manifest.files) declared += f.size;
  for (const auto& [k, s] : opened->manifest.scripts) declared += s.size;
  CHECK(progress.back() == std::pair<uint64_t, uint64_t>{declared, declared});

  // The staging directory must be fresh.
  auto again = ExtractPayload(dir / "hello.parc", *opened, staging);
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kAlreadyExists));
  CHECK(fs::exists(staging / "files/etc/hello.conf"));
}

TEST_CASE("the member layout is manifest.json, manifest.sig, then the payload, readable by GNU tar") {
  parc::test::TempDir dir;
  KeyPair key = TestKey();
  REQUIRE(BuildHelloPackage(dir / "src", dir / "hello.parc", key));
  auto listing = parc::test::Run({"tar", "--zstd", "-tf", (dir / "hello.parc").string()});
  REQUIRE(listing.exit_code == 0);
  CHECK(listing.out.starts_with("manifest.json\nmanifest.sig\nfiles/etc/\nfiles/etc/hello.conf\n"));
  CHECK(listing.out.find("scripts/post_install\n") != std::string::npos);
  auto manifest = parc::test::Run({"tar", "--zstd", "-xOf", (dir / "hello.parc").string(), "manifest.json"});
  auto opened = ReadManifest(dir / "hello.parc");
  REQUIRE(opened);
  CHECK(manifest.out == opened->manifest_bytes);
}

TEST_CASE("progress is reported about every MiB") {
  parc::test::TempDir dir;
  KeyPair key = TestKey();
  TestPackageSpec spec;
  std::string big = parc::RandomBytes(5 << 20);
  spec.entries = {{"/data/big.bin", EntryType::kFile, big, 0644, ""}};
  REQUIRE(BuildTestPackage(dir / "src", spec, dir / "big.parc", &key));
  auto opened = VerifyPackage(dir / "big.parc", {key.public_key}, kTestNow);
  REQUIRE(opened);
  std::vector<uint64_t> done;
  REQUIRE(ExtractPayload(dir / "big.parc", *opened, dir / "out", {},
                         [&](uint64_t d, uint64_t total) {
                           CHECK(total == big.size());
                           done.push_back(d);
                         }));
  CHECK(done.size() >= 4);
  CHECK(done.size() <= 8);
  CHECK(std::is_sorted(done.begin(), done.end()));
  CHECK(done.back() == big.size());
  CHECK(parc::test::ReadFileOrEmpty(dir / "out/files/data/big.bin") == big);
}

TEST_CASE("unsigned packages build, then sign in place") {
  parc::test::TempDir dir;
  KeyPair key = TestKey();
  TestPackageSpec spec;
  spec.entries = {{"/opt/a.txt", EntryType::kFile, "a", 0644, ""}};
  spec.native["hello.deb"] = "!<arch>\n";
  REQUIRE(BuildTestPackage(dir / "src", spec, dir / "p.parc", nullptr));
  auto unsigned_ = VerifyPackage(dir / "p.parc", {key.public_key}, kTestNow);
  REQUIRE_FALSE(unsigned_);
  CHECK(unsigned_.error().message() == "package is not signed");

  auto signed_ = SignPackage(dir / "p.parc", key, kTestNow, kTestNow + 100);
  REQUIRE(signed_);
  auto opened = VerifyPackage(dir / "p.parc", {key.public_key}, kTestNow + 1);
  REQUIRE(opened);
  CHECK(opened->manifest.expires_at == kTestNow + 100);
  REQUIRE(opened->manifest.native.size() == 1);
  REQUIRE(ExtractPayload(dir / "p.parc", *opened, dir / "out"));
  CHECK(parc::test::ReadFileOrEmpty(dir / "out/native/hello.deb") == "!<arch>\n");
  CHECK(parc::test::ReadFileOrEmpty(dir / "out/files/opt/a.txt") == "a");
  // Re-signing with another key replaces the signature.
  KeyPair other = TestKey("other");
  REQUIRE(SignPackage(dir / "p.parc", other, kTestNow, kTestNow + 100));
  CHECK_FALSE(VerifyPackage(dir / "p.parc", {key.public_key}, kTestNow + 1));
  CHECK(VerifyPackage(dir / "p.parc", {other.public_key}, kTestNow + 1));
}

TEST_CASE("build refuses what a package cannot carry") {
  parc::test::TempDir dir;
  KeyPair key = TestKey();
  auto build = [&](const std::string& sub) {
    BuildOptions o;
    return BuildPackage(dir / sub, dir / (sub + ".parc"), o);
  };
  auto base = [&](const std::string& sub, const std::string& extra = "") {
    parc::test::WriteFile(dir / sub / "package.json",
                          R"({"name": "x", "version": "1.0")" + extra + "}");
    fs::create_directories(dir / sub / "root/opt");
  };
  SECTION("hard links") {
    base("hl");
    parc::test::WriteFile(dir / "hl/root/opt/a", "a");
    fs::create_hard_link(dir / "hl/root/opt/a", dir / "hl/root/opt/b");
    auto r = build("hl");
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("is a hard link") != std::string::npos);
  }
  SECTION("fifos") {
    base("ff");
    REQUIRE(::mkfifo((dir / "ff/root/opt/pipe").c_str(), 0644) == 0);
    auto r = build("ff");
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("is a fifo") != std::string::npos);
  }
  SECTION("undeclared setuid, accepted once declared") {
    base("su");
    parc::test::WriteFile(dir / "su/root/opt/tool", "x");
    REQUIRE(::chmod((dir / "su/root/opt/tool").c_str(), 04755) == 0);
    auto r = build("su");
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("setuid/setgid") != std::string::npos);
    base("su", R"(, "overrides": {"/opt/tool": {"mode": "4755"}})");
    auto ok = build("su");
    REQUIRE(ok);
    CHECK(ok->files.at(1).mode == 04755);
  }
  SECTION("computed fields and bad manifests") {
    base("cf", R"(, "files": [])");
    CHECK(build("cf").error().message() == "package.json: files is computed by the build and must not be given");
    base("bad", R"(, "colour": "blue")");
    CHECK(build("bad").error().message() == "package.json: colour: unknown field");
    base("sc");
    parc::test::WriteFile(dir / "sc/scripts/postinst", "x");
    CHECK(build("sc").error().message().find("scripts are named pre_install") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir / "hl.parc"));
}

TEST_CASE("files that are not packages are refused clearly") {
  parc::test::TempDir dir;
  parc::test::WriteFile(dir / "text.parc", "hello");
  auto r = ReadManifest(dir / "text.parc");
  REQUIRE_FALSE(r);
  CHECK(r.error().message().find("is not a Parc package") != std::string::npos);
  auto missing = ReadManifest(dir / "nope.parc");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().Is(Errc::kNotFound));
  parc::test::WriteFile(dir / "x/readme", "x");
  REQUIRE(parc::test::Shell("cd " + (dir / "x").string() + " && tar --zstd -cf ../other.tar.zst readme").exit_code == 0);
  auto other = ReadManifest(dir / "other.tar.zst");
  REQUIRE_FALSE(other);
  CHECK(other.error().message().find("its first member is 'readme', not manifest.json") != std::string::npos);
}

TEST_CASE("file sizes around the 1 MiB chunk boundary and empty files extract exactly") {
  parc::test::TempDir dir;
  KeyPair key = TestKey();
  TestPackageSpec spec;
  std::vector<size_t> sizes = {0, 1, (1u << 20) - 1, 1u << 20, (1u << 20) + 1, 2u << 20, (3u << 20) + 17};
  for (size_t i = 0; i < sizes.size(); ++i)
    spec.entries.push_back({"/data/f" + std::to_string(i), EntryType::kFile, parc::RandomBytes(sizes[i]), 0644, ""});
  REQUIRE(BuildTestPackage(dir / "src", spec, dir / "p.parc", &key));
  auto opened = VerifyPackage(dir / "p.parc", {key.public_key}, kTestNow);
  REQUIRE(opened);
  REQUIRE(ExtractPayload(dir / "p.parc", *opened, dir / "out"));
  for (size_t i = 0; i < sizes.size(); ++i) {
    INFO("size " << sizes[i]);
    CHECK(parc::test::ReadFileOrEmpty(dir / ("out/files/data/f" + std::to_string(i))) == spec.entries[i].content);
  }
}

// docs/packages.md promises a package can be made with tar, zstd, jq and
// openssl alone: run its recipe (all but the final parcctl line) and accept
// the result here.
TEST_CASE("the shell recipe in docs/packages.md builds a package Parc accepts") {
  for (const char* tool : {"jq", "zstd", "openssl", "tar"})
    if (parc::test::Shell(std::string("command -v ") + tool + " >/dev/null").exit_code != 0) FAIL(tool << " is missing");
  std::string doc = parc::test::ReadFileOrEmpty(parc::test::SourcePath("docs/packages.md"));
  size_t begin = doc.find("```sh\n");
  REQUIRE(begin != std::string::npos);
  begin += 6;
  size_t end = doc.find("```", begin);
  std::string recipe = doc.substr(begin, end - begin);
  recipe = recipe.substr(0, recipe.find("cd .. && parcctl"));
  parc::test::TempDir dir;
  auto made = parc::test::Shell("cd " + dir.path().string() +
                                " && openssl genpkey -algorithm ed25519 -out acme.key 2>/dev/null"
                                " && openssl pkey -in acme.key -pubout -out acme.pub && (" + recipe + ")");
  INFO(made.err);
  REQUIRE(made.exit_code == 0);
  auto pub = ParsePublicKey(parc::test::ReadFileOrEmpty(dir / "acme.pub"));
  REQUIRE(pub);
  auto opened = VerifyPackage(dir / "hello_1.0-1.parc", {*pub}, parc::NowUnix());
  REQUIRE(opened);
  CHECK(opened->manifest.key_id == pub->key_id);
  REQUIRE(ExtractPayload(dir / "hello_1.0-1.parc", *opened, dir / "staging"));
  CHECK(parc::test::ReadFileOrEmpty(dir / "staging/files/opt/hello/bin/hello") == "#!/bin/sh\necho hello\n");
}
