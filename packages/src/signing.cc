// Ed25519 publisher keys and manifest signatures through OpenSSL 3's EVP API.
#include "parc/packages/signing.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"

namespace parc::pkg {
namespace {

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

constexpr int64_t kClockSkew = 5 * 60;

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::unexpected<Error> CryptoFail(const std::string& what) { return Fail(Errc::kCrypto, what + ": " + OpenSslError()); }

std::string KeyId(std::string_view raw) { return Sha256Hex(raw).substr(0, 16); }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Expected<std::string> RawPublic(EVP_PKEY* pkey) {
  if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) return Fail(Errc::kCrypto, "not an Ed25519 key");
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != 32) return CryptoFail("cannot read the public key");
  return std::string(reinterpret_cast<char*>(raw), len);
}

Expected<Pkey> PrivateFromPem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return CryptoFail("BIO_new_mem_buf");
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) return CryptoFail("not a PEM private key");
  if (EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) return Fail(Errc::kCrypto, "the private key is not Ed25519");
  return pkey;
}

Expected<PublicKey> FromPkey(EVP_PKEY* pkey, const std::string& name) {
  auto raw = RawPublic(pkey);
  if (!raw) return Fail(raw.error());
  PublicKey k;
  k.raw = *raw;
  k.key_id = KeyId(k.raw);
  k.name = name;
  return k;
}

}  // namespace

std::string PublicKey::Pem() const {
  Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()),
                                        raw.size()));
  if (!pkey) return "";
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) return "";
  return BioText(bio.get());
}

Expected<KeyPair> GenerateKey(const std::string& name) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return CryptoFail("cannot set up Ed25519 key generation");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) return CryptoFail("cannot generate an Ed25519 key");
  Pkey pkey(raw);
  auto pub = FromPkey(pkey.get(), name);
  if (!pub) return Fail(pub.error());
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return CryptoFail("cannot encode the private key");
  return KeyPair{*pub, BioText(bio.get())};
}

ExpectedVoid WriteKeyPair(const KeyPair& k, const std::filesystem::path& dir) {
  if (k.public_key.name.empty() || k.public_key.name.find('/') != std::string::npos)
    return Fail(Errc::kInvalidArgument, "key name must be a plain, non-empty name");
  auto key_file = dir / (k.public_key.name + ".key");
  auto pub_file = dir / (k.public_key.name + ".pub");
  for (const auto& f : {key_file, pub_file})
    if (PathExists(f)) return Fail(Errc::kAlreadyExists, f.string() + " already exists; refusing to overwrite it");
  if (auto e = EnsureDirectory(dir, 0700); !e) return e;
  if (auto w = WriteFileAtomic(key_file, k.private_pem, 0600); !w) return w;
  return WriteFileAtomic(pub_file, k.public_key.Pem(), 0644);
}

Expected<KeyPair> LoadPrivateKey(const std::filesystem::path& key_file) {
  auto pem = ReadSmallFile(key_file, 64 << 10);
  if (!pem) return Fail(pem.error());
  auto pkey = PrivateFromPem(*pem);
  if (!pkey) return Fail(pkey.error().WithContext(key_file.string()));
  auto pub = FromPkey(pkey->get(), key_file.stem().string());
  if (!pub) return Fail(pub.error());
  return KeyPair{*pub, *pem};
}

Expected<PublicKey> ParsePublicKey(std::string_view pem, const std::string& name) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return CryptoFail("BIO_new_mem_buf");
  Pkey pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) return CryptoFail("not a PEM public key (SubjectPublicKeyInfo)");
  return FromPkey(pkey.get(), name);
}

Expected<std::string> SignBytes(std::string_view bytes, const KeyPair& key) {
  auto pkey = PrivateFromPem(key.private_pem);
  if (!pkey) return Fail(pkey.error());
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey->get()) != 1)
    return CryptoFail("cannot start signing");
  unsigned char sig[64];
  size_t len = sizeof sig;
  if (EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()) != 1 ||
      len != 64)
    return CryptoFail("cannot sign");
  return std::string(reinterpret_cast<char*>(sig), len);
}

Expected<std::string> SignManifest(Manifest& m, const KeyPair& key, int64_t now, int64_t expires_at) {
  if (expires_at <= now) return Fail(Errc::kInvalidArgument, "the expiry must be after the signing time");
  auto pkey = PrivateFromPem(key.private_pem);
  if (!pkey) return Fail(pkey.error());
  auto pub = FromPkey(pkey->get(), "");
  if (!pub) return Fail(pub.error());
  m.key_id = pub->key_id;
  m.signed_at = now;
  m.expires_at = expires_at;
  return SignBytes(CanonicalJson(m), key);
}

ExpectedVoid VerifySignedBytes(std::string_view bytes, std::string_view signature, const SignedClaims& claims,
                               const std::vector<PublicKey>& trusted, int64_t now) {
  const std::string& what = claims.what;
  if (signature.empty() || claims.expires_at == 0 || claims.key_id.empty())
    return Fail(Errc::kUnauthenticated, what + " is not signed");
  const PublicKey* key = nullptr;
  for (const auto& k : trusted)
    if (k.key_id == claims.key_id) key = &k;
  if (!key)
    return Fail(Errc::kUnauthenticated,
                "signed by key " + claims.key_id + " which this machine does not trust");
  if (signature.size() != 64)
    return Fail(Errc::kCrypto, "signature does not match: the manifest was altered or signed by another key");
  Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                        reinterpret_cast<const unsigned char*>(key->raw.data()), key->raw.size()));
  if (!pkey) return CryptoFail("trusted key " + key->key_id + " is not a valid Ed25519 key");
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1)
    return CryptoFail("cannot start verifying");
  int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                            reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  ERR_clear_error();
  if (ok != 1)
    return Fail(Errc::kCrypto, "signature does not match: the manifest was altered or signed by another key");
  if (claims.expires_at <= claims.signed_at)
    return Fail(Errc::kExpired, "signature expires before it was made (expires_at <= signed_at)");
  if (now > claims.expires_at) return Fail(Errc::kExpired, "signature expired on " + FormatTime(claims.expires_at));
  if (claims.signed_at > now + kClockSkew)
    return Fail(Errc::kExpired, "signature is not valid yet: signed on " + FormatTime(claims.signed_at) +
                                    ", after this machine's clock (" + FormatTime(now) + ")");
  return {};
}

ExpectedVoid VerifyManifestBytes(std::string_view canonical_json, std::string_view signature,
                                 const std::vector<PublicKey>& trusted, int64_t now) {
  auto m = ParseManifest(canonical_json);
  if (!m) return Fail(m.error());
  return VerifyManifest(*m, canonical_json, signature, trusted, now);
}

ExpectedVoid VerifyManifest(const Manifest& m, std::string_view canonical_json, std::string_view signature,
                            const std::vector<PublicKey>& trusted, int64_t now) {
  return VerifySignedBytes(canonical_json, signature, {"package", m.key_id, m.signed_at, m.expires_at}, trusted, now);
}

Expected<std::vector<PublicKey>> LoadTrustedKeys(const std::filesystem::path& file) {
  if (!PathExists(file)) return std::vector<PublicKey>{};
  auto text = ReadSmallFile(file, 16 << 20);
  if (!text) return Fail(text.error());
  std::vector<PublicKey> keys;
  try {
    auto j = nlohmann::json::parse(*text);
    if (!j.is_array()) return Fail(Errc::kParse, file.string() + ": must be a JSON array");
    for (size_t i = 0; i < j.size(); ++i) {
      const auto& e = j[i];
      std::string where = file.string() + ": [" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("public_key_pem") || !e["public_key_pem"].is_string())
        return Fail(Errc::kParse, where + ": needs a string public_key_pem");
      std::string name = e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>() : "";
      auto k = ParsePublicKey(e["public_key_pem"].get<std::string>(), name);
      if (!k) return Fail(k.error().WithContext(where));
      if (e.contains("key_id") && (!e["key_id"].is_string() || e["key_id"].get<std::string>() != k->key_id))
        return Fail(Errc::kParse, where + ": key_id does not match the public key (expected " + k->key_id + ")");
      keys.push_back(std::move(*k));
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail(Errc::kParse, file.string() + ": " + e.what());
  }
  return keys;
}

ExpectedVoid SaveTrustedKeys(const std::filesystem::path& file, const std::vector<PublicKey>& keys) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& k : keys) j.push_back({{"key_id", k.key_id}, {"name", k.name}, {"public_key_pem", k.Pem()}});
  return WriteFileAtomic(file, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0644);
}

}  // namespace parc::pkg
