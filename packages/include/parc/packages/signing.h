// Publisher keys and Ed25519 signatures over canonical manifests (OpenSSL).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/manifest.h"

namespace parc::pkg {

struct PublicKey {
  std::string key_id;      // first 16 hex chars of SHA-256 of the raw 32-byte key
  std::string raw;         // 32 bytes
  std::string name;        // publisher label (informational)
  std::string Pem() const; // SubjectPublicKeyInfo PEM
};

struct KeyPair {
  PublicKey public_key;
  std::string private_pem; // PKCS#8 PEM
};

Expected<KeyPair> GenerateKey(const std::string& name);
// Writes NAME.key (0600) and NAME.pub into dir; refuses to overwrite.
ExpectedVoid WriteKeyPair(const KeyPair& k, const std::filesystem::path& dir);
Expected<KeyPair> LoadPrivateKey(const std::filesystem::path& key_file);
Expected<PublicKey> ParsePublicKey(std::string_view pem, const std::string& name = "");

// The raw 64-byte Ed25519 signature of bytes.
Expected<std::string> SignBytes(std::string_view bytes, const KeyPair& key);

// What a signed document says of its own signature (read from its bytes).
struct SignedClaims {
  std::string what;        // "package", "policy": for messages
  std::string key_id;
  int64_t signed_at = 0, expires_at = 0;
};
// The one verification every signed document goes through: trusted key,
// signature over the exact bytes, validity period (with 5 minutes of clock skew).
ExpectedVoid VerifySignedBytes(std::string_view bytes, std::string_view signature, const SignedClaims& claims,
                               const std::vector<PublicKey>& trusted, int64_t now);

// Sets key_id/signed_at/expires_at in m and returns the 64-byte signature over CanonicalJson(m).
Expected<std::string> SignManifest(Manifest& m, const KeyPair& key, int64_t now, int64_t expires_at);

// Verifies exact canonical bytes (as stored in the package) against the
// trusted keys: unknown key id, bad signature, not yet valid or expired are
// distinct errors with clear words (Errc::kCrypto / kExpired / kUnauthenticated).
ExpectedVoid VerifyManifestBytes(std::string_view canonical_json, std::string_view signature,
                                 const std::vector<PublicKey>& trusted, int64_t now);
// The same for bytes already parsed into m (ParseManifest(canonical_json)):
// a large manifest is not parsed a second time.
ExpectedVoid VerifyManifest(const Manifest& m, std::string_view canonical_json, std::string_view signature,
                            const std::vector<PublicKey>& trusted, int64_t now);

// The agent's trusted publisher keys, as the server distributes them:
// a JSON array of {"key_id", "name", "public_key_pem"} in <state>/trusted_keys.json.
Expected<std::vector<PublicKey>> LoadTrustedKeys(const std::filesystem::path& file);  // missing file = empty
ExpectedVoid SaveTrustedKeys(const std::filesystem::path& file, const std::vector<PublicKey>& keys);  // atomic

}  // namespace parc::pkg
