// Network installation end to end with a real parc-server (boot server on):
// boot files uploaded with parcctl, a machine recorded by MAC, its iPXE
// script, boot files and answer file fetched as iPXE and the installer would
// (curl, trusting only the parc CA), and the token inside the answer file
// enrolling a real parc-agent exactly once.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>

#include "harness.h"
#include "inventory_fixture.h"

using namespace parc::test;
namespace fs = std::filesystem;

namespace {

struct BootServer {
  std::string https, http;
};

BootServer ReadBootAddr(const Server& server) {
  std::string text = ReadFileOrEmpty(server.state_dir() / "boot.addr");
  auto nl = text.find('\n');
  REQUIRE(nl != std::string::npos);
  BootServer b{text.substr(0, nl), text.substr(nl + 1)};
  while (!b.http.empty() && b.http.back() == '\n') b.http.pop_back();
  return b;
}

struct Fetched {
  int status = 0;
  std::string body;
  std::string err;
};

// curl as a boot client: only the parc CA is trusted for HTTPS.
Fetched Fetch(const Server& server, const std::string& url, const std::string& user_agent = "iPXE/1.21.1") {
  TempDir tmp("parc-fetch");
  auto r = Run({"curl", "-sS", "--path-as-is", "--max-time", "20", "--cacert", (server.state_dir() / "pki/ca.pem").string(), "-A",
                user_agent, "-o", (tmp / "body").string(), "-w", "%{http_code}", url});
  Fetched f;
  f.err = r.err;
  f.status = r.exit_code == 0 ? std::stoi(r.out) : -r.exit_code;
  f.body = ReadFileOrEmpty(tmp / "body");
  return f;
}

std::string Capture(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(pattern))) return "";
  return m[1].str();
}

}  // namespace

TEST_CASE("netboot: a recorded machine gets its script, boot files and one answer file whose token enrolls once") {
  TempDir dir("parc-netboot");
  Server server(dir / "server");
  server.SetExtraArgs({"--boot-listen", "127.0.0.1:0", "--boot-http-listen", "127.0.0.1:0"});
  server.Start();
  auto boot = ReadBootAddr(server);
  REQUIRE(boot.https.rfind("https://127.0.0.1:", 0) == 0);
  REQUIRE(boot.http.rfind("http://127.0.0.1:", 0) == 0);

  // Boot files made by the test: different bytes, so a mix-up shows.
  std::string kernel_bytes = "fake kernel\n" + std::string(300000, 'K');
  std::string initrd_bytes = "fake initrd\n" + std::string(200000, 'I') + std::string(1, '\0') + "end";
  WriteFile(dir / "files/vmlinuz", kernel_bytes);
  WriteFile(dir / "files/initrd.gz", initrd_bytes);
  auto asset = server.CtlJson({"netboot", "assets", "add", "--name", "debian12", "--kernel",
                               "linux=" + (dir / "files/vmlinuz").string(), "--initrd",
                               (dir / "files/initrd.gz").string()});
  REQUIRE(asset["files"].size() == 2);
  CHECK(asset["files"][0]["name"] == "linux");
  CHECK(asset["files"][0]["role"] == "kernel");
  CHECK(asset["files"][1]["name"] == "initrd.gz");

  // Recorded in the Windows spelling; stored and served by iPXE's.
  auto host = server.CtlJson({"netboot", "add", "--mac", "52-54-00-AB-CD-EF", "--hostname", "pc12", "--group",
                              "lab", "--os", "debian12", "--disk", "/dev/vda", "--locale", "fr_FR.UTF-8",
                              "--timezone", "Europe/Paris"});
  CHECK(host["mac"] == "52:54:00:ab:cd:ef");
  CHECK(host["state"] == "armed");
  CHECK(host["boot_url"] == boot.https + "/boot/52:54:00:ab:cd:ef.ipxe");
  // Values a machine must not get are refused at the door, with the reason.
  auto bad = server.Ctl({"netboot", "add", "--mac", "52:54:00:ab:cd:e0", "--hostname", "pc;reboot", "--group", "lab",
                         "--os", "debian12"});
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.err, Catch::Contains("RFC 1123"));
  auto dup = server.Ctl({"netboot", "add", "--mac", "52:54:00:ab:cd:e1", "--hostname", "pc12", "--group", "lab",
                         "--os", "debian12"});
  CHECK(dup.exit_code != 0);
  CHECK_THAT(dup.err, Catch::Contains("already recorded for 52:54:00:ab:cd:ef"));

  // Recorded before its boot files exist: said at once, and its script does not try.
  auto win = server.Ctl({"netboot", "add", "--mac", "52:54:00:ab:cd:e2", "--hostname", "pc13", "--group", "lab",
                         "--os", "windows11", "--locale", "fr_FR.UTF-8", "--timezone", "Europe/Paris"});
  CHECK(win.exit_code == 0);
  CHECK_THAT(win.err, Catch::Contains("no boot files registered as 'windows11'"));
  auto win_script = Fetch(server, boot.http + "/boot/52:54:00:ab:cd:e2.ipxe");
  CHECK(win_script.body.find("kernel ") == std::string::npos);
  CHECK_THAT(win_script.body, Catch::Contains("cannot install"));

  // The iPXE script, as iPXE asks for it (plain HTTP chain from dnsmasq).
  auto script = Fetch(server, boot.http + "/boot/52:54:00:ab:cd:ef.ipxe");
  INFO(script.err << script.body);
  REQUIRE(script.status == 200);
  CHECK(script.body.rfind("#!ipxe\n", 0) == 0);
  std::string kernel_url = Capture(script.body, "\nkernel (\\S+) ");
  std::string initrd_url = Capture(script.body, "\ninitrd (\\S+) ");
  std::string preseed_url = Capture(script.body, " url=(\\S+) ");
  CHECK(kernel_url == boot.http + "/boot/files/debian12/linux");
  CHECK(initrd_url == boot.http + "/boot/files/debian12/initrd.gz");
  CHECK(preseed_url == boot.https + "/answer/52:54:00:ab:cd:ef/preseed.cfg");
  CHECK(Fetch(server, kernel_url).body == kernel_bytes);
  CHECK(Fetch(server, initrd_url).body == initrd_bytes);
  CHECK(Fetch(server, boot.https + "/boot/files/debian12/linux").body == kernel_bytes);

  // Boot file names cannot leave the asset (raw and percent-encoded).
  for (const char* path : {"/boot/files/debian12/../../pki/ca.key", "/boot/files/debian12/..%2F..%2Fpki%2Fca.key",
                                  "/boot/files/..%2Fpki/ca.key", "/boot/files/debian12/%2Fetc%2Fpasswd"}) {
    auto f = Fetch(server, boot.https + path);
    INFO(path << " -> " << f.status << " " << f.body);
    CHECK(f.status == 404);
    CHECK(f.body.find("PRIVATE KEY") == std::string::npos);
  }
  // A MAC the server does not know: instructions for iPXE (which only runs a 2xx script), 404 for others.
  auto unknown = Fetch(server, boot.http + "/boot/52-54-00-00-00-99.ipxe");
  CHECK(unknown.status == 200);
  CHECK_THAT(unknown.body, Catch::Contains("not registered") && Catch::Contains("52:54:00:00:00:99"));
  CHECK(Fetch(server, boot.http + "/boot/52-54-00-00-00-99.ipxe", "curl").status == 404);

  // The answer file holds a token: never over plain HTTP, and nothing is disarmed by trying.
  auto plain = Fetch(server, boot.http + "/answer/52:54:00:ab:cd:ef/preseed.cfg");
  CHECK(plain.status == 403);
  CHECK_THAT(plain.body, Catch::Contains("only served over HTTPS"));
  CHECK(plain.body.find("--token") == std::string::npos);
  CHECK(server.CtlJson({"netboot", "show", "pc12"})["state"] == "armed");
  CHECK(Fetch(server, preseed_url.substr(0, preseed_url.rfind('/')) + "/autounattend.xml").status == 404);

  // A preview shows the file without a token and changes nothing.
  auto preview = server.CtlJson({"netboot", "preview", "pc12"});
  CHECK_THAT(preview["content"].get<std::string>(), Catch::Contains("--token PREVIEW."));
  CHECK(server.CtlJson({"netboot", "show", "52:54:00:AB:CD:EF"})["state"] == "armed");

  // The installer's fetch over HTTPS, trusting the parc CA only.
  auto answer = Fetch(server, preseed_url, "Wget");
  INFO(answer.err);
  REQUIRE(answer.status == 200);
  CHECK_THAT(answer.body, Catch::Contains("d-i netcfg/get_hostname string pc12\n"));
  CHECK_THAT(answer.body, Catch::Contains("d-i partman-auto/disk string /dev/vda\n"));
  CHECK_THAT(answer.body, Catch::Contains("d-i time/zone string Europe/Paris\n"));
  std::string token = Capture(answer.body, "--token ([a-z0-9]+\\.[a-z0-9]+) ");
  std::string fingerprint = Capture(answer.body, "--ca-fingerprint ([0-9a-f]{64})");
  std::string enroll_server = Capture(answer.body, "--server (\\S+) ");
  REQUIRE_FALSE(token.empty());
  CHECK(enroll_server == server.address());
  auto [other_token, real_fingerprint] = server.Token();
  CHECK(fingerprint == real_fingerprint);

  // Served once: the machine is disarmed; a second fetch (or a thief after the machine) gets nothing.
  auto again = Fetch(server, preseed_url, "Wget");
  CHECK(again.status == 403);
  CHECK_THAT(again.body, Catch::Contains("not armed"));
  CHECK(again.body.find("--token") == std::string::npos);
  auto shown = server.CtlJson({"netboot", "show", "pc12"});
  CHECK(shown["state"] == "installing");
  CHECK(shown["token_id"] == token.substr(0, token.find('.')));
  CHECK(shown["answer_fetched_by"] == "127.0.0.1");
  // Its next network boot must not reinstall it: the script now boots the local disk.
  auto after = Fetch(server, boot.http + "/boot/52:54:00:ab:cd:ef.ipxe");
  CHECK(after.body.find("kernel ") == std::string::npos);
  CHECK_THAT(after.body, Catch::Contains("exit"));

  // The freshly installed machine enrolls with the token from its answer file.
  BuildWorkstationRoot(dir / "root");
  Agent agent(dir / "agent", dir / "root");
  auto r = agent.Enroll(server, token, fingerprint);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  std::string id = agent.host_id();
  REQUIRE(id.size() == 36);
  CHECK(server.CtlJson({"host", "show", id})["summary"]["groups"] == nlohmann::json::array({"lab"}));
  shown = server.CtlJson({"netboot", "show", "pc12"});
  CHECK(shown["state"] == "enrolled");
  CHECK(shown["enrolled_host_id"] == id);

  // Exactly once: the same token enrolls nothing else.
  Agent second(dir / "agent2", dir / "root");
  r = second.Enroll(server, token, fingerprint);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("already used"));

  // Reinstall: armed again, a new token; removing the record kills an unused one.
  auto armed = server.CtlJson({"netboot", "arm", "pc12", "--for", "1h"});
  CHECK(armed["state"] == "armed");
  auto reinstall = Fetch(server, preseed_url, "Wget");
  REQUIRE(reinstall.status == 200);
  std::string token2 = Capture(reinstall.body, "--token ([a-z0-9]+\\.[a-z0-9]+) ");
  REQUIRE_FALSE(token2.empty());
  CHECK(token2 != token);
  server.CtlJson({"netboot", "remove", "52:54:00:ab:cd:ef"});
  r = second.Enroll(server, token2, fingerprint);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("expired"));
  CHECK(Fetch(server, preseed_url, "Wget").status == 404);

  // Every served and refused answer file is in the audit log.
  std::string audit = server.CtlJson({"audit", "--limit", "500"}).dump();
  CHECK_THAT(audit, Catch::Contains("\"netboot.answer\""));
  CHECK_THAT(audit, Catch::Contains("\"netboot.answer.refused\""));
  CHECK_THAT(audit, Catch::Contains("\"netboot.add\""));
}

TEST_CASE("netboot: the boot server is off unless asked for, and dnsmasq-config says so") {
  TempDir dir("parc-netboot-off");
  Server server(dir / "server");
  server.Start();
  CHECK_FALSE(fs::exists(server.state_dir() / "boot.addr"));
  auto r = server.Ctl({"netboot", "dnsmasq-config", "--interface", "eth0", "--subnet", "192.168.10.0"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("--boot-listen"));
}
