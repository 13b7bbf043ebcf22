#include "parc/imaging/index.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "encoding.h"
#include "fetch.h"
#include "parc/common/canonical_json.h"
#include "parc/common/hash.h"

namespace parc::imaging {

using nlohmann::json;
using internal::Base64Decode;
using internal::Base64Encode;
using internal::ValidUtf8;

namespace {

constexpr const char* kChunkingAlgorithm = "parc-gear/1";
constexpr uint64_t kMaxJsonInt = (1ull << 53) - 1;  // exact in every JSON reader


// Index lines and the manifest are written directly in canonical form
// (parc/common/canonical_json.h): reading a body re-serializes every line to
// check it, so this is on every deployment's path.
std::string ChunkLine(const ChunkRef& c) {
  cjson::Object j;
  j.Str("object", c.object.Hex()).Str("sha256", c.sha256.Hex()).UInt("size", c.size).UInt("stored_size", c.stored_size);
  return j.Done();
}

// Text that is not UTF-8 (a Linux file name can be any bytes but NUL)
// travels base64-encoded under "<key>_b64".
void PutText(cjson::Object& j, std::string_view key, std::string_view key_b64, const std::string& value) {
  if (ValidUtf8(value)) j.Str(key, value);
  else j.Str(key_b64, Base64Encode(value));
}

std::string EntryLine(const Entry& e) {
  cjson::Object j;
  PutText(j, "path", "path_b64", e.path);
  j.Str("type", EntryTypeName(e.type));
  if (e.type == EntryType::kHardlink) {
    PutText(j, "target", "target_b64", e.target);
    return j.Done();
  }
  j.UInt("mode", e.mode).UInt("uid", e.uid).UInt("gid", e.gid).Str("user", e.user).Str("group", e.group);
  j.Int("mtime", e.mtime).UInt("mtime_nsec", e.mtime_nsec);
  cjson::Object x;  // keyed by the entry's own attribute names
  for (const auto& [k, v] : e.xattrs) x.Str(k, Base64Encode(v));
  j.Raw("xattrs", x.Done());
  switch (e.type) {
    case EntryType::kFile: {
      j.UInt("size", e.size);
      if (!e.data.empty()) {
        PutText(j, "data", "data_b64", e.data);
        break;
      }
      cjson::Array c;
      for (const auto& ch : e.chunks) c.Raw(ChunkLine(ch));
      j.Raw("chunks", c.Done());
      break;
    }
    case EntryType::kSymlink: PutText(j, "target", "target_b64", e.target); break;
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice: j.UInt("major", e.major).UInt("minor", e.minor); break;
    default: break;
  }
  return j.Done();
}

// Strict reading of one JSON object: every key known, every required key
// present with the right type.
class Obj {
 public:
  Obj(const json& j, std::string where) : j_(j), where_(std::move(where)) {}
  const std::string& where() const { return where_; }

  ExpectedVoid Keys(std::initializer_list<const char*> required, std::initializer_list<const char*> optional = {}) const {
    if (!j_.is_object()) return Err("must be a JSON object");
    for (const auto& [k, v] : j_.items()) {
      bool known = false;
      for (const char* r : required) known |= k == r;
      for (const char* o : optional) known |= k == o;
      if (!known) return Err("unknown key '" + k + "'");
    }
    for (const char* r : required)
      if (!j_.contains(r)) return Err(std::string("missing key '") + r + "'");
    return {};
  }
  bool Has(const char* k) const { return j_.contains(k); }
  const json& At(const char* k) const { return j_.at(k); }

  Expected<std::string> Str(const char* k) const {
    const json& v = j_.at(k);
    if (!v.is_string()) return Err(std::string("'") + k + "' must be a string");
    return v.get<std::string>();
  }
  Expected<uint64_t> U64(const char* k, uint64_t max = kMaxJsonInt) const {
    const json& v = j_.at(k);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      return Err(std::string("'") + k + "' must be a non-negative integer");
    uint64_t n = v.get<uint64_t>();
    if (n > max) return Err(std::string("'") + k + "' is " + std::to_string(n) + ", more than the limit " + std::to_string(max));
    return n;
  }
  Expected<int64_t> I64(const char* k) const {
    const json& v = j_.at(k);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > kMaxJsonInt))
      return Err(std::string("'") + k + "' must be an integer");
    int64_t n = v.get<int64_t>();
    if (n < -static_cast<int64_t>(kMaxJsonInt)) return Err(std::string("'") + k + "' is out of range");
    return n;
  }
  // A text field given as "<key>" (UTF-8) or "<key>_b64" (other bytes).
  Expected<std::string> Text(const char* k) const {
    std::string b64 = std::string(k) + "_b64";
    bool plain = j_.contains(k), encoded = j_.contains(b64);
    if (plain == encoded) return Err(std::string("needs exactly one of '") + k + "' and '" + b64 + "'");
    if (plain) return Str(k);
    const json& v = j_.at(b64);
    if (!v.is_string()) return Err("'" + b64 + "' must be a string");
    auto d = Base64Decode(v.get<std::string>());
    if (!d) return Err("'" + b64 + "' is not canonical base64");
    if (ValidUtf8(*d)) return Err("'" + b64 + "' holds UTF-8 text: it must be given as '" + k + "'");
    return *d;
  }
  std::unexpected<Error> Err(const std::string& what) const { return Fail(Errc::kParse, where_ + ": " + what); }

 private:
  const json& j_;
  std::string where_;
};

Expected<Digest> HexField(const Obj& o, const char* k) {
  auto s = o.Str(k);
  if (!s) return Fail(s.error());
  auto d = Digest::FromHex(*s);
  if (!d) return o.Err(std::string("'") + k + "' must be 64 lower-case hex characters");
  return d;
}

Expected<ChunkRef> ParseChunk(const json& j, const std::string& where, uint32_t max_size) {
  Obj o(j, where);
  if (auto k = o.Keys({"object", "sha256", "size", "stored_size"}); !k) return Fail(k.error());
  ChunkRef c;
  auto obj = HexField(o, "object");
  if (!obj) return Fail(obj.error());
  auto sha = HexField(o, "sha256");
  if (!sha) return Fail(sha.error());
  auto size = o.U64("size", max_size);
  if (!size) return Fail(size.error());
  if (*size == 0) return o.Err("'size' must be at least 1");
  auto stored = o.U64("stored_size", MaxStoredSize(*size));
  if (!stored) return Fail(stored.error());
  if (*stored == 0) return o.Err("'stored_size' must be at least 1");
  c.object = *obj;
  c.sha256 = *sha;
  c.size = static_cast<uint32_t>(*size);
  c.stored_size = static_cast<uint32_t>(*stored);
  return c;
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok(s[0])) return false;
  for (char c : s)
    if (!ok(c) && c != '-' && c != '.' && c != '_' && c != '+') return false;
  return true;
}

bool ValidVersion(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
          c == '_' || c == '+' || c == '~' || c == ':'))
      return false;
  return true;
}

Expected<json> ParseJson(std::string_view text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Fail(Errc::kParse, where + ": not valid JSON");
  return j;
}

struct Totals {
  std::unordered_set<Digest, DigestHash> seen;
  uint64_t stored = 0;
  void Add(const ChunkRef& c) {
    if (seen.insert(c.object).second) stored += c.stored_size;
  }
};

Expected<Entry> ParseEntry(const json& j, const std::string& where, const Manifest& m, const IndexLimits& limits) {
  Obj o(j, where);
  if (!j.is_object()) return o.Err("must be a JSON object");
  if (!j.contains("type") || !j.at("type").is_string()) return o.Err("needs a string 'type'");
  std::string type = j.at("type").get<std::string>();
  Entry e;
  static const std::pair<const char*, EntryType> kTypes[] = {
      {"dir", EntryType::kDirectory}, {"file", EntryType::kFile},  {"symlink", EntryType::kSymlink},
      {"hardlink", EntryType::kHardlink}, {"char", EntryType::kCharDevice}, {"block", EntryType::kBlockDevice},
      {"fifo", EntryType::kFifo}};
  bool known = false;
  for (auto [n, t] : kTypes)
    if (type == n) e.type = t, known = true;
  if (!known) return o.Err("unknown type '" + type + "'");

  const std::initializer_list<const char*> kTexts = {"path", "path_b64", "target", "target_b64"};
  // A file lists its chunks, or holds its (non-empty) content inline as
  // "data" (UTF-8 text) or "data_b64".
  const bool inline_data = e.type == EntryType::kFile && (j.contains("data") || j.contains("data_b64"));
  if (e.type == EntryType::kHardlink) {
    if (auto k = o.Keys({"type"}, kTexts); !k) return Fail(k.error());
  } else {
    std::vector<const char*> required = {"type", "mode", "uid", "gid", "user", "group", "mtime", "mtime_nsec", "xattrs"};
    if (e.type == EntryType::kFile) required.insert(required.end(), {"size"});
    if (e.type == EntryType::kFile && !inline_data) required.insert(required.end(), {"chunks"});
    if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) required.insert(required.end(), {"major", "minor"});
    for (const auto& [k, v] : j.items()) {
      bool ok = false;
      for (const char* r : required) ok |= k == r;
      ok |= k == "path" || k == "path_b64";
      if (e.type == EntryType::kSymlink) ok |= k == "target" || k == "target_b64";
      if (inline_data) ok |= k == "data" || k == "data_b64";
      if (!ok) return o.Err("unknown key '" + k + "' for a " + type);
    }
    for (const char* r : required)
      if (!j.contains(r)) return o.Err(std::string("missing key '") + r + "'");
  }
  auto path = o.Text("path");
  if (!path) return Fail(path.error());
  e.path = std::move(*path);
  if (auto v = ValidatePath(e.path); !v) return o.Err(v.error().message());
  if (e.type == EntryType::kHardlink || e.type == EntryType::kSymlink) {
    auto t = o.Text("target");
    if (!t) return Fail(t.error());
    e.target = std::move(*t);
    if (e.target.empty() || e.target.size() > 4095 || e.target.find('\0') != std::string::npos)
      return o.Err("'target' must be 1 to 4095 bytes without NUL");
  }
  if (e.type == EntryType::kHardlink) return e;

  auto mode = o.U64("mode", 07777);
  if (!mode) return Fail(mode.error());
  e.mode = static_cast<uint32_t>(*mode);
  auto uid = o.U64("uid", 0xFFFFFFFEu);
  if (!uid) return Fail(uid.error());
  auto gid = o.U64("gid", 0xFFFFFFFEu);
  if (!gid) return Fail(gid.error());
  e.uid = static_cast<uint32_t>(*uid);
  e.gid = static_cast<uint32_t>(*gid);
  auto user = o.Str("user");
  if (!user) return Fail(user.error());
  auto group = o.Str("group");
  if (!group) return Fail(group.error());
  if (user->size() > 256 || group->size() > 256) return o.Err("user and group names are at most 256 bytes");
  e.user = std::move(*user);
  e.group = std::move(*group);
  auto mtime = o.I64("mtime");
  if (!mtime) return Fail(mtime.error());
  e.mtime = *mtime;
  auto nsec = o.U64("mtime_nsec", 999999999);
  if (!nsec) return Fail(nsec.error());
  e.mtime_nsec = static_cast<uint32_t>(*nsec);
  const json& x = j.at("xattrs");
  if (!x.is_object()) return o.Err("'xattrs' must be an object");
  for (const auto& [k, v] : x.items()) {
    if (k.empty() || k.size() > 255 || k.find('.') == std::string::npos)
      return o.Err("extended attribute name '" + k + "' must be 1 to 255 bytes and have a namespace (user., security., ...)");
    if (!v.is_string()) return o.Err("extended attribute '" + k + "' must be base64 text");
    auto d = Base64Decode(v.get<std::string>());
    if (!d) return o.Err("extended attribute '" + k + "' is not canonical base64");
    if (d->size() > limits.max_xattr_bytes) return o.Err("extended attribute '" + k + "' is too large");
    e.xattrs[k] = std::move(*d);
  }
  if (e.type == EntryType::kFile) {
    auto size = o.U64("size", limits.max_image_bytes);
    if (!size) return Fail(size.error());
    e.size = *size;
    if (inline_data) {
      auto data = o.Text("data");
      if (!data) return Fail(data.error());
      if (data->empty()) return o.Err("inline 'data' must not be empty (an empty file has \"chunks\": [])");
      if (data->size() > limits.max_inline_bytes)
        return o.Err("inline 'data' is larger than the limit of " + std::to_string(limits.max_inline_bytes) + " bytes");
      if (data->size() != e.size)
        return o.Err("'size' is " + std::to_string(e.size) + " but its inline data holds " + std::to_string(data->size()) + " bytes");
      e.data = std::move(*data);
      return e;
    }
    const json& cs = j.at("chunks");
    if (!cs.is_array()) return o.Err("'chunks' must be an array");
    if (cs.size() > e.size) return o.Err("more chunks than bytes");
    uint64_t sum = 0;
    e.chunks.reserve(cs.size());
    for (size_t i = 0; i < cs.size(); ++i) {
      auto c = ParseChunk(cs[i], where + ": chunk " + std::to_string(i), m.chunking.max_size);
      if (!c) return Fail(c.error());
      sum += c->size;
      e.chunks.push_back(*c);
    }
    if (sum != e.size)
      return o.Err("'size' is " + std::to_string(e.size) + " but its chunks hold " + std::to_string(sum) + " bytes");
  }
  if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
    auto maj = o.U64("major", 0xFFFFFFFFu);
    if (!maj) return Fail(maj.error());
    auto min = o.U64("minor", 0xFFFFFFFFu);
    if (!min) return Fail(min.error());
    e.major = static_cast<uint32_t>(*maj);
    e.minor = static_cast<uint32_t>(*min);
  }
  return e;
}

std::string_view Parent(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? std::string_view("/") : path.substr(0, slash);
}

}  // namespace

ExpectedVoid ValidateNameVersion(const std::string& name, const std::string& version) {
  if (!ValidName(name))
    return Fail(Errc::kInvalidArgument, "image name '" + name + "' must match [a-z0-9][a-z0-9+._-]* (at most 128 characters)");
  if (!ValidVersion(version))
    return Fail(Errc::kInvalidArgument, "image version '" + version + "' must be 1 to 128 of [A-Za-z0-9.+~:_-]");
  return {};
}

std::string_view KindName(ImageKind k) { return k == ImageKind::kTree ? "tree" : "block"; }

std::string_view EntryTypeName(EntryType t) {
  switch (t) {
    case EntryType::kDirectory: return "dir";
    case EntryType::kFile: return "file";
    case EntryType::kSymlink: return "symlink";
    case EntryType::kHardlink: return "hardlink";
    case EntryType::kCharDevice: return "char";
    case EntryType::kBlockDevice: return "block";
    case EntryType::kFifo: return "fifo";
  }
  return "?";
}

std::vector<ChunkRef> Image::UniqueChunks() const {
  std::unordered_set<Digest, DigestHash> seen;
  std::vector<ChunkRef> out;
  auto add = [&](const ChunkRef& c) {
    if (seen.insert(c.object).second) out.push_back(c);
  };
  for (const auto& e : entries)
    for (const auto& c : e.chunks) add(c);
  for (const auto& c : blocks) add(c);
  return out;
}

ExpectedVoid ValidatePath(std::string_view path) {
  if (path.empty() || path[0] != '/') return Fail(Errc::kInvalidArgument, "path '" + std::string(path) + "' is not absolute");
  if (path.size() > 4000) return Fail(Errc::kInvalidArgument, "path is longer than 4000 bytes");
  if (path.find('\0') != std::string_view::npos) return Fail(Errc::kInvalidArgument, "path contains a NUL byte");
  if (path == "/") return {};
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) return Fail(Errc::kInvalidArgument, "path '" + std::string(path) + "' has an empty component");
    if (comp == "." || comp == "..")
      return Fail(Errc::kInvalidArgument, "path '" + std::string(path) + "' has a '" + std::string(comp) + "' component");
    if (comp.size() > 255) return Fail(Errc::kInvalidArgument, "a component of '" + std::string(path) + "' is longer than 255 bytes");
    start = end + 1;
  }
  return {};
}

bool PathLess(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned ca = a[i] == '/' ? 0u : static_cast<uint8_t>(a[i]);
    unsigned cb = b[i] == '/' ? 0u : static_cast<uint8_t>(b[i]);
    if (ca != cb) return ca < cb;
  }
  return a.size() < b.size();
}

std::string CanonicalManifest(const Manifest& m) {
  cjson::Object chunking, compression, body;
  chunking.Str("algorithm", kChunkingAlgorithm)
      .UInt("min", m.chunking.min_size)
      .UInt("avg", m.chunking.avg_size)
      .UInt("max", m.chunking.max_size);
  compression.Str("algorithm", "zstd").Int("level", m.zstd_level);
  cjson::Array cs;
  for (const auto& c : m.body_chunks) cs.Raw(ChunkLine(c));
  body.UInt("size", m.body_size).Str("sha256", m.body_sha256.Hex()).Raw("chunks", cs.Done());
  cjson::Object j;
  j.Str("format", kImageFormat)
      .Str("kind", KindName(m.kind))
      .Str("name", m.name)
      .Str("version", m.version)
      .Str("publisher", m.publisher)
      .Str("key_id", m.key_id)
      .Int("created_at", m.created_at)
      .Int("signed_at", m.signed_at)
      .Int("expires_at", m.expires_at)
      .Raw("chunking", chunking.Done())
      .Raw("compression", compression.Done())
      .UInt("size", m.size)
      .UInt("entries", m.entries)
      .UInt("chunks", m.chunks)
      .UInt("stored_size", m.stored_size)
      .Raw("body", body.Done());
  return j.Done();
}

namespace {
Expected<Manifest> ParseManifestJson(std::string_view text, const IndexLimits& limits);
}  // namespace

Expected<Manifest> ParseManifest(std::string_view text, const IndexLimits& limits) {
  try {  // the checks below make nlohmann::json's accessors safe; this is the adapter's net
    return ParseManifestJson(text, limits);
  } catch (const std::exception& e) {
    return Fail(Errc::kParse, std::string("image manifest: ") + e.what());
  }
}

namespace {
Expected<Manifest> ParseManifestJson(std::string_view text, const IndexLimits& limits) {
  const std::string where = "image manifest";
  if (text.size() > (64u << 20)) return Fail(Errc::kParse, where + ": larger than 64 MiB");
  auto jv = ParseJson(text, where);
  if (!jv) return Fail(jv.error());
  const json& j = *jv;
  Obj o(j, where);
  if (auto k = o.Keys({"format", "kind", "name", "version", "publisher", "key_id", "created_at", "signed_at", "expires_at",
                       "chunking", "compression", "size", "entries", "chunks", "stored_size", "body"});
      !k)
    return Fail(k.error());
  auto format = o.Str("format");
  if (!format) return Fail(format.error());
  if (*format != kImageFormat) return o.Err("format '" + *format + "' is not " + kImageFormat);
  Manifest m;
  auto kind = o.Str("kind");
  if (!kind) return Fail(kind.error());
  if (*kind == "tree") m.kind = ImageKind::kTree;
  else if (*kind == "block") m.kind = ImageKind::kBlock;
  else return o.Err("kind '" + *kind + "' is neither 'tree' nor 'block'");
  const std::pair<const char*, std::string*> strings[] = {
      {"name", &m.name}, {"version", &m.version}, {"publisher", &m.publisher}, {"key_id", &m.key_id}};
  for (auto [k, out] : strings) {
    auto v = o.Str(k);
    if (!v) return Fail(v.error());
    *out = std::move(*v);
  }
  if (!ValidName(m.name)) return o.Err("'name' must match [a-z0-9][a-z0-9+._-]* (at most 128 characters)");
  if (!ValidVersion(m.version)) return o.Err("'version' must be 1 to 128 of [A-Za-z0-9.+~:_-]");
  if (m.publisher.size() > 256 || !ValidUtf8(m.publisher)) return o.Err("'publisher' is too long");
  if (!m.key_id.empty() && (m.key_id.size() != 16 || m.key_id.find_first_not_of("0123456789abcdef") != std::string::npos))
    return o.Err("'key_id' must be 16 lower-case hex characters (or empty when unsigned)");
  const std::pair<const char*, int64_t*> times[] = {
      {"created_at", &m.created_at}, {"signed_at", &m.signed_at}, {"expires_at", &m.expires_at}};
  for (auto [k, out] : times) {
    auto v = o.U64(k);
    if (!v) return Fail(v.error());
    *out = static_cast<int64_t>(*v);
  }
  Obj ch(j.at("chunking"), where + ": chunking");
  if (auto k = ch.Keys({"algorithm", "min", "avg", "max"}); !k) return Fail(k.error());
  auto alg = ch.Str("algorithm");
  if (!alg) return Fail(alg.error());
  if (*alg != kChunkingAlgorithm) return ch.Err("algorithm '" + *alg + "' is not " + kChunkingAlgorithm);
  auto cmin = ch.U64("min", 16u << 20), cavg = ch.U64("avg", 16u << 20), cmax = ch.U64("max", 16u << 20);
  for (const auto* v : {&cmin, &cavg, &cmax})
    if (!*v) return Fail(v->error());
  m.chunking = {static_cast<uint32_t>(*cmin), static_cast<uint32_t>(*cavg), static_cast<uint32_t>(*cmax)};
  if (auto v = m.chunking.Validate(); !v) return ch.Err(v.error().message());
  Obj co(j.at("compression"), where + ": compression");
  if (auto k = co.Keys({"algorithm", "level"}); !k) return Fail(k.error());
  auto calg = co.Str("algorithm");
  if (!calg) return Fail(calg.error());
  if (*calg != "zstd") return co.Err("algorithm '" + *calg + "' is not zstd");
  auto level = co.I64("level");
  if (!level) return Fail(level.error());
  if (*level < -131072 || *level > 22) return co.Err("'level' is not a zstd level");
  m.zstd_level = static_cast<int>(*level);
  auto size = o.U64("size", limits.max_image_bytes);
  if (!size) return Fail(size.error());
  m.size = *size;
  const std::pair<const char*, uint64_t*> counts[] = {
      {"entries", &m.entries}, {"chunks", &m.chunks}, {"stored_size", &m.stored_size}};
  for (auto [k, out] : counts) {
    auto v = o.U64(k);
    if (!v) return Fail(v.error());
    *out = *v;
  }
  Obj bo(j.at("body"), where + ": body");
  if (auto k = bo.Keys({"size", "sha256", "chunks"}); !k) return Fail(k.error());
  auto bsize = bo.U64("size", limits.max_body_bytes);
  if (!bsize) return Fail(bsize.error());
  m.body_size = *bsize;
  auto bsha = HexField(bo, "sha256");
  if (!bsha) return Fail(bsha.error());
  m.body_sha256 = *bsha;
  const json& bcs = bo.At("chunks");
  if (!bcs.is_array()) return bo.Err("'chunks' must be an array");
  uint64_t sum = 0;
  for (size_t i = 0; i < bcs.size(); ++i) {
    auto c = ParseChunk(bcs[i], where + ": body chunk " + std::to_string(i), m.chunking.max_size);
    if (!c) return Fail(c.error());
    sum += c->size;
    m.body_chunks.push_back(*c);
  }
  if (sum != m.body_size) return bo.Err("'size' is " + std::to_string(m.body_size) + " but its chunks hold " + std::to_string(sum));
  if (m.body_size == 0) return bo.Err("the body is empty");
  if (CanonicalManifest(m) != text)
    return Fail(Errc::kParse, where + ": not in canonical form (compact JSON, sorted keys, no escapes that are not needed)");
  return m;
}
}  // namespace

std::string SerializeBody(const Image& image) {
  std::string out;
  if (image.manifest.kind == ImageKind::kTree) {
    for (const auto& e : image.entries) {
      out += EntryLine(e);
      out += '\n';
    }
  } else {
    for (const auto& c : image.blocks) {
      out += ChunkLine(c);
      out += '\n';
    }
  }
  return out;
}

Expected<Image> ParseBody(const Manifest& m, std::string_view body, const IndexLimits& limits) {
  if (body.size() != m.body_size || Digest::Of(body) != m.body_sha256)
    return Fail(Errc::kCrypto, "image body does not match its manifest (size or SHA-256 differ): refused");
  Image image;
  image.manifest = m;
  if (!body.empty() && body.back() != '\n') return Fail(Errc::kParse, "image body: the last line does not end with a newline");
  // Each line is parsed on its own, on two threads for a large body (the
  // lines are independent); then, in line order, each is checked against
  // the lines before it (order, parents, hard links, totals). The error
  // reported is the first in line order, whichever kind it is.
  std::vector<std::string_view> lines;
  bool too_many = false;  // reported after whatever is wrong in the lines before
  for (size_t pos = 0; pos < body.size();) {
    size_t nl = body.find('\n', pos);
    if (lines.size() == m.entries) {
      too_many = true;
      break;
    }
    lines.push_back(body.substr(pos, nl - pos));
    pos = nl + 1;
  }
  const bool tree = m.kind == ImageKind::kTree;
  if (tree) image.entries.resize(lines.size());
  else image.blocks.resize(lines.size());
  auto where_of = [](size_t i) { return "image body line " + std::to_string(i + 1); };
  auto parse_line = [&](size_t i) -> ExpectedVoid {
    std::string_view line = lines[i];
    std::string where = where_of(i);
    if (line.size() > limits.max_line_bytes) return Fail(Errc::kParse, where + ": longer than the line limit");
    try {
      auto j = ParseJson(line, where);
      if (!j) return Fail(j.error());
      if (!tree) {
        auto c = ParseChunk(*j, where, m.chunking.max_size);
        if (!c) return Fail(c.error());
        if (ChunkLine(*c) != line) return Fail(Errc::kParse, where + ": not in canonical form");
        image.blocks[i] = *c;
        return {};
      }
      auto e = ParseEntry(*j, where, m, limits);
      if (!e) return Fail(e.error());
      if (EntryLine(*e) != line) return Fail(Errc::kParse, where + " (" + e->path + "): not in canonical form");
      image.entries[i] = std::move(*e);
      return {};
    } catch (const std::exception& ex) {  // nlohmann::json accessors; std::bad_alloc
      return Fail(Errc::kParse, where + ": " + ex.what());
    }
  };
  // Each worker takes a contiguous range and stops at its first error: the
  // lowest failing line of all is then the first parse error of the body.
  struct Range {
    size_t begin, end, failed;
    std::optional<Error> error;
  };
  const size_t workers = lines.size() >= 2048 ? 2 : 1;
  std::vector<Range> ranges;
  for (size_t w = 0; w < workers; ++w)
    ranges.push_back({lines.size() * w / workers, lines.size() * (w + 1) / workers, lines.size(), std::nullopt});
  auto run = [&](Range& r) {
    for (size_t i = r.begin; i < r.end; ++i)
      if (auto ok = parse_line(i); !ok) {
        r.failed = i;
        r.error = ok.error();
        return;
      }
  };
  {
    std::vector<std::thread> threads;
    for (size_t w = 1; w < workers; ++w) threads.emplace_back(run, std::ref(ranges[w]));
    run(ranges[0]);
    for (auto& t : threads) t.join();
  }
  size_t first_bad = lines.size();
  const Error* parse_error = nullptr;
  for (const auto& r : ranges)
    if (r.error && r.failed < first_bad) first_bad = r.failed, parse_error = &*r.error;

  Totals totals;
  uint64_t bytes = 0;
  std::unordered_set<std::string> dirs;
  std::unordered_map<std::string, EntryType> others;  // non-directories, for hard links
  std::string previous;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == first_bad) return Fail(*parse_error);
    if (!tree) {
      const ChunkRef& c = image.blocks[i];
      bytes += c.size;
      if (bytes > m.size)
        return Fail(Errc::kParse, where_of(i) + ": the chunks hold more than the image's size of " + std::to_string(m.size));
      totals.Add(c);
      continue;
    }
    const Entry& e = image.entries[i];
    std::string where = where_of(i) + " (" + e.path + ")";
    if (i == 0) {
      if (e.path != "/" || e.type != EntryType::kDirectory)
        return Fail(Errc::kParse, where + ": the first entry must be the root directory \"/\"");
    } else {
      if (!PathLess(previous, e.path))
        return Fail(Errc::kParse, where + ": out of order or repeated (entries are sorted component by component)");
      if (!dirs.contains(std::string(Parent(e.path))))
        return Fail(Errc::kParse, where + ": its parent is not a directory listed before it");
    }
    if (e.type == EntryType::kHardlink) {
      auto it = others.find(e.target);
      if (it == others.end() || it->second == EntryType::kHardlink)
        return Fail(Errc::kParse, where + ": hard link target '" + e.target + "' is not a non-directory entry listed before it");
    }
    if (e.type == EntryType::kDirectory) dirs.insert(e.path);
    else others.emplace(e.path, e.type);
    bytes += e.size;
    if (bytes > m.size)
      return Fail(Errc::kParse, where + ": the files hold more than the manifest's size of " + std::to_string(m.size));
    for (const auto& c : e.chunks) totals.Add(c);
    previous = e.path;
  }
  if (too_many)
    return Fail(Errc::kParse, "image body line " + std::to_string(lines.size() + 1) + ": more lines than the manifest's " +
                                  std::to_string(m.entries));
  const uint64_t line_no = lines.size();
  if (line_no != m.entries)
    return Fail(Errc::kParse, "image body has " + std::to_string(line_no) + " lines, the manifest says " + std::to_string(m.entries));
  if (bytes != m.size)
    return Fail(Errc::kParse, "image body holds " + std::to_string(bytes) + " bytes, the manifest says " + std::to_string(m.size));
  if (totals.seen.size() != m.chunks || totals.stored != m.stored_size)
    return Fail(Errc::kParse, "image body has " + std::to_string(totals.seen.size()) + " distinct chunks of " +
                                  std::to_string(totals.stored) + " stored bytes, the manifest says " + std::to_string(m.chunks) +
                                  " of " + std::to_string(m.stored_size));
  return image;
}

Expected<SignedManifest> SignManifest(Manifest m, const pkg::KeyPair& key, int64_t now, int64_t expires_at) {
  if (expires_at <= now) return Fail(Errc::kInvalidArgument, "the expiry must be after the signing time");
  m.publisher = key.public_key.name;
  m.key_id = key.public_key.key_id;
  m.signed_at = now;
  m.expires_at = expires_at;
  SignedManifest s;
  s.json = CanonicalManifest(m);
  auto sig = pkg::SignBytes(s.json, key);
  if (!sig) return Fail(sig.error());
  s.signature = std::move(*sig);
  s.manifest = std::move(m);
  return s;
}

Expected<Manifest> VerifyManifest(std::string_view json_text, std::string_view signature,
                                  const std::vector<pkg::PublicKey>& trusted, int64_t now) {
  auto m = ParseManifest(json_text);
  if (!m) return Fail(m.error());
  if (auto v = pkg::VerifySignedBytes(json_text, signature, {"image " + m->name + " " + m->version, m->key_id, m->signed_at,
                                                             m->expires_at},
                                      trusted, now);
      !v)
    return Fail(v.error());
  return m;
}

Expected<Image> LoadImage(const Manifest& m, ChunkStore& cache, ChunkFetcher* fetcher, const IndexLimits& limits) {
  if (fetcher)
    if (auto p = internal::PrefetchIntoCache(m.body_chunks, cache, *fetcher); !p) return Fail(p.error().WithContext("image body"));
  std::string body;
  body.reserve(m.body_size);
  for (const auto& c : m.body_chunks) {
    auto plain = internal::ReadChunk(c, cache, fetcher, 3);
    if (!plain) return Fail(plain.error().WithContext("image body"));
    body += *plain;
  }
  return ParseBody(m, body, limits);
}

std::string ManifestId(std::string_view manifest_json) { return Sha256Hex(manifest_json); }

}  // namespace parc::imaging
