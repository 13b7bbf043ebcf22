// Ed25519 keys and manifest signatures, trusted key files.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/packages/signing.h"
#include "pkg_fixture.h"
#include "test_support.h"

using namespace parc::pkg;
using namespace parc::pkg::testing;
using parc::Errc;

namespace {
Manifest Sample() {
  auto m = ParseManifest(R"({"format":1,"name":"hello","version":"1.0"})");
  REQUIRE(m);
  return *m;
}
}  // namespace

TEST_CASE("keys have a 16 hex key id and round-trip through PEM") {
  KeyPair k = TestKey("acme");
  CHECK(k.public_key.key_id.size() == 16);
  CHECK(k.public_key.raw.size() == 32);
  CHECK(k.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
  std::string pem = k.public_key.Pem();
  CHECK(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
  auto pub = ParsePublicKey(pem, "acme");
  REQUIRE(pub);
  CHECK(pub->key_id == k.public_key.key_id);
  CHECK(pub->key_id == parc::Sha256Hex(k.public_key.raw).substr(0, 16));
  CHECK_FALSE(ParsePublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
  CHECK(TestKey().public_key.key_id != k.public_key.key_id);
}

TEST_CASE("key files: private 0600, no overwrite, load back") {
  parc::test::TempDir dir;
  KeyPair k = TestKey("acme");
  REQUIRE(WriteKeyPair(k, dir.path()));
  struct stat st {};
  REQUIRE(::stat((dir / "acme.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto again = WriteKeyPair(k, dir.path());
  REQUIRE_FALSE(again);
  CHECK(again.error().Is(Errc::kAlreadyExists));
  auto loaded = LoadPrivateKey(dir / "acme.key");
  REQUIRE(loaded);
  CHECK(loaded->public_key.key_id == k.public_key.key_id);
  CHECK(loaded->public_key.name == "acme");
  auto pub = ParsePublicKey(parc::test::ReadFileOrEmpty(dir / "acme.pub"));
  REQUIRE(pub);
  CHECK(pub->key_id == k.public_key.key_id);
  CHECK_FALSE(LoadPrivateKey(dir / "acme.pub"));
}

TEST_CASE("sign then verify, and every refusal has its own words") {
  KeyPair k = TestKey("acme");
  Manifest m = Sample();
  auto sig = SignManifest(m, k, kTestNow, kTestNow + 3600);
  REQUIRE(sig);
  CHECK(sig->size() == 64);
  CHECK(m.key_id == k.public_key.key_id);
  CHECK(m.signed_at == kTestNow);
  CHECK(m.expires_at == kTestNow + 3600);
  std::string bytes = CanonicalJson(m);
  std::vector<PublicKey> trusted{k.public_key};
  CHECK(VerifyManifestBytes(bytes, *sig, trusted, kTestNow + 10));

  SECTION("unknown key") {
    auto r = VerifyManifestBytes(bytes, *sig, {TestKey().public_key}, kTestNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kUnauthenticated));
    CHECK(r.error().message() == "signed by key " + k.public_key.key_id + " which this machine does not trust");
  }
  SECTION("altered manifest") {
    std::string altered = bytes;
    altered.replace(altered.find("1.0"), 3, "1.1");
    auto r = VerifyManifestBytes(altered, *sig, trusted, kTestNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
    CHECK(r.error().message() == "signature does not match: the manifest was altered or signed by another key");
  }
  SECTION("altered signature") {
    std::string bad = *sig;
    bad[10] ^= 1;
    auto r = VerifyManifestBytes(bytes, bad, trusted, kTestNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
  }
  SECTION("expired") {
    auto r = VerifyManifestBytes(bytes, *sig, trusted, kTestNow + 3601);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kExpired));
    CHECK(r.error().message() == "signature expired on " + parc::FormatTime(kTestNow + 3600));
  }
  SECTION("signed in the future") {
    CHECK(VerifyManifestBytes(bytes, *sig, trusted, kTestNow - 299));
    auto r = VerifyManifestBytes(bytes, *sig, trusted, kTestNow - 301);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().starts_with("signature is not valid yet"));
  }
  SECTION("unsigned") {
    Manifest plain = Sample();
    auto r = VerifyManifestBytes(CanonicalJson(plain), "", trusted, kTestNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kUnauthenticated));
    CHECK(r.error().message() == "package is not signed");
  }
  SECTION("another key's signature under this key id") {
    Manifest other = m;
    auto forged = SignManifest(other, TestKey(), kTestNow, kTestNow + 3600);
    REQUIRE(forged);
    auto r = VerifyManifestBytes(bytes, *forged, trusted, kTestNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
  }
}

TEST_CASE("trusted keys file round-trips, missing file is empty") {
  parc::test::TempDir dir;
  auto missing = LoadTrustedKeys(dir / "trusted_keys.json");
  REQUIRE(missing);
  CHECK(missing->empty());
  KeyPair a = TestKey("acme"), b = TestKey("beta");
  REQUIRE(SaveTrustedKeys(dir / "trusted_keys.json", {a.public_key, b.public_key}));
  auto loaded = LoadTrustedKeys(dir / "trusted_keys.json");
  REQUIRE(loaded);
  REQUIRE(loaded->size() == 2);
  CHECK((*loaded)[0].key_id == a.public_key.key_id);
  CHECK((*loaded)[0].name == "acme");
  CHECK((*loaded)[1].raw == b.public_key.raw);
  // A key id that does not match its key is refused, not trusted under the wrong id.
  std::string text = parc::test::ReadFileOrEmpty(dir / "trusted_keys.json");
  text.replace(text.find(a.public_key.key_id), 16, "0000000000000000");
  parc::test::WriteFile(dir / "trusted_keys.json", text);
  auto bad = LoadTrustedKeys(dir / "trusted_keys.json");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("key_id does not match") != std::string::npos);
  parc::test::WriteFile(dir / "trusted_keys.json", "{}");
  CHECK_FALSE(LoadTrustedKeys(dir / "trusted_keys.json"));
}
