// Unattended installation values and answer files (server/src/netboot_render.cc):
// what is accepted, how every value is made safe for the file it lands in, and
// the shipped templates checked by independent parsers (debconf, xmllint,
// PyYAML) with hostile values where the format lets any through.
#include <catch2/catch.hpp>

#include "netboot_render.h"
#include "test_support.h"

using namespace parc::netboot;
using parc::test::Run;
using parc::test::TempDir;
using parc::test::WriteFile;

namespace {

AnswerContext SampleContext(const std::string& os) {
  HostSpec spec{"52-54-00-AB-CD-EF", "PC-042", "lab", os, "/dev/sda", "fr_FR.UTF-8", "", "Europe/Paris", "", ""};
  auto normalized = NormalizeHostSpec(spec);
  REQUIRE(normalized);
  AnswerContext c;
  c.host = *normalized;
  c.token = "abcdefgh.ijklmnopqrstuvwxyz234567abcdefghijklmnop";
  c.token_expires_at = 1767225600;  // 2026-01-01T00:00:00Z
  c.server = "parc.example.lan:7443";
  c.ca_fingerprint = std::string(64, 'c');
  c.boot_url = "https://parc.example.lan:8443";
  c.agent_url = "https://parc.example.lan:8443/boot/files/parc-agent/parc-agent.deb";
  c.agent_sha256 = std::string(64, 'd');
  return c;
}

std::string RenderShipped(const std::string& os, const AnswerContext& c) {
  const OsInfo* info = FindOs(os);
  REQUIRE(info);
  std::string_view text = DefaultTemplate(os);
  REQUIRE_FALSE(text.empty());
  auto out = Render(text, AnswerVariables(c), info->format);
  INFO((out ? std::string() : out.error().message()));
  REQUIRE(out);
  return *out;
}

// PyYAML, run by the system's python3, as the independent YAML reader.
std::string PythonYaml(const std::string& file, const std::string& expression) {
  auto r = Run({"/usr/bin/python3", "-c",
                "import sys, yaml\nd = yaml.safe_load(open(sys.argv[1]))\nprint(" + expression + ")", file});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

}  // namespace

TEST_CASE("netboot: a MAC is accepted in the usual spellings and stored one way", "[netboot]") {
  for (const char* spelling : {"52:54:00:ab:cd:ef", "52-54-00-AB-CD-EF", "52:54:00:AB:cd:EF", "525400abcdef"}) {
    auto mac = NormalizeMac(spelling);
    INFO(spelling);
    REQUIRE(mac);
    CHECK(*mac == "52:54:00:ab:cd:ef");
  }
  for (const char* bad : {"", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:01", "52:54-00:ab:cd:ef", "52:54:00:ab:cd:eg",
                          "52.54.00.ab.cd.ef", "5254.00ab.cdef", "52:54:00:ab:cd:e\n", "../../../etc/passwd"}) {
    INFO(bad);
    auto mac = NormalizeMac(bad);
    REQUIRE_FALSE(mac);
    CHECK_THAT(mac.error().message(), Catch::Contains("not a MAC address"));
    CHECK(mac.error().message().find('\n') == std::string::npos);
  }
  CHECK_THAT(NormalizeMac("ff:ff:ff:ff:ff:ff").error().message(), Catch::Contains("multicast"));
  CHECK_THAT(NormalizeMac("01:00:5e:00:00:01").error().message(), Catch::Contains("multicast"));
  CHECK_THAT(NormalizeMac("00:00:00:00:00:00").error().message(), Catch::Contains("all zero"));
}

TEST_CASE("netboot: host values are checked and defaults filled in", "[netboot]") {
  HostSpec spec{"52:54:00:12:34:56", "Poste-12.lab.example", "lab", "debian12", "", "de_CH.UTF-8", "", "", "", ""};
  auto h = NormalizeHostSpec(spec);
  REQUIRE(h);
  CHECK(h->hostname == "poste-12.lab.example");
  CHECK(h->disk == "/dev/sda");
  CHECK(h->keyboard == "ch");
  CHECK(h->timezone == "UTC");
  CHECK(h->asset == "debian12");

  auto with = [&](auto change) {
    HostSpec s = spec;
    change(s);
    return NormalizeHostSpec(s);
  };
  CHECK_THAT(with([](HostSpec& s) { s.os = "debian13"; }).error().message(), Catch::Contains("unknown os"));
  CHECK_THAT(with([](HostSpec& s) { s.hostname = "pc;reboot"; }).error().message(), Catch::Contains("RFC 1123"));
  CHECK_THAT(with([](HostSpec& s) { s.hostname = "-pc"; }).error().message(), Catch::Contains("starts with '-'"));
  CHECK_THAT(with([](HostSpec& s) { s.hostname = "10.0.0.1"; }).error().message(), Catch::Contains("all digits"));
  CHECK_THAT(with([](HostSpec& s) { s.group = "lab room"; }).error().message(), Catch::Contains("group name"));
  CHECK_THAT(with([](HostSpec& s) { s.disk = "/dev/../etc/shadow"; }).error().message(),
             Catch::Contains("not a device path"));
  CHECK_THAT(with([](HostSpec& s) { s.disk = "sda"; }).error().message(), Catch::Contains("not a device path"));
  CHECK_THAT(with([](HostSpec& s) { s.locale = "fr_FR.UTF-8'; reboot #"; }).error().message(),
             Catch::Contains("locale"));
  CHECK_THAT(with([](HostSpec& s) { s.locale = "french"; }).error().message(), Catch::Contains("locale"));
  CHECK_THAT(with([](HostSpec& s) { s.keyboard = "fr$(id)"; }).error().message(), Catch::Contains("keymap"));
  CHECK_THAT(with([](HostSpec& s) { s.timezone = "../../etc/localtime"; }).error().message(),
             Catch::Contains("IANA"));
  CHECK_THAT(with([](HostSpec& s) { s.asset = "../kernels"; }).error().message(), Catch::Contains("asset name"));

  // Windows: NetBIOS names, a disk number, a zone with a Windows name.
  spec.os = "windows11";
  spec.hostname = "PC-043";
  auto w = NormalizeHostSpec(spec);
  REQUIRE(w);
  CHECK(w->hostname == "pc-043");
  CHECK_THAT(with([](HostSpec& s) { s.hostname = "workstation-0001x"; }).error().message(),
             Catch::Contains("longer than 15"));
  CHECK_THAT(with([](HostSpec& s) { s.hostname = "pc.lab"; }).error().message(), Catch::Contains("one label"));
  CHECK_THAT(with([](HostSpec& s) { s.disk = "/dev/disk/by-id/wwn-0x5000"; }).error().message(),
             Catch::Contains("cannot be given to Windows"));
  CHECK_THAT(with([](HostSpec& s) { s.timezone = "Asia/Ulaanbaatar"; }).error().message(),
             Catch::Contains("no Windows name"));
  CHECK(*DiskIndex("/dev/sdc") == 2);
  CHECK(*DiskIndex("/dev/nvme1n1") == 1);
  CHECK(WindowsLocale("fr_CA.UTF-8") == "fr-CA");
  CHECK(*WindowsTimezone("Europe/Paris") == "Romance Standard Time");
}

TEST_CASE("netboot: each format makes a value safe or refuses it, naming the variable", "[netboot]") {
  // Preseed values reach sh and a systemd unit through late_command: whitelist only.
  for (const char* hostile : {"$(reboot)", "`id`", "a'b", "a\"b", "a;b", "a b", "100%h", "a\\b", "a|b", "a&b"}) {
    INFO(hostile);
    auto e = Escape("hostname", hostile, Format::kPreseed);
    REQUIRE_FALSE(e);
    CHECK_THAT(e.error().message(), Catch::Contains("{{hostname}}") && Catch::Contains("preseed"));
    // iPXE takes '%' (URL escapes); it expands nothing with it.
    if (std::string_view(hostile) != "100%h") CHECK_FALSE(Escape("kernel", hostile, Format::kIpxe));
  }
  CHECK(*Escape("server", "parc.example.lan:7443", Format::kPreseed) == "parc.example.lan:7443");
  CHECK_FALSE(Escape("kernel", "https://x/${net0/mac}", Format::kIpxe));
  // Control characters would start a new line (a new debconf question, YAML key, iPXE command).
  for (Format f : {Format::kPreseed, Format::kXml, Format::kYaml, Format::kIpxe}) {
    auto e = Escape("group", "lab\nd-i partman/early_command string reboot", f);
    REQUIRE_FALSE(e);
    CHECK_THAT(e.error().message(), Catch::Contains("control character"));
  }
  CHECK(*Escape("timezone", "Romance Standard Time", Format::kXml) == "Romance Standard Time");
  CHECK(*Escape("x", "it's", Format::kXml) == "it&apos;s");
  for (const char* cmd : {"a&b", "a|b", "a<b", "a>b", "%PATH%", "a^b", "a\"b"}) {
    INFO(cmd);
    auto e = Escape("agent_url", cmd, Format::kXml);
    REQUIRE_FALSE(e);
    CHECK_THAT(e.error().message(), Catch::Contains("cmd.exe"));
  }
  CHECK(*Escape("x", "a\"b\\c: #d", Format::kYaml) == "\"a\\\"b\\\\c: #d\"");
}

TEST_CASE("netboot: templates name their variables, mistakes are refused with the line", "[netboot]") {
  Variables vars{{"hostname", "pc-1"}, {"group", "lab"}};
  CHECK(*Render("h={{hostname}} g={{ group }}\n", vars, Format::kPreseed) == "h=pc-1 g=lab\n");
  auto unknown = Render("a\nb {{hostnmae}}\n", vars, Format::kPreseed);
  REQUIRE_FALSE(unknown);
  CHECK_THAT(unknown.error().message(), Catch::Contains("line 2") && Catch::Contains("unknown variable {{hostnmae}}"));
  auto missing = Render("{{token}}", vars, Format::kPreseed);
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message(), Catch::Contains("no value for {{token}}"));
  auto unclosed = Render("x\ny\nz {{hostname\n}}", vars, Format::kPreseed);
  REQUIRE_FALSE(unclosed);
  CHECK_THAT(unclosed.error().message(), Catch::Contains("line 3") && Catch::Contains("without '}}'"));
  auto bad_value = Render("ok\n{{hostname}}", {{"hostname", "a b"}}, Format::kPreseed);
  REQUIRE_FALSE(bad_value);
  CHECK_THAT(bad_value.error().message(), Catch::Contains("template line 2"));

  CHECK(CheckTemplate("d-i netcfg/hostname string {{hostname}}\n", Format::kPreseed));
  CHECK_FALSE(CheckTemplate("d-i netcfg/hostname string {{name}}\n", Format::kPreseed));
  CHECK_FALSE(CheckTemplate(std::string(300 * 1024, 'x'), Format::kPreseed));
  for (const auto& os : SupportedOs()) {
    INFO(os.name);
    CHECK(CheckTemplate(DefaultTemplate(os.name), os.format));
  }
}

TEST_CASE("netboot: the shipped preseed file carries the host's values and token, and debconf reads it",
          "[netboot]") {
  auto c = SampleContext("debian12");
  std::string text = RenderShipped("debian12", c);
  CHECK(text.find("{{") == std::string::npos);
  CHECK_THAT(text, Catch::Contains("d-i netcfg/get_hostname string pc-042\n"));
  CHECK_THAT(text, Catch::Contains("d-i debian-installer/locale string fr_FR.UTF-8\n"));
  CHECK_THAT(text, Catch::Contains("d-i keyboard-configuration/xkb-keymap select fr\n"));
  CHECK_THAT(text, Catch::Contains("d-i time/zone string Europe/Paris\n"));
  CHECK_THAT(text, Catch::Contains("d-i partman-auto/disk string /dev/sda\n"));
  CHECK_THAT(text, Catch::Contains("--server parc.example.lan:7443 --token " + c.token + " --ca-fingerprint " +
                                   c.ca_fingerprint));
  CHECK_THAT(text, Catch::Contains("expires at 2026-01-01T00:00:00Z"));

  TempDir dir("parc-preseed");
  WriteFile(dir / "preseed.cfg", text);
  auto check = Run({"debconf-set-selections", "--checkonly", (dir / "preseed.cfg").string()});
  INFO(check.out << check.err);
  CHECK(check.exit_code == 0);
  CHECK(check.err.empty());
  // The checker is not a rubber stamp: a broken line is reported.
  WriteFile(dir / "broken.cfg", text + "d-i this-line-has-no-type\n");
  auto broken = Run({"debconf-set-selections", "--checkonly", (dir / "broken.cfg").string()});
  CHECK((broken.exit_code != 0 || !broken.err.empty()));
}

TEST_CASE("netboot: the shipped autounattend.xml is well-formed XML with the Windows names", "[netboot]") {
  auto c = SampleContext("windows11");
  c.host.disk = "/dev/nvme1n1";
  c.agent_url = "https://parc.example.lan:8443/boot/files/parc-agent/parc-agent.msi";
  std::string text = RenderShipped("windows11", c);
  CHECK(text.find("{{") == std::string::npos);
  CHECK_THAT(text, Catch::Contains("<ComputerName>pc-042</ComputerName>"));
  CHECK_THAT(text, Catch::Contains("<TimeZone>Romance Standard Time</TimeZone>"));
  CHECK_THAT(text, Catch::Contains("<UILanguage>fr-FR</UILanguage>"));
  CHECK_THAT(text, Catch::Contains("<DiskID>1</DiskID>"));
  CHECK_THAT(text, Catch::Contains("--token " + c.token));

  TempDir dir("parc-unattend");
  WriteFile(dir / "autounattend.xml", text);
  auto lint = Run({"xmllint", "--noout", (dir / "autounattend.xml").string()});
  INFO(lint.err);
  CHECK(lint.exit_code == 0);
  auto computer = Run({"xmllint", "--xpath",
                       "string(//*[local-name()='ComputerName'])", (dir / "autounattend.xml").string()});
  CHECK(computer.out == "pc-042\n");
}

TEST_CASE("netboot: the shipped cloud-init user-data parses as YAML and keeps every value exact", "[netboot]") {
  auto c = SampleContext("ubuntu-cloud");
  std::string text = RenderShipped("ubuntu-cloud", c);
  CHECK(text.rfind("#cloud-config\n", 0) == 0);
  TempDir dir("parc-cloudinit");
  WriteFile(dir / "user-data", text);
  CHECK(PythonYaml((dir / "user-data").string(), "d['autoinstall']['user-data']['hostname']") == "pc-042\n");
  CHECK(PythonYaml((dir / "user-data").string(), "d['autoinstall']['storage']['layout']['match']['path']") ==
        "/dev/sda\n");
  CHECK(PythonYaml((dir / "user-data").string(), "d['autoinstall']['user-data']['runcmd'][1]") ==
        "['parc-agent', 'enroll', '--server', 'parc.example.lan:7443', '--token', '" + c.token +
            "', '--ca-fingerprint', '" + c.ca_fingerprint + "']\n");

  // A template may put any value into a YAML scalar: quotes, colons, brackets
  // and hashes must come back as the same text.
  const std::string hostile = "x\", evil: [1]\\ # not a comment: 'q'";
  auto rendered = Render("a: {{group}}\nb: [{{group}}, z]\n", {{"group", hostile}}, Format::kYaml);
  REQUIRE(rendered);
  WriteFile(dir / "hostile.yaml", *rendered);
  auto r = Run({"/usr/bin/python3", "-c",
                "import sys, yaml\nd = yaml.safe_load(open(sys.argv[1]))\n"
                "assert d == {'a': sys.argv[2], 'b': [sys.argv[2], 'z']}, d\n",
                (dir / "hostile.yaml").string(), hostile});
  INFO(r.err << *rendered);
  CHECK(r.exit_code == 0);

  auto meta = RenderMetaData(c.host);
  REQUIRE(meta);
  CHECK(*meta == "instance-id: \"parc-525400abcdef\"\nlocal-hostname: \"pc-042\"\n");
}
