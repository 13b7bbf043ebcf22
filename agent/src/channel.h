// TLS channels from the agent to the server.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace parc::agent {

struct ChannelOptions {
  std::string server;       // host:port
  std::string server_name;  // TLS name to verify; "" = host part of server
  std::string ca_pem;       // the only CA trusted
  std::string key_pem;      // client key ("" before enrollment)
  std::string cert_pem;     // client certificate ("" before enrollment)
  // Give this channel its own connection even if another channel in the process
  // has the same target (the load tool simulates many agents in one process).
  bool own_connection = false;
};

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options);

}  // namespace parc::agent
