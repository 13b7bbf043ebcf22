// The baselines shipped in policy/baselines: they parse, cite their
// references, and the Debian 12 baseline checks, remediates, stays idempotent
// and rolls back exactly on a prepared Debian 12 root. Also keeps
// tests/reference/ssg_mapping.toml in step with the baseline.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>

#include <catch2/catch.hpp>
#include <toml++/toml.h>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;
namespace fs = std::filesystem;

namespace {

const char* kDebian = "anssi-bp28-debian12";

std::vector<fs::path> ShippedBaselines() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(test::SourcePath("policy/baselines")))
    if (e.path().extension() == ".toml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

policy::Baseline Load(const fs::path& file) {
  auto b = policy::LoadBaseline(file);
  INFO(file.string());
  if (!b) FAIL(b.error().message());
  return *b;
}

policy::Baseline Debian() { return Load(test::SourcePath(std::string("policy/baselines/") + kDebian + ".toml")); }

bool WindowsRule(const policy::Rule& r) {
  return std::find(r.platforms.begin(), r.platforms.end(), "windows") != r.platforms.end();
}

std::string Describe(const policy::RuleResult& r) {
  return r.id + ": " + std::string(policy::StatusName(r.status)) + (r.manual ? " (manual)" : "") + " expected [" +
         r.expected + "] found [" + r.found + "] " + r.message;
}

const policy::RuleResult& Find(const policy::Report& rep, const std::string& id) {
  for (const auto& r : rep.rules)
    if (r.id == id) return r;
  FAIL("no result for rule " << id);
  throw std::logic_error("unreachable");
}

// A Debian 12 root close to an installed system, with enough of each
// configuration file that most rules apply, and a mix of compliant and
// non-compliant settings. Needs root: the files must belong to root (and
// shadow), one file to a uid without an account, and an apply writes
// root-owned files.
class DebianRoot {
 public:
  DebianRoot() {
    r_.Write("/etc/os-release",
             "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n"
             "VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n");
    r_.Write("/etc/passwd",
             "root:x:0:0:root:/root:/bin/bash\n"
             "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
             "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
             "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n");
    r_.Write("/etc/group", "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nsudo:x:27:alice\nalice:x:1000:\nnogroup:x:65534:\n");
    r_.Write("/etc/shadow", "root:*:19700:0:99999:7:::\nalice:!:19700:0:99999:7:::\n", 0644);  // too open
    r_.Write("/etc/gshadow", "root:*::\nshadow:*::\n", 0640);
    r_.Write("/etc/shells", "/bin/sh\n/bin/bash\n/usr/bin/bash\n");
    for (const auto& p : {"openssh-server", "sudo", "libpam-pwquality", "auditd", "postfix", "chrony", "libreswan", "iptables",
                          "login", "libpam-runtime", "linux-base", "grub-pc"})
      r_.AddDpkgPackage(p);

    // Merged /usr, system commands (one writable by its group).
    fs::create_directories(r_.Host("/usr/bin"));
    fs::create_directories(r_.Host("/usr/sbin"));
    fs::create_symlink("usr/bin", r_.Host("/bin"));
    fs::create_symlink("usr/sbin", r_.Host("/sbin"));
    r_.Write("/usr/bin/ls", "#!/bin/sh\n", 0755);
    r_.Write("/usr/bin/sudo", "#!/bin/sh\n", 0755);
    r_.Write("/usr/sbin/sshd", "#!/bin/sh\n", 0755);
    r_.Write("/usr/local/bin/site-tool", "#!/bin/sh\n", 0775);
    r_.Write("/usr/lib/sysctl.d/99-protect-links.conf",
             "fs.protected_fifos = 1\nfs.protected_hardlinks = 1\nfs.protected_regular = 2\nfs.protected_symlinks = 1\n");

    // Kernel parameters: one compliant file, one conflicting value.
    r_.Write("/etc/sysctl.d/README.sysctl", "Files here are read by systemd-sysctl.\n");
    r_.Write("/etc/sysctl.d/50-site.conf", "kernel.sysrq = 438\nnet.ipv4.tcp_syncookies = 1\nkernel.dmesg_restrict = 1\n");
    r_.Write("/etc/sysctl.conf", "#net.ipv4.ip_forward=1\n");

    // Boot loader.
    r_.Write("/etc/default/grub",
             "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
             "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n");

    // Partitions: /boot and /home separate (one without nodev), /tmp a tmpfs.
    r_.Write("/etc/fstab",
             "# /etc/fstab: static file system information.\n"
             "UUID=0a1b2c3d-0000-4000-8000-000000000001 /     ext4  errors=remount-ro 0 1\n"
             "UUID=0a1b2c3d-0000-4000-8000-000000000002 /boot ext4  defaults          0 2\n"
             "UUID=0a1b2c3d-0000-4000-8000-000000000003 /home ext4  defaults,nodev    0 2\n"
             "tmpfs                                     /tmp  tmpfs mode=1777,size=2G 0 0\n");

    // PAM (Debian 12 as pam-auth-update writes it, with libpam-pwquality).
    r_.Write("/etc/pam.d/common-password",
             "password\trequisite\t\t\tpam_pwquality.so retry=3\n"
             "password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\n"
             "password\trequisite\t\t\tpam_deny.so\npassword\trequired\t\t\tpam_permit.so\n");
    r_.Write("/etc/pam.d/common-auth",
             "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\t\t\tpam_deny.so\n"
             "auth\trequired\t\t\tpam_permit.so\n");
    r_.Write("/etc/security/pwquality.conf", "# Configuration for systemwide password quality limits\n# minlen = 8\nminlen = 8\n");
    r_.Write("/etc/security/faillock.conf", "# deny = 3\n# unlock_time = 600\n");
    r_.Write("/etc/login.defs", "MAIL_DIR\t/var/mail\nPASS_MAX_DAYS\t99999\nENCRYPT_METHOD SHA512\n");
    r_.Write("/etc/systemd/logind.conf", "[Login]\n#NAutoVTs=6\n#StopIdleSessionSec=infinity\n");

    // SSH server: Debian's layout, the config and a private key too open.
    r_.Write("/etc/ssh/sshd_config",
             "Include /etc/ssh/sshd_config.d/*.conf\n\n#PermitRootLogin prohibit-password\nKbdInteractiveAuthentication no\n"
             "UsePAM yes\nX11Forwarding yes\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n");
    fs::create_directories(r_.Host("/etc/ssh/sshd_config.d"));
    r_.Write("/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0640);
    r_.Write("/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA root@master\n", 0644);

    // sudo: Debian 12's defaults, /etc/sudoers.d as the package makes it (0755).
    r_.Write("/etc/sudoers",
             "Defaults\tenv_reset\nDefaults\tmail_badpass\n"
             "Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\nDefaults\tuse_pty\n"
             "root\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
             0440);
    r_.Write("/etc/sudoers.d/README", "# Files in this directory are read by sudo.\n", 0440);
    ::chmod(r_.Host("/etc/sudoers.d").c_str(), 0755);

    // auditd installed but not enabled, no rules yet.
    r_.Write("/lib/systemd/system/auditd.service",
             "[Unit]\nDescription=Security Auditing Service\n\n[Service]\nType=forking\nExecStart=/sbin/auditd\n\n"
             "[Install]\nWantedBy=multi-user.target\n");
    r_.Write("/etc/audit/rules.d/audit.rules", "-D\n-b 8192\n--backlog_wait_time 60000\n-f 1\n", 0640);

    // Services' files, some too open.
    r_.Write("/etc/postfix/main.cf", "smtpd_banner = $myhostname ESMTP\nmyhostname = master\ninet_interfaces = all\n");
    r_.Write("/etc/chrony/chrony.keys", "#1 MD5 HEX:0123\n", 0644);
    r_.Write("/etc/ipsec.conf", "config setup\n", 0644);
    r_.Write("/etc/ipsec.secrets", "%any : PSK \"secret\"\n", 0644);
    fs::create_directories(r_.Host("/etc/ipsec.d"));
    fs::create_directories(r_.Host("/etc/iptables"));
    r_.Write("/etc/iptables/rules.v4", "*filter\nCOMMIT\n", 0640);
    r_.Write("/etc/crypttab", "# <target name>\t<source device>\t\t<key file>\t<options>\n");

    // A user, shared directories, one world-writable file and directory.
    r_.Write("/home/alice/.bashrc", "# ~/.bashrc\n", 0644);
    r_.Write("/home/alice/.profile", "# ~/.profile\n", 0640);
    r_.Write("/srv/drop/.keep", "");
    ::chmod(r_.Host("/srv/drop").c_str(), 0777);
    r_.Write("/var/www/counter.txt", "0\n", 0666);
    r_.Write("/tmp/.keep", "");
    ::chmod(r_.Host("/tmp").c_str(), 01777);
    // A file whose owner left.
    r_.Write("/srv/old-project/notes.txt", "x\n");
    REQUIRE(::chown(r_.Host("/srv/old-project/notes.txt").c_str(), 4242, 4242) == 0);
    REQUIRE(::chown(r_.Host("/etc/shadow").c_str(), 0, 42) == 0);
    REQUIRE(::chown(r_.Host("/etc/gshadow").c_str(), 0, 42) == 0);
  }

  const test::PolicyRoot& root() const { return r_; }

 private:
  test::PolicyRoot r_;
};

policy::SelectOptions Intermediary() {
  policy::SelectOptions s;
  s.level = policy::Level::kIntermediary;
  return s;
}

}  // namespace

TEST_CASE("shipped baselines parse and cite their references", "[policy][shipped]") {
  auto files = ShippedBaselines();
  std::set<std::string> names;
  for (const auto& f : files) names.insert(f.stem().string());
  // Never pass on an empty directory: the Debian baseline must be there.
  REQUIRE(names.contains(kDebian));

  const std::regex rnumber("R[0-9]+");
  for (const auto& file : files) {
    auto b = Load(file);
    INFO(file.string());
    CHECK(b.name == file.stem().string());
    REQUIRE_FALSE(b.rules.empty());
    for (const auto& r : b.rules) {
      INFO("rule " << r.id << " (line " << r.line << ")");
      CHECK_FALSE(r.title.empty());
      CHECK_FALSE(r.rationale.empty());
      if (WindowsRule(r)) {
        CHECK_FALSE((r.source.empty() && r.anssi.empty()));
      } else {
        CHECK(std::regex_match(r.anssi, rnumber));
        CHECK((r.level == policy::Level::kMinimal || r.level == policy::Level::kIntermediary));
      }
    }
  }
}

TEST_CASE("the Debian 12 baseline covers both levels", "[policy][shipped]") {
  auto b = Debian();
  int minimal = 0, intermediary = 0;
  std::set<std::string> kinds;
  for (const auto& r : b.rules) {
    (r.level == policy::Level::kMinimal ? minimal : intermediary)++;
    kinds.insert(r.kind);
  }
  CHECK(minimal >= 30);
  CHECK(intermediary >= 80);
  for (const auto* k : {"sysctl", "permissions", "find", "directive", "pam", "package", "service", "mount", "kernel_cmdline",
                        "audit_rule"})
    CHECK(kinds.contains(k));
}

TEST_CASE("Debian 12 baseline on a prepared root: check, apply, idempotence, rollback", "[policy][shipped]") {
  INFO("this test prepares a root owned by root and applies the baseline to it: run it as root");
  REQUIRE(::geteuid() == 0);
  auto b = Debian();
  DebianRoot d;
  const auto& r = d.root();

  auto before = policy::CheckBaseline(b, r.root(), Intermediary());
  REQUIRE(before.rules.size() == b.rules.size());
  int applicable = 0, failing = 0;
  for (const auto& res : before.rules) {
    INFO(Describe(res));
    CHECK(res.status != policy::Status::kError);
    applicable += res.status != policy::Status::kNotApplicable;
    failing += res.status == policy::Status::kFail;
  }
  // The root is meant to make most rules applicable, and to fail many.
  CHECK(applicable >= 140);
  CHECK(failing >= 60);
  // Spot checks of what the prepared files must give.
  CHECK(Find(before, "sysctl_kernel_dmesg_restrict").status == policy::Status::kPass);
  CHECK(Find(before, "sysctl_kernel_sysrq").status == policy::Status::kFail);
  CHECK(Find(before, "sudo_add_use_pty").status == policy::Status::kPass);
  CHECK(Find(before, "accounts_password_pam_retry").status == policy::Status::kPass);
  CHECK(Find(before, "partition_for_home").status == policy::Status::kPass);
  CHECK(Find(before, "mount_option_var_noexec").status == policy::Status::kNotApplicable);
  CHECK(Find(before, "directory_permissions_etc_nftables").status == policy::Status::kNotApplicable);
  CHECK(Find(before, "file_permissions_sshd_private_key").status == policy::Status::kFail);
  CHECK(Find(before, "file_permissions_unauthorized_world_writable").status == policy::Status::kFail);
  CHECK(Find(before, "no_files_unowned").status == policy::Status::kFail);

  auto snapshot = pkg::testing::Snapshot(r.root());
  auto applied = test::ApplyAll(b, r);
  REQUIRE_FALSE(applied.point.id.empty());
  std::set<std::string> manual;
  int fixed = 0;
  for (const auto& res : applied.after.rules) {
    if (res.level > policy::Level::kIntermediary) continue;
    INFO(Describe(res));
    CHECK(res.status != policy::Status::kError);
    if (res.status == policy::Status::kFail) {
      CHECK(res.manual);  // every remediable failure was fixed
      manual.insert(res.id);
    }
    fixed += res.remediated && res.status == policy::Status::kPass;
  }
  CHECK(fixed >= 50);
  // What must stay for a human: partitioning, PAM stack lines, installs, check-only rules.
  for (const auto* id : {"partition_for_usr", "partition_for_var", "pam_faillock_enabled", "accounts_password_pam_unix_rounds",
                         "sudo_add_noexec", "sudo_add_requiretty", "no_files_unowned"})
    CHECK(manual.contains(id));
  CHECK(r.Read("/etc/ssh/sshd_config.d/00-parc-hardening.conf").find("PermitRootLogin no") != std::string::npos);
  CHECK(r.Read("/etc/fstab").find("defaults,nodev") != std::string::npos);

  // A second apply finds nothing to do.
  auto again = test::ApplyAll(b, r);
  CHECK(again.point.id.empty());
  for (const auto& res : again.before.rules) {
    INFO(Describe(res));
    CHECK((res.status != policy::Status::kFail || res.manual));
  }

  // Rollback restores the tree exactly.
  auto engine = policy::Engine::Open(r.root(), r.state());
  REQUIRE(engine);
  auto rb = (*engine)->Rollback(applied.point.id);
  REQUIRE(rb);
  CHECK(rb->state == "rolled-back");
  CHECK(pkg::testing::DiffTrees(snapshot, pkg::testing::Snapshot(r.root())) == "");
}

TEST_CASE("the SSG mapping names only rules of the Debian 12 baseline, and all of them", "[policy][shipped]") {
  auto b = Debian();
  std::set<std::string> ids;
  for (const auto& r : b.rules) ids.insert(r.id);

  auto file = test::SourcePath("tests/reference/ssg_mapping.toml");
  toml::table doc;
  try {
    doc = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    FAIL(file.string() << ": " << e.description());
  }
  const std::string prefix = "xccdf_org.ssgproject.content_rule_";
  std::map<std::string, int> named;  // our id -> times it appears
  const auto* map = doc["map"].as_array();
  REQUIRE(map);
  REQUIRE(map->size() >= 100);
  for (const auto& node : *map) {
    const auto* t = node.as_table();
    REQUIRE(t);
    auto id = (*t)["parc"].value<std::string>();
    REQUIRE(id);
    INFO("map entry " << *id);
    CHECK(ids.contains(*id));
    named[*id]++;
    const auto* ssg = (*t)["ssg"].as_array();
    REQUIRE(ssg);
    REQUIRE_FALSE(ssg->empty());
    for (const auto& s : *ssg) {
      auto v = s.value<std::string>();
      REQUIRE(v);
      CHECK(v->starts_with(prefix));
    }
    if (const auto* dis = (*t)["disagreement"].as_array()) {
      for (const auto& dn : *dis) {
        const auto* d = dn.as_table();
        REQUIRE(d);
        CHECK((*d)["why"].value<std::string>().value_or("").size() > 20);
        CHECK((*d)["right"].value<std::string>().has_value());
        for (const auto* side : {"parc", "oscap"}) {
          auto v = (*d)[side].value<std::string>();
          REQUIRE(v);
          CHECK((*v == "pass" || *v == "fail" || *v == "na" || *v == "error" || *v == "notchecked"));
        }
      }
    }
  }
  if (const auto* unmapped = doc["unmapped_parc"].as_array()) {
    for (const auto& node : *unmapped) {
      auto id = (*node.as_table())["parc"].value<std::string>();
      REQUIRE(id);
      INFO("unmapped_parc entry " << *id);
      CHECK(ids.contains(*id));
      CHECK((*node.as_table())["reason"].value<std::string>().value_or("").size() > 20);
      named[*id]++;
    }
  }
  if (const auto* unmapped = doc["unmapped_ssg"].as_array()) {
    for (const auto& node : *unmapped) {
      auto ssg = (*node.as_table())["ssg"].value<std::string>();
      REQUIRE(ssg);
      CHECK(ssg->starts_with(prefix));
      CHECK((*node.as_table())["reason"].value<std::string>().value_or("").size() > 20);
    }
  }
  for (const auto& id : ids) {
    INFO("baseline rule " << id);
    CHECK(named[id] == 1);  // mapped or listed as unmapped, once
  }
}
