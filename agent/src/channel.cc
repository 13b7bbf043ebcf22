#include "channel.h"

namespace parc::agent {

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& o) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = o.ca_pem;
  ssl.pem_private_key = o.key_pem;
  ssl.pem_cert_chain = o.cert_pem;
  grpc::ChannelArguments args;
  if (!o.server_name.empty()) args.SetSslTargetNameOverride(o.server_name);
  // The agent runs its own reconnect loop with jitter; keep gRPC's quick.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 300000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  // BDP probing makes the server answer pings on every data burst; an agent
  // sends little, so it only costs server CPU.
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt("grpc.tsi.max_frame_size", 4096);
  if (o.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  return grpc::CreateCustomChannel(o.server, grpc::SslCredentials(ssl), args);
}

}  // namespace parc::agent
