// What the boot server answers (iPXE scripts, boot files, answer files with a
// fresh enrollment token) and what NetbootService shows of it, on top of the
// netboot store, the content store and the token mechanism of AdminService.
// HTTP-library free: netboot_http.cc maps a BootReply onto cpp-httplib.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "netboot_render.h"
#include "parc/server/netboot_store.h"
#include "services.h"

namespace parc::server {

struct BootReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::filesystem::path file;  // set: stream this file (size bytes) instead of body
  uint64_t size = 0;
};

// Where the boot server is reachable, fixed once its listeners are bound.
struct BootUrls {
  std::string https;   // https://NAME:PORT, "" = HTTPS listener off
  std::string http;    // http://NAME:PORT, "" = plain listener off
  std::string enroll;  // HOST:PORT of the gRPC server, for parc-agent enroll
};

class NetbootCore {
 public:
  NetbootCore(ServerState& state, NetbootStore& store) : state_(state), store_(store) {}
  void SetUrls(BootUrls urls) { urls_ = std::move(urls); }
  const BootUrls& urls() const { return urls_; }
  NetbootStore& store() { return store_; }

  // GET /boot/MAC.ipxe. ipxe_client: the User-Agent is iPXE's, which runs a
  // script only from a 2xx answer, so an unknown MAC gets its instructions
  // with 200 there (404 for everyone else).
  BootReply Script(const std::string& mac_text, bool https, bool ipxe_client);
  // GET /boot/files/ASSET/NAME.
  BootReply File(const std::string& asset, const std::string& name);
  // GET /answer/MAC/FILE: mints a token, disarms the machine, audits.
  BootReply Answer(const std::string& mac_text, const std::string& file, bool https, const std::string& peer);

  // The same answer file with a placeholder token and nothing changed.
  Expected<std::string> Preview(const NetbootHostRecord& host, const std::string& file);
  // The template in force for an os: the admin's, else the shipped default.
  Expected<NetbootTemplateRecord> EffectiveTemplate(const std::string& os);
  // armed, installing, enrolled or idle.
  static std::string State(const NetbootHostRecord& host, int64_t now);
  static netboot::HostSpec Spec(const NetbootHostRecord& host);
  // Makes the group exist (as token create does).
  ExpectedVoid EnsureGroup(const std::string& group, const PeerIdentity& who);

 private:
  Expected<std::string> RenderAnswer(const NetbootHostRecord& host, const std::string& file, const std::string& token,
                                     int64_t token_expires_at);
  Expected<std::string> RenderScript(const NetbootHostRecord& host, const std::string& files_base);
  ServerState& state_;
  NetbootStore& store_;
  BootUrls urls_;
};

}  // namespace parc::server
