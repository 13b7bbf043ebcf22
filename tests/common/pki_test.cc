// The PKI is checked against the OpenSSL command line as an independent
// reference: what parc issues must verify with `openssl verify`, its
// fingerprints must match `openssl x509`, and FetchPeerChain must read the chain
// of a real `openssl s_server`.

#include "parc/common/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <random>
#include <thread>

#include "test_support.h"

namespace fs = std::filesystem;
using namespace parc;
using parc::test::Run;
using parc::test::TempDir;

namespace {

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

KeyPair NewKey() {
  auto key = pki::GenerateKeyPem();
  REQUIRE(key.has_value());
  auto pub = pki::PublicKeyPem(*key);
  REQUIRE(pub.has_value());
  return {*key, *pub};
}

pki::CertificateAuthority NewCa(const fs::path& dir, const std::string& name = "Parc CA") {
  auto ca = pki::CertificateAuthority::LoadOrCreate(dir, name);
  INFO((ca ? std::string() : ca.error().message()));
  REQUIRE(ca.has_value());
  return std::move(*ca);
}

// Changes one base64 character of the PEM body, `from_end` characters before the
// end of the body (so the DER is altered there, the armour stays intact).
std::string FlipBase64(const std::string& pem, size_t from_end) {
  size_t body_end = pem.find("-----END");
  REQUIRE(body_end != std::string::npos);
  std::string out = pem;
  size_t pos = body_end;
  size_t seen = 0;
  while (pos > 0) {
    --pos;
    char c = out[pos];
    if (c == '\n' || c == '=') continue;
    if (seen++ == from_end) break;
  }
  out[pos] = out[pos] == 'A' ? 'B' : 'A';
  REQUIRE(out != pem);
  return out;
}

std::string OpenSslFingerprint(const fs::path& cert) {
  auto r = Run({"openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert.string()});
  REQUIRE(r.exit_code == 0);
  auto eq = r.out.find('=');
  REQUIRE(eq != std::string::npos);
  std::string hex;
  for (char c : r.out.substr(eq + 1))
    if (std::isxdigit(static_cast<unsigned char>(c))) hex.push_back(static_cast<char>(std::tolower(c)));
  return hex;
}

unsigned ModeOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// A child process killed and reaped when the test leaves, pass or fail.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  bool Running() {
    if (pid_ <= 0 || exited_) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) exited_ = true;
    return !exited_;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

// A loopback port nobody listens on: bound by us, then released.
uint16_t ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("the CA is created once, with a private key file, and reloaded identically", "[pki]") {
  TempDir tmp;
  fs::path dir = tmp / "pki";
  auto first = NewCa(dir, "Lab CA");
  CHECK(first.fingerprint().size() == 64);
  CHECK(ModeOf(dir / "ca.key") == 0600);
  CHECK(ModeOf(dir) == 0700);

  auto second = NewCa(dir, "Another name is ignored once the CA exists");
  CHECK(second.fingerprint() == first.fingerprint());
  CHECK(second.certificate_pem() == first.certificate_pem());

  auto info = pki::ParseCertificate(first.certificate_pem());
  REQUIRE(info.has_value());
  CHECK(info->is_ca);
  CHECK(info->common_name == "Lab CA");
  CHECK(info->issuer_common_name == "Lab CA");
  CHECK(info->fingerprint == first.fingerprint());
  CHECK(info->not_after - info->not_before > int64_t{3649} * 86400);

  auto fp = pki::CertificateFingerprint(first.certificate_pem());
  REQUIRE(fp.has_value());
  CHECK(*fp == first.fingerprint());
  CHECK(OpenSslFingerprint(dir / "ca.pem") == first.fingerprint());

  auto text = Run({"openssl", "x509", "-noout", "-text", "-in", (dir / "ca.pem").string()});
  CHECK(text.out.find("CA:TRUE") != std::string::npos);
  CHECK(text.out.find("Certificate Sign, CRL Sign") != std::string::npos);
  CHECK(text.out.find("Subject Key Identifier") != std::string::npos);
}

TEST_CASE("a CA certificate without its key is not silently replaced", "[pki]") {
  TempDir tmp;
  auto ca = NewCa(tmp / "pki");
  fs::remove(tmp / "pki" / "ca.key");
  auto again = pki::CertificateAuthority::LoadOrCreate(tmp / "pki");
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().Is(Errc::kFailedPrecondition));
  CHECK(again.error().message().find("ca.key") != std::string::npos);
}

TEST_CASE("keys are P-256 PKCS#8 and CSRs round-trip", "[pki]") {
  auto key = NewKey();
  CHECK(key.private_pem.find("-----BEGIN PRIVATE KEY-----") == 0);
  CHECK(key.public_pem.find("-----BEGIN PUBLIC KEY-----") == 0);
  auto described = Run({"openssl", "pkey", "-noout", "-text"}, key.private_pem);
  CHECK(described.out.find("P-256") != std::string::npos);

  auto csr = pki::MakeCsr(key.private_pem, "pc-compta-01");
  REQUIRE(csr.has_value());
  CHECK(Run({"openssl", "req", "-noout", "-verify"}, *csr).exit_code == 0);
  auto info = pki::VerifyCsr(*csr);
  REQUIRE(info.has_value());
  CHECK(info->common_name == "pc-compta-01");
  CHECK(info->public_key_pem == key.public_pem);

  CHECK_FALSE(pki::PublicKeyPem("not a key").has_value());
  CHECK_FALSE(pki::MakeCsr("not a key", "x").has_value());
}

TEST_CASE("tampered, garbage and oversized CSRs are refused", "[pki]") {
  auto key = NewKey();
  auto csr = pki::MakeCsr(key.private_pem, "pc-compta-01");
  REQUIRE(csr.has_value());

  // The last bytes are the ECDSA signature; bytes further in are the subject and key.
  for (size_t from_end : {size_t{4}, size_t{10}, size_t{60}, size_t{120}, size_t{200}}) {
    CAPTURE(from_end);
    auto result = pki::VerifyCsr(FlipBase64(*csr, from_end));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().Is(Errc::kInvalidArgument));
  }

  // Another key's signature over the same request.
  auto other = NewKey();
  auto other_csr = pki::MakeCsr(other.private_pem, "pc-compta-01");
  REQUIRE(other_csr.has_value());
  CHECK(pki::VerifyCsr(*other_csr)->public_key_pem == other.public_pem);

  for (const std::string& garbage :
       {std::string(), std::string("hello"), std::string("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END "
                                                          "CERTIFICATE REQUEST-----\n"),
        key.private_pem}) {
    auto result = pki::VerifyCsr(garbage);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().Is(Errc::kInvalidArgument));
  }

  auto oversized = pki::VerifyCsr(*csr + std::string(17 * 1024, '\n'));
  REQUIRE_FALSE(oversized.has_value());
  CHECK(oversized.error().Is(Errc::kInvalidArgument));
  CHECK(oversized.error().message().find("16 KiB") != std::string::npos);
}

TEST_CASE("client certificates carry the subject the CA chose, not the CSR's", "[pki]") {
  TempDir tmp;
  auto ca = NewCa(tmp / "pki");
  auto other_ca = NewCa(tmp / "other");
  auto key = NewKey();
  auto csr = pki::MakeCsr(key.private_pem, "admin");  // asks for a name it must not get
  REQUIRE(csr.has_value());
  auto request = pki::VerifyCsr(*csr);
  REQUIRE(request.has_value());

  auto before = std::time(nullptr);
  auto cert = ca.IssueClientCertificate(request->public_key_pem, "host-7f3a", "parc-agent", 365);
  INFO((cert ? std::string() : cert.error().message()));
  REQUIRE(cert.has_value());

  auto info = pki::ParseCertificate(*cert);
  REQUIRE(info.has_value());
  CHECK(info->common_name == "host-7f3a");
  CHECK(info->organization == "parc-agent");
  CHECK(info->issuer_common_name == "Parc CA");
  CHECK_FALSE(info->is_ca);
  CHECK(info->dns_names.empty());
  CHECK(info->ip_addresses.empty());
  CHECK(info->serial_hex.size() == 32);
  CHECK(std::abs((before - 300) - info->not_before) <= 5);
  CHECK(std::abs((before + 365 * 86400) - info->not_after) <= 5);

  CHECK(pki::IsSignedBy(*cert, ca.certificate_pem()).value());
  CHECK_FALSE(pki::IsSignedBy(*cert, other_ca.certificate_pem()).value());
  CHECK_FALSE(pki::IsSignedBy("garbage", ca.certificate_pem()).has_value());

  test::WriteFile(tmp / "client.pem", *cert);
  test::WriteFile(tmp / "ca.pem", ca.certificate_pem());
  test::WriteFile(tmp / "other.pem", other_ca.certificate_pem());
  auto verify = Run({"openssl", "verify", "-purpose", "sslclient", "-CAfile", (tmp / "ca.pem").string(),
                     (tmp / "client.pem").string()});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  CHECK(Run({"openssl", "verify", "-CAfile", (tmp / "other.pem").string(), (tmp / "client.pem").string()})
            .exit_code != 0);
  // Not usable to impersonate the server.
  CHECK(Run({"openssl", "verify", "-purpose", "sslserver", "-CAfile", (tmp / "ca.pem").string(),
             (tmp / "client.pem").string()})
            .exit_code != 0);

  CHECK(OpenSslFingerprint(tmp / "client.pem") == info->fingerprint);
  auto serial = Run({"openssl", "x509", "-noout", "-serial", "-in", (tmp / "client.pem").string()});
  std::string upper = info->serial_hex;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  CHECK(serial.out == "serial=" + upper + "\n");

  auto empty_cn = ca.IssueClientCertificate(request->public_key_pem, "", "parc-agent", 365);
  REQUIRE_FALSE(empty_cn.has_value());
  CHECK(empty_cn.error().Is(Errc::kInvalidArgument));
  CHECK_FALSE(ca.IssueClientCertificate(request->public_key_pem, "h", "o", 0).has_value());
  CHECK_FALSE(ca.IssueClientCertificate("not a key", "h", "o", 30).has_value());
}

TEST_CASE("server certificates name DNS and IP subject alternative names", "[pki]") {
  TempDir tmp;
  auto ca = NewCa(tmp / "pki");
  auto key = NewKey();
  auto cert = ca.IssueServerCertificate(key.public_pem, {{"parc.lab.local", "127.0.0.1", "::1", "localhost"}, 825});
  INFO((cert ? std::string() : cert.error().message()));
  REQUIRE(cert.has_value());
  auto info = pki::ParseCertificate(*cert);
  REQUIRE(info.has_value());
  CHECK(info->common_name == "parc.lab.local");
  CHECK(info->dns_names == std::vector<std::string>{"parc.lab.local", "localhost"});
  CHECK(info->ip_addresses == std::vector<std::string>{"127.0.0.1", "::1"});
  CHECK_FALSE(info->is_ca);
  CHECK(pki::IsSignedBy(*cert, ca.certificate_pem()).value());

  test::WriteFile(tmp / "server.pem", *cert);
  test::WriteFile(tmp / "ca.pem", ca.certificate_pem());
  for (const char* name : {"-verify_hostname", "-verify_ip"}) {
    std::string value = std::string(name) == "-verify_ip" ? "::1" : "parc.lab.local";
    auto verify = Run({"openssl", "verify", "-purpose", "sslserver", name, value, "-CAfile",
                       (tmp / "ca.pem").string(), (tmp / "server.pem").string()});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
  }
  CHECK(Run({"openssl", "verify", "-verify_hostname", "evil.example", "-CAfile", (tmp / "ca.pem").string(),
             (tmp / "server.pem").string()})
            .exit_code != 0);
  CHECK(OpenSslFingerprint(tmp / "server.pem") == info->fingerprint);

  // A name cannot smuggle a second SAN in, and a certificate needs a name.
  auto smuggled = ca.IssueServerCertificate(key.public_pem, {{"a.example,DNS:evil.example"}, 825});
  REQUIRE_FALSE(smuggled.has_value());
  CHECK(smuggled.error().Is(Errc::kInvalidArgument));
  CHECK_FALSE(ca.IssueServerCertificate(key.public_pem, {{}, 825}).has_value());
}

TEST_CASE("a PEM bundle splits into its certificates", "[pki]") {
  TempDir tmp;
  auto ca = NewCa(tmp / "pki");
  auto key = NewKey();
  auto cert = ca.IssueServerCertificate(key.public_pem, {{"localhost"}, 30});
  REQUIRE(cert.has_value());
  auto parts = pki::SplitPemCertificates("# chain\n" + *cert + ca.certificate_pem() +
                                         "-----BEGIN CERTIFICATE-----\ntruncated");
  REQUIRE(parts.size() == 2);
  CHECK(parts[0] == *cert);
  CHECK(parts[1] == ca.certificate_pem());
  CHECK(pki::SplitPemCertificates("").empty());
  CHECK(pki::CertificateFingerprint(parts[1]).value() == ca.fingerprint());
  CHECK_FALSE(pki::ParseCertificate("nothing here").has_value());
}

TEST_CASE("FetchPeerChain reads the chain a real TLS server presents", "[pki]") {
  TempDir tmp;
  auto ca = NewCa(tmp / "pki");
  auto key = NewKey();
  auto cert = ca.IssueServerCertificate(key.public_pem, {{"localhost", "127.0.0.1"}, 30});
  REQUIRE(cert.has_value());
  test::WriteFile(tmp / "server.key", key.private_pem);
  test::WriteFile(tmp / "server.pem", *cert);
  test::WriteFile(tmp / "ca.pem", ca.certificate_pem());
  auto leaf_fp = pki::CertificateFingerprint(*cert).value();

  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> ports(20000, 40000);
  std::optional<std::vector<std::string>> chain;
  std::string last_error;
  for (int attempt = 0; attempt < 5 && !chain; ++attempt) {
    auto port = static_cast<uint16_t>(ports(rng));
    ChildProcess server({"openssl", "s_server", "-quiet", "-www", "-alpn", "h2", "-accept",
                         "127.0.0.1:" + std::to_string(port), "-cert", (tmp / "server.pem").string(), "-key",
                         (tmp / "server.key").string(), "-cert_chain", (tmp / "ca.pem").string()});
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (server.Running() && std::chrono::steady_clock::now() < give_up) {
      auto got = pki::FetchPeerChain("127.0.0.1", port, 2000);
      // Another program may own the port; only our server's leaf counts.
      if (got && !got->empty() && pki::CertificateFingerprint(got->front()).value_or("") == leaf_fp) {
        chain = std::move(*got);
        break;
      }
      last_error = got ? "unexpected certificate" : got.error().message();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  INFO(last_error);
  REQUIRE(chain.has_value());
  REQUIRE(chain->size() == 2);
  CHECK(pki::CertificateFingerprint((*chain)[0]).value() == leaf_fp);
  CHECK(pki::CertificateFingerprint((*chain)[1]).value() == ca.fingerprint());
  CHECK(pki::ParseCertificate((*chain)[1])->is_ca);
}

TEST_CASE("FetchPeerChain to a closed port fails fast with a clear message", "[pki]") {
  uint16_t port = ClosedPort();
  auto start = std::chrono::steady_clock::now();
  auto got = pki::FetchPeerChain("127.0.0.1", port, 3000);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().Is(Errc::kUnavailable));
  CHECK(got.error().message() == "cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
  CHECK(elapsed < std::chrono::seconds(1));

  auto unresolvable = pki::FetchPeerChain("no-such-host.invalid", 7443, 3000);
  REQUIRE_FALSE(unresolvable.has_value());
  CHECK(unresolvable.error().Is(Errc::kUnavailable));
  CHECK(unresolvable.error().message().find("cannot resolve no-such-host.invalid") == 0);
}

TEST_CASE("FetchPeerChain to a port that does not speak TLS says so", "[pki]") {
  // A plain TCP listener that closes each connection without a word.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  uint16_t port = ntohs(addr.sin_port);
  std::thread closer([fd] {
    int c = ::accept(fd, nullptr, nullptr);
    if (c >= 0) ::close(c);
  });
  auto got = pki::FetchPeerChain("127.0.0.1", port, 3000);
  closer.join();
  ::close(fd);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().Is(Errc::kUnavailable));
  CHECK(got.error().message().find("TLS handshake with 127.0.0.1:" + std::to_string(port) + " failed") == 0);
}

TEST_CASE("FetchPeerChain gives up when the server never answers the handshake", "[pki]") {
  // The kernel completes the TCP connection into the backlog; nobody ever speaks TLS.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  uint16_t port = ntohs(addr.sin_port);
  auto start = std::chrono::steady_clock::now();
  auto got = pki::FetchPeerChain("127.0.0.1", port, 300);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ::close(fd);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().Is(Errc::kUnavailable));
  CHECK(got.error().message().find("timed out after 300 ms") != std::string::npos);
  CHECK(elapsed >= std::chrono::milliseconds(250));
  CHECK(elapsed < std::chrono::seconds(2));
}
