// The admin API channel: mutual TLS with the admin certificate, server address
// and credentials file resolved from flags, environment and the file itself.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <ostream>
#include <string>

#include "parc/common/error.h"
#include "parc/ctl/cli.h"
#include "parc/v1/admin.grpc.pb.h"

namespace parc::ctl {

struct ConnectionOptions {
  std::string server;       // --server, else $PARC_SERVER, else "# server:" of the credentials
  std::string credentials;  // --credentials, else $PARC_CREDENTIALS, else the default path
  std::string server_name;  // TLS name override
  int timeout_seconds = 30;
};

class Connection {
 public:
  static Expected<Connection> Open(const ConnectionOptions& options, const Hooks& hooks);

  v1::AdminService::Stub& stub() { return *stub_; }
  const std::string& server() const { return server_; }
  const std::string& credentials_path() const { return credentials_path_; }
  int timeout_seconds() const { return timeout_seconds_; }

  // For single answers: the whole call must finish within --timeout.
  void SetDeadline(grpc::ClientContext& context) const;
  // For streams, which may rightly take longer than --timeout on a large fleet:
  // only the connection must come up within --timeout. Returns false if it did
  // not (the caller then sets a deadline so the call fails with the real reason).
  bool WaitUntilConnected() const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
  std::string server_;
  std::string credentials_path_;
  int timeout_seconds_ = 30;
};

}  // namespace parc::ctl
