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
  // A channel for bulk content (GetContent): a connection of its own, closed
  // with the channel (see channel.cc for what was measured).
  bool bulk = false;
  // Benchmarks only: override the profile's TSI frame size / BDP probing (-1 = profile).
  int tsi_frame_override = -1;
  int bdp_override = -1;
};

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options);

}  // namespace parc::agent
