// Debian version ordering (deb-version(7)) and dependency constraints.
#include <catch2/catch.hpp>

#include "parc/packages/version.h"
#include "test_support.h"

using namespace parc::pkg;

namespace {
void Less(const char* a, const char* b) {
  INFO(a << " < " << b);
  CHECK(CompareVersions(a, b) < 0);
  CHECK(CompareVersions(b, a) > 0);
}
}  // namespace

TEST_CASE("versions order like dpkg --compare-versions") {
  Less("1.0", "1.1");
  Less("1.9", "1.10");          // numeric, not textual
  Less("1.0~rc1", "1.0");       // '~' before the end
  Less("1.0~~", "1.0~");        // '~~' before '~'
  Less("1.0~", "1.0");
  Less("1.0", "1.0a");          // the end before a letter
  Less("1.0a", "1.0+");         // letters before non-letters
  Less("1.0+", "1.0.1");
  Less("1.0-1", "1.0-2");       // revision
  Less("1.0-9", "1.0-10");
  Less("1.0", "1.0-1");         // no revision sorts like revision "" < "1"
  Less("2.0", "1:0.1");         // epoch wins
  Less("1:1.0", "2:0.1");
  Less("1.0-1~bpo1", "1.0-1");
  Less("0.9.99", "1.0");
  Less("1.2.3-4ubuntu1", "1.2.3-4ubuntu2");
  Less("1.001", "1.2");         // leading zeros are ignored in numbers
  CHECK(CompareVersions("1.0", "1.0") == 0);
  CHECK(CompareVersions("0:1.0", "1.0") == 0);
  CHECK(CompareVersions("1.01", "1.1") == 0);
}

TEST_CASE("version validation") {
  CHECK(ValidateVersion("1.0"));
  CHECK(ValidateVersion("1:2.3~rc1-4+deb12u1"));
  CHECK(ValidateVersion("1.0-1-2"));  // '-' is allowed in upstream when there is a revision
  CHECK_FALSE(ValidateVersion(""));
  CHECK_FALSE(ValidateVersion("a1.0"));
  CHECK_FALSE(ValidateVersion("1.0-"));
  CHECK_FALSE(ValidateVersion(":1.0"));
  CHECK_FALSE(ValidateVersion("x:1.0"));
  CHECK_FALSE(ValidateVersion("1.0 beta"));
  CHECK_FALSE(ValidateVersion("1.0/2"));
  CHECK(ValidateVersion("1.0_1").error().message().find("'_'") != std::string::npos);
}

TEST_CASE("constraints parse and print") {
  auto any = ParseConstraint("libfoo");
  REQUIRE(any);
  CHECK(any->name == "libfoo");
  CHECK(any->relation == Relation::kAny);
  CHECK(any->String() == "libfoo");
  auto ge = ParseConstraint("  libfoo ( >=  1.2-1 ) ");
  REQUIRE(ge);
  CHECK(ge->relation == Relation::kGreaterEqual);
  CHECK(ge->version == "1.2-1");
  CHECK(ge->String() == "libfoo (>= 1.2-1)");
  for (auto [text, rel] : {std::pair{"a (<< 1)", Relation::kLess}, std::pair{"a (<= 1)", Relation::kLessEqual},
                           std::pair{"a (= 1)", Relation::kEqual}, std::pair{"a (>> 1)", Relation::kGreater}}) {
    auto c = ParseConstraint(text);
    REQUIRE(c);
    CHECK(c->relation == rel);
    CHECK(c->String() == text);
  }
}

TEST_CASE("constraints refuse ambiguous and malformed input") {
  auto lt = ParseConstraint("libfoo (< 1.0)");
  REQUIRE_FALSE(lt);
  CHECK(lt.error().message().find("ambiguous") != std::string::npos);
  CHECK_FALSE(ParseConstraint("libfoo (> 1.0)"));
  CHECK_FALSE(ParseConstraint("libfoo (>= 1.0"));
  CHECK_FALSE(ParseConstraint("libfoo (~= 1.0)"));
  CHECK_FALSE(ParseConstraint("libfoo (>= )"));
  CHECK_FALSE(ParseConstraint("LibFoo"));
  CHECK_FALSE(ParseConstraint("lib/foo"));
  CHECK_FALSE(ParseConstraint(""));
  CHECK_FALSE(ParseConstraint("libfoo (>=> 1.0)"));
}

TEST_CASE("Satisfies follows the relation") {
  auto c = [](const char* t) { return *ParseConstraint(t); };
  CHECK(Satisfies("1.0", c("a")));
  CHECK(Satisfies("1.2", c("a (>= 1.2)")));
  CHECK(Satisfies("1.10", c("a (>= 1.9)")));
  CHECK_FALSE(Satisfies("1.2~rc1", c("a (>= 1.2)")));
  CHECK(Satisfies("1.2~rc1", c("a (<< 1.2)")));
  CHECK_FALSE(Satisfies("1.2", c("a (<< 1.2)")));
  CHECK(Satisfies("1.2", c("a (<= 1.2)")));
  CHECK(Satisfies("0:1.2", c("a (= 1.2)")));
  CHECK_FALSE(Satisfies("1.2-1", c("a (= 1.2)")));
  CHECK(Satisfies("1:0.1", c("a (>> 9.9)")));
}

// The reference: dpkg itself, on every pair of a varied list.
TEST_CASE("CompareVersions agrees with dpkg --compare-versions") {
  if (parc::test::Shell("command -v dpkg >/dev/null").exit_code != 0) FAIL("dpkg is missing");
  const std::vector<std::string> versions = {"0.9", "1.0~~", "1.0~rc1", "1.0", "1.0a", "1.0+b1", "1.0.1", "1.0-1",
                                             "1.0-1.1", "1.0-1~bpo1", "1:0.1", "2:0", "1.01", "1.0-0ubuntu1", "10"};
  for (const auto& a : versions)
    for (const auto& b : versions) {
      int ours = CompareVersions(a, b);
      bool dpkg_lt = parc::test::Run({"dpkg", "--compare-versions", a, "lt", b}).exit_code == 0;
      bool dpkg_eq = parc::test::Run({"dpkg", "--compare-versions", a, "eq", b}).exit_code == 0;
      INFO(a << " vs " << b);
      CHECK((ours < 0) == dpkg_lt);
      CHECK((ours == 0) == dpkg_eq);
    }
}
