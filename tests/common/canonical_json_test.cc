// The canonical JSON writer against nlohmann::json's dump, which defined the
// signed form of every manifest before it: the bytes must be identical.
#include "parc/common/canonical_json.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <random>

using namespace parc;
using json = nlohmann::json;

namespace {
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string Str(std::string_view s) {
  std::string out;
  cjson::AppendString(out, s);
  return out;
}
}  // namespace

TEST_CASE("canonical JSON: strings are escaped exactly as nlohmann::json dumps them") {
  const std::vector<std::string> cases = {
      "",
      "plain ascii /usr/bin/tool-1.2+x~y",
      "quote \" and backslash \\ and slash /",
      "controls \b\f\n\r\t and \x01\x1f",
      std::string("nul \0 inside", 12),
      "delete \x7f",
      "UTF-8: caf\xc3\xa9, \xe2\x98\x95, \xf0\x9f\x90\xa7",
      "not UTF-8: \xff\xfe, truncated \xc3, overlong \xc0\xaf",
  };
  for (const auto& s : cases) {
    INFO(json(s).dump(-1, ' ', true, json::error_handler_t::replace));
    CHECK(Str(s) == Dump(json(s)));
  }
}

TEST_CASE("canonical JSON: random strings and objects are byte-identical to nlohmann's dump") {
  std::mt19937 rng(1234);
  // Mostly printable ASCII, some of everything else.
  auto random_string = [&](size_t max_len) {
    std::string s(rng() % (max_len + 1), ' ');
    for (auto& c : s) {
      unsigned r = rng() % 100;
      c = static_cast<char>(r < 80 ? 0x20 + rng() % 95 : r < 90 ? rng() % 0x20 : 0x7f + rng() % 0x81);
    }
    return s;
  };
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> keys;
    for (int k = 0; k < 6; ++k) keys.push_back(random_string(6));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::shuffle(keys.begin(), keys.end(), rng);
    json expected = json::object();
    cjson::Object o;
    std::vector<std::string> nested;
    nested.reserve(keys.size());
    for (const auto& k : keys) {
      switch (rng() % 5) {
        case 0: {
          std::string v = random_string(20);
          expected[k] = v;
          o.Str(k, v);
          break;
        }
        case 1: {
          int64_t v = static_cast<int64_t>(rng()) - (1ll << 31);
          expected[k] = v;
          o.Int(k, v);
          break;
        }
        case 2: {
          uint64_t v = (uint64_t{rng()} << 21) ^ rng();
          expected[k] = v;
          o.UInt(k, v);
          break;
        }
        case 3: {
          bool v = rng() % 2;
          expected[k] = v;
          o.Bool(k, v);
          break;
        }
        default: {  // an array of strings and an empty object, written raw
          cjson::Array a;
          json ja = json::array();
          for (unsigned n = rng() % 3; n > 0; --n) {
            std::string v = random_string(8);
            a.Str(v);
            ja.push_back(v);
          }
          a.Object(cjson::Object());
          ja.push_back(json::object());
          expected[k] = ja;
          o.Raw(k, a.Done());
        }
      }
    }
    REQUIRE(o.Done() == Dump(expected));
  }
}

TEST_CASE("canonical JSON: empty containers and key order") {
  CHECK(cjson::Object().Done() == "{}");
  CHECK(cjson::Array().Done() == "[]");
  cjson::Object o;
  o.UInt("size", 1).UInt("sha256", 2).UInt("s", 3).UInt("Size", 4).UInt("size_b64", 5).UInt("\xc3\xa9", 6);
  json j = {{"size", 1}, {"sha256", 2}, {"s", 3}, {"Size", 4}, {"size_b64", 5}, {"\xc3\xa9", 6}};
  CHECK(o.Done() == Dump(j));  // bytewise: "Size" < "s" < "sha256" < "size" < "size_b64" < "\xc3\xa9"
}
