// service kind: unit states judged from the files and links of a prepared
// root, compared with the real `systemctl --root` on the same tree, and
// remediations compared link for link with what systemctl does to a twin.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

std::string SvcRule(const std::string& unit, const std::string& state) {
  return "[[rule]]\nid = \"svc\"\ntitle = \"t\"\nanssi = \"R62\"\nlevel = \"minimal\"\nkind = \"service\"\nunit = \"" + unit +
         "\"\nstate = \"" + state + "\"\n";
}

// A Debian 12 style root: merged /usr (lib -> usr/lib), units in /usr/lib/systemd/system.
void PopulateUnits(const test::PolicyRoot& r) {
  fs::create_directories(r.Host("/usr/lib/systemd/system"));
  fs::create_directories(r.Host("/etc/systemd/system"));
  fs::create_symlink("usr/lib", r.Host("/lib"));
  const std::string dir = "/usr/lib/systemd/system/";
  r.Write(dir + "auditd.service", "[Unit]\nDescription=Audit\n\n[Service]\nExecStart=/sbin/auditd\n\n[Install]\nWantedBy=multi-user.target\n");
  r.Write(dir + "avahi-daemon.service",
          "[Unit]\nDescription=Avahi\n[Service]\nExecStart=/usr/sbin/avahi-daemon\n[Install]\nWantedBy=multi-user.target\n"
          "Also=avahi-daemon.socket\nAlias=dbus-org.freedesktop.Avahi.service\n");
  r.Write(dir + "avahi-daemon.socket", "[Socket]\nListenStream=/run/avahi-daemon/socket\n[Install]\nWantedBy=sockets.target\n");
  r.Write(dir + "reboot.target", "[Unit]\nDescription=Reboot\n\n[Install]\nAlias=ctrl-alt-del.target\n");
  fs::create_symlink("reboot.target", r.Host(dir + "ctrl-alt-del.target"));
  r.Write(dir + "static.service", "[Unit]\nDescription=pulled in by others\n[Service]\nExecStart=/bin/true\n");
  r.Write(dir + "getty@.service", "[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\n");
}

test::CommandResult Systemctl(const fs::path& root, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"systemctl", "--root=" + root.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::Run(argv);
}

std::string IsEnabled(const fs::path& root, const std::string& unit) {
  auto r = Systemctl(root, {"is-enabled", unit});
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void SystemctlDo(const fs::path& root, const std::vector<std::string>& args) {
  auto r = Systemctl(root, args);
  INFO(r.out + r.err);
  REQUIRE(r.exit_code == 0);
}

// A copy of the root (links kept as links) for systemctl to work on.
struct Twin {
  test::TempDir dir{"parc-twin"};
  fs::path root;
  explicit Twin(const test::PolicyRoot& r) : root(dir.path() / "root") {
    auto res = test::Run({"cp", "-a", r.root().string(), root.string()});
    REQUIRE(res.exit_code == 0);
  }
};

void ExpectSameTree(const fs::path& ours, const fs::path& theirs) {
  std::string diff = pkg::testing::DiffTrees(pkg::testing::Snapshot(theirs), pkg::testing::Snapshot(ours));
  INFO("differences from what systemctl --root did:\n" << diff);
  CHECK(diff.empty());
}

void RollBack(const test::PolicyRoot& r, const std::string& point, const pkg::testing::TreeSnapshot& before) {
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(point);
  if (!rb) FAIL(rb.error().message());
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
}

// Enough ".." to leave the root from any directory of it.
std::string Climb(const test::PolicyRoot& r) {
  std::string climb;
  for (auto p = r.root(); p != p.root_path(); p = p.parent_path()) climb += "../../";
  return climb + "../../../../";
}

std::string ParseError(const std::string& rule) {
  std::string text = "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n\n" + rule;
  auto b = policy::ParseBaseline(text, "svc.toml");
  REQUIRE_FALSE(b);
  return b.error().message();
}

}  // namespace

TEST_CASE("service enabled: fail, enable as systemctl --root does, idempotent, rollback", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  auto b = test::MakeBaseline(SvcRule("auditd.service", "enabled"));
  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.expected == "auditd.service enabled");
  CHECK(res.found == "disabled (/lib/systemd/system/auditd.service, no link in /etc/systemd/system)");
  CHECK(IsEnabled(r.root(), "auditd.service") == "disabled");

  Twin twin(r);
  SystemctlDo(twin.root, {"enable", "auditd.service"});
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(applied.after.rules[0].found == "enabled by /etc/systemd/system/multi-user.target.wants/auditd.service");
  CHECK(IsEnabled(r.root(), "auditd.service") == "enabled");
  ExpectSameTree(r.root(), twin.root);
  CHECK(test::ApplyAll(b, r).point.id.empty());
  RollBack(r, applied.point.id, before);
  CHECK(IsEnabled(r.root(), "auditd.service") == "disabled");
}

TEST_CASE("service disabled: links of the unit, its Also= units and aliases removed as systemctl disable does", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  SystemctlDo(r.root(), {"enable", "avahi-daemon.service"});
  REQUIRE(IsEnabled(r.root(), "avahi-daemon.service") == "enabled");
  auto b = test::MakeBaseline(SvcRule("avahi-daemon.service", "disabled"));
  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.found == "enabled by /etc/systemd/system/dbus-org.freedesktop.Avahi.service, "
                     "/etc/systemd/system/multi-user.target.wants/avahi-daemon.service");

  Twin twin(r);
  SystemctlDo(twin.root, {"disable", "avahi-daemon.service"});
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(IsEnabled(r.root(), "avahi-daemon.service") == "disabled");
  CHECK(IsEnabled(r.root(), "avahi-daemon.socket") == "disabled");
  ExpectSameTree(r.root(), twin.root);  // the emptied .wants directories are gone too
  CHECK(test::ApplyAll(b, r).point.id.empty());
  RollBack(r, applied.point.id, before);
  CHECK(IsEnabled(r.root(), "avahi-daemon.socket") == "enabled");
}

TEST_CASE("service masked: ctrl-alt-del.target -> /dev/null as systemctl mask does", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  auto b = test::MakeBaseline(SvcRule("ctrl-alt-del.target", "masked"));
  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.found == "disabled (alias of reboot.target (/lib/systemd/system/reboot.target), no link in /etc/systemd/system); not masked");

  Twin twin(r);
  SystemctlDo(twin.root, {"mask", "ctrl-alt-del.target"});
  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(applied.after.rules[0].found == "masked (/etc/systemd/system/ctrl-alt-del.target -> /dev/null)");
  CHECK(IsEnabled(r.root(), "ctrl-alt-del.target") == "masked");
  ExpectSameTree(r.root(), twin.root);
  CHECK(test::ApplyAll(b, r).point.id.empty());
  RollBack(r, applied.point.id, before);

  SECTION("a unit file of its own in /etc is not replaced by a mask: manual") {
    r.Write("/etc/systemd/system/ctrl-alt-del.target", "[Unit]\nDescription=local\n");
    auto m = test::CheckOne(b, r.root());
    CHECK(m.status == policy::Status::kFail);
    CHECK(m.manual);
    CHECK_THAT(m.message, Catch::Contains("already exists and is not a mask"));
  }
  SECTION("an empty unit file masks too, as systemd reads it") {
    r.Write("/etc/systemd/system/ctrl-alt-del.target", "");
    CHECK(IsEnabled(r.root(), "ctrl-alt-del.target") == "masked");
    auto m = test::CheckOne(b, r.root());
    CHECK(m.status == policy::Status::kPass);
    CHECK(m.found == "masked (/etc/systemd/system/ctrl-alt-del.target is empty)");
  }
}

TEST_CASE("service enabled on a masked unit unmasks it first, template instances are enabled", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  SystemctlDo(r.root(), {"mask", "auditd.service"});
  auto b = test::MakeBaseline(SvcRule("auditd.service", "enabled"));
  CHECK(test::CheckOne(b, r.root()).found == "masked (/etc/systemd/system/auditd.service -> /dev/null)");
  Twin twin(r);
  SystemctlDo(twin.root, {"unmask", "auditd.service"});
  SystemctlDo(twin.root, {"enable", "auditd.service"});
  CHECK(test::ApplyAll(b, r).after.rules[0].status == policy::Status::kPass);
  ExpectSameTree(r.root(), twin.root);

  auto getty = test::MakeBaseline(SvcRule("getty@tty2.service", "enabled"));
  Twin twin2(r);
  SystemctlDo(twin2.root, {"enable", "getty@tty2.service"});
  CHECK(test::ApplyAll(getty, r).after.rules[0].status == policy::Status::kPass);
  CHECK(IsEnabled(r.root(), "getty@tty2.service") == "enabled");
  ExpectSameTree(r.root(), twin2.root);
}

TEST_CASE("service: our judgement agrees with systemctl is-enabled", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  SystemctlDo(r.root(), {"enable", "avahi-daemon.service"});
  SystemctlDo(r.root(), {"mask", "ctrl-alt-del.target"});
  // systemctl answers "alias" for an alias name; we judge the unit it names.
  const std::pair<const char*, const char*> units[] = {{"auditd.service", "auditd.service"},
                                                       {"avahi-daemon.service", "avahi-daemon.service"},
                                                       {"avahi-daemon.socket", "avahi-daemon.socket"},
                                                       {"ctrl-alt-del.target", "ctrl-alt-del.target"},
                                                       {"dbus-org.freedesktop.Avahi.service", "avahi-daemon.service"},
                                                       {"getty@tty1.service", "getty@tty1.service"}};
  for (const auto& [unit, ask] : units) {
    std::string theirs = IsEnabled(r.root(), ask);
    INFO(unit << ": systemctl says " << theirs << " for " << ask);
    REQUIRE((theirs == "enabled" || theirs == "disabled" || theirs == "masked"));
    for (std::string state : {"enabled", "disabled", "masked"}) {
      INFO("rule state " << state);
      auto res = test::CheckOne(test::MakeBaseline(SvcRule(unit, state)), r.root());
      bool pass = res.status == policy::Status::kPass;
      if (state == "disabled") CHECK(pass == (theirs == "disabled" || theirs == "masked"));
      else CHECK(pass == (theirs == state));
    }
  }
}

TEST_CASE("service: static units, absent units", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  REQUIRE(IsEnabled(r.root(), "static.service") == "static");
  auto dis = test::CheckOne(test::MakeBaseline(SvcRule("static.service", "disabled")), r.root());
  CHECK(dis.status == policy::Status::kPass);
  CHECK_THAT(dis.found, Catch::StartsWith("static: /lib/systemd/system/static.service has no [Install] section"));
  auto en = test::CheckOne(test::MakeBaseline(SvcRule("static.service", "enabled")), r.root());
  CHECK(en.status == policy::Status::kFail);
  CHECK(en.manual);
  CHECK_THAT(en.message, Catch::Contains("cannot be enabled"));

  auto na = test::CheckOne(test::MakeBaseline(SvcRule("telnet.socket", "disabled")), r.root());
  CHECK(na.status == policy::Status::kNotApplicable);
  CHECK_THAT(na.message, Catch::StartsWith("no unit telnet.socket in /etc/systemd/system, /run/systemd/system"));
  CHECK(test::CheckOne(test::MakeBaseline(SvcRule("telnet.socket", "enabled")), r.root()).status == policy::Status::kNotApplicable);
  // A unit that does not exist can still be masked (systemctl mask does it too).
  auto mask = test::MakeBaseline(SvcRule("telnet.socket", "masked"));
  CHECK(test::CheckOne(mask, r.root()).status == policy::Status::kFail);
  CHECK(test::ApplyAll(mask, r).after.rules[0].status == policy::Status::kPass);
}

TEST_CASE("service: links leaving the root are not followed, nothing outside is touched", "[policy][service]") {
  test::PolicyRoot r;
  PopulateUnits(r);
  test::TempDir outside("parc-sentinel");
  fs::path host_dir = outside.path() / "system";
  test::WriteFile(host_dir / "keep", "host\n");
  auto host_before = pkg::testing::Snapshot(outside.path());

  SECTION("/etc/systemd/system as an absolute link to a host directory is read inside the root") {
    fs::remove_all(r.Host("/etc/systemd/system"));
    fs::create_symlink(host_dir, r.Host("/etc/systemd/system"));
    auto b = test::MakeBaseline(SvcRule("auditd.service", "enabled"));
    auto applied = test::ApplyAll(b, r);
    CHECK(applied.after.rules[0].status == policy::Status::kPass);
    // The links were made at <root><host_dir>, inside the root.
    CHECK(fs::is_symlink(r.root() / host_dir.relative_path() / "multi-user.target.wants/auditd.service"));
  }
  SECTION("a .wants link climbing above the root is refused and the apply undone") {
    std::string climb = Climb(r);
    fs::create_symlink(climb + host_dir.relative_path().string(), r.Host("/etc/systemd/system/multi-user.target.wants"));
    auto before = pkg::testing::Snapshot(r.root());
    auto engine = policy::Engine::Open(r.root(), r.state());
    REQUIRE(engine);
    policy::SelectOptions s;
    s.level = policy::Level::kHigh;
    auto res = (*engine)->Apply(test::MakeBaseline(SvcRule("auditd.service", "enabled")), s);
    REQUIRE_FALSE(res);
    CHECK_THAT(res.error().message(), Catch::Contains("climbs above the root") && Catch::Contains("undone"));
    CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root())) == "");
  }
  SECTION("a unit file linked out of the root is not read") {
    test::WriteFile(host_dir / "evil.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n");
    host_before = pkg::testing::Snapshot(outside.path());
    std::string climb = Climb(r);
    fs::create_symlink(climb + (host_dir / "evil.service").relative_path().string(), r.Host("/etc/systemd/system/evil.service"));
    auto res = test::CheckOne(test::MakeBaseline(SvcRule("evil.service", "enabled")), r.root());
    CHECK(res.status == policy::Status::kNotApplicable);
  }
  CHECK(pkg::testing::DiffTrees(host_before, pkg::testing::Snapshot(outside.path())) == "");
}

TEST_CASE("service: bad fields are parse errors naming the key", "[policy][service]") {
  CHECK_THAT(ParseError(SvcRule("telnet", "disabled")), Catch::Contains("svc.toml:12:") && Catch::Contains("key 'unit'"));
  CHECK_THAT(ParseError(SvcRule("../x.service", "disabled")), Catch::Contains("key 'unit'"));
  CHECK_THAT(ParseError(SvcRule("ssh.service", "stopped")), Catch::Contains("svc.toml:13:") && Catch::Contains("key 'state'"));
}
