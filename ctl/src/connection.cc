#include "connection.h"

#include <cstdlib>

#include "parc/ctl/credentials.h"

namespace parc::ctl {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

Expected<Connection> Connection::Open(const ConnectionOptions& options, const Hooks& hooks) {
  Connection c;
  c.timeout_seconds_ = options.timeout_seconds;
  c.server_ = !options.server.empty() ? options.server : Env("PARC_SERVER");
  c.credentials_path_ = !options.credentials.empty() ? options.credentials : Env("PARC_CREDENTIALS");
  if (c.credentials_path_.empty()) c.credentials_path_ = kDefaultCredentialsPath;

  if (hooks.connect) {
    if (c.server_.empty()) return Fail(Errc::kInvalidArgument, "no server address: pass --server HOST:PORT");
    c.channel_ = hooks.connect(c.server_);
  } else {
    auto creds = LoadCredentials(c.credentials_path_);
    if (!creds) return Fail(creds.error());
    if (c.server_.empty()) c.server_ = creds->server;
    if (c.server_.empty())
      return Fail(Errc::kInvalidArgument, "no server address: pass --server HOST:PORT or set PARC_SERVER (" +
                                              c.credentials_path_ + " has no '# server:' line)");
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = creds->ca_pem;
    tls.pem_private_key = creds->private_key_pem;
    tls.pem_cert_chain = creds->certificate_pem;
    grpc::ChannelArguments args;
    if (!options.server_name.empty()) args.SetSslTargetNameOverride(options.server_name);
    c.channel_ = grpc::CreateCustomChannel(c.server_, grpc::SslCredentials(tls), args);
  }
  c.stub_ = v1::AdminService::NewStub(c.channel_);
  return c;
}

void Connection::SetDeadline(grpc::ClientContext& context) const {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds_));
}

bool Connection::WaitUntilConnected() const {
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds_);
  grpc_connectivity_state state = channel_->GetState(true);
  while (state != GRPC_CHANNEL_READY) {
    // A failed attempt will not get better by waiting; let the call report why.
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    if (!channel_->WaitForStateChange(state, deadline)) return false;
    state = channel_->GetState(true);
  }
  return true;
}

}  // namespace parc::ctl
