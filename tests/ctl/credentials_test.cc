#include <catch2/catch.hpp>

#include "parc/ctl/credentials.h"
#include "test_support.h"

using namespace parc::ctl;

namespace {
const std::string kKey = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";
const std::string kAdmin = "-----BEGIN CERTIFICATE-----\nQURNSU4=\n-----END CERTIFICATE-----\n";
const std::string kCa = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
}  // namespace

TEST_CASE("Credentials: server comment, key, admin cert, CA cert", "[ctl]") {
  std::string text = "# parc admin credentials, written by parc-server\n# server: parc.example:7443\n\n" + kKey + kAdmin + kCa;
  auto c = ParseCredentials(text);
  REQUIRE(c.has_value());
  CHECK(c->server == "parc.example:7443");
  CHECK(c->private_key_pem == kKey);
  CHECK(c->certificate_pem == kAdmin);
  CHECK(c->ca_pem == kCa);
}

TEST_CASE("Credentials without a server line and with CRLF line ends", "[ctl]") {
  std::string text = kKey + kAdmin + kCa;
  std::string crlf;
  for (char ch : text) {
    if (ch == '\n') crlf += '\r';
    crlf += ch;
  }
  auto c = ParseCredentials(crlf);
  REQUIRE(c.has_value());
  CHECK(c->server.empty());
  CHECK(c->ca_pem == kCa);
  CHECK(c->certificate_pem == kAdmin);
}

TEST_CASE("Credentials: the CA is the last certificate, intermediates go with the admin cert", "[ctl]") {
  std::string inter = "-----BEGIN CERTIFICATE-----\nSU5URVI=\n-----END CERTIFICATE-----\n";
  auto c = ParseCredentials(kKey + kAdmin + inter + kCa);
  REQUIRE(c.has_value());
  CHECK(c->certificate_pem == kAdmin + inter);
  CHECK(c->ca_pem == kCa);
}

TEST_CASE("Credentials missing parts are rejected with a reason", "[ctl]") {
  auto no_key = ParseCredentials(kAdmin + kCa);
  REQUIRE_FALSE(no_key.has_value());
  CHECK(no_key.error().message().find("private key") != std::string::npos);

  auto one_cert = ParseCredentials(kKey + kAdmin);
  REQUIRE_FALSE(one_cert.has_value());
  CHECK(one_cert.error().message().find("CA certificate") != std::string::npos);

  auto unterminated = ParseCredentials(kKey + "-----BEGIN CERTIFICATE-----\nQQ==\n");
  CHECK_FALSE(unterminated.has_value());

  auto mismatched = ParseCredentials("-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END CERTIFICATE-----\n" + kAdmin + kCa);
  CHECK_FALSE(mismatched.has_value());
}

TEST_CASE("LoadCredentials says plainly which file it could not read", "[ctl]") {
  parc::test::TempDir dir;
  auto missing = LoadCredentials(dir / "absent.pem");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message().starts_with("cannot read admin credentials " + (dir / "absent.pem").string() +
                                              ": No such file or directory ("));
  CHECK(missing.error().message().find("--credentials") != std::string::npos);

  parc::test::WriteFile(dir / "admin.pem", "# server: h:1\n" + kKey + kAdmin + kCa);
  auto ok = LoadCredentials(dir / "admin.pem");
  REQUIRE(ok.has_value());
  CHECK(ok->server == "h:1");

  parc::test::WriteFile(dir / "junk.pem", "not a pem\n");
  auto junk = LoadCredentials(dir / "junk.pem");
  REQUIRE_FALSE(junk.has_value());
  CHECK(junk.error().message().find((dir / "junk.pem").string()) != std::string::npos);
}

TEST_CASE("parcctl explains an unreadable credentials file", "[ctl]") {
  parc::test::TempDir dir;
  auto file = dir / "admin.pem";
  parc::test::WriteFile(file, kKey + kAdmin + kCa);
  std::filesystem::permissions(file, std::filesystem::perms::none);
  std::vector<std::string> argv = {parc::test::BinaryPath("parcctl").string(), "hosts", "--server", "127.0.0.1:1",
                                   "--credentials", file.string()};
  // root reads any file, so as root run it as nobody (who cannot even enter the 0700 temp dir).
  if (parc::test::Shell("id -u").out == "0\n") argv.insert(argv.begin(), {"runuser", "-u", "nobody", "--"});
  auto r = parc::test::Run(argv);
  CHECK(r.exit_code == 1);
  CHECK(r.err == "parcctl: error: cannot read admin credentials " + file.string() +
                     ": Permission denied (run as root, or pass --credentials)\n");
}
