// The command line end to end against an in-process fake of the admin API:
// argument handling, what reaches the server, what is printed, exit codes.
#include <catch2/catch.hpp>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <mutex>
#include <sstream>

#include "parc/ctl/cli.h"
#include "parc/v1/admin.grpc.pb.h"
#include "test_support.h"

using namespace parc::ctl;
namespace v1 = parc::v1;

namespace {
constexpr int64_t kNow = 1'800'000'000;

class FakeAdmin final : public v1::AdminService::Service {
 public:
  grpc::Status CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest* req,
                           v1::CreateTokenResponse* resp) override {
    Remember(*req);
    resp->set_token("tok-123");
    resp->set_expires_at(kNow + (req->ttl_seconds() ? req->ttl_seconds() : 86400));
    resp->set_ca_fingerprint("ab12cd34");
    resp->set_group(req->group());
    return grpc::Status::OK;
  }
  grpc::Status ListHosts(grpc::ServerContext*, const v1::ListHostsRequest* req, v1::ListHostsResponse* resp) override {
    Remember(*req);
    auto* h = resp->add_hosts();
    h->set_host_id("0123456789abcdef0123");
    h->set_hostname("pc-01");
    h->set_online(true);
    auto* g = resp->add_hosts();
    g->set_host_id("fedcba98765432100000");
    g->set_hostname("pc-02");
    return grpc::Status::OK;
  }
  grpc::Status GetHost(grpc::ServerContext*, const v1::GetHostRequest* req, v1::HostDetail* resp) override {
    Remember(*req);
    if (req->host() != "pc-01") return {grpc::StatusCode::NOT_FOUND, "no host matches '" + req->host() + "'"};
    resp->mutable_summary()->set_host_id("0123456789abcdef0123");
    resp->mutable_summary()->set_hostname("pc-01");
    return grpc::Status::OK;
  }
  grpc::Status RevokeHost(grpc::ServerContext*, const v1::RevokeHostRequest* req, v1::HostDetail* resp) override {
    Remember(*req);
    if (req->host() == "gone") return {grpc::StatusCode::FAILED_PRECONDITION, "host gone is already revoked"};
    resp->mutable_summary()->set_host_id("0123456789abcdef0123");
    resp->mutable_summary()->set_hostname(req->host());
    resp->mutable_summary()->set_revoked(true);
    return grpc::Status::OK;
  }
  grpc::Status GetInventory(grpc::ServerContext*, const v1::GetInventoryRequest* req,
                            v1::GetInventoryResponse* resp) override {
    Remember(*req);
    resp->set_host_id("0123456789abcdef0123");
    auto add = [&](const std::string& section, const std::string& key, const std::string& field, const std::string& v) {
      if (!req->section().empty() && req->section() != section) return;
      auto* item = resp->add_items();
      item->set_section(section);
      item->set_key(key);
      (*item->mutable_fields())[field] = v;
    };
    add("os", "", "pretty_name", "Debian 12");
    add("cpu", "", "model", "Xeon");
    add("disks", "vda", "name", "vda");
    add("software", "bash|amd64", "name", "bash");
    return grpc::Status::OK;
  }
  grpc::Status ExportInventory(grpc::ServerContext*, const v1::ExportInventoryRequest* req,
                               grpc::ServerWriter<v1::InventoryRow>* writer) override {
    Remember(*req);
    for (const char* host : {"h1", "h2"}) {
      v1::InventoryRow row;
      row.set_host_id(host);
      row.set_hostname(std::string("pc-") + host);
      row.mutable_item()->set_section(req->section().empty() ? "software" : req->section());
      row.mutable_item()->set_key("k,1");
      (*row.mutable_item()->mutable_fields())["name"] = "n";
      writer->Write(row);
    }
    if (req->group() == "broken") return {grpc::StatusCode::INTERNAL, "database went away"};
    return grpc::Status::OK;
  }
  grpc::Status CreateGroup(grpc::ServerContext*, const v1::GroupRequest* req, v1::GroupInfo* resp) override {
    Remember(*req);
    if (req->name() == "lab") return {grpc::StatusCode::ALREADY_EXISTS, "group lab exists"};
    resp->set_name(req->name());
    return grpc::Status::OK;
  }
  grpc::Status CollectInventory(grpc::ServerContext*, const v1::CollectInventoryRequest* req,
                                v1::CollectInventoryResponse* resp) override {
    Remember(*req);
    resp->add_sent_to("0123456789abcdef0123");
    resp->add_offline("fedcba98765432100000");
    return grpc::Status::OK;
  }
  grpc::Status ListAudit(grpc::ServerContext*, const v1::ListAuditRequest* req, v1::ListAuditResponse*) override {
    Remember(*req);
    return {grpc::StatusCode::PERMISSION_DENIED, "trainees may not read the audit log"};
  }

  // The requests received, as text, in order (method bodies run on gRPC threads).
  std::vector<std::string> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::string Last() {
    std::lock_guard lock(mu_);
    return requests_.empty() ? "" : requests_.back();
  }

 private:
  void Remember(const google::protobuf::Message& m) {
    std::lock_guard lock(mu_);
    requests_.push_back(m.GetTypeName() + " " + m.ShortDebugString());
  }
  std::mutex mu_;
  std::vector<std::string> requests_;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

class Fixture {
 public:
  Fixture() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&admin);
    server_ = builder.BuildAndStart();
    hooks_.connect = [this](const std::string&) { return server_->InProcessChannel(grpc::ChannelArguments()); };
    hooks_.now = [] { return kNow; };
  }
  ~Fixture() { server_->Shutdown(); }

  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"parcctl", "--server", "parc.example:7443"});
    std::ostringstream out, err;
    int code = parc::ctl::Run(args, out, err, hooks_);
    return {code, out.str(), err.str()};
  }

  FakeAdmin admin;

 private:
  std::unique_ptr<grpc::Server> server_;
  Hooks hooks_;
};

bool Contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }
}  // namespace

TEST_CASE("cli: token create sends group/ttl/comment and prints the enroll line", "[ctl]") {
  Fixture f;
  auto r = f.Run({"token", "create", "--group", "lab", "--ttl", "2h", "--comment", "desk 12"});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(f.admin.Last() == "parc.v1.CreateTokenRequest group: \"lab\" ttl_seconds: 7200 comment: \"desk 12\"");
  CHECK(Contains(r.out, "parc-agent enroll --server parc.example:7443 --token tok-123 --ca-fingerprint ab12cd34\n"));
}

TEST_CASE("cli: a bad --ttl is a usage error and nothing is sent", "[ctl]") {
  Fixture f;
  auto r = f.Run({"token", "create", "--ttl", "2 hours"});
  CHECK(r.code == 2);
  CHECK(r.err.starts_with("parcctl: error: bad --ttl"));
  CHECK(f.admin.Requests().empty());
}

TEST_CASE("cli: parse errors exit 2 and point to the command's help", "[ctl]") {
  Fixture f;
  auto unknown = f.Run({"hosts", "--bogus"});
  CHECK(unknown.code == 2);
  CHECK(Contains(unknown.err, "parcctl hosts --help"));
  CHECK(f.Run({"hosts", "--online", "--offline"}).code == 2);
  CHECK(f.Run({"host"}).code == 2);
  CHECK(f.Run({"host", "show"}).code == 2);
  CHECK(f.Run({"frobnicate"}).code == 2);
  CHECK(f.Run({"collect"}).code == 2);
  CHECK(f.Run({"collect", "pc-01", "--all"}).code == 2);
  CHECK(f.Run({"inventory"}).code == 2);
  CHECK(f.Run({"inventory", "pc-01", "--section", "nope"}).code == 2);
  CHECK(f.Run({"inventory", "export", "--format", "xml"}).code == 2);
  CHECK(f.Run({"history", "pc-01", "--since", "yesterday"}).code == 2);
  CHECK(f.Run({"hosts", "--timeout", "0"}).code == 2);
  CHECK(f.admin.Requests().empty());
}

TEST_CASE("cli: --help and --version succeed and teach", "[ctl]") {
  Fixture f;
  auto help = f.Run({"--help"});
  CHECK(help.code == 0);
  CHECK(Contains(help.out, "parcctl token create --group lab --ttl 2h"));
  CHECK(Contains(help.out, "Exit codes:"));
  auto sub = f.Run({"host", "revoke", "--help"});
  CHECK(sub.code == 0);
  CHECK(Contains(sub.out, "--reason"));
  CHECK(Contains(sub.out, "--server"));
  auto version = f.Run({"--version"});
  CHECK(version.code == 0);
  CHECK(version.out == std::string("parcctl ") + PARC_VERSION + "\n");
}

TEST_CASE("cli: hosts passes filters and prints a table, or JSON with full ids", "[ctl]") {
  Fixture f;
  auto r = f.Run({"hosts", "--group", "lab", "--offline", "--stale", "7d"});
  CHECK(r.code == 0);
  CHECK(f.admin.Last() == "parc.v1.ListHostsRequest group: \"lab\" offline_only: true stale_seconds: 604800");
  CHECK(r.out ==
        "HOST ID   HOSTNAME  STATUS   LAST SEEN  OS  GROUPS\n"
        "01234567  pc-01     online   now\n"
        "fedcba98  pc-02     offline  never\n");

  auto j = f.Run({"--json", "hosts"});
  CHECK(j.code == 0);
  auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["hosts"][0]["host_id"] == "0123456789abcdef0123");
  CHECK(doc["hosts"][1]["online"] == false);
}

TEST_CASE("cli: server errors map to exit codes with the server's message", "[ctl]") {
  Fixture f;
  auto missing = f.Run({"host", "show", "pc-99"});
  CHECK(missing.code == 3);
  CHECK(missing.err == "parcctl: error: no host matches 'pc-99'\n");
  auto revoked = f.Run({"host", "revoke", "gone"});
  CHECK(revoked.code == 4);
  auto exists = f.Run({"group", "create", "lab"});
  CHECK(exists.code == 6);
  CHECK(exists.err == "parcctl: error: group lab exists\n");
  CHECK(f.Run({"audit", "--since", "1d", "--limit", "5"}).code == 4);
  CHECK(f.admin.Last() == "parc.v1.ListAuditRequest since: " + std::to_string(kNow - 86400) + " limit: 5");
}

TEST_CASE("cli: revoke acts at once and says so", "[ctl]") {
  Fixture f;
  auto r = f.Run({"host", "revoke", "pc-01", "--reason", "stolen"});
  CHECK(r.code == 0);
  CHECK(f.admin.Last() == "parc.v1.RevokeHostRequest host: \"pc-01\" reason: \"stolen\"");
  CHECK(Contains(r.out, "revoked host 0123456789abcdef0123 (pc-01): stolen"));
}

TEST_CASE("cli: inventory asks for one section or filters an alias", "[ctl]") {
  Fixture f;
  auto one = f.Run({"inventory", "pc-01", "--section", "software"});
  CHECK(one.code == 0);
  CHECK(f.admin.Last() == "parc.v1.GetInventoryRequest host: \"pc-01\" section: \"software\"");
  CHECK(one.out == "NAME\nbash\n");

  auto alias = f.Run({"inventory", "pc-01", "--section", "hardware", "--json"});
  CHECK(alias.code == 0);
  CHECK(f.admin.Last() == "parc.v1.GetInventoryRequest host: \"pc-01\"");
  auto doc = nlohmann::json::parse(alias.out);
  std::vector<std::string> sections;
  for (const auto& item : doc["items"]) sections.push_back(item["section"]);
  CHECK(sections == std::vector<std::string>{"cpu", "disks"});
}

TEST_CASE("cli: export streams CSV to a file, complete or not at all", "[ctl]") {
  Fixture f;
  parc::test::TempDir dir;
  auto file = (dir / "sw.csv").string();
  auto r = f.Run({"inventory", "export", "--section", "software", "--output", file});
  CHECK(r.code == 0);
  CHECK(f.admin.Last() == "parc.v1.ExportInventoryRequest section: \"software\"");
  std::string csv = parc::test::ReadFileOrEmpty(file);
  CHECK(csv.starts_with("host_id,hostname,section,key,name,architecture,version,"));
  CHECK(Contains(csv, "\r\nh1,pc-h1,software,\"k,1\",n,"));
  CHECK(Contains(r.err, "exported 2 row(s)"));

  auto broken_file = (dir / "broken.csv").string();
  auto broken = f.Run({"inventory", "export", "--group", "broken", "--output", broken_file});
  CHECK(broken.code == 1);
  CHECK(Contains(broken.err, "database went away"));
  CHECK_FALSE(std::filesystem::exists(broken_file));
  CHECK_FALSE(std::filesystem::exists(broken_file + ".partial"));
}

TEST_CASE("cli: export of an alias makes one request per section, --json means JSON", "[ctl]") {
  Fixture f;
  auto r = f.Run({"--json", "inventory", "export", "--section", "storage"});
  CHECK(r.code == 0);
  auto requests = f.admin.Requests();
  CHECK(requests == std::vector<std::string>{"parc.v1.ExportInventoryRequest section: \"disks\"",
                                             "parc.v1.ExportInventoryRequest section: \"filesystems\""});
  auto doc = nlohmann::json::parse(r.out);
  REQUIRE(doc.size() == 4);
  CHECK(doc[3]["section"] == "filesystems");
}

TEST_CASE("cli: collect reports reached and offline hosts by name", "[ctl]") {
  Fixture f;
  auto r = f.Run({"collect", "--group", "lab", "--full"});
  CHECK(r.code == 0);
  CHECK(f.admin.Requests().front() == "parc.v1.CollectInventoryRequest group: \"lab\" full: true");
  CHECK(Contains(r.out, "01234567 (pc-01)"));
  CHECK(Contains(r.out, "offline"));
  CHECK(Contains(r.out, "fedcba98 (pc-02)"));
}

TEST_CASE("cli: an unreachable server exits 5 with a hint", "[ctl]") {
  Hooks hooks;
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  hooks.connect = [](const std::string& server) { return grpc::CreateChannel(server, grpc::InsecureChannelCredentials()); };
  std::ostringstream out, err;
  int code = parc::ctl::Run({"parcctl", "hosts", "--server", "127.0.0.1:1", "--timeout", "5"}, out, err, hooks);
  CHECK(code == 5);
  CHECK(err.str().starts_with("parcctl: error: "));
  CHECK(Contains(err.str(), "parcctl: hint: is parc-server running on 127.0.0.1:1?"));
}

TEST_CASE("cli: the server address falls back to $PARC_SERVER", "[ctl]") {
  Hooks hooks;
  std::string used;
  hooks.connect = [&](const std::string& server) {
    used = server;
    return grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  };
  setenv("PARC_SERVER", "from-env:7443", 1);
  std::ostringstream out, err;
  parc::ctl::Run({"parcctl", "hosts", "--timeout", "5"}, out, err, hooks);
  CHECK(used == "from-env:7443");
  parc::ctl::Run({"parcctl", "hosts", "--server", "flag:1", "--timeout", "5"}, out, err, hooks);
  CHECK(used == "flag:1");
  unsetenv("PARC_SERVER");
}
