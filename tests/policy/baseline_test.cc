#include <catch2/catch.hpp>

#include "policy_fixture.h"

using namespace parc;

namespace {

std::string Header() { return "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n"; }

std::string ErrorOf(const std::string& text) {
  auto b = policy::ParseBaseline(text, "bad.toml");
  REQUIRE_FALSE(b.has_value());
  return b.error().message();
}

}  // namespace

TEST_CASE("a valid rule parses with its fields", "[policy]") {
  auto b = test::MakeBaseline(R"(
[[rule]]
id = "r1"
title = "T"
anssi = "R9"
level = "minimal"
kind = "sysctl"
key = "kernel.dmesg_restrict"
value = "1"
)");
  REQUIRE(b.rules.size() == 1);
  CHECK(b.rules[0].id == "r1");
  CHECK(b.rules[0].anssi == "R9");
  CHECK(b.rules[0].line == 7);
  CHECK(b.rules[0].kind == "sysctl");
}

TEST_CASE("malformed policy files are refused naming file and line", "[policy]") {
  SECTION("TOML syntax error") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = \"unterminated\n");
    CHECK_THAT(msg, Catch::Contains("bad.toml:8"));
  }
  SECTION("unknown key") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nanssi = \"R1\"\nlevel = \"minimal\"\nkind = \"sysctl\"\nkey = \"a.b\"\nvalue = \"1\"\nvalu = \"2\"\n");
    CHECK_THAT(msg, Catch::Contains("bad.toml:14") && Catch::Contains("'valu'") && Catch::Contains("unknown key"));
  }
  SECTION("unknown kind") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nanssi = \"R1\"\nlevel = \"minimal\"\nkind = \"registri\"\n");
    CHECK_THAT(msg, Catch::Contains("bad.toml:11") && Catch::Contains("'registri' is not one of"));
  }
  SECTION("wrong type") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = 3\n");
    CHECK_THAT(msg, Catch::Contains("bad.toml:8") && Catch::Contains("'title'") && Catch::Contains("string"));
  }
  SECTION("bad level") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nanssi = \"R1\"\nlevel = \"maximal\"\nkind = \"sysctl\"\n");
    CHECK_THAT(msg, Catch::Contains("bad.toml:10") && Catch::Contains("level"));
  }
  SECTION("missing reference") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nlevel = \"minimal\"\nkind = \"sysctl\"\nkey = \"a.b\"\nvalue = \"1\"\n");
    CHECK_THAT(msg, Catch::Contains("R-number"));
  }
  SECTION("duplicate id") {
    std::string r = "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nanssi = \"R1\"\nlevel = \"minimal\"\nkind = \"sysctl\"\nkey = \"a.b\"\nvalue = \"1\"\n";
    auto msg = ErrorOf(Header() + r + r);
    CHECK_THAT(msg, Catch::Contains("bad.toml:15") && Catch::Contains("already used at line 6"));
  }
  SECTION("missing [baseline]") {
    CHECK_THAT(ErrorOf("[[rule]]\nid = \"x\"\n"), Catch::Contains("missing [baseline]"));
  }
  SECTION("a path escaping the root") {
    auto msg = ErrorOf(Header() + "\n[[rule]]\nid = \"x\"\ntitle = \"t\"\nanssi = \"R1\"\nlevel = \"minimal\"\nwhen_path = \"/etc/../../etc/shadow\"\nkind = \"sysctl\"\nkey = \"a.b\"\nvalue = \"1\"\n");
    CHECK_THAT(msg, Catch::Contains("bad.toml:11") && Catch::Contains("'..'"));
  }
}

TEST_CASE("the shipped baselines parse", "[policy]") {
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::SourcePath("policy/baselines"))) {
    INFO(e.path());
    auto b = policy::LoadBaseline(e.path());
    if (!b) FAIL(b.error().message());
    CHECK(b->name + ".toml" == e.path().filename().string());
    CHECK_FALSE(b->rules.empty());
    ++files;
  }
  CHECK(files >= 1);
}

TEST_CASE("FindBaseline looks a name up in the search path and says where it looked", "[policy]") {
  auto b = policy::FindBaseline("anssi-bp28-debian12", {test::SourcePath("policy/baselines")});
  REQUIRE(b);
  CHECK(b->name == "anssi-bp28-debian12");
  auto missing = policy::FindBaseline("nope", {"/nonexistent"});
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message(), Catch::Contains("no baseline named 'nope'") && Catch::Contains("/nonexistent"));
}
