#include "parc/policy/signed.h"

#include <nlohmann/json.hpp>
#include <set>

#include "parc/common/hash.h"

namespace parc::policy {

namespace {
constexpr const char* kFormat = "parc-policy/1";
}

std::string CanonicalPolicyManifest(const PolicyManifest& m) {
  // nlohmann::json objects keep keys sorted: the dump is canonical.
  nlohmann::json j{{"format", kFormat},       {"name", m.name},         {"version", m.version},
                   {"title", m.title},        {"sha256", m.sha256},     {"size", m.size},
                   {"rules", m.rules},        {"publisher", m.publisher}, {"key_id", m.key_id},
                   {"signed_at", m.signed_at}, {"expires_at", m.expires_at}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

Expected<PolicyManifest> ParsePolicyManifest(std::string_view json) {
  if (json.size() > 64 * 1024) return Fail(Errc::kParse, "policy manifest larger than 64 KiB");
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Fail(Errc::kParse, "policy manifest is not a JSON object");
  static const std::set<std::string> kKeys = {"format", "name",      "version", "title",     "sha256",    "size",
                                              "rules",  "publisher", "key_id",  "signed_at", "expires_at"};
  for (const auto& [k, v] : j.items())
    if (!kKeys.contains(k)) return Fail(Errc::kParse, "policy manifest: unknown key '" + k + "'");
  auto str = [&](const char* k) -> Expected<std::string> {
    if (!j.contains(k) || !j[k].is_string()) return Fail(Errc::kParse, std::string("policy manifest: '") + k + "' must be a string");
    return j[k].get<std::string>();
  };
  auto num = [&](const char* k) -> Expected<int64_t> {
    if (!j.contains(k) || !j[k].is_number_integer() || j[k].get<int64_t>() < 0)
      return Fail(Errc::kParse, std::string("policy manifest: '") + k + "' must be a non-negative integer");
    return j[k].get<int64_t>();
  };
  auto format = str("format");
  if (!format) return Fail(format.error());
  if (*format != kFormat) return Fail(Errc::kParse, "policy manifest format '" + *format + "' is not " + kFormat);
  PolicyManifest m;
  const std::pair<const char*, std::string*> strings[] = {{"name", &m.name},     {"version", &m.version},
                                                          {"title", &m.title},   {"sha256", &m.sha256},
                                                          {"publisher", &m.publisher}, {"key_id", &m.key_id}};
  for (auto [key, out] : strings) {
    auto v = str(key);
    if (!v) return Fail(v.error());
    *out = std::move(*v);
  }
  const std::pair<const char*, int64_t*> times[] = {{"signed_at", &m.signed_at}, {"expires_at", &m.expires_at}};
  for (auto [key, out] : times) {
    auto v = num(key);
    if (!v) return Fail(v.error());
    *out = *v;
  }
  auto size = num("size");
  if (!size) return Fail(size.error());
  m.size = static_cast<uint64_t>(*size);
  auto rules = num("rules");
  if (!rules) return Fail(rules.error());
  m.rules = static_cast<uint32_t>(*rules);
  if (m.sha256.size() != 64 || m.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
    return Fail(Errc::kParse, "policy manifest: 'sha256' must be 64 lower-case hex characters");
  if (m.name.empty() || m.version.empty()) return Fail(Errc::kParse, "policy manifest: 'name' and 'version' must not be empty");
  return m;
}

Expected<SignedPolicy> SignPolicy(std::string_view baseline_bytes, const std::string& label, const pkg::KeyPair& key,
                                  int64_t now, int64_t expires_at) {
  if (expires_at <= now) return Fail(Errc::kInvalidArgument, "the expiry must be after the signing time");
  auto b = ParseBaseline(baseline_bytes, label);
  if (!b) return Fail(b.error());
  SignedPolicy s;
  s.manifest.name = b->name;
  s.manifest.version = b->version;
  s.manifest.title = b->title;
  s.manifest.sha256 = Sha256Hex(baseline_bytes);
  s.manifest.size = baseline_bytes.size();
  s.manifest.rules = static_cast<uint32_t>(b->rules.size());
  s.manifest.publisher = key.public_key.name;
  s.manifest.key_id = key.public_key.key_id;
  s.manifest.signed_at = now;
  s.manifest.expires_at = expires_at;
  s.manifest_json = CanonicalPolicyManifest(s.manifest);
  auto sig = pkg::SignBytes(s.manifest_json, key);
  if (!sig) return Fail(sig.error());
  s.signature = std::move(*sig);
  return s;
}

Expected<PolicyManifest> VerifyPolicyManifest(std::string_view manifest_json, std::string_view signature,
                                              const std::vector<pkg::PublicKey>& trusted, int64_t now) {
  auto m = ParsePolicyManifest(manifest_json);
  if (!m) return Fail(m.error());
  if (auto v = pkg::VerifySignedBytes(manifest_json, signature, {"policy", m->key_id, m->signed_at, m->expires_at}, trusted, now); !v)
    return Fail(v.error());
  return m;
}

Expected<Baseline> OpenSignedBaseline(const PolicyManifest& m, std::string_view baseline_bytes) {
  if (baseline_bytes.size() != m.size || Sha256Hex(baseline_bytes) != m.sha256)
    return Fail(Errc::kCrypto, "the baseline file of policy " + m.name + " " + m.version +
                                   " does not match its signed manifest (size or SHA-256 differ): refused");
  auto b = ParseBaseline(baseline_bytes, m.name + ".toml");
  if (!b) return Fail(b.error());
  if (b->name != m.name || b->version != m.version)
    return Fail(Errc::kCrypto, "the baseline file says " + b->name + " " + b->version + " but its manifest says " + m.name +
                                   " " + m.version + ": refused");
  return b;
}

}  // namespace parc::policy
