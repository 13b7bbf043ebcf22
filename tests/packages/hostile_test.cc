// Hostile package files, crafted member by member with libarchive: every one
// must be refused with a clear error, leave nothing outside staging, and
// leave no staging directory behind.
#include <catch2/catch.hpp>

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "parc/common/hash.h"
#include "parc/packages/archive.h"
#include "pkg_fixture.h"
#include "test_support.h"

using namespace parc::pkg;
using namespace parc::pkg::testing;
using parc::Errc;
namespace fs = std::filesystem;

namespace {

struct RawMember {
  std::string name;
  int type = AE_IFREG;
  unsigned perm = 0644;
  std::string data;
  std::string link;           // symlink target or hard link source
  bool hardlink = false;
  uint64_t zeros = 0;         // write this many zero bytes instead of data
};

// Writes a tar.zst: manifest.json (exact bytes), manifest.sig, then members as given.
void WriteRawPackage(const fs::path& out, const std::string& manifest, const std::string& sig,
                     const std::vector<RawMember>& members) {
  archive* a = archive_write_new();
  // Like a third-party tool would: the zstd CLI (content checksum on by default).
  REQUIRE(archive_write_add_filter_program(a, "zstd -q --check") == ARCHIVE_OK);
  REQUIRE(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK);
  REQUIRE(archive_write_open_filename(a, out.c_str()) == ARCHIVE_OK);
  auto put = [&](const RawMember& m) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.name.c_str());
    archive_entry_set_perm(e, m.perm);
    if (m.hardlink) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_hardlink(e, m.link.c_str());
      archive_entry_set_size(e, 0);
    } else {
      archive_entry_set_filetype(e, static_cast<unsigned>(m.type));
      if (m.type == AE_IFLNK) archive_entry_set_symlink(e, m.link.c_str());
      if (m.type == AE_IFREG) archive_entry_set_size(e, static_cast<la_int64_t>(m.zeros ? m.zeros : m.data.size()));
      if (m.type == AE_IFCHR) archive_entry_set_rdev(e, makedev(1, 3));
    }
    REQUIRE(archive_write_header(a, e) >= ARCHIVE_WARN);
    if (m.zeros) {
      std::string block(1 << 20, '\0');
      for (uint64_t left = m.zeros; left > 0;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, block.size()));
        REQUIRE(archive_write_data(a, block.data(), n) == static_cast<la_ssize_t>(n));
        left -= n;
      }
    } else if (!m.data.empty()) {
      REQUIRE(archive_write_data(a, m.data.data(), m.data.size()) == static_cast<la_ssize_t>(m.data.size()));
    }
    archive_entry_free(e);
  };
  put({kManifestMember, AE_IFREG, 0644, manifest});
  put({kSignatureMember, AE_IFREG, 0644, sig});
  for (const auto& m : members) put(m);
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
}

std::set<std::string> Tree(const fs::path& dir) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it)
    out.insert(it->path().lexically_relative(dir).string());
  return out;
}

FileEntry File(const std::string& path, const std::string& content, unsigned mode = 0644) {
  FileEntry f;
  f.path = path;
  f.sha256 = parc::Sha256Hex(content);
  f.size = content.size();
  f.mode = mode;
  return f;
}

struct Hostile {
  parc::test::TempDir dir{"parc-hostile"};
  KeyPair key = TestKey("publisher");
  Manifest manifest;
  fs::path package = dir / "work/p.parc";
  fs::path staging = dir / "work/staging";

  Hostile() {
    manifest.name = "hostile";
    manifest.version = "1.0";
    fs::create_directories(dir / "work");
  }
  // Signs the manifest as a publisher would, and writes the raw members.
  void Write(const std::vector<RawMember>& members, int64_t expires = kTestExpires) {
    auto sig = SignManifest(manifest, key, kTestNow, expires);
    REQUIRE(sig);
    WriteRawPackage(package, CanonicalJson(manifest), *sig, members);
  }
  // Verify + extract; returns the error (there must be one) and checks that
  // nothing was left behind.
  parc::Error Refused(const ExtractLimits& limits = {}) {
    auto before = Tree(dir.path());
    auto opened = VerifyPackage(package, {key.public_key}, kTestNow + 60);
    parc::Error error;
    if (!opened) {
      error = opened.error();
    } else {
      auto r = ExtractPayload(package, *opened, staging, limits);
      REQUIRE_FALSE(r);
      error = r.error();
    }
    CHECK_FALSE(fs::exists(fs::symlink_status(staging)));
    CHECK(Tree(dir.path()) == before);
    CHECK_FALSE(fs::exists("/tmp/parc-hostile-escape"));
    return error;
  }
};

}  // namespace

TEST_CASE("hostile: a well-formed raw package is accepted (the helper itself is sound)") {
  Hostile h;
  h.manifest.files = {File("/opt/a.txt", "hello")};
  h.Write({{"files/opt/a.txt", AE_IFREG, 0644, "hello"}});
  auto opened = VerifyPackage(h.package, {h.key.public_key}, kTestNow);
  REQUIRE(opened);
  REQUIRE(ExtractPayload(h.package, *opened, h.staging));
  CHECK(parc::test::ReadFileOrEmpty(h.staging / "files/opt/a.txt") == "hello");
}

TEST_CASE("hostile: absolute member path") {
  Hostile h;
  h.manifest.files = {File("/opt/a.txt", "hello")};
  h.Write({{"/tmp/parc-hostile-escape", AE_IFREG, 0644, "evil"}, {"files/opt/a.txt", AE_IFREG, 0644, "hello"}});
  CHECK(h.Refused().message() == "member '/tmp/parc-hostile-escape': absolute paths are not allowed");
}

TEST_CASE("hostile: dot-dot member path") {
  Hostile h;
  h.manifest.files = {File("/opt/a.txt", "hello")};
  h.Write({{"files/opt/a.txt", AE_IFREG, 0644, "hello"}, {"files/../../escaped", AE_IFREG, 0644, "evil"}});
  CHECK(h.Refused().message() == "member 'files/../../escaped': '..' is not allowed");
}

TEST_CASE("hostile: symlink leaving the root") {
  Hostile h;
  FileEntry link;
  link.path = "/opt/link";
  link.type = EntryType::kSymlink;
  link.mode = 0777;
  link.target = "../etc/passwd";
  h.manifest.files = {link, File("/opt/link2/x", "x")};
  h.Write({{"files/opt/link", AE_IFLNK, 0777, "", "../../../../../../etc/passwd"},
           {"files/opt/link2/x", AE_IFREG, 0644, "x"}});
  CHECK(h.Refused().message() ==
        "member 'files/opt/link': symlink target '../../../../../../etc/passwd' differs from the manifest "
        "('../etc/passwd')");
}

TEST_CASE("hostile: symlink followed by a member written through it") {
  Hostile h;
  FileEntry link;
  link.path = "/opt/dir";
  link.type = EntryType::kSymlink;
  link.mode = 0777;
  link.target = "/tmp";
  h.manifest.files = {link};
  h.Write({{"files/opt/dir", AE_IFLNK, 0777, "", "/tmp"},
           {"files/opt/dir/parc-hostile-escape", AE_IFREG, 0644, "evil"}});
  CHECK(h.Refused().message() == "member 'files/opt/dir/parc-hostile-escape': not declared in the manifest");
}

TEST_CASE("hostile: hard link") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a"), File("/opt/b", "")};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "a"}, {"files/opt/b", AE_IFREG, 0644, "", "files/opt/a", true}});
  CHECK(h.Refused().message() == "member 'files/opt/b': hard links are not allowed");
}

TEST_CASE("hostile: device node") {
  Hostile h;
  h.manifest.files = {File("/dev/null", "")};
  h.Write({{"files/dev/null", AE_IFCHR, 0666, ""}});
  CHECK(h.Refused().message() == "member 'files/dev/null': device nodes are not allowed");
}

TEST_CASE("hostile: fifo") {
  Hostile h;
  h.manifest.files = {File("/run/pipe", "")};
  h.Write({{"files/run/pipe", AE_IFIFO, 0644, ""}});
  CHECK(h.Refused().message() == "member 'files/run/pipe': fifos are not allowed");
}

TEST_CASE("hostile: undeclared setuid") {
  Hostile h;
  h.manifest.files = {File("/usr/bin/tool", "#!/bin/sh\n", 0755)};
  h.Write({{"files/usr/bin/tool", AE_IFREG, 04755, "#!/bin/sh\n"}});
  CHECK(h.Refused().message() ==
        "member 'files/usr/bin/tool': has the setuid/setgid bit (mode 4755) which the manifest does not declare (0755)");
}

TEST_CASE("hostile: undeclared member") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a")};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "a"}, {"files/opt/extra", AE_IFREG, 0644, "extra"}});
  CHECK(h.Refused().message() == "member 'files/opt/extra': not declared in the manifest");
}

TEST_CASE("hostile: duplicate member") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a")};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "a"}, {"files/opt/a", AE_IFREG, 0644, "a"}});
  CHECK(h.Refused().message() == "member 'files/opt/a': appears twice in the package");
}

TEST_CASE("hostile: declared member missing") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a"), File("/opt/b", "b")};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "a"}});
  CHECK(h.Refused().message() == "member 'files/opt/b': declared in the manifest but missing from the package");
}

TEST_CASE("hostile: type differs from the manifest") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a")};
  h.Write({{"files/opt/a", AE_IFLNK, 0777, "", "b"}});
  CHECK(h.Refused().message() == "member 'files/opt/a': is a symlink but the manifest declares a file");
}

TEST_CASE("hostile: size mismatch") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "0123456789")};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "01234"}});
  CHECK(h.Refused().message() == "member 'files/opt/a': size 5 differs from the manifest (10)");
}

TEST_CASE("hostile: digest mismatch") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "good content"), File("/opt/b", "b")};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "evil content"}, {"files/opt/b", AE_IFREG, 0644, "b"}});
  auto e = h.Refused();
  CHECK(e.Is(Errc::kCrypto));
  CHECK(e.message().starts_with("member 'files/opt/a': SHA-256 " + parc::Sha256Hex("evil content") +
                                " does not match the manifest"));
}

TEST_CASE("hostile: decompression bomb stopped by the ratio") {
  Hostile h;
  FileEntry f = File("/opt/zeros", "");
  f.size = 2ull << 30;
  f.sha256 = std::string(64, '0');  // never reached
  h.manifest.files = {f};
  h.Write({{"files/opt/zeros", AE_IFREG, 0644, "", "", false, 2ull << 30}});
  CHECK(fs::file_size(h.package) < (1u << 20));
  ExtractLimits limits;
  limits.max_ratio = 100;
  auto e = h.Refused(limits);
  CHECK(e.Is(Errc::kResourceExhausted));
  CHECK(e.message().starts_with("decompression bomb: "));
}

TEST_CASE("hostile: declared size above the limit is refused before writing") {
  Hostile h;
  FileEntry f = File("/opt/zeros", "");
  f.size = 2ull << 30;
  h.manifest.files = {f};
  h.Write({{"files/opt/zeros", AE_IFREG, 0644, "", "", false, 4 << 20}});
  ExtractLimits limits;
  limits.max_total_bytes = 1 << 20;
  auto e = h.Refused(limits);
  CHECK(e.Is(Errc::kResourceExhausted));
  CHECK(e.message().find("above the extraction limit") != std::string::npos);
}

TEST_CASE("hostile: truncated package") {
  Hostile h;
  std::string big = parc::RandomBytes(4 << 20);
  h.manifest.files = {File("/opt/big", big)};
  h.Write({{"files/opt/big", AE_IFREG, 0644, big}});
  fs::resize_file(h.package, fs::file_size(h.package) / 2);
  auto e = h.Refused();
  CHECK(e.message().starts_with("package file is truncated or corrupt: "));
}

TEST_CASE("hostile: unsigned, unknown key, expired") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a")};
  WriteRawPackage(h.package, CanonicalJson(h.manifest), "", {{"files/opt/a", AE_IFREG, 0644, "a"}});
  auto unsigned_ = h.Refused();
  CHECK(unsigned_.Is(Errc::kUnauthenticated));
  CHECK(unsigned_.message() == "package is not signed");

  KeyPair stranger = TestKey("stranger");
  auto sig = SignManifest(h.manifest, stranger, kTestNow, kTestExpires);
  REQUIRE(sig);
  WriteRawPackage(h.package, CanonicalJson(h.manifest), *sig, {{"files/opt/a", AE_IFREG, 0644, "a"}});
  auto unknown = h.Refused();
  CHECK(unknown.Is(Errc::kUnauthenticated));
  CHECK(unknown.message() == "signed by key " + stranger.public_key.key_id + " which this machine does not trust");

  h.Write({{"files/opt/a", AE_IFREG, 0644, "a"}}, kTestNow + 30);
  auto expired = h.Refused();
  CHECK(expired.Is(Errc::kExpired));
  CHECK(expired.message().starts_with("signature expired on "));
}

TEST_CASE("hostile: a correctly signed manifest that is not in canonical form") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "a")};
  REQUIRE(SignManifest(h.manifest, h.key, kTestNow, kTestExpires));
  // Same content pretty-printed, signed over those exact bytes with openssl.
  std::string pretty = nlohmann::json::parse(CanonicalJson(h.manifest)).dump(2);
  parc::test::WriteFile(h.dir / "key.pem", h.key.private_pem);
  parc::test::WriteFile(h.dir / "pretty.json", pretty);
  auto signed_ = parc::test::Run({"openssl", "pkeyutl", "-sign", "-rawin", "-inkey", (h.dir / "key.pem").string(),
                                  "-in", (h.dir / "pretty.json").string(), "-out", (h.dir / "pretty.sig").string()});
  REQUIRE(signed_.exit_code == 0);
  std::string sig = parc::test::ReadFileOrEmpty(h.dir / "pretty.sig");
  REQUIRE(VerifyManifestBytes(pretty, sig, {h.key.public_key}, kTestNow));
  WriteRawPackage(h.package, pretty, sig, {{"files/opt/a", AE_IFREG, 0644, "a"}});
  CHECK(h.Refused().message().starts_with("manifest.json is not in canonical form"));
}

// zstd's entropy coding has redundant bits (e.g. table entries of symbols
// never used): flipping one of them decodes to the very same tar. Such a flip
// changes nothing that is extracted; every other flip must be refused. Whole-
// file integrity is the content store's job (packages are fetched by SHA-256).
TEST_CASE("hostile: one flipped byte anywhere in the package file is refused or changes nothing") {
  Hostile h;
  h.manifest.files = {File("/opt/a", "hello"), File("/opt/b", std::string(3000, 'b'))};
  h.Write({{"files/opt/a", AE_IFREG, 0644, "hello"}, {"files/opt/b", AE_IFREG, 0644, std::string(3000, 'b')}});
  std::string good = parc::test::ReadFileOrEmpty(h.package);
  REQUIRE(good.size() > 200);
  auto decoded = [&] { return parc::test::Run({"zstd", "-dcq", "--no-check", h.package.string()}).out; };
  std::string good_tar = decoded();
  REQUIRE(good_tar.size() > 3000);
  size_t refused = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    parc::test::WriteFile(h.package, bad);
    auto opened = VerifyPackage(h.package, {h.key.public_key}, kTestNow);
    auto r = opened ? ExtractPayload(h.package, *opened, h.staging) : parc::ExpectedVoid{};
    if (!opened || !r) {
      ++refused;
      CHECK_FALSE(fs::exists(h.staging));
      continue;
    }
    INFO("flipping byte " << i << " of " << good.size() << " was accepted");
    CHECK(decoded() == good_tar);
    CHECK(parc::test::ReadFileOrEmpty(h.staging / "files/opt/a") == "hello");
    fs::remove_all(h.staging);
  }
  CHECK(refused >= good.size() - 8);
}
