// A misbehaving client holding a valid agent certificate: messages out of
// order, hostile inventory content, oversized messages, calls outside its role.
// Each gets an error; the server keeps serving a well-behaved agent throughout.
#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include "channel.h"
#include "harness.h"
#include "inventory_fixture.h"
#include "parc/common/hash.h"
#include "parc/v1/admin.grpc.pb.h"
#include "parc/v1/agent.grpc.pb.h"

using namespace parc::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace v1 = parc::v1;

namespace {
std::shared_ptr<grpc::Channel> ChannelAs(const Server& server, const fs::path& agent_state) {
  parc::agent::ChannelOptions o;
  o.server = server.address();
  o.ca_pem = ReadFileOrEmpty(agent_state / "ca.pem");
  o.key_pem = ReadFileOrEmpty(agent_state / "agent.key");
  o.cert_pem = ReadFileOrEmpty(agent_state / "agent.pem");
  o.own_connection = true;
  return parc::agent::MakeChannel(o);
}

v1::AgentMessage HelloMsg() {
  v1::AgentMessage m;
  m.mutable_hello()->set_agent_version("hostile");
  return m;
}
}  // namespace

TEST_CASE("malformed, hostile and oversized messages get an error while the server keeps serving others") {
  TempDir dir("parc-hostile");
  Server server(dir / "server");
  server.Start();
  BuildWorkstationRoot(dir / "root");
  auto [t1, fp] = server.Token();
  Agent good(dir / "good", dir / "root");
  REQUIRE(good.Enroll(server, t1, fp).exit_code == 0);
  good.Start();
  auto [t2, fp2] = server.Token();
  Agent evil(dir / "evil", dir / "root");
  REQUIRE(evil.Enroll(server, t2, fp2).exit_code == 0);  // enrolled, never started: we drive it by hand
  auto channel = ChannelAs(server, dir / "evil");
  auto stub = v1::AgentService::NewStub(channel);

  SECTION("a report before Hello ends the session with INVALID_ARGUMENT") {
    grpc::ClientContext ctx;
    auto stream = stub->Connect(&ctx);
    v1::AgentMessage m;
    m.mutable_heartbeat()->set_sent_at(1);
    stream->Write(m);
    v1::ServerMessage reply;
    while (stream->Read(&reply)) {
    }
    CHECK(stream->Finish().error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  SECTION("an inventory with an unknown section or field is rejected, nothing stored") {
    grpc::ClientContext ctx;
    auto stream = stub->Connect(&ctx);
    REQUIRE(stream->Write(HelloMsg()));
    v1::ServerMessage reply;
    REQUIRE(stream->Read(&reply));
    REQUIRE(reply.has_welcome());
    v1::AgentMessage m;
    auto* r = m.mutable_report();
    r->set_report_id("evil-1");
    auto* delta = r->mutable_inventory_delta();
    delta->set_base_digest("");
    auto* up = delta->add_upserts();
    up->set_section("../../etc/passwd");
    (*up->mutable_fields())["x"] = "y";
    REQUIRE(stream->Write(m));
    REQUIRE(stream->Read(&reply));
    REQUIRE(reply.has_report_ack());
    CHECK_FALSE(reply.report_ack().stored());
    bool refused = reply.report_ack().rejected() || reply.report_ack().full_inventory_wanted();
    CHECK(refused);
    // A full report with a huge key is rejected with a reason.
    v1::AgentMessage full;
    full.mutable_report()->set_report_id("evil-2");
    auto* pkg = full.mutable_report()->mutable_full_inventory()->add_software();
    pkg->set_name(std::string(10000, 'A'));
    REQUIRE(stream->Write(full));
    REQUIRE(stream->Read(&reply));
    CHECK(reply.report_ack().rejected());
    CHECK_THAT(reply.report_ack().error(), Catch::Contains("too long"));
    ctx.TryCancel();
    auto host = server.CtlJson({"host", "show", evil.host_id()});
    CHECK(host["inventory_digest"] == "");
  }
  SECTION("an oversized message is refused with RESOURCE_EXHAUSTED") {
    grpc::ClientContext ctx;
    auto stream = stub->Connect(&ctx);
    REQUIRE(stream->Write(HelloMsg()));
    v1::AgentMessage big;
    big.mutable_report()->set_report_id("big");
    auto* inv = big.mutable_report()->mutable_full_inventory();
    for (int i = 0; i < 20; ++i) inv->add_software()->set_summary(std::string(1 << 20, 'x'));
    stream->Write(big);
    v1::ServerMessage reply;
    while (stream->Read(&reply)) {
    }
    CHECK(stream->Finish().error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  SECTION("an agent without a capture job cannot upload objects: PERMISSION_DENIED, nothing stored") {
    std::string data = "not an image chunk of any capture job";
    std::string digest = parc::Sha256Hex(data);
    {
      grpc::ClientContext ctx;
      v1::MissingObjectsRequest req;
      req.add_sha256(digest);
      v1::MissingObjectsResponse resp;
      CHECK(stub->MissingObjects(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    }
    grpc::ClientContext ctx;
    v1::PutObjectsResponse resp;
    auto writer = stub->PutObjects(&ctx, &resp);
    v1::PutObjectRequest msg;
    msg.set_sha256(digest);
    msg.set_data(data);
    writer->Write(msg);
    writer->WritesDone();
    auto st = writer->Finish();
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(st.error_message().find("no image capture in progress") != std::string::npos);
    CHECK_FALSE(fs::exists(server.state_dir() / "content" / "objects" / digest.substr(0, 2) / digest));
  }
  SECTION("an agent certificate cannot call the admin API") {
    auto admin = v1::AdminService::NewStub(channel);
    grpc::ClientContext ctx;
    v1::ListHostsRequest req;
    v1::ListHostsResponse resp;
    CHECK(admin->ListHosts(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }

  // Through all of it the well-behaved agent is served: a pushed command reaches it.
  std::string id = good.host_id();
  REQUIRE(WaitFor([&] { return server.CtlJson({"host", "show", id})["summary"]["online"] == true; }));
  auto sent = server.CtlJson({"collect", id});
  CHECK(sent["sent_to"].size() == 1);
  REQUIRE(WaitFor([&] { return good.Log().find("the server asks for an inventory now") != std::string::npos; }));
}

TEST_CASE("GetContent streams an object in order from any offset and refuses what it cannot serve",
          "[integration][content]") {
  TempDir dir("parc-content");
  Server server(dir / "server");
  server.Start();
  BuildWorkstationRoot(dir / "root");
  auto [token, fp] = server.Token();
  Agent agent(dir / "agent", dir / "root");
  REQUIRE(agent.Enroll(server, token, fp).exit_code == 0);  // never started: the test fetches with its credentials
  // Three messages of at most 1 MiB, the last one partial.
  std::string bytes((2u << 20) + 123, '\0');
  std::mt19937 gen(7);
  for (auto& c : bytes) c = static_cast<char>(gen() & 0xff);
  WriteFile(dir / "blob", bytes);
  // Not a package: stored by the push, then its registration refused.
  REQUIRE(server.Ctl({"package", "push", (dir / "blob").string()}).exit_code != 0);
  const std::string sha = parc::Sha256Hex(bytes);
  REQUIRE(fs::exists(server.state_dir() / "content/objects" / sha.substr(0, 2) / sha));

  auto stub = v1::AgentService::NewStub(ChannelAs(server, dir / "agent"));
  struct Got {
    grpc::Status status;
    std::string data;
    bool in_order = true;
  };
  auto fetch = [&](const std::string& digest, uint64_t offset) {
    Got got;
    grpc::ClientContext ctx;
    v1::GetContentRequest req;
    req.set_sha256(digest);
    req.set_offset(offset);
    auto reader = stub->GetContent(&ctx, req);
    v1::ContentChunk chunk;
    while (reader->Read(&chunk)) {
      got.in_order = got.in_order && chunk.offset() == offset + got.data.size() && chunk.total_size() == bytes.size() &&
                     chunk.data().size() <= (1u << 20) && !chunk.data().empty();
      got.data += chunk.data();
    }
    got.status = reader->Finish();
    return got;
  };
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 20, uint64_t{bytes.size() - 1}, uint64_t{bytes.size()}}) {
    INFO("offset " << offset);
    auto got = fetch(sha, offset);
    CHECK(got.status.ok());
    CHECK(got.in_order);
    CHECK(got.data == bytes.substr(offset));
  }
  auto beyond = fetch(sha, bytes.size() + 1);
  CHECK(beyond.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(beyond.data.empty());
  CHECK(fetch(parc::Sha256Hex("nothing"), 0).status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(fetch("not-a-digest", 0).status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  // A server stopped in the middle of a download shuts down cleanly (the
  // reactor ends with the stream) and the agent sees an interrupted stream.
  {
    grpc::ClientContext ctx;
    v1::GetContentRequest req;
    req.set_sha256(sha);
    auto reader = stub->GetContent(&ctx, req);
    v1::ContentChunk first;
    REQUIRE(reader->Read(&first));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(server.Stop() == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < 8s);
    v1::ContentChunk rest;
    uint64_t got = first.data().size();
    while (reader->Read(&rest)) got += rest.data().size();
    grpc::Status st = reader->Finish();
    CHECK((!st.ok() || got == bytes.size()));  // cut off, or it had all been queued before the stop
    server.Start();
    stub = v1::AgentService::NewStub(ChannelAs(server, dir / "agent"));
    CHECK(fetch(sha, 0).data == bytes);
  }

  // A revoked host gets nothing, at once.
  REQUIRE(server.Ctl({"host", "revoke", agent.host_id()}).exit_code == 0);
  stub = v1::AgentService::NewStub(ChannelAs(server, dir / "agent"));  // a new connection: checked again
  auto revoked = fetch(sha, 0);
  CHECK_FALSE(revoked.status.ok());
  CHECK(revoked.data.empty());
}
