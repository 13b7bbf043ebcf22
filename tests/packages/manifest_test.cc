// Strict manifest parsing and the canonical JSON form.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "parc/packages/manifest.h"

using namespace parc::pkg;
using json = nlohmann::json;

namespace {
const std::string kSha(64, 'a');

json Valid() {
  std::string text = R"J({
    "format": 1, "name": "hello", "version": "1.0-1", "summary": "Hello", "publisher": "Acme",
    "platforms": ["linux"], "architectures": ["all"],
    "depends": ["libc6 (>= 2.36)"], "conflicts": ["hello-legacy"], "provides": ["greeter"],
    "files": [
      {"path": "/opt/hello", "type": "directory", "mode": "0755"},
      {"path": "/opt/hello/hello", "type": "file", "mode": "4755", "sha256": "SHA", "size": 12},
      {"path": "/usr/bin/hello", "type": "symlink", "mode": "0777", "target": "../../opt/hello/hello"}
    ],
    "native": [{"kind": "deb", "name": "hello.deb", "sha256": "SHA", "size": 3}],
    "scripts": {"post_install": {"name": "post_install", "sha256": "SHA", "size": 5}},
    "services": [{"unit": "hello.service", "enable": true}],
    "config": [{"file": "/etc/hello.conf", "set": [{"key": "greeting", "value": "hi"}]}]
  })J";
  for (size_t at = text.find("SHA"); at != std::string::npos; at = text.find("SHA")) text.replace(at, 3, kSha);
  return json::parse(text);
}

std::string ErrorOf(const json& j) {
  auto m = ParseManifest(j.dump());
  if (m) return "";
  return m.error().message();
}
}  // namespace

TEST_CASE("a valid manifest parses with every field") {
  auto m = ParseManifest(Valid().dump());
  REQUIRE(m);
  CHECK(m->name == "hello");
  CHECK(m->Id() == "hello=1.0-1");
  REQUIRE(m->files.size() == 3);
  CHECK(m->files[1].mode == 04755);
  CHECK(m->files[1].owner == "root");
  CHECK(m->files[2].type == EntryType::kSymlink);
  CHECK(m->depends.at(0).String() == "libc6 (>= 2.36)");
  CHECK(m->scripts.at("post_install").size == 5);
  CHECK(m->services.at(0).enable);
  CHECK(m->config.at(0).separator == "=");
  CHECK(m->script_timeout_seconds == 300);
  CHECK(FileMember(m->files[1]) == "files/opt/hello/hello");
  CHECK(NativeMember(m->native[0]) == "native/hello.deb");
  CHECK(ScriptMember(m->scripts.at("post_install")) == "scripts/post_install");
}

TEST_CASE("canonical JSON is sorted, compact, complete and stable") {
  auto m = ParseManifest(Valid().dump(4));
  REQUIRE(m);
  std::string c = CanonicalJson(*m);
  CHECK(c.find('\n') == std::string::npos);
  CHECK(c.starts_with(R"({"architectures":["all"],"config":[{"file":"/etc/hello.conf","separator":"=","set":)"));
  CHECK(c.find(R"("mode":"4755")") != std::string::npos);
  CHECK(c.find(R"("expires_at":0)") != std::string::npos);
  auto again = ParseManifest(c);
  REQUIRE(again);
  CHECK(CanonicalJson(*again) == c);
  // Parsed JSON dumped with sorted keys again is byte-identical: what jq -cS does.
  CHECK(json::parse(c).dump() == c);
}

TEST_CASE("canonical JSON of quotes, backslashes and UTF-8 is what nlohmann::json dumps") {
  auto j = Valid();
  j["summary"] = "Say \"hi\" \\ caf\u00e9 \u2615 \U0001F427";
  j["publisher"] = "Acme \u00c9quipe";
  j["files"][0]["path"] = "/opt/h\u00e9llo";
  j["files"][1]["path"] = "/opt/h\u00e9llo/hello";
  j["config"][0]["set"][0]["value"] = "a \"quoted\" \\value";
  auto m = ParseManifest(j.dump());
  REQUIRE(m);
  std::string c = CanonicalJson(*m);
  CHECK(json::parse(c).dump() == c);
  auto again = ParseManifest(c);
  REQUIRE(again);
  CHECK(again->summary == m->summary);
  CHECK(CanonicalJson(*again) == c);
}

TEST_CASE("unknown fields and bad types are refused naming the field") {
  auto j = Valid();
  j["colour"] = "blue";
  CHECK(ErrorOf(j) == "colour: unknown field");
  j = Valid();
  j["files"][1]["owner_id"] = 0;
  CHECK(ErrorOf(j) == "files[1].owner_id: unknown field");
  j = Valid();
  j["files"][1]["size"] = "12";
  CHECK(ErrorOf(j) == "files[1].size: must be an integer");
  j = Valid();
  j["files"][1]["size"] = 12.5;
  CHECK(ErrorOf(j) == "files[1].size: must be an integer");
  j = Valid();
  j["files"][1]["size"] = -1;
  CHECK(ErrorOf(j) == "files[1].size: must not be negative");
  j = Valid();
  j["platforms"] = "linux";
  CHECK(ErrorOf(j) == "platforms: must be an array");
  j = Valid();
  j["format"] = 2;
  CHECK(ErrorOf(j).starts_with("format: unsupported format 2"));
  j = Valid();
  j.erase("version");
  CHECK(ErrorOf(j) == "version: is required");
  CHECK(ParseManifest("{not json").error().message().starts_with("manifest is not valid JSON"));
  CHECK(ParseManifest("[]").error().message() == "manifest: must be an object");
}

TEST_CASE("unsafe paths are refused") {
  auto with_path = [](const std::string& p, size_t i = 1) {
    auto j = Valid();
    j["files"][i]["path"] = p;
    return ErrorOf(j);
  };
  CHECK(with_path("/opt/hello/../../etc/shadow") == "files[1].path: '..' is not allowed");
  CHECK(with_path("opt/hello/x") == "files[1].path: must be an absolute path (start with '/'), got 'opt/hello/x'");
  CHECK(with_path("/") == "files[1].path: '/' itself cannot be a package entry");
  CHECK(with_path("/opt//x") == "files[1].path: empty path component ('//') is not allowed");
  CHECK(with_path("/opt/./x") == "files[1].path: '.' is not allowed");
  CHECK(with_path("/opt/x/") == "files[1].path: must not end with '/'");
  CHECK(with_path("/opt/hello") == "files[1].path: '/opt/hello' is listed twice");
  CHECK(with_path("/opt/a\nb") == "files[1].path: control characters are not allowed");
  // Nothing may be placed through a declared symlink.
  CHECK(with_path("/usr/bin/hello/evil") == "files[2].path: '/usr/bin/hello' is a symlink but '/usr/bin/hello/evil' "
                                            "is declared inside it");
}

TEST_CASE("entry fields must fit their type") {
  auto j = Valid();
  j["files"][2]["target"] = "../../../../etc/shadow";
  CHECK(ErrorOf(j) == "files[2].target: '../../../../etc/shadow' leaves the target root");
  j = Valid();
  j["files"][0]["sha256"] = kSha;
  CHECK(ErrorOf(j) == "files[0].sha256: only files have a digest");
  j = Valid();
  j["files"][1]["sha256"] = "ABC";
  CHECK(ErrorOf(j) == "files[1].sha256: must be 64 lower-case hex digits");
  j = Valid();
  j["files"][1]["mode"] = "755";
  CHECK(ErrorOf(j) == "files[1].mode: must be 4 octal digits, e.g. \"0755\"");
  j = Valid();
  j["files"][1]["mode"] = 493;
  CHECK(ErrorOf(j) == "files[1].mode: must be a string");
  j = Valid();
  j["files"][1]["type"] = "fifo";
  CHECK(ErrorOf(j) == "files[1].type: must be \"file\", \"directory\" or \"symlink\", got \"fifo\"");
  j = Valid();
  j["files"][2]["mode"] = "0755";
  CHECK(ErrorOf(j) == "files[2].mode: a symlink's mode is always \"0777\"");
}

TEST_CASE("names, versions, native and scripts are validated") {
  auto j = Valid();
  j["name"] = "evil/../name";
  CHECK(ErrorOf(j) == "name: '/' is not allowed in a package name");
  j["name"] = "Hello";
  CHECK(ErrorOf(j).starts_with("name: 'Hello' is not a valid package name"));
  j = Valid();
  j["version"] = "one";
  CHECK(ErrorOf(j).starts_with("version: bad version 'one'"));
  j = Valid();
  j["native"][0]["name"] = "../hello.deb";
  CHECK(ErrorOf(j) == "native[0].name: must be a plain file name without '/' or '\\'");
  j = Valid();
  j["scripts"]["post_upgrade"] = j["scripts"]["post_install"];
  CHECK(ErrorOf(j) == "scripts.post_upgrade: unknown script (pre_install, post_install, pre_remove, post_remove)");
  j = Valid();
  j["depends"] = {"libc6 (> 2.36)"};
  CHECK(ErrorOf(j).starts_with("depends[0]: bad dependency"));
  j = Valid();
  j["provides"] = {"greeter (>= 1)"};
  CHECK(ErrorOf(j) == "provides[0]: a provided name can only carry '=' (an exact version)");
  j = Valid();
  j["key_id"] = "xyz";
  CHECK(ErrorOf(j) == "key_id: must be 16 lower-case hex digits");
}
