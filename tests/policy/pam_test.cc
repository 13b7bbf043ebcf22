// pam kind: options of the first module line of a type, edited in place.
#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

std::string Rule(const std::string& fields) {
  return "\n[[rule]]\nid = \"r\"\ntitle = \"t\"\nanssi = \"R31\"\nlevel = \"minimal\"\nkind = \"pam\"\n"
         "file = \"/etc/pam.d/common-password\"\ntype = \"password\"\n" + fields;
}

const char* kPwquality = "module = \"pam_pwquality.so\"\noptions = { minlen = \"12\", retry = \"3\", enforce_for_root = \"\" }\n";

// Debian 12's common-password with libpam-pwquality installed.
const char* kCommonPassword =
    "# /etc/pam.d/common-password - password-related modules common to all services\n"
    "password\trequisite\t\t\tpam_pwquality.so retry=3\n"
    "password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\n"
    "password\trequisite\t\t\tpam_deny.so\n"
    "password\trequired\t\t\tpam_permit.so\n";

policy::ApplyResult ApplyThenRollBack(const policy::Baseline& b, const test::PolicyRoot& r, const std::function<void()>& inspect) {
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.before.rules[0].status == policy::Status::kFail);
  INFO(applied.after.rules[0].found);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  inspect();
  CHECK(test::ApplyAll(b, r).point.id.empty());
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  REQUIRE((*engine)->Rollback(applied.point.id));
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
  return applied;
}

std::string ParseError(const std::string& rules) {
  auto b = policy::ParseBaseline("[baseline]\nname = \"test\"\ntitle = \"test\"\nversion = \"1\"\n\n" + rules, "test.toml");
  REQUIRE_FALSE(b);
  return b.error().message();
}

}  // namespace

TEST_CASE("pam: the module line's options", "[policy][pam]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Rule(kPwquality));

  SECTION("missing options fail with what is missing, on the line found") {
    r.Write("/etc/pam.d/common-password", kCommonPassword);
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "password pam_pwquality.so enforce_for_root minlen=12 retry=3");
    CHECK(res.found ==
          "password requisite pam_pwquality.so retry=3 at /etc/pam.d/common-password:2 (missing enforce_for_root; missing minlen=12)");
  }
  SECTION("all options present pass; the last occurrence of an option counts") {
    r.Write("/etc/pam.d/common-password",
            "password requisite pam_pwquality.so minlen=8 retry=3 enforce_for_root minlen=12 # site policy\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    r.Write("/etc/pam.d/common-password", "password requisite pam_pwquality.so minlen=12 retry=3 enforce_for_root minlen=8\n");
    res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK_THAT(res.found, Catch::Contains("minlen=8 instead of minlen=12"));
  }
  SECTION("remediation edits only the options of that line") {
    r.Write("/etc/pam.d/common-password", kCommonPassword);
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read("/etc/pam.d/common-password") ==
            "# /etc/pam.d/common-password - password-related modules common to all services\n"
            "password\trequisite\t\t\tpam_pwquality.so retry=3 enforce_for_root minlen=12\n"
            "password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\n"
            "password\trequisite\t\t\tpam_deny.so\n"
            "password\trequired\t\t\tpam_permit.so\n");
    });
  }
  SECTION("a wrong value is replaced in place, duplicates go, a comment stays; continued lines are joined") {
    r.Write("/etc/pam.d/common-password",
            "-password requisite /lib/x86_64-linux-gnu/security/pam_pwquality.so minlen=8 \\\n  retry=3 minlen=9 # keep\n");
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read("/etc/pam.d/common-password") ==
            "-password requisite /lib/x86_64-linux-gnu/security/pam_pwquality.so minlen=12 retry=3 enforce_for_root # keep\n");
    });
  }
  SECTION("absent_options are removed") {
    auto nullok = test::MakeBaseline(
        "\n[[rule]]\nid = \"r\"\ntitle = \"t\"\nanssi = \"R31\"\nlevel = \"minimal\"\nkind = \"pam\"\n"
        "file = \"/etc/pam.d/common-auth\"\ntype = \"auth\"\nmodule = \"pam_unix.so\"\nabsent_options = [\"nullok\"]\n");
    r.Write("/etc/pam.d/common-auth", "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\tpam_deny.so\n");
    auto res = test::CheckOne(nullok, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "auth pam_unix.so without nullok");
    CHECK_THAT(res.found, Catch::EndsWith("(has nullok)"));
    ApplyThenRollBack(nullok, r, [&] {
      CHECK(r.Read("/etc/pam.d/common-auth") == "auth\t[success=1 default=ignore]\tpam_unix.so\nauth\trequisite\tpam_deny.so\n");
    });
  }
  SECTION("a missing module line is manual: Parc never adds one") {
    r.Write("/etc/pam.d/common-password", "password required pam_unix.so yescrypt\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "no password line for pam_pwquality.so in /etc/pam.d/common-password");
    CHECK(res.manual);
    CHECK_THAT(res.message, Catch::Contains("never adds PAM module lines"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("present = false: the line must not exist, and removing it is manual") {
    auto gone = test::MakeBaseline(Rule("module = \"pam_permit.so\"\npresent = false\n"));
    r.Write("/etc/pam.d/common-password", "password required pam_unix.so\n");
    CHECK(test::CheckOne(gone, r.root()).status == policy::Status::kPass);
    r.Write("/etc/pam.d/common-password", kCommonPassword);
    auto res = test::CheckOne(gone, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "password required pam_permit.so at /etc/pam.d/common-password:5");
    CHECK(res.manual);
  }
  SECTION("the type must match: an auth line of the module is not a password line") {
    r.Write("/etc/pam.d/common-password", "auth required pam_pwquality.so minlen=12 retry=3 enforce_for_root\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kFail);
  }
  SECTION("no such file: not applicable") { CHECK(test::CheckOne(b, r.root()).status == policy::Status::kNotApplicable); }
}

TEST_CASE("pam: a file linked outside the root is not read or written", "[policy][pam]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Rule(kPwquality));
  test::TempDir outside("parc-sentinel");
  auto sentinel = outside / "common-password";
  test::WriteFile(sentinel, "password requisite pam_pwquality.so minlen=12 retry=3 enforce_for_root\n");

  SECTION("a link climbing above the root is refused") {
    std::filesystem::create_directories(r.Host("/etc/pam.d"));
    std::string up;
    for (int i = 0; i < 30; ++i) up += "../";
    std::filesystem::create_symlink(up + sentinel.string().substr(1), r.Host("/etc/pam.d/common-password"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("an absolute link is followed inside the root") {
    std::filesystem::create_directories(r.Host("/etc/pam.d"));
    std::filesystem::create_symlink(sentinel, r.Host("/etc/pam.d/common-password"));
    r.Write(sentinel.string(), "password requisite pam_pwquality.so retry=3\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kFail);
    ApplyThenRollBack(b, r, [&] { CHECK_THAT(r.Read(sentinel.string()), Catch::Contains("minlen=12")); });
  }
  CHECK(test::ReadFileOrEmpty(sentinel) == "password requisite pam_pwquality.so minlen=12 retry=3 enforce_for_root\n");
}

TEST_CASE("pam: bad fields are parse errors naming the line and the key", "[policy][pam]") {
  CHECK_THAT(ParseError(Rule("module = \"pam_pwquality\"\n")),
             Catch::StartsWith("test.toml:15: rule 'r': key 'module': must be a module file name"));
  CHECK_THAT(ParseError(Rule("module = \"pam_x.so\"\noptions = { minlen = 12 }\n")),
             Catch::StartsWith("test.toml:16: rule 'r': key 'options': value of 'minlen' must be a string"));
  CHECK_THAT(ParseError(Rule("module = \"pam_x.so\"\noptions = { minlen = \"1 2\" }\n")),
             Catch::StartsWith("test.toml:16: rule 'r': key 'options': value of 'minlen' must not contain blanks"));
  CHECK_THAT(ParseError(Rule("module = \"pam_x.so\"\noptions = { nullok = \"\" }\nabsent_options = [\"nullok\"]\n")),
             Catch::StartsWith("test.toml:17: rule 'r': key 'absent_options': 'nullok' is also in options"));
  CHECK_THAT(ParseError(Rule("module = \"pam_x.so\"\npresent = false\noptions = { a = \"1\" }\n")),
             Catch::StartsWith("test.toml:16: rule 'r': key 'present': present = false checks"));
  CHECK_THAT(ParseError("\n[[rule]]\nid = \"r\"\ntitle = \"t\"\nanssi = \"R31\"\nlevel = \"minimal\"\nkind = \"pam\"\n"
                        "file = \"/etc/pam.d/x\"\ntype = \"passwd\"\nmodule = \"pam_x.so\"\n"),
             Catch::StartsWith("test.toml:14: rule 'r': key 'type': 'passwd' is not one of: auth, account, password, session"));
}
