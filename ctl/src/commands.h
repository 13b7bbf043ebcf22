// The command handlers behind the parsed command line: validate locally,
// connect, call the admin API, print for people or as JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "connection.h"
#include "parc/ctl/render.h"

namespace parc::ctl {

// Everything the command line can set; each command reads what it needs.
struct Options {
  ConnectionOptions connection;
  bool json = false;
  bool wide = false;

  std::string host;
  std::string group;
  std::string ttl;
  std::string comment;
  std::string reason;
  std::string section;
  std::string format;
  std::string output;
  std::string since;
  std::string stale;
  std::string name;
  std::string description;
  bool online = false;
  bool offline = false;
  bool all = false;
  bool full = false;
  uint32_t limit = 0;

  // Local package commands (package_local.cc).
  std::string path;                // package file or build directory
  std::string key;                 // --key FILE (private key)
  std::string expires = "365d";
  std::string dir;                 // key create --dir
  std::vector<std::string> trust;  // --trust FILE (public keys), repeatable
};

class Commands {
 public:
  Commands(const Options& options, std::ostream& out, std::ostream& err, const Hooks& hooks);

  int TokenCreate();
  int Hosts();
  int HostShow();
  int HostRevoke();
  int Inventory();
  int InventoryExport();
  int History();
  int GroupCreate();
  int GroupList();
  int GroupAdd();
  int GroupRemove();
  int Duplicates();
  int Collect();
  int Audit();

  // Local: no server needed (package_local.cc).
  int KeyCreate();
  int PackageBuild();
  int PackageSign();
  int PackageVerify();

 private:
  // Non-zero exit code if the connection could not be set up.
  int Connect();
  int UsageError(const std::string& message);
  int LocalError(const Error& error, int exit_code);
  int RpcFailed(const grpc::Status& status);
  // Prints `message` as JSON with --json, else what `human` renders.
  int Emit(const google::protobuf::Message& message, const std::function<std::string()>& human);
  HostNames FetchHostNames();
  RenderOptions Render() const;
  int GroupMembership(bool add);

  const Options& o_;
  std::ostream& out_;
  std::ostream& err_;
  const Hooks& hooks_;
  int64_t now_;
  std::optional<Connection> conn_;
};

}  // namespace parc::ctl
