// Windows kinds (registry, service_start, audit_policy): strict parsing now,
// na on Linux roots, an explicit error on Windows roots until the Windows
// platform code exists; the shipped windows-workstation baseline.
#include <set>

#include <catch2/catch.hpp>

#include "policy_fixture.h"
#include "tree_snapshot.h"

using namespace parc;

namespace {

std::string Header() { return "[baseline]\nname = \"test\"\ntitle = \"test\"\nversion = \"1\"\n\n"; }

std::string Rule(const std::string& kind, const std::string& fields) {
  return "[[rule]]\nid = \"r\"\ntitle = \"t\"\nsource = \"test\"\nlevel = \"minimal\"\nplatforms = [\"windows\"]\nkind = \"" + kind +
         "\"\n" + fields;
}

std::string Registry(const std::string& fields) {
  return Rule("registry", "hive = \"HKLM\"\npath = 'SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters'\n" + fields);
}

// The message of a baseline that must not parse, and the line of `needle` in it.
std::pair<std::string, int> ParseError(const std::string& rule, const std::string& needle) {
  std::string text = Header() + rule;
  auto b = policy::ParseBaseline(text, "test.toml");
  INFO(text);
  REQUIRE_FALSE(b);
  size_t at = text.find(needle);
  REQUIRE(at != std::string::npos);
  int line = 1;
  for (size_t i = 0; i < at; ++i) line += text[i] == '\n';
  return {b.error().message(), line};
}

void Refused(const std::string& rule, const std::string& key, const std::string& needle, const std::string& words) {
  auto [msg, line] = ParseError(rule, needle);
  INFO(msg);
  CHECK_THAT(msg, Catch::StartsWith("test.toml:" + std::to_string(line) + ": rule 'r': key '" + key + "': "));
  CHECK_THAT(msg, Catch::Contains(words));
}

void Accepted(const std::string& rule) {
  auto b = policy::ParseBaseline(Header() + rule, "test.toml");
  INFO(rule);
  if (!b) FAIL(b.error().message());
}

// A Windows system drive as an offline root: no /etc/os-release, a Windows\System32.
struct WindowsRoot {
  test::TempDir dir{"parc-windows-root"};
  WindowsRoot() { std::filesystem::create_directories(dir / "Windows/System32/config"); }
  const std::filesystem::path& root() const { return dir.path(); }
};

}  // namespace

TEST_CASE("registry: every field is validated", "[policy][windows]") {
  Accepted(Registry("value_name = \"SMB1\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"));
  Accepted(Registry("value_name = \"SMB1\"\ntype = \"REG_DWORD\"\ndata = \"0xFFFFFFFF\"\nmatch = \"max\"\n"));
  Accepted(Registry("value_name = \"Big\"\ntype = \"REG_QWORD\"\ndata = \"18446744073709551615\"\n"));
  Accepted(Registry("value_name = \"Name\"\ntype = \"REG_SZ\"\ndata = \"any text, even 0x12\"\n"));
  Accepted(Registry("value_name = \"List\"\ntype = \"REG_MULTI_SZ\"\ndata = [\"a\", \"b c\"]\n"));
  Accepted(Registry("value_name = \"SMB1\"\nabsent = true\n"));

  Refused(Rule("registry", "hive = \"HKEY_LOCAL_MACHINE\"\npath = 'SYSTEM'\nvalue_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"), "hive",
          "hive = ", "'HKEY_LOCAL_MACHINE' is not one of: HKLM, HKCU, HKU");
  Refused(Rule("registry", "hive = \"HKLM\"\npath = 'HKLM\\SYSTEM'\nvalue_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"), "path",
          "path = ", "starts with a hive");
  Refused(Rule("registry", "hive = \"HKLM\"\npath = 'SYSTEM/CurrentControlSet'\nvalue_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"),
          "path", "path = ", "use backslashes");
  Refused(Rule("registry", "hive = \"HKLM\"\npath = 'SYSTEM\\\\Services\\'\nvalue_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"),
          "path", "path = ", "empty key name");
  Refused(Rule("registry", "hive = \"HKLM\"\npath = ''\nvalue_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"), "path", "path = ",
          "must not be empty");
  Refused(Registry("value_name = \"\"\ntype = \"REG_DWORD\"\ndata = \"0\"\n"), "value_name", "value_name = ", "must name a value");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_BINARY\"\ndata = \"00\"\n"), "type", "type = ",
          "'REG_BINARY' is not one of: REG_DWORD, REG_SZ, REG_MULTI_SZ, REG_QWORD");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"on\"\n"), "data", "data = ", "'on' is not a REG_DWORD");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"4294967296\"\n"), "data", "data = ", "at most 0xFFFFFFFF");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"-1\"\n"), "data", "data = ", "is not a REG_DWORD");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"0x\"\n"), "data", "data = ", "is not a REG_DWORD");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_QWORD\"\ndata = \"0x1FFFFFFFFFFFFFFFF\"\n"), "data", "data = ", "is not a REG_QWORD");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = 1\n"), "data", "data = ", "must be a string");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_MULTI_SZ\"\ndata = \"a\"\n"), "data", "data = ", "must be an array of strings");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_MULTI_SZ\"\ndata = [\"a\", \"\"]\n"), "data", "data = ", "must not be empty");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\n"), "data", "[[rule]]", "is required");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_SZ\"\ndata = \"a\"\nmatch = \"min\"\n"), "match", "match = ",
          "type must be REG_DWORD or REG_QWORD");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"1\"\nmatch = \"between\"\n"), "match", "match = ", "is not one of");
  Refused(Registry("value_name = \"x\"\nabsent = true\ndata = \"1\"\n"), "data", "data = ", "not used with absent = true");
  Refused(Registry("value_name = \"x\"\nabsent = \"yes\"\n"), "absent", "absent = ", "must be true or false");
  Refused(Registry("value_name = \"x\"\ntype = \"REG_DWORD\"\ndata = \"1\"\nvalue = \"1\"\n"), "value", "value = ", "unknown key");
}

TEST_CASE("service_start and audit_policy: every field is validated", "[policy][windows]") {
  Accepted(Rule("service_start", "service = \"mrxsmb10\"\nstart = \"disabled\"\n"));
  Accepted(Rule("service_start", "service = \"MpsSvc\"\nstart = \"automatic_delayed\"\n"));
  Refused(Rule("service_start", "service = \"mrxsmb10\"\nstart = \"off\"\n"), "start", "start = ",
          "'off' is not one of: disabled, manual, automatic, automatic_delayed");
  Refused(Rule("service_start", "service = \"Remote Registry\"\nstart = \"disabled\"\n"), "service", "service = ", "service key name");
  Refused(Rule("service_start", "service = \"a\\\\b\"\nstart = \"disabled\"\n"), "service", "service = ", "service key name");
  Refused(Rule("service_start", "start = \"disabled\"\n"), "service", "[[rule]]", "is required");

  Accepted(Rule("audit_policy", "subcategory = \"Logon\"\nsetting = \"success_and_failure\"\n"));
  Accepted(Rule("audit_policy", "subcategory = \"process creation\"\nsetting = \"success\"\n"));
  Accepted(Rule("audit_policy", "subcategory = \"Other Logon/Logoff Events\"\nsetting = \"no_auditing\"\n"));
  Refused(Rule("audit_policy", "subcategory = \"Logons\"\nsetting = \"success\"\n"), "subcategory", "subcategory = ",
          "'Logons' is not an advanced audit policy subcategory");
  Refused(Rule("audit_policy", "subcategory = \"Logon\"\nsetting = \"both\"\n"), "setting", "setting = ",
          "'both' is not one of: no_auditing, success, failure, success_and_failure");
}

TEST_CASE("Windows rules: na on a Linux root, an error on a Windows root, never remediated", "[policy][windows]") {
  // No platforms: the rule reaches the kind itself, which knows it is a Windows rule.
  auto b = test::MakeBaseline(
      "[[rule]]\nid = \"smb1\"\ntitle = \"t\"\nsource = \"test\"\nlevel = \"minimal\"\nkind = \"registry\"\nhive = \"HKLM\"\n"
      "path = 'SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters'\nvalue_name = \"SMB1\"\ntype = \"REG_DWORD\"\ndata = \"0x0\"\n"
      "[[rule]]\nid = \"svc\"\ntitle = \"t\"\nsource = \"test\"\nlevel = \"minimal\"\nkind = \"service_start\"\nservice = \"mrxsmb10\"\n"
      "start = \"disabled\"\n"
      "[[rule]]\nid = \"aud\"\ntitle = \"t\"\nsource = \"test\"\nlevel = \"minimal\"\nkind = \"audit_policy\"\n"
      "subcategory = \"logon\"\nsetting = \"success\"\n");
  policy::SelectOptions all;
  all.level = policy::Level::kHigh;

  test::PolicyRoot linux_root;
  auto before = pkg::testing::Snapshot(linux_root.root());
  auto rep = policy::CheckBaseline(b, linux_root.root(), all);
  REQUIRE(rep.rules.size() == 3);
  for (const auto& r : rep.rules) {
    CHECK(r.status == policy::Status::kNotApplicable);
    CHECK(r.message == "Windows rule");
  }
  CHECK(test::ApplyAll(b, linux_root).point.id.empty());
  CHECK(pkg::testing::DiffTrees(before, pkg::testing::Snapshot(linux_root.root())) == "");

  WindowsRoot win;
  rep = policy::CheckBaseline(b, win.root(), all);
  REQUIRE(rep.rules.size() == 3);
  for (const auto& r : rep.rules) {
    CHECK(r.status == policy::Status::kError);
    CHECK(r.message == "the Windows platform code is not written yet: cannot check this rule");
  }
  CHECK(rep.rules[0].expected == "HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters SMB1 = 0 (REG_DWORD)");
  CHECK(rep.rules[1].expected == "service mrxsmb10 start = disabled");
  CHECK(rep.rules[2].expected == "audit policy Logon {0CCE9215-69AE-11D9-BED3-505054503030}: at least success");
  test::TempDir state("parc-windows-state");
  auto engine = policy::Engine::Open(win.root(), state.path());
  REQUIRE(engine);
  auto applied = (*engine)->Apply(b, all);
  REQUIRE(applied);
  CHECK(applied->point.id.empty());
}

TEST_CASE("the shipped windows-workstation baseline", "[policy][windows]") {
  auto b = policy::LoadBaseline(test::SourcePath("policy/baselines/windows-workstation.toml"));
  if (!b) FAIL(b.error().message());
  CHECK(b->name == "windows-workstation");
  REQUIRE(b->rules.size() >= 40);
  std::set<std::string> kinds;
  for (const auto& r : b->rules) {
    INFO(r.id);
    CHECK_FALSE(r.source.empty());
    CHECK(r.anssi.empty());  // R-numbers are ANSSI-BP-028, a Linux guide
    CHECK(r.platforms == std::vector<std::string>{"windows"});
    kinds.insert(r.kind);
  }
  CHECK(kinds == std::set<std::string>{"registry", "service_start", "audit_policy"});

  policy::SelectOptions all;
  all.level = policy::Level::kHigh;
  test::PolicyRoot linux_root;
  auto rep = policy::CheckBaseline(*b, linux_root.root(), all);
  REQUIRE(rep.rules.size() == b->rules.size());
  for (const auto& r : rep.rules) {
    INFO(r.id);
    CHECK(r.status == policy::Status::kNotApplicable);
    CHECK(r.message == "rule for windows; this root is debian 12");
  }

  // What the baseline asks for, as the Windows platform code will see it.
  WindowsRoot win;
  rep = policy::CheckBaseline(*b, win.root(), all);
  std::set<std::string> wanted;
  for (const auto& r : rep.rules) wanted.insert(r.expected);
  const std::string lsa = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa ";
  const std::string fw = "HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\";
  for (const std::string& w : {
           std::string("HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters SMB1 = 0 (REG_DWORD)"),
           std::string("service mrxsmb10 start = disabled"),
           std::string("HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters RequireSecuritySignature = 1 (REG_DWORD)"),
           std::string("HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanWorkstation\\Parameters RequireSecuritySignature = 1 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\DNSClient EnableMulticast = 0 (REG_DWORD)"),
           std::string("HKLM\\SYSTEM\\CurrentControlSet\\Services\\NetBT\\Parameters NodeType = 2 (REG_DWORD)"),
           lsa + "LmCompatibilityLevel = 5 (REG_DWORD)",
           lsa + "NoLMHash = 1 (REG_DWORD)",
           lsa + "RestrictAnonymous = 1 (REG_DWORD)",
           lsa + "RestrictAnonymousSAM = 1 (REG_DWORD)",
           lsa + "RunAsPPL >= 1 (REG_DWORD)",
           std::string("HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\WDigest UseLogonCredential = 0 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System EnableLUA = 1 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System ConsentPromptBehaviorAdmin = 2 (REG_DWORD)"),
           fw + "DomainProfile EnableFirewall = 1 (REG_DWORD)",
           fw + "PrivateProfile EnableFirewall = 1 (REG_DWORD)",
           fw + "PublicProfile EnableFirewall = 1 (REG_DWORD)",
           std::string("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\Explorer NoDriveTypeAutoRun = 255 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\Explorer NoAutorun = 1 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services UserAuthentication = 1 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\PowerShell\\ScriptBlockLogging EnableScriptBlockLogging = 1 (REG_DWORD)"),
           std::string("HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\PowerShell\\ModuleLogging EnableModuleLogging = 1 (REG_DWORD)"),
           std::string("audit policy Process Creation {0CCE922B-69AE-11D9-BED3-505054503030}: at least success"),
       }) {
    CHECK(wanted.contains(w));
    if (!wanted.contains(w)) WARN("missing: " << w);
  }
}
