// mount kind: /etc/fstab entries of a prepared root carry mount options.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

std::string MountRule(const std::string& mount_point, const std::string& options, const std::string& extra = "") {
  return "[[rule]]\nid = \"mnt\"\ntitle = \"t\"\nanssi = \"R28\"\nlevel = \"intermediary\"\nkind = \"mount\"\nmount_point = \"" +
         mount_point + "\"\noptions = " + options + "\n" + extra;
}

const char* kFstab =
    "# /etc/fstab: static file system information.\n"
    "#\n"
    "# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
    "UUID=0a1b /               ext4    errors=remount-ro 0       1\n"
    "UUID=2c3d /home\text4\tdefaults,nodev\t0\t2\n"
    "tmpfs   /tmp    tmpfs   defaults,nosuid,size=2G   0 0\n"
    "  # tmpfs /var/tmp tmpfs defaults 0 0\n"
    "/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n"
    "UUID=4e5f /var ext4 defaults,nodev,dev 0 2\n"
    "proc /proc proc defaults,hidepid=0 0 0\n"
    "tmpfs /dev/shm tmpfs\n"
    "/dev/vdb1 /srv/my\\040data ext4 defaults 0 2";  // no newline at the end

void RollBack(const test::PolicyRoot& r, const std::string& point, const pkg::testing::TreeSnapshot& before) {
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(point);
  if (!rb) FAIL(rb.error().message());
  std::string diff = pkg::testing::DiffTrees(before, pkg::testing::Snapshot(r.root()));
  INFO(diff);
  CHECK(diff.empty());
}

std::string ParseError(const std::string& rule) {
  std::string text = "[baseline]\nname = \"t\"\ntitle = \"t\"\nversion = \"1\"\n\n" + rule;
  auto b = policy::ParseBaseline(text, "mnt.toml");
  REQUIRE_FALSE(b);
  return b.error().message();
}

// kFstab with line n (1-based) replaced.
std::string WithLine(int n, const std::string& line) {
  std::string text = kFstab, out;
  int i = 1;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string cur = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    out += (i == n ? line : cur);
    if (nl == std::string::npos) break;
    out += "\n";
    pos = nl + 1;
    ++i;
  }
  return out;
}

}  // namespace

TEST_CASE("mount: missing options fail, are added to that entry only, rollback restores fstab", "[policy][mount]") {
  test::PolicyRoot r;
  r.Write("/etc/fstab", kFstab, 0644);
  auto b = test::MakeBaseline(MountRule("/tmp", R"(["nodev", "nosuid", "noexec"])"));
  auto res = test::CheckOne(b, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.expected == "/tmp mounted with nodev,nosuid,noexec (/etc/fstab)");
  CHECK(res.found == "/etc/fstab:6: tmpfs   /tmp    tmpfs   defaults,nosuid,size=2G   0 0 (missing nodev,noexec)");

  auto before = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  CHECK(applied.after.rules[0].status == policy::Status::kPass);
  CHECK(r.Read("/etc/fstab") == WithLine(6, "tmpfs   /tmp    tmpfs   defaults,nosuid,size=2G,nodev,noexec   0 0"));
  CHECK_THAT(applied.notes.empty() ? std::string() : applied.notes.back(), Catch::Contains("next mounted"));
  CHECK(test::ApplyAll(b, r).point.id.empty());
  RollBack(r, applied.point.id, before);
  CHECK(r.Read("/etc/fstab") == kFstab);
}

TEST_CASE("mount: options are read left to right as mount(8) does", "[policy][mount]") {
  test::PolicyRoot r;
  r.Write("/etc/fstab", kFstab, 0644);
  auto check = [&](const std::string& mp, const std::string& opts) {
    return test::CheckOne(test::MakeBaseline(MountRule(mp, opts)), r.root());
  };
  SECTION("tabs separate fields; an option already there passes") {
    auto res = check("/home", R"(["nodev"])");
    CHECK(res.status == policy::Status::kPass);
    CHECK(res.found == "/etc/fstab:5: UUID=2c3d /home\text4\tdefaults,nodev\t0\t2");
  }
  SECTION("user implies nodev,nosuid,noexec") {
    CHECK(check("/media/cdrom0", R"(["nodev", "nosuid", "noexec"])").status == policy::Status::kPass);
  }
  SECTION("a later dev undoes nodev; the fix drops the contradiction") {
    auto b = test::MakeBaseline(MountRule("/var", R"(["nodev"])"));
    CHECK(test::CheckOne(b, r.root()).found == "/etc/fstab:9: UUID=4e5f /var ext4 defaults,nodev,dev 0 2 (missing nodev)");
    test::ApplyAll(b, r);
    CHECK(r.Read("/etc/fstab") == WithLine(9, "UUID=4e5f /var ext4 defaults,nodev 0 2"));
  }
  SECTION("key=value options: the last value counts and is replaced") {
    auto b = test::MakeBaseline(MountRule("/proc", R"(["hidepid=2"])"));
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kFail);
    test::ApplyAll(b, r);
    CHECK(r.Read("/etc/fstab") == WithLine(10, "proc /proc proc defaults,hidepid=2 0 0"));
  }
  SECTION("an entry without options field gets one") {
    auto b = test::MakeBaseline(MountRule("/dev/shm", R"(["nodev", "noexec"])"));
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kFail);
    test::ApplyAll(b, r);
    CHECK(r.Read("/etc/fstab") == WithLine(11, "tmpfs /dev/shm tmpfs\tdefaults,nodev,noexec"));
  }
  SECTION("escaped blanks in the mount point; the missing final newline stays missing") {
    auto b = test::MakeBaseline(MountRule("/srv/my data/", R"(["nosuid"])"));
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kFail);
    test::ApplyAll(b, r);
    CHECK(r.Read("/etc/fstab") == WithLine(12, "/dev/vdb1 /srv/my\\040data ext4 defaults,nosuid 0 2"));
  }
  SECTION("a commented-out entry is not an entry") {
    auto res = check("/var/tmp", R"(["nodev"])");
    CHECK(res.status == policy::Status::kNotApplicable);
    CHECK(res.message == "no entry for /var/tmp in /etc/fstab (not a separate mount)");
  }
}

TEST_CASE("mount: a missing entry is na, or a manual failure when required", "[policy][mount]") {
  test::PolicyRoot r;
  auto optional_rule = test::MakeBaseline(MountRule("/var/log", R"(["nodev"])"));
  auto required = test::MakeBaseline(MountRule("/var/log", R"(["nodev"])", "required = true\n"));
  auto no_fstab = test::CheckOne(optional_rule, r.root());
  CHECK(no_fstab.status == policy::Status::kNotApplicable);
  CHECK(no_fstab.message == "/etc/fstab does not exist");
  r.Write("/etc/fstab", kFstab, 0644);
  CHECK(test::CheckOne(optional_rule, r.root()).status == policy::Status::kNotApplicable);
  auto res = test::CheckOne(required, r.root());
  CHECK(res.status == policy::Status::kFail);
  CHECK(res.found == "no entry for /var/log in /etc/fstab");
  CHECK(res.manual);
  CHECK_THAT(res.message, Catch::Contains("Parc does not create mounts"));
  CHECK(test::ApplyAll(required, r).point.id.empty());
  CHECK(r.Read("/etc/fstab") == kFstab);
}

TEST_CASE("mount: an fstab link leaving the root is refused or read inside the root", "[policy][mount]") {
  test::PolicyRoot r;
  test::TempDir outside("parc-sentinel");
  fs::path sentinel = outside.path() / "fstab";
  test::WriteFile(sentinel, "tmpfs /tmp tmpfs defaults 0 0\n");
  auto b = test::MakeBaseline(MountRule("/tmp", R"(["nodev"])"));
  fs::create_directories(r.Host("/etc"));

  SECTION("absolute link: the same path inside the root (absent here)") {
    fs::create_symlink(sentinel, r.Host("/etc/fstab"));
    CHECK(test::CheckOne(b, r.root()).status == policy::Status::kNotApplicable);
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  SECTION("absolute link to a file of the root: that file is edited") {
    r.Write("/etc/fstab.d/main", "tmpfs /tmp tmpfs defaults 0 0\n");
    fs::create_symlink("/etc/fstab.d/main", r.Host("/etc/fstab"));
    auto applied = test::ApplyAll(b, r);
    CHECK(applied.after.rules[0].status == policy::Status::kPass);
    CHECK(r.Read("/etc/fstab.d/main") == "tmpfs /tmp tmpfs defaults,nodev 0 0\n");
    CHECK(fs::is_symlink(r.Host("/etc/fstab")));
  }
  SECTION("relative link climbing above the root: refused") {
    std::string climb = "../";
    for (auto p = r.root(); p != p.root_path(); p = p.parent_path()) climb += "../";
    fs::create_symlink(climb + sentinel.relative_path().string(), r.Host("/etc/fstab"));
    auto res = test::CheckOne(b, r.root());
    CHECK(res.status == policy::Status::kError);
    CHECK_THAT(res.message, Catch::Contains("climbs above the root"));
    CHECK(test::ApplyAll(b, r).point.id.empty());
  }
  CHECK(test::ReadFileOrEmpty(sentinel) == "tmpfs /tmp tmpfs defaults 0 0\n");
}

TEST_CASE("mount: bad fields are parse errors naming the key", "[policy][mount]") {
  CHECK_THAT(ParseError(MountRule("tmp", R"(["nodev"])")), Catch::Contains("mnt.toml:12:") && Catch::Contains("key 'mount_point'"));
  CHECK_THAT(ParseError(MountRule("/tmp", "[]")), Catch::Contains("mnt.toml:13:") && Catch::Contains("key 'options'"));
  CHECK_THAT(ParseError(MountRule("/tmp", R"(["nodev,nosuid"])")), Catch::Contains("key 'options'") && Catch::Contains("one option per string"));
  CHECK_THAT(ParseError(MountRule("/tmp", R"("nodev")")), Catch::Contains("key 'options'"));
  CHECK_THAT(ParseError(MountRule("/tmp", R"(["nodev"])", "required = \"yes\"\n")), Catch::Contains("key 'required'"));
}
