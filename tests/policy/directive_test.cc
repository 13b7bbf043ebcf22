// directive kind: sshd (Include, Match, first value wins), login.defs,
// pwquality/faillock (drop-ins, flags), sudoers (include directories).
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

std::string Rule(const std::string& fields) {
  return "\n[[rule]]\nid = \"r\"\ntitle = \"t\"\nsource = \"test\"\nlevel = \"minimal\"\nkind = \"directive\"\n" + fields;
}

std::string Sshd(const std::string& key, const std::string& value, const std::string& extra = "") {
  return Rule("file = \"/etc/ssh/sshd_config\"\nsyntax = \"sshd\"\nkey = \"" + key + "\"\nvalue = \"" + value + "\"\n" + extra);
}

// Apply must fix the rule, a second apply must find nothing to do, and the
// rollback must give back the exact tree.
policy::ApplyResult ApplyThenRollBack(const policy::Baseline& b, const test::PolicyRoot& r,
                                      const std::function<void()>& inspect = {}) {
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.before.rules[0].status == policy::Status::kFail);
  INFO(applied.after.rules[0].found << " / " << applied.after.rules[0].message);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(applied.after.rules[0].remediated);
  if (inspect) inspect();
  auto again = test::ApplyAll(b, r);
  CHECK(again.point.id.empty());
  CHECK(again.before.rules[0].status == policy::Status::kPass);
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(applied.point.id);
  REQUIRE(rb);
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
  return applied;
}

// Parses a one-rule baseline that must fail; returns the message and the
// line of `needle` in the text that was parsed.
std::pair<std::string, int> ParseError(const std::string& rules, const std::string& needle) {
  std::string text = "[baseline]\nname = \"test\"\ntitle = \"test\"\nversion = \"1\"\n\n" + rules;
  auto b = policy::ParseBaseline(text, "test.toml");
  REQUIRE_FALSE(b);
  int line = 1;
  size_t at = text.find(needle);
  REQUIRE(at != std::string::npos);
  for (size_t i = 0; i < at; ++i) line += text[i] == '\n';
  return {b.error().message(), line};
}

void CheckParseError(const std::string& rules, const std::string& key, const std::string& needle, const std::string& words) {
  auto [msg, line] = ParseError(rules, needle);
  INFO(msg);
  CHECK_THAT(msg, Catch::StartsWith("test.toml:" + std::to_string(line) + ": rule 'r': key '" + key + "'"));
  CHECK_THAT(msg, Catch::Contains(words));
}

struct Sentinel {
  test::TempDir dir{"parc-sentinel"};
  std::filesystem::path file = dir / "evil.conf";
  std::string content;
  struct stat st {};
  explicit Sentinel(std::string text) : content(std::move(text)) {
    test::WriteFile(file, content);
    ::stat(file.c_str(), &st);
  }
  void CheckUnchanged() const {
    CHECK(test::ReadFileOrEmpty(file) == content);
    struct stat now {};
    REQUIRE(::stat(file.c_str(), &now) == 0);
    CHECK(now.st_mtim.tv_sec == st.st_mtim.tv_sec);
    CHECK(now.st_mtim.tv_nsec == st.st_mtim.tv_nsec);
    CHECK(now.st_mode == st.st_mode);
  }
};

// Enough "../" to climb from any in-root directory above the root.
std::string Climb(const std::filesystem::path& target) {
  std::string up;
  for (int i = 0; i < 40; ++i) up += "../";
  return up + target.string().substr(1);
}

const char* kDebianSshd =
    "# This is the sshd server system-wide configuration file.\n"
    "\n"
    "Include /etc/ssh/sshd_config.d/*.conf\n"
    "\n"
    "#PermitRootLogin prohibit-password\n"
    "KbdInteractiveAuthentication no\n"
    "UsePAM yes\n"
    "X11Forwarding yes\n"
    "Subsystem sftp /usr/lib/openssh/sftp-server\n";

}  // namespace

TEST_CASE("directive sshd: the first global value wins, Match blocks are not global", "[policy][directive]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Sshd("PermitRootLogin", "no"));

  SECTION("not set anywhere fails with sshd's default named") {
    r.Write("/etc/ssh/sshd_config", kDebianSshd);
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "PermitRootLogin no");
    CHECK(res.found == "not set outside Match blocks (sshd's built-in default applies)");
  }
  SECTION("keywords and values are case-insensitive, Key=value and trailing comments are understood") {
    r.Write("/etc/ssh/sshd_config", "permitrootlogin=NO   # no root\nPermitRootLogin yes\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "PermitRootLogin NO at /etc/ssh/sshd_config:1 (the first value wins)");
  }
  SECTION("an included drop-in read before the main file's line wins") {
    r.Write("/etc/ssh/sshd_config", std::string(kDebianSshd) + "PermitRootLogin no\n");
    r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PermitRootLogin yes\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "PermitRootLogin yes at /etc/ssh/sshd_config.d/50-cloud-init.conf:1 (the first value wins)");
  }
  SECTION("relative Include is under /etc/ssh; drop-ins are read in name order") {
    r.Write("/etc/ssh/sshd_config", "Include sshd_config.d/*.conf\n");
    r.Write("/etc/ssh/sshd_config.d/20-b.conf", "PermitRootLogin yes\n");
    r.Write("/etc/ssh/sshd_config.d/10-a.conf", "PermitRootLogin no\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "PermitRootLogin no at /etc/ssh/sshd_config.d/10-a.conf:1 (the first value wins)");
  }
  SECTION("a setting inside a Match block only is not the global value") {
    r.Write("/etc/ssh/sshd_config", "Port 22\nMatch User backup\n  PermitRootLogin no\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found ==
          "not set outside Match blocks (sshd's built-in default applies); set only inside a Match block at /etc/ssh/sshd_config:3");
  }
  SECTION("Match all returns to the global section") {
    r.Write("/etc/ssh/sshd_config", "Match Address 10.0.0.0/8\n  PermitRootLogin yes\nMatch all\nPermitRootLogin no\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "PermitRootLogin no at /etc/ssh/sshd_config:4 (the first value wins)");
  }
  SECTION("a file included inside a Match block is not global, even after its own Match all") {
    r.Write("/etc/ssh/sshd_config", "Match User alice\n  Include /etc/ssh/in.conf\nMatch all\nPermitRootLogin yes\n");
    r.Write("/etc/ssh/in.conf", "Match all\nPermitRootLogin no\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "PermitRootLogin yes at /etc/ssh/sshd_config:4 (the first value wins)");
  }
  SECTION("a Match in an included file does not change the including file's state") {
    r.Write("/etc/ssh/sshd_config", "Include /etc/ssh/m.conf\nPermitRootLogin no\n");
    r.Write("/etc/ssh/m.conf", "Match User bob\n  X11Forwarding no\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
  }
  SECTION("an include loop is an error, not a hang") {
    r.Write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("Include nesting deeper than 16"));
  }
  SECTION("unbalanced quotes make sshd refuse the file: error") {
    r.Write("/etc/ssh/sshd_config", "Banner \"/etc/issue\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("/etc/ssh/sshd_config:1: unbalanced quotes"));
    r.Write("/etc/ssh/sshd_config", "Port 22\nInclude\n");
    res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK(res.message == "/etc/ssh/sshd_config:2: Include without a file name (sshd refuses this file)");
  }
  SECTION("no sshd_config: not applicable") {
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kNotApplicable);
    CHECK(res.message == "/etc/ssh/sshd_config does not exist");
  }
}

TEST_CASE("directive sshd: remediation uses the drop-in when it is read first", "[policy][directive]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Sshd("PermitRootLogin", "no"));
  r.Write("/etc/ssh/sshd_config", std::string(kDebianSshd) + "PermitRootLogin yes\n", 0600);
  r.Write("/etc/ssh/sshd_config.d/50-local.conf", "PermitRootLogin prohibit-password\nX11Forwarding no\n");
  auto applied = ApplyThenRollBack(b, r, [&] {
    CHECK(r.Read("/etc/ssh/sshd_config.d/00-parc-hardening.conf") ==
          "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.\nPermitRootLogin no\n");
    CHECK_THAT(r.Read("/etc/ssh/sshd_config"), Catch::EndsWith("\n# parc-agent policy apply: PermitRootLogin yes\n"));
    CHECK(r.Read("/etc/ssh/sshd_config.d/50-local.conf") ==
          "# parc-agent policy apply: PermitRootLogin prohibit-password\nX11Forwarding no\n");
    struct stat st {};
    REQUIRE(::stat(r.Host("/etc/ssh/sshd_config").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);  // an edited file keeps its mode
  });
  CHECK(applied.notes == std::vector<std::string>{"PermitRootLogin: sshd reads its configuration when it starts or reloads ('systemctl reload ssh')"});
}

TEST_CASE("directive sshd: remediation inserts at the top of the main file otherwise", "[policy][directive]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Sshd("X11Forwarding", "no"));
  SECTION("no Include at all") {
    r.Write("/etc/ssh/sshd_config", "# header\n\nPort 22\nX11Forwarding yes\nMatch User x\n  X11Forwarding yes\n");
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read("/etc/ssh/sshd_config") ==
            "# header\n\nX11Forwarding no\nPort 22\n# parc-agent policy apply: X11Forwarding yes\nMatch User x\n  X11Forwarding yes\n");
      CHECK_FALSE(std::filesystem::exists(r.Host("/etc/ssh/sshd_config.d/00-parc-hardening.conf")));
    });
  }
  SECTION("the main file sets the key before its Include") {
    r.Write("/etc/ssh/sshd_config", "X11Forwarding yes\nInclude /etc/ssh/sshd_config.d/*.conf\n");
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read("/etc/ssh/sshd_config") ==
            "X11Forwarding no\n# parc-agent policy apply: X11Forwarding yes\nInclude /etc/ssh/sshd_config.d/*.conf\n");
    });
  }
}

TEST_CASE("directive sshd: min/max read sshd time values, contains reads lists", "[policy][directive]") {
  test::PolicyRoot r;
  SECTION("ClientAliveInterval 10m is more than 300 seconds") {
    auto b = test::MakeBaseline(Sshd("ClientAliveInterval", "300", "match = \"max\"\n"));
    r.Write("/etc/ssh/sshd_config", "ClientAliveInterval 10m\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "ClientAliveInterval 300 or less");
    r.Write("/etc/ssh/sshd_config", "ClientAliveInterval 4m30s\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
    r.Write("/etc/ssh/sshd_config", "ClientAliveInterval 10m\n");
    ApplyThenRollBack(b, r, [&] { CHECK_THAT(r.Read("/etc/ssh/sshd_config"), Catch::StartsWith("ClientAliveInterval 300\n")); });
  }
  SECTION("contains adds the item to the effective list") {
    auto b = test::MakeBaseline(Sshd("Ciphers", "aes256-gcm@openssh.com", "match = \"contains\"\n"));
    r.Write("/etc/ssh/sshd_config", "Ciphers chacha20-poly1305@openssh.com,aes256-ctr\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "Ciphers includes aes256-gcm@openssh.com");
    ApplyThenRollBack(b, r, [&] {
      CHECK_THAT(r.Read("/etc/ssh/sshd_config"),
                 Catch::StartsWith("Ciphers chacha20-poly1305@openssh.com,aes256-ctr,aes256-gcm@openssh.com\n"));
    });
  }
  SECTION("absent: the key must not be set globally") {
    auto b = test::MakeBaseline(Rule("file = \"/etc/ssh/sshd_config\"\nsyntax = \"sshd\"\nkey = \"PermitUserEnvironment\"\nabsent = true\n"));
    r.Write("/etc/ssh/sshd_config", "Match User x\n  PermitUserEnvironment yes\n");
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kPass);
    r.Write("/etc/ssh/sshd_config", "PermitUserEnvironment yes\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "PermitUserEnvironment yes at /etc/ssh/sshd_config:1 (the first value wins)");
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read("/etc/ssh/sshd_config") == "# parc-agent policy apply: PermitUserEnvironment yes\n");
    });
  }
}

TEST_CASE("directive sshd: includes and links pointing outside the root are not followed", "[policy][directive]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(Sshd("PermitRootLogin", "no"));
  Sentinel sentinel("PermitRootLogin no\n");

  SECTION("an absolute Include names a path inside the root, never the host's") {
    r.Write("/etc/ssh/sshd_config", "Include " + sentinel.file.string() + "\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);  // the host's file would have said "no"
    ApplyThenRollBack(b, r);
    sentinel.CheckUnchanged();
  }
  SECTION("a drop-in directory linked above the root is refused") {
    r.Write("/etc/ssh/sshd_config", kDebianSshd);
    std::filesystem::create_symlink(Climb(sentinel.dir.path()), r.Host("/etc/ssh/sshd_config.d"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    auto applied = test::ApplyAll(b, r);
    CHECK(applied.point.id.empty());  // an error is never remediated
    sentinel.CheckUnchanged();
  }
  SECTION("a main file linked above the root is refused, not taken for absent") {
    std::filesystem::create_directories(r.Host("/etc/ssh"));
    std::filesystem::create_symlink(Climb(sentinel.file), r.Host("/etc/ssh/sshd_config"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::StartsWith("/etc/ssh/sshd_config: "));
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
    sentinel.CheckUnchanged();
  }
  SECTION("a drop-in directory linked to a host directory is listed inside the root") {
    r.Write("/etc/ssh/sshd_config", kDebianSshd);
    std::filesystem::create_symlink(sentinel.dir.path(), r.Host("/etc/ssh/sshd_config.d"));
    auto res = test::CheckOne(b, r.root());
    // The host directory holds evil.conf saying "no"; inside the root the link leads nowhere.
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "not set outside Match blocks (sshd's built-in default applies)");
    ApplyThenRollBack(b, r, [&] {
      CHECK(r.Read(sentinel.dir.path().string() + "/00-parc-hardening.conf") ==
            "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.\nPermitRootLogin no\n");
    });
    CHECK_FALSE(std::filesystem::exists(sentinel.dir / "00-parc-hardening.conf"));
    sentinel.CheckUnchanged();
  }
  SECTION("an included file linked to a host path is read inside the root") {
    r.Write("/etc/ssh/sshd_config", kDebianSshd);
    std::filesystem::create_directories(r.Host("/etc/ssh/sshd_config.d"));
    std::filesystem::create_symlink(sentinel.file, r.Host("/etc/ssh/sshd_config.d/10-evil.conf"));
    r.Write(sentinel.file.string(), "PermitRootLogin yes\n");  // the same path inside the root
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK_THAT(res.found, Catch::Contains("PermitRootLogin yes at /etc/ssh/sshd_config.d/10-evil.conf:1"));
    ApplyThenRollBack(b, r, [&] {
      // The link's in-root target was edited, the host's file was not.
      CHECK(r.Read(sentinel.file.string()) == "# parc-agent policy apply: PermitRootLogin yes\n");
    });
    sentinel.CheckUnchanged();
  }
}

TEST_CASE("directive space (login.defs): the last value wins", "[policy][directive]") {
  test::PolicyRoot r;
  auto b = test::MakeBaseline(
      Rule("file = \"/etc/login.defs\"\nsyntax = \"space\"\nkey = \"PASS_MAX_DAYS\"\nvalue = \"90\"\nmatch = \"max\"\n"));
  SECTION("pass and fail name the line") {
    r.Write("/etc/login.defs", "#PASS_MAX_DAYS 1\nPASS_MAX_DAYS\t60\n");
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "PASS_MAX_DAYS 60 at /etc/login.defs:2 (the last value wins)");
    r.Write("/etc/login.defs", "PASS_MAX_DAYS 60\nPASS_MAX_DAYS \"99999\"\n");
    res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "PASS_MAX_DAYS 90 or less");
    CHECK(res.found == "PASS_MAX_DAYS 99999 at /etc/login.defs:2 (the last value wins)");
  }
  SECTION("remediation rewrites the value where it is and keeps the layout") {
    r.Write("/etc/login.defs", "# comment\nPASS_MAX_DAYS\t99999\t\nPASS_MIN_DAYS\t0\n");
    ApplyThenRollBack(b, r, [&] { CHECK(r.Read("/etc/login.defs") == "# comment\nPASS_MAX_DAYS\t90\t\nPASS_MIN_DAYS\t0\n"); });
  }
  SECTION("a missing key is appended") {
    r.Write("/etc/login.defs", "UMASK 022");
    ApplyThenRollBack(b, r, [&] { CHECK(r.Read("/etc/login.defs") == "UMASK 022\nPASS_MAX_DAYS 90\n"); });
  }
  SECTION("no login.defs: not applicable") { CHECK(test::CheckOne(b, r.root()).status == policy::Status::kNotApplicable); }
}

TEST_CASE("directive equals (pwquality, faillock): drop-ins first, flags, comments", "[policy][directive]") {
  test::PolicyRoot r;
  auto minlen = test::MakeBaseline(Rule(
      "file = \"/etc/security/pwquality.conf\"\nsyntax = \"equals\"\nkey = \"minlen\"\nvalue = \"12\"\nmatch = \"min\"\n"
      "dropins = \"/etc/security/pwquality.conf.d/*.conf\"\n"));
  SECTION("the main file is read last, as libpwquality does") {
    r.Write("/etc/security/pwquality.conf", "# minlen = 20\nminlen=8 # weak\n");
    r.Write("/etc/security/pwquality.conf.d/50-site.conf", "minlen = 14\n");
    auto res = test::CheckOne(minlen, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "minlen = 8 at /etc/security/pwquality.conf:2 (the last value wins)");
    ApplyThenRollBack(minlen, r, [&] { CHECK(r.Read("/etc/security/pwquality.conf") == "# minlen = 20\nminlen=12 # weak\n"); });
  }
  SECTION("a value set only in a drop-in counts and is fixed there") {
    r.Write("/etc/security/pwquality.conf", "# nothing\n");
    r.Write("/etc/security/pwquality.conf.d/50-site.conf", "minlen = 6\n");
    ApplyThenRollBack(minlen, r, [&] {
      CHECK(r.Read("/etc/security/pwquality.conf.d/50-site.conf") == "minlen = 12\n");
      CHECK(r.Read("/etc/security/pwquality.conf") == "# nothing\n");
    });
  }
  SECTION("a flag is a bare key") {
    auto flag = test::MakeBaseline(Rule(
        "file = \"/etc/security/faillock.conf\"\nsyntax = \"equals\"\nkey = \"even_deny_root\"\nvalue = \"\"\n"));
    r.Write("/etc/security/faillock.conf", "# even_deny_root\ndeny = 3\n");
    auto res = test::CheckOne(flag, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "even_deny_root (flag)");
    CHECK(res.found == "not set in /etc/security/faillock.conf");
    ApplyThenRollBack(flag, r, [&] { CHECK(r.Read("/etc/security/faillock.conf") == "# even_deny_root\ndeny = 3\neven_deny_root\n"); });
  }
  SECTION("absent: every line setting the key is commented out, drop-ins included") {
    auto no_badwords = test::MakeBaseline(Rule(
        "file = \"/etc/security/pwquality.conf\"\nsyntax = \"equals\"\nkey = \"badwords\"\nabsent = true\n"
        "dropins = \"/etc/security/pwquality.conf.d/*.conf\"\n"));
    r.Write("/etc/security/pwquality.conf", "minlen = 14\n");
    CHECK(test::CheckOne(no_badwords, r.root()).status == policy::Status::kPass);
    r.Write("/etc/security/pwquality.conf.d/10-x.conf", "badwords = acme\n");
    auto res = test::CheckOne(no_badwords, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "badwords = acme at /etc/security/pwquality.conf.d/10-x.conf:1 (the last value wins)");
    ApplyThenRollBack(no_badwords, r, [&] {
      CHECK(r.Read("/etc/security/pwquality.conf.d/10-x.conf") == "# parc-agent policy apply: badwords = acme\n");
    });
  }
  SECTION("a drop-in linked above the root is refused") {
    Sentinel sentinel("minlen = 20\n");
    r.Write("/etc/security/pwquality.conf", "minlen = 14\n");
    std::filesystem::create_directories(r.Host("/etc/security/pwquality.conf.d"));
    std::filesystem::create_symlink(Climb(sentinel.file), r.Host("/etc/security/pwquality.conf.d/evil.conf"));
    auto res = test::CheckOne(minlen, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("/etc/security/pwquality.conf.d/evil.conf"));
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    sentinel.CheckUnchanged();
  }
}

TEST_CASE("directive sudoers: global Defaults in sudoers and its include directories", "[policy][directive]") {
  test::PolicyRoot r;
  auto use_pty = test::MakeBaseline(Rule("file = \"/etc/sudoers\"\nsyntax = \"sudoers\"\nkey = \"use_pty\"\nvalue = \"\"\n"));
  const std::string debian =
      "Defaults\tenv_reset\nDefaults\tmail_badpass\n"
      "Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n"
      "root\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";

  SECTION("set in the main file, scoped Defaults ignored") {
    r.Write("/etc/sudoers", "Defaults env_reset, use_pty\nDefaults:alice !use_pty\n@includedir /etc/sudoers.d\n", 0440);
    auto res = test::CheckOne(use_pty, r.root());
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "Defaults use_pty at /etc/sudoers:1 (the last value wins)");
  }
  SECTION("a later include negating it wins; files with a dot are skipped") {
    r.Write("/etc/sudoers", "Defaults use_pty\n#includedir /etc/sudoers.d\n", 0440);
    r.Write("/etc/sudoers.d/README", "# Defaults !use_pty\n");
    r.Write("/etc/sudoers.d/local.bak", "Defaults !use_pty\n");
    r.Write("/etc/sudoers.d/zz-local", "Defaults env_keep += \"EDITOR\", \\\n  !use_pty\n", 0440);
    auto res = test::CheckOne(use_pty, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "Defaults !use_pty at /etc/sudoers.d/zz-local:1 (the last value wins)");
    ApplyThenRollBack(use_pty, r, [&] {
      CHECK(r.Read("/etc/sudoers.d/parc-hardening") ==
            "# Written by parc-agent policy apply; 'parc-agent policy rollback' undoes it.\nDefaults use_pty\n");
      struct stat st {};
      REQUIRE(::stat(r.Host("/etc/sudoers.d/parc-hardening").c_str(), &st) == 0);
      CHECK((st.st_mode & 07777) == 0440);
      CHECK(st.st_uid == 0);
      // zz-local is read after parc-hardening: its conflicting option goes, the rest stays.
      CHECK(r.Read("/etc/sudoers.d/zz-local") == "Defaults env_keep += \"EDITOR\"\n");
    });
  }
  SECTION("the Debian file without the option: the drop-in adds it") {
    r.Write("/etc/sudoers", debian, 0440);
    auto res = test::CheckOne(use_pty, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.found == "not set by any global Defaults line in /etc/sudoers or its includes");
    ApplyThenRollBack(use_pty, r, [&] { CHECK(r.Read("/etc/sudoers") == debian); });
  }
  SECTION("a value option, quoted or not") {
    auto logfile = test::MakeBaseline(
        Rule("file = \"/etc/sudoers\"\nsyntax = \"sudoers\"\nkey = \"logfile\"\nvalue = \"/var/log/sudo.log\"\n"));
    r.Write("/etc/sudoers", "Defaults logfile=\"/var/log/sudo.log\"\n@includedir /etc/sudoers.d\n", 0440);
    CHECK(test::CheckOne(logfile, r.root()).status == policy::Status::kPass);
    r.Write("/etc/sudoers", "Defaults logfile=/tmp/x\n@includedir /etc/sudoers.d\n", 0440);
    auto res = test::CheckOne(logfile, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "Defaults logfile=/var/log/sudo.log");
    CHECK(res.found == "Defaults logfile=/tmp/x at /etc/sudoers:1 (the last value wins)");
    ApplyThenRollBack(logfile, r, [&] { CHECK_THAT(r.Read("/etc/sudoers.d/parc-hardening"), Catch::EndsWith("\nDefaults logfile=/var/log/sudo.log\n")); });
  }
  SECTION("absent: not set or negated; remediation negates it in the drop-in") {
    auto visiblepw = test::MakeBaseline(Rule("file = \"/etc/sudoers\"\nsyntax = \"sudoers\"\nkey = \"visiblepw\"\nabsent = true\n"));
    r.Write("/etc/sudoers", debian, 0440);
    CHECK(test::CheckOne(visiblepw, r.root()).status == policy::Status::kPass);
    r.Write("/etc/sudoers.d/local", "Defaults visiblepw, !lecture\n", 0440);
    auto res = test::CheckOne(visiblepw, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.expected == "Defaults visiblepw not set (or negated)");
    ApplyThenRollBack(visiblepw, r, [&] {
      CHECK_THAT(r.Read("/etc/sudoers.d/parc-hardening"), Catch::EndsWith("\nDefaults !visiblepw\n"));
      CHECK(r.Read("/etc/sudoers.d/local") == "Defaults visiblepw, !lecture\n");  // read before ours: left alone
    });
  }
  SECTION("without an include directory the fix is manual") {
    r.Write("/etc/sudoers", "Defaults env_reset\n", 0440);
    auto res = test::CheckOne(use_pty, r.root());
    CHECK(res.status == policy::Status::kFail);
    CHECK(res.manual);
    CHECK_THAT(res.message, Catch::Contains("has no @includedir /etc/sudoers.d"));
    auto applied = test::ApplyAll(use_pty, r);
    CHECK(applied.point.id.empty());
  }
  SECTION("an include loop is an error") {
    r.Write("/etc/sudoers", "@include /etc/sudoers\n", 0440);
    auto res = test::CheckOne(use_pty, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("include nesting deeper than 16"));
  }
  SECTION("an include directory linked above the root is refused") {
    Sentinel sentinel("Defaults use_pty\n");
    r.Write("/etc/sudoers", "@includedir /etc/sudoers.d\n", 0440);
    std::filesystem::create_symlink(Climb(sentinel.dir.path()), r.Host("/etc/sudoers.d"));
    auto res = test::CheckOne(use_pty, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    CHECK(test::ApplyAll(use_pty, r).point.id.empty());
    sentinel.CheckUnchanged();
  }
}

TEST_CASE("directive: bad fields are parse errors naming the line and the key", "[policy][directive]") {
  CheckParseError(Rule("file = \"/etc/ssh/sshd_config\"\nsyntax = \"ini\"\nkey = \"A\"\nvalue = \"1\"\n"), "syntax",
                  "syntax = \"ini\"", "'ini' is not one of: sshd, space, equals, sudoers");
  CheckParseError(Rule("file = \"etc/ssh/sshd_config\"\nsyntax = \"sshd\"\nkey = \"A\"\nvalue = \"1\"\n"), "file",
                  "file = ", "not an absolute path");
  CheckParseError(Rule("file = \"/etc/../shadow\"\nsyntax = \"sshd\"\nkey = \"A\"\nvalue = \"1\"\n"), "file", "file = ",
                  "contains '..'");
  CheckParseError(Sshd("MaxAuthTries", "four", "match = \"max\"\n"), "value", "value = ", "'four' is not an integer");
  CheckParseError(Sshd("Match", "all"), "key", "key = ", "Include and Match are structure");
  CheckParseError(Sshd("Permit Root", "no"), "key", "key = ", "must be an sshd keyword");
  CheckParseError(Sshd("PermitRootLogin", "no", "match = \"like\"\n"), "match", "match = ", "'like' is not one of");
  CheckParseError(Sshd("PermitRootLogin", "no", "dropins = \"/etc/ssh/x/*.conf\"\n"), "dropins", "dropins = ",
                  "sshd reads what Include names");
  CheckParseError(Sshd("Ciphers", "a,b", "match = \"contains\"\n"), "value", "value = ", "one list item");
  CheckParseError(Rule("file = \"/etc/ssh/sshd_config\"\nsyntax = \"sshd\"\nkey = \"X\"\nvalue = \"no\"\nabsent = true\n"),
                  "value", "value = ", "not used with absent = true");
  CheckParseError(Rule("file = \"/etc/sudoers\"\nsyntax = \"sudoers\"\nkey = \"Use-Pty\"\nvalue = \"\"\n"), "key", "key = ",
                  "sudoers Defaults option");
  CheckParseError(Rule("file = \"/etc/login.defs\"\nsyntax = \"space\"\nkey = \"UMASK\"\n"), "value", "[[rule]]", "is required");
  CheckParseError(Rule("file = \"/etc/login.defs\"\nsyntax = \"space\"\nkey = \"UMASK\"\nvalue = \"027\"\nvaleu = \"1\"\n"), "valeu",
                  "valeu = ", "unknown key");
  CheckParseError(Rule("file = \"/etc/login.defs\"\nsyntax = \"space\"\nkey = \"UMASK\"\nvalue = 27\n"), "value", "value = ",
                  "must be a string");
}
