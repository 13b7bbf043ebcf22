// Signed policies: a baseline file travels as content (addressed by its
// SHA-256) described by a small manifest signed with a publisher key, the
// same keys and the same verification as packages (docs/policy.md, "Signed
// policies"). Agents refuse an expired manifest, a baseline whose bytes do
// not match it, and a version older than the one they already run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/signing.h"
#include "parc/policy/baseline.h"

namespace parc::policy {

struct PolicyManifest {
  std::string name, version, title;
  std::string sha256;      // of the baseline file
  uint64_t size = 0;
  uint32_t rules = 0;
  std::string publisher;   // label of the signing key
  std::string key_id;
  int64_t signed_at = 0, expires_at = 0;
};

// The exact bytes that are signed: compact JSON, keys sorted, with
// "format": "parc-policy/1".
std::string CanonicalPolicyManifest(const PolicyManifest& m);
// Strict: unknown keys, wrong types, another format are errors.
Expected<PolicyManifest> ParsePolicyManifest(std::string_view json);

struct SignedPolicy {
  PolicyManifest manifest;
  std::string manifest_json;  // canonical bytes
  std::string signature;      // raw 64 bytes
};

// Parses baseline_bytes (errors name label and line), then signs a manifest
// describing them.
Expected<SignedPolicy> SignPolicy(std::string_view baseline_bytes, const std::string& label, const pkg::KeyPair& key,
                                  int64_t now, int64_t expires_at);

// Signature, key and validity period of a manifest.
Expected<PolicyManifest> VerifyPolicyManifest(std::string_view manifest_json, std::string_view signature,
                                              const std::vector<pkg::PublicKey>& trusted, int64_t now);

// The baseline a verified manifest describes: size and digest of the bytes
// must match, and the file must parse to the same name and version.
Expected<Baseline> OpenSignedBaseline(const PolicyManifest& m, std::string_view baseline_bytes);

}  // namespace parc::policy
