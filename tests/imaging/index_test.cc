// The image index: canonical manifest and body, signatures through the
// packages' verification, and a strict parser that refuses hostile entries
// with words that say what and where.
#include <catch2/catch.hpp>

#include "imaging_fixture.h"
#include "parc/common/timeutil.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

ChunkRef RefFor(const std::string& plain) {
  ChunkRef r;
  auto stored = EncodeChunk(plain, 3, r);
  REQUIRE(stored);
  return r;
}

// A manifest that describes `body` exactly, so that ParseBody reaches the lines.
Manifest ForBody(ImageKind kind, const std::string& body, uint64_t size = 1ull << 40) {
  Manifest m;
  m.name = "hostile";
  m.version = "1";
  m.kind = kind;
  m.size = size;
  m.entries = static_cast<uint64_t>(std::count(body.begin(), body.end(), '\n'));
  m.body_size = body.size();
  m.body_sha256 = Digest::Of(body);
  m.body_chunks = {RefFor(body)};
  return m;
}

Image SmallTree() {
  Image img;
  img.manifest.kind = ImageKind::kTree;
  Entry root;
  root.path = "/";
  root.type = EntryType::kDirectory;
  root.mode = 0755;
  root.user = root.group = "root";
  Entry etc = root;
  etc.path = "/etc";
  Entry file = root;
  file.path = "/etc/hosts";
  file.type = EntryType::kFile;
  file.mode = 0644;
  file.mtime = 1700000000;
  file.mtime_nsec = 42;
  file.xattrs["user.k"] = std::string("v\0w", 3);
  file.chunks = {RefFor("127.0.0.1 localhost\n")};
  file.size = file.chunks[0].size;
  img.entries = {root, etc, file};
  return img;
}

std::string ParseError(const Manifest& m, const std::string& body) {
  auto r = ParseBody(m, body);
  REQUIRE_FALSE(r);
  return r.error().message();
}

// The body of SmallTree with one line replaced.
std::string WithLine(size_t n, const std::string& line) {
  std::string body = SerializeBody(SmallTree());
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    lines.push_back(body.substr(pos, nl - pos));
    pos = nl + 1;
  }
  if (n < lines.size()) lines[n] = line;
  else lines.push_back(line);
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

std::string DirLine(const std::string& path) {
  return R"({"gid":0,"group":"root","mode":493,"mtime":0,"mtime_nsec":0,"path":")" + path +
         R"(","type":"dir","uid":0,"user":"root","xattrs":{}})";
}

}  // namespace

TEST_CASE("index: a body round-trips in canonical form", "[index]") {
  Image img = SmallTree();
  std::string body = SerializeBody(img);
  Manifest m = ForBody(ImageKind::kTree, body, img.entries[2].size);
  m.chunks = 1;
  m.stored_size = img.entries[2].chunks[0].stored_size;
  auto parsed = REQUIRE_OK(ParseBody(m, body));
  CHECK(parsed.entries == img.entries);
  CHECK(SerializeBody(parsed) == body);
  // One entry per line, keys sorted, binary xattr values in base64.
  CHECK(body.find(R"("xattrs":{"user.k":"dgB3"})") != std::string::npos);
  CHECK(std::count(body.begin(), body.end(), '\n') == 3);
}

TEST_CASE("index: names that are not UTF-8 travel as base64", "[index]") {
  Image img = SmallTree();
  img.entries[2].path = "/etc/caf\xe9";
  std::string body = SerializeBody(img);
  CHECK(body.find(R"("path_b64":"L2V0Yy9jYWbp")") != std::string::npos);
  Manifest m = ForBody(ImageKind::kTree, body, img.entries[2].size);
  m.chunks = 1;
  m.stored_size = img.entries[2].chunks[0].stored_size;
  auto parsed = REQUIRE_OK(ParseBody(m, body));
  CHECK(parsed.entries[2].path == "/etc/caf\xe9");
  // UTF-8 text given as base64 is not canonical.
  std::string line = R"({"gid":0,"group":"root","mode":493,"mtime":0,"mtime_nsec":0,"path_b64":"L2V0Yy94","type":"dir","uid":0,"user":"root","xattrs":{}})";
  std::string bad = WithLine(3, line);
  CHECK_THAT(ParseError(ForBody(ImageKind::kTree, bad), bad), Catch::Contains("must be given as 'path'"));
}

TEST_CASE("index: a small file's content inline, as text or base64, the rules for it", "[index]") {
  Image img = SmallTree();
  Entry bin = img.entries[2];
  img.entries[2].chunks.clear();
  img.entries[2].data = "127.0.0.1 localhost\n";
  bin.path = "/etc/magic";
  bin.chunks.clear();
  bin.data = std::string("\x7f" "ELF\xff\0", 6);
  bin.size = bin.data.size();
  img.entries.push_back(bin);
  std::string body = SerializeBody(img);
  CHECK(body.find(R"("data":"127.0.0.1 localhost\n")") != std::string::npos);
  CHECK(body.find(R"("data_b64":"f0VMRv8A")") != std::string::npos);
  CHECK(body.find("chunks") == std::string::npos);
  Manifest m = ForBody(ImageKind::kTree, body, img.entries[2].size + bin.size);
  auto parsed = REQUIRE_OK(ParseBody(m, body));
  CHECK(parsed.entries == img.entries);
  CHECK(parsed.UniqueChunks().empty());
  CHECK(SerializeBody(parsed) == body);

  const std::string head = R"({"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x",)";
  const std::string tail = R"("type":"file","uid":0,"user":"root","xattrs":{}})";
  ChunkRef c = RefFor("x");
  std::string chunk = R"([{"object":")" + c.object.Hex() + R"(","sha256":")" + c.sha256.Hex() + R"(","size":1,"stored_size":)" +
                      std::to_string(c.stored_size) + "}]";
  struct Case {
    std::string line, error;
  };
  const std::vector<Case> cases = {
      {R"({"data":"abc",)" + head.substr(1) + R"("size":4,)" + tail, "'size' is 4 but its inline data holds 3 bytes"},
      {R"({"data":"",)" + head.substr(1) + R"("size":0,)" + tail, "must not be empty"},
      {R"({"chunks":)" + chunk + R"(,"data":"x",)" + head.substr(1) + R"("size":1,)" + tail, "unknown key 'chunks'"},
      {R"({"data":"x","data_b64":"eA==",)" + head.substr(1) + R"("size":1,)" + tail, "needs exactly one of 'data' and 'data_b64'"},
      {R"({"data_b64":"eA==",)" + head.substr(1) + R"("size":1,)" + tail, "must be given as 'data'"},
      {R"({"data":")" + std::string(70000, 'a') + R"(",)" + head.substr(1) + R"("size":70000,)" + tail, "larger than the limit of 65536"},
      {head + R"("size":1,)" + tail, "missing key 'chunks'"},
      {R"({"data":"x","gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x","type":"fifo","uid":0,"user":"root","xattrs":{}})",
       "unknown key 'data' for a fifo"},
  };
  for (const auto& k : cases) {
    std::string bad = WithLine(3, k.line);
    INFO(k.line);
    CHECK_THAT(ParseError(ForBody(ImageKind::kTree, bad), bad), Catch::Contains(k.error));
  }
}

TEST_CASE("index: LoadImage fetches the body chunks the cache lacks in batches, one round trip for many", "[index][batch]") {
  Env env;
  test::TempDir work("parc-index");
  for (int i = 0; i < 3000; ++i) test::WriteFile(work.path() / "etc" / ("conf" + std::to_string(i)), RandomData(200, static_cast<uint64_t>(i)));
  auto v1 = env.CaptureTreeSigned(work.path(), "1");
  const auto& body = v1.image().manifest.body_chunks;
  REQUIRE(body.size() >= 4);
  BatchFetcher fetcher(env.server());  // serves every other chunk of a batch; the rest come alone
  auto img = REQUIRE_OK(LoadImage(v1.image().manifest, env.cache(), &fetcher));
  CHECK(img.entries.size() == v1.image().entries.size());
  CHECK(fetcher.batches == 1);
  CHECK(fetcher.batched == (body.size() + 1) / 2);
  CHECK(fetcher.chunks == body.size() / 2);
  for (const auto& c : body) CHECK(env.cache().Has(c.object));
  // A tampered body chunk in a batch is refused.
  BatchFetcher evil(env.server());
  evil.tamper_batch = true;
  auto empty = REQUIRE_OK(DirChunkStore::Open(work.path() / "empty"));
  auto bad = LoadImage(v1.image().manifest, *empty, &evil);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().Is(Errc::kCrypto));
}

TEST_CASE("index: hostile tree entries are refused, saying where", "[index][hostile]") {
  struct Case {
    std::string line;
    size_t replace;
    std::string error;
  };
  const std::string file_tail = R"(,"type":"file","uid":0,"user":"root","xattrs":{}})";
  auto file_line = [&](const std::string& path, const std::string& chunks, uint64_t size) {
    return R"({"chunks":)" + chunks + R"(,"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":")" + path +
           R"(","size":)" + std::to_string(size) + file_tail;
  };
  ChunkRef c = RefFor("x");
  std::string chunk = R"([{"object":")" + c.object.Hex() + R"(","sha256":")" + c.sha256.Hex() + R"(","size":1,"stored_size":)" +
                      std::to_string(c.stored_size) + "}]";
  std::string huge_chunk = R"([{"object":")" + c.object.Hex() + R"(","sha256":")" + c.sha256.Hex() +
                           R"(","size":1073741824,"stored_size":100}])";
  std::string fat_chunk = R"([{"object":")" + c.object.Hex() + R"(","sha256":")" + c.sha256.Hex() +
                          R"(","size":100,"stored_size":100000}])";
  const std::vector<Case> cases = {
      {DirLine("/etc/../../escape"), 3, "'..' component"},
      {DirLine("/etc/./x"), 3, "'.' component"},
      {DirLine("etc/relative"), 3, "is not absolute"},
      {DirLine("/etc//x"), 3, "empty component"},
      {DirLine("/etc/"), 3, "empty component"},
      {DirLine("/nowhere/x"), 3, "parent is not a directory listed before it"},
      {DirLine("/etc"), 3, "out of order or repeated"},
      {DirLine("/a"), 3, "out of order or repeated"},
      {DirLine("/etc/hosts/inside"), 3, "parent is not a directory"},  // below a file
      {DirLine("/x"), 0, "the first entry must be the root directory"},
      {file_line("/etc/big", chunk, 1ull << 60), 3, "more than the limit"},
      {file_line("/etc/liar", chunk, 1000), 3, "but its chunks hold 1 bytes"},
      {file_line("/etc/huge-chunk", huge_chunk, 1073741824), 3, "more than the limit 262144"},
      {file_line("/etc/fat-chunk", fat_chunk, 100), 3, "'stored_size' is 100000"},
      {R"({"path":"/etc/link","target":"/etc/later","type":"hardlink"})", 3, "is not a non-directory entry listed before it"},
      {R"({"path":"/etc/link","target":"/etc","type":"hardlink"})", 3, "is not a non-directory entry listed before it"},
      {R"({"evil":1,"path":"/etc/x","target":"/etc/hosts","type":"hardlink"})", 3, "unknown key 'evil'"},
      {R"({"path":"/etc/sock","type":"socket"})", 3, "unknown type 'socket'"},
      {R"({"gid":0,"group":"root","mode":33188,"mtime":0,"mtime_nsec":0,"path":"/etc/m","type":"fifo","uid":0,"user":"root","xattrs":{}})",
       3, "'mode' is 33188, more than the limit 4095"},
      {R"({"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x","type":"fifo","uid":0,"user":"root","xattrs":{"user.a":"not base64!"}})",
       3, "not canonical base64"},
      {R"({"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x","type":"fifo","uid":0,"user":"root","xattrs":{"user.a":"dh=="}})",
       3, "not canonical base64"},  // padding bits not zero
      {R"({"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x","type":"fifo","uid":0,"user":"root","xattrs":{"user.a":"dgB="}})",
       3, "not canonical base64"},
      {R"({"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x","type":"fifo","uid":0,"user":"root","xattrs":{"user.a":"dg=B"}})",
       3, "not canonical base64"},
      {R"({"gid":0, "group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x","type":"fifo","uid":0,"user":"root","xattrs":{}})",
       3, "not in canonical form"},
      {R"({"gid":0,"group":"root","mode":420,"mtime":0,"mtime_nsec":0,"path":"/etc/x\u0000y","type":"fifo","uid":0,"user":"root","xattrs":{}})",
       3, "NUL"},
      {"not json", 3, "not valid JSON"},
  };
  for (const auto& k : cases) {
    std::string body = WithLine(k.replace, k.line);
    INFO(k.line);
    CHECK_THAT(ParseError(ForBody(ImageKind::kTree, body), body), Catch::Contains(k.error));
  }
}

TEST_CASE("index: totals must match the manifest", "[index][hostile]") {
  Image img = SmallTree();
  std::string body = SerializeBody(img);
  Manifest m = ForBody(ImageKind::kTree, body, img.entries[2].size);
  m.chunks = 1;
  m.stored_size = img.entries[2].chunks[0].stored_size;
  REQUIRE(ParseBody(m, body));
  Manifest fewer = m;
  fewer.entries = 2;
  CHECK_THAT(ParseError(fewer, body), Catch::Contains("more lines than the manifest's 2"));
  Manifest bigger = m;
  bigger.size += 1;
  CHECK_THAT(ParseError(bigger, body), Catch::Contains("holds 20 bytes, the manifest says 21"));
  Manifest smaller = m;
  smaller.size = 5;
  CHECK_THAT(ParseError(smaller, body), Catch::Contains("more than the manifest's size"));
  Manifest chunks = m;
  chunks.chunks = 2;
  CHECK_THAT(ParseError(chunks, body), Catch::Contains("distinct chunks"));
  // A body that is not the one the manifest names.
  std::string other = body;
  other[10] ^= 1;
  auto r = ParseBody(m, other);
  REQUIRE_FALSE(r);
  CHECK(r.error().Is(Errc::kCrypto));
}

TEST_CASE("index: block bodies are chunk lists that add up to the image size", "[index][hostile]") {
  ChunkRef a = RefFor(std::string(1000, 'a')), b = RefFor(std::string(500, 'b'));
  Image img;
  img.manifest.kind = ImageKind::kBlock;
  img.blocks = {a, b, a};
  std::string body = SerializeBody(img);
  Manifest m = ForBody(ImageKind::kBlock, body, 2500);
  m.chunks = 2;
  m.stored_size = a.stored_size + b.stored_size;
  auto parsed = REQUIRE_OK(ParseBody(m, body));
  CHECK(parsed.blocks == img.blocks);
  CHECK(parsed.UniqueChunks().size() == 2);
  Manifest small = m;
  small.size = 1200;
  CHECK_THAT(ParseError(small, body), Catch::Contains("more than the image's size of 1200"));
}

TEST_CASE("index: the manifest is canonical, strict and signed", "[index]") {
  Env env;
  Image img = SmallTree();
  std::string body = SerializeBody(img);
  Manifest m = ForBody(ImageKind::kTree, body, img.entries[2].size);
  m.name = "workstation";
  m.version = "2025.1";
  m.created_at = 1700000000;
  m.chunks = 1;
  m.stored_size = img.entries[2].chunks[0].stored_size;
  int64_t now = NowUnix();
  auto s = REQUIRE_OK(SignManifest(m, env.key(), now, now + 600));
  CHECK(s.signature.size() == 64);
  CHECK(s.manifest.key_id == env.key().public_key.key_id);
  CHECK(s.manifest.publisher == "test-publisher");
  auto back = REQUIRE_OK(ParseManifest(s.json));
  CHECK(back == s.manifest);
  CHECK(s.json.find(R"("format":"parc-image/1")") != std::string::npos);
  CHECK(s.json.find(R"("chunking":{"algorithm":"parc-gear/1","avg":65536,"max":262144,"min":16384})") != std::string::npos);

  std::vector<pkg::PublicKey> trusted = {env.key().public_key};
  REQUIRE_OK(VerifyManifest(s.json, s.signature, trusted, now));
  SECTION("a changed byte breaks the signature") {
    std::string t = s.json;
    t.replace(t.find("\"2025.1\""), 8, "\"2025.2\"");
    auto r = VerifyManifest(t, s.signature, trusted, now);
    REQUIRE_FALSE(r);
    CHECK(r.error().Is(Errc::kCrypto));
  }
  SECTION("an unknown key, an expired or an unsigned manifest are refused") {
    auto other = REQUIRE_OK(pkg::GenerateKey("other"));
    auto r1 = VerifyManifest(s.json, s.signature, {other.public_key}, now);
    REQUIRE_FALSE(r1);
    CHECK(r1.error().Is(Errc::kUnauthenticated));
    auto r2 = VerifyManifest(s.json, s.signature, trusted, now + 3600);
    REQUIRE_FALSE(r2);
    CHECK(r2.error().Is(Errc::kExpired));
    auto unsigned_json = CanonicalManifest(m);
    auto r3 = VerifyManifest(unsigned_json, "", trusted, now);
    REQUIRE_FALSE(r3);
    CHECK_THAT(r3.error().message(), Catch::Contains("is not signed"));
  }
  SECTION("strict parsing") {
    std::string extra = s.json;
    extra.insert(1, R"("aaa":1,)");
    CHECK_THAT(ParseManifest(extra).error().message(), Catch::Contains("unknown key 'aaa'"));
    std::string spaced = s.json;
    spaced.insert(1, " ");
    CHECK_THAT(ParseManifest(spaced).error().message(), Catch::Contains("canonical"));
    std::string format = s.json;
    format.replace(format.find("parc-image/1"), 12, "parc-image/9");
    CHECK_THAT(ParseManifest(format).error().message(), Catch::Contains("is not parc-image/1"));
    Manifest bad = m;
    bad.name = "Bad Name";
    CHECK_THAT(ParseManifest(CanonicalManifest(bad)).error().message(), Catch::Contains("'name' must match"));
    Manifest chunking = m;
    chunking.chunking.avg_size = 60000;
    CHECK_THAT(ParseManifest(CanonicalManifest(chunking)).error().message(), Catch::Contains("power of two"));
    Manifest lying = m;
    lying.body_size += 1;
    CHECK_THAT(ParseManifest(CanonicalManifest(lying)).error().message(), Catch::Contains("but its chunks hold"));
    CHECK_THAT(ParseManifest("[1]").error().message(), Catch::Contains("must be a JSON object"));
  }
}

TEST_CASE("index: path rules and canonical order", "[index]") {
  CHECK(ValidatePath("/"));
  CHECK(ValidatePath("/a/b c/\xff"));
  CHECK_FALSE(ValidatePath(""));
  CHECK_FALSE(ValidatePath("a"));
  CHECK_FALSE(ValidatePath("/a/.."));
  CHECK_FALSE(ValidatePath("/a/./b"));
  CHECK_FALSE(ValidatePath("//a"));
  CHECK_FALSE(ValidatePath("/a/"));
  CHECK_FALSE(ValidatePath("/" + std::string(256, 'x')));
  CHECK(ValidatePath("/" + std::string(255, 'x')));
  // Depth-first: a directory's subtree comes before its next sibling.
  CHECK(PathLess("/a", "/a/b"));
  CHECK(PathLess("/a/b", "/a-b"));
  CHECK(PathLess("/a/z", "/a-b"));
  CHECK(PathLess("/a", "/b"));
  CHECK_FALSE(PathLess("/a", "/a"));
  CHECK(PathLess("/\x7f", "/\x80"));  // bytes compare unsigned
}
