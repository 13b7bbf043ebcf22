// Enrollment and trust, end to end: tokens, CA pinning, revocation, and
// hostile connections to the server port.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <thread>

#include "harness.h"
#include "inventory_fixture.h"
#include "parc/common/hash.h"
#include "parc/v1/agent.grpc.pb.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST_CASE("enrollment: a token works once - reused, expired, unknown and malformed tokens are refused clearly") {
  TempDir dir("parc-enroll");
  Server server(dir / "server");
  server.Start();
  BuildWorkstationRoot(dir / "root");

  auto [token, fp] = server.Token("lab");
  Agent a(dir / "a", dir / "root");
  auto r = a.Enroll(server, token, fp);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  std::string id = a.host_id();
  REQUIRE(id.size() == 36);
  auto host = server.CtlJson({"host", "show", id});
  CHECK(host["summary"]["hostname"] == "pc12");
  CHECK(host["summary"]["groups"] == nlohmann::json::array({"lab"}));
  CHECK((fs::status(dir / "a" / "agent.key").permissions() & fs::perms::others_read) == fs::perms::none);

  Agent b(dir / "b", dir / "root");
  r = b.Enroll(server, token, fp);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("already used"));

  r = b.Enroll(server, "abcdefgh.notarealsecret", fp);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("unknown enrollment token"));

  // The right id with a wrong secret gets the same answer: nothing to learn from it.
  auto [token2, fp2] = server.Token();
  r = b.Enroll(server, token2.substr(0, token2.find('.')) + ".wrongsecret", fp2);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("unknown enrollment token"));
  r = b.Enroll(server, token2, fp2);  // the real one still works
  CHECK(r.exit_code == 0);

  auto [short_lived, fp3] = server.Token("", "1s");
  std::this_thread::sleep_for(2200ms);
  Agent c(dir / "c", dir / "root");
  r = c.Enroll(server, short_lived, fp3);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("expired"));

  r = c.Enroll(server, "garbage", fp3);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("malformed enrollment token"));
}

TEST_CASE("enrollment: the agent refuses a server whose CA does not match the pinned fingerprint") {
  TempDir dir("parc-pin");
  Server server(dir / "server");
  server.Start();
  BuildWorkstationRoot(dir / "root");
  auto [token, fp] = server.Token();
  std::string wrong = parc::Sha256Hex("some other CA");
  Agent a(dir / "a", dir / "root");
  auto r = a.Enroll(server, token, wrong);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("refusing to enroll"));
  CHECK_FALSE(fs::exists(dir / "a" / "agent.pem"));
  // The token was not spent on the wrong server: it still enrolls with the right pin.
  r = a.Enroll(server, token, fp);
  INFO(r.err);
  CHECK(r.exit_code == 0);
}

TEST_CASE("a revoked host is refused from then on") {
  TempDir dir("parc-revoke");
  Server server(dir / "server");
  server.Start();
  BuildWorkstationRoot(dir / "root");
  auto [token, fp] = server.Token();
  Agent a(dir / "a", dir / "root");
  REQUIRE(a.Enroll(server, token, fp).exit_code == 0);
  std::string id = a.host_id();
  a.Start();
  REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", id})["summary"]["online"] == true; }));

  auto revoked = server.CtlJson({"host", "revoke", id, "--reason", "stolen laptop"});
  CHECK(revoked["summary"]["revoked"] == true);
  REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", id})["summary"]["online"] == false; }));
  // The agent keeps trying with its certificate; every attempt is refused.
  REQUIRE(WaitFor([&] { return a.Log().find("refused this agent") != std::string::npos; }, 30s));
  CHECK(server.CtlJson({"host", "show", id})["summary"]["online"] == false);

  // Still refused after a server restart (revocation is persistent).
  server.Stop();
  server.Start();
  a.Stop();
  a.Start();
  REQUIRE(WaitFor([&] { return server.Log().find("revoked") != std::string::npos; }, 30s));
  CHECK(server.CtlJson({"host", "show", id})["summary"]["online"] == false);
  auto audit = server.CtlJson({"audit"});
  bool logged = false;
  for (const auto& e : audit["entries"]) logged = logged || (e["action"] == "host.revoke" && e["target"] == id);
  CHECK(logged);
}

TEST_CASE("plaintext clients and random bytes sent to the port do not hurt the server") {
  TempDir dir("parc-garbage");
  Server server(dir / "server");
  server.Start();

  for (int i = 0; i < 20; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string junk = i % 2 ? parc::RandomBytes(4096) : std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + parc::RandomBytes(100);
    (void)!write(fd, junk.data(), junk.size());
    close(fd);
  }
  // A plaintext gRPC client gets an error, not an answer.
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto stub = parc::v1::AgentService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  parc::v1::EnrollRequest req;
  req.set_token("x.y");
  parc::v1::EnrollResponse resp;
  CHECK_FALSE(stub->Enroll(&ctx, req, &resp).ok());

  // The server still serves: admin calls and a full enrollment work.
  auto hosts = server.CtlJson({"hosts"});
  CHECK(hosts.is_object());
  BuildWorkstationRoot(dir / "root");
  auto [token, fp] = server.Token();
  Agent a(dir / "a", dir / "root");
  CHECK(a.Enroll(server, token, fp).exit_code == 0);
}
