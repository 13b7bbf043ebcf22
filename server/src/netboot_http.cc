// cpp-httplib adapter: the only file that sees the HTTP library. Its handlers
// do not throw (NetbootCore returns replies); the thread start is guarded.
#include "netboot_http.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <fstream>
#include <memory>
#include <system_error>
#include <thread>

#include "parc/common/files.h"
#include "parc/common/log.h"

namespace parc::server {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// Key and chain from memory (the PEMs BootstrapPki loaded), TLS 1.2 at least.
bool SetupTls(SSL_CTX& ctx, const std::string& key_pem, const std::string& chain_pem) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  std::unique_ptr<BIO, BioFree> chain(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  if (!chain) return false;
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(&ctx, leaf.get()) != 1) return false;
  while (X509* extra = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(&ctx, extra) != 1) {  // takes ownership on success only
      X509_free(extra);
      return false;
    }
  }
  ERR_clear_error();  // the end of the PEM stream reads as an error
  std::unique_ptr<BIO, BioFree> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  if (!key_bio) return false;
  std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key || SSL_CTX_use_PrivateKey(&ctx, key.get()) != 1) return false;
  return SSL_CTX_check_private_key(&ctx) == 1;
}

bool ParseFirst(const std::string& path, const std::string& prefix, std::string& rest) {
  if (path.compare(0, prefix.size(), prefix) != 0) return false;
  rest = path.substr(prefix.size());
  return true;
}

void Apply(const BootReply& reply, httplib::Response& res) {
  res.status = reply.status;
  res.set_header("Cache-Control", "no-store");
  if (reply.file.empty()) {
    res.set_content(reply.body, reply.content_type.c_str());
    return;
  }
  auto in = std::make_shared<std::ifstream>(reply.file, std::ios::binary);
  if (!*in) {
    res.status = 500;
    res.set_content("cannot read the boot file\n", "text/plain");
    return;
  }
  res.set_content_provider(
      static_cast<size_t>(reply.size), reply.content_type,
      [in](size_t offset, size_t length, httplib::DataSink& sink) {
        char buffer[64 * 1024];
        in->clear();
        in->seekg(static_cast<std::streamoff>(offset));
        size_t want = std::min(length, sizeof buffer);
        in->read(buffer, static_cast<std::streamsize>(want));
        auto got = static_cast<size_t>(in->gcount());
        if (got == 0) return false;
        return sink.write(buffer, got);
      });
}

}  // namespace

struct BootHttpServer::Impl {
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int port = 0;
};

Expected<std::pair<std::string, int>> SplitListenAddress(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= listen.size())
    return Fail(Errc::kInvalidArgument, "listen address '" + listen + "' needs address:port");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) return Fail(Errc::kInvalidArgument, "bad port in listen address '" + listen + "'");
  return std::make_pair(host, port);
}

Expected<std::unique_ptr<BootHttpServer>> BootHttpServer::Start(NetbootCore& core, const std::string& listen,
                                                                bool https, const std::string& key_pem,
                                                                const std::string& chain_pem) {
  auto address = SplitListenAddress(listen);
  if (!address) return Fail(address.error());
  auto impl = std::make_unique<Impl>();
  if (https) {
    auto tls = std::make_unique<httplib::SSLServer>(
        [&](SSL_CTX& ctx) { return SetupTls(ctx, key_pem, chain_pem); });
    if (!tls->is_valid()) return Fail(Errc::kCrypto, "cannot set up TLS for the boot server");
    impl->server = std::move(tls);
  } else {
    impl->server = std::make_unique<httplib::Server>();
  }
  httplib::Server& s = *impl->server;
  s.set_read_timeout(15, 0);
  s.set_write_timeout(60, 0);
  s.set_payload_max_length(64 * 1024);
  s.set_keep_alive_max_count(20);
  s.set_logger([https](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("boot {} {} {} -> {} ({})", https ? "https" : "http", req.method, req.path, res.status,
                  req.remote_addr);
  });
  s.Get(".*", [&core, https](const httplib::Request& req, httplib::Response& res) {
    const std::string& path = req.path;
    std::string rest;
    BootReply reply;
    if (ParseFirst(path, "/boot/files/", rest)) {
      auto slash = rest.find('/');
      if (slash == std::string::npos) reply = {404, "text/plain", "expected /boot/files/ASSET/FILE\n", {}, 0};
      else reply = core.File(rest.substr(0, slash), rest.substr(slash + 1));
    } else if (ParseFirst(path, "/boot/", rest) && rest.size() > 5 && rest.ends_with(".ipxe")) {
      bool ipxe = req.get_header_value("User-Agent").find("iPXE") != std::string::npos;
      reply = core.Script(rest.substr(0, rest.size() - 5), https, ipxe);
    } else if (ParseFirst(path, "/answer/", rest)) {
      auto slash = rest.find('/');
      if (slash == std::string::npos) reply = {404, "text/plain", "expected /answer/MAC/FILE\n", {}, 0};
      else reply = core.Answer(rest.substr(0, slash), rest.substr(slash + 1), https, req.remote_addr);
    } else {
      reply = {404, "text/plain",
               "Parc boot server. Routes: /boot/MAC.ipxe, /boot/files/ASSET/FILE, /answer/MAC/FILE (HTTPS only)\n",
               {}, 0};
    }
    Apply(reply, res);
  });

  if (address->second == 0) {
    impl->port = s.bind_to_any_port(address->first);
  } else {
    impl->port = s.bind_to_port(address->first, address->second) ? address->second : -1;
  }
  if (impl->port <= 0)
    return Fail(Errc::kUnavailable, "boot server cannot listen on " + listen + " (address in use, or not allowed?)");
  try {
    impl->thread = std::thread([server = impl->server.get()] { server->listen_after_bind(); });
  } catch (const std::system_error& e) {
    return Fail(Errc::kResourceExhausted, std::string("cannot start the boot server thread: ") + e.what());
  }
  return std::unique_ptr<BootHttpServer>(new BootHttpServer(std::move(impl)));
}

BootHttpServer::BootHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BootHttpServer::~BootHttpServer() { Stop(); }

int BootHttpServer::port() const { return impl_->port; }

void BootHttpServer::Stop() {
  if (!impl_ || !impl_->server) return;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Expected<BootServers> StartBootServers(const ServerConfig& config, NetbootCore& core, const std::string& key_pem,
                                       const std::string& chain_pem, const std::string& advertise) {
  BootServers servers;
  BootUrls urls;
  urls.enroll = advertise;
  std::string host = advertise.substr(0, advertise.rfind(':'));
  if (!config.boot_listen.empty()) {
    auto s = BootHttpServer::Start(core, config.boot_listen, true, key_pem, chain_pem);
    if (!s) return Fail(s.error());
    servers.https = std::move(*s);
    urls.https = config.boot_url.empty() ? "https://" + host + ":" + std::to_string(servers.https->port())
                                         : config.boot_url;
  }
  if (!config.boot_http_listen.empty()) {
    auto s = BootHttpServer::Start(core, config.boot_http_listen, false, "", "");
    if (!s) return Fail(s.error());
    servers.http = std::move(*s);
    urls.http = config.boot_http_url.empty() ? "http://" + host + ":" + std::to_string(servers.http->port())
                                             : config.boot_http_url;
  }
  while (!urls.https.empty() && urls.https.back() == '/') urls.https.pop_back();
  while (!urls.http.empty() && urls.http.back() == '/') urls.http.pop_back();
  if (servers.http && !servers.https)
    spdlog::warn("netboot: plain HTTP boot listener without HTTPS: machines can boot, but no answer file "
                 "(they are only served over HTTPS)");
  core.SetUrls(urls);
  if (servers.https || servers.http) {
    spdlog::info("netboot: boot server {}{}{}", urls.https, urls.https.empty() || urls.http.empty() ? "" : " and ",
                 urls.http);
    (void)WriteFileAtomic(config.state_dir / "boot.addr", urls.https + "\n" + urls.http + "\n", 0644);
  }
  return servers;
}

}  // namespace parc::server
