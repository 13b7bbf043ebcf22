// parc-fetch-bench: the transfer half of a deployment alone. N parallel
// AgentService.GetContent streams of one content object, each over its own
// mutual-TLS connection with an enrolled agent's credentials, the bytes
// thrown away (like `curl -o /dev/null`) or hashed on the way (--hash, as the
// agent does). Used by push_vs_nginx.sh to compare GetContent with curl on the
// same bytes, and to measure channel settings.
//
//   parc-fetch-bench [options] SHA256 STATE_DIR...
//     -n N            streams (default: one per state dir), state dirs reused round-robin
//     --bulk          the agent's content channel profile (MakeChannel bulk = true)
//     --frame BYTES   override grpc.tsi.max_frame_size (client side)
//     --bdp 0|1       override BDP probing
//     --hash          SHA-256 every byte and check it against SHA256
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent_config.h"
#include "channel.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/v1/agent.grpc.pb.h"

using namespace parc;
using Clock = std::chrono::steady_clock;

namespace {

struct Creds {
  agent::ChannelOptions options;
};

bool LoadCreds(const std::string& state, Creds& out) {
  agent::AgentConfig c;
  c.state_dir = state;
  auto e = agent::LoadEnrollment(c);
  auto key = ReadFile(c.key_path());
  auto cert = ReadFile(c.cert_path());
  auto ca = ReadFile(c.ca_path());
  if (!e || !key || !cert || !ca) return false;
  out.options.server = e->server;
  out.options.server_name = e->server_name;
  out.options.key_pem = *key;
  out.options.cert_pem = *cert;
  out.options.ca_pem = *ca;
  out.options.own_connection = true;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 0;
  bool bulk = false, hash = false;
  int frame = -1, bdp = -1;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-n" && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (a == "--bulk") bulk = true;
    else if (a == "--hash") hash = true;
    else if (a == "--frame" && i + 1 < argc) frame = std::atoi(argv[++i]);
    else if (a == "--bdp" && i + 1 < argc) bdp = std::atoi(argv[++i]);
    else pos.push_back(a);
  }
  if (pos.size() < 2) {
    std::fprintf(stderr, "usage: %s [-n N] [--bulk] [--frame B] [--bdp 0|1] [--hash] SHA256 STATE_DIR...\n", argv[0]);
    return 2;
  }
  std::string sha = pos[0];
  std::vector<Creds> creds(pos.size() - 1);
  for (size_t i = 1; i < pos.size(); ++i)
    if (!LoadCreds(pos[i], creds[i - 1])) return std::fprintf(stderr, "cannot load credentials from %s\n", pos[i].c_str()), 1;
  if (n <= 0) n = static_cast<int>(creds.size());

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    auto o = creds[static_cast<size_t>(i) % creds.size()].options;
    o.bulk = bulk;
    o.tsi_frame_override = frame;
    o.bdp_override = bdp;
    channels.push_back(agent::MakeChannel(o));
    // Connect first: the timed part is the transfer, as curl's connect is tiny.
    channels.back()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }
  std::atomic<uint64_t> bytes{0};
  std::atomic<int> failed{0};
  std::vector<double> secs(static_cast<size_t>(n));
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto s0 = Clock::now();
      auto stub = v1::AgentService::NewStub(channels[static_cast<size_t>(i)]);
      grpc::ClientContext ctx;
      v1::GetContentRequest req;
      req.set_sha256(sha);
      auto reader = stub->GetContent(&ctx, req);
      v1::ContentChunk chunk;
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
      EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
      uint64_t got = 0;
      while (reader->Read(&chunk)) {
        if (hash) EVP_DigestUpdate(md.get(), chunk.data().data(), chunk.data().size());
        got += chunk.data().size();
      }
      auto st = reader->Finish();
      if (!st.ok()) {
        std::fprintf(stderr, "stream %d: %s\n", i, st.error_message().c_str());
        ++failed;
      }
      if (hash) {
        unsigned char d[32];
        unsigned int len = 0;
        EVP_DigestFinal_ex(md.get(), d, &len);
        if (HexEncode(std::string_view(reinterpret_cast<char*>(d), len)) != sha) ++failed;
      }
      bytes += got;
      secs[static_cast<size_t>(i)] = std::chrono::duration<double>(Clock::now() - s0).count();
    });
  }
  for (auto& t : threads) t.join();
  double total = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%d streams, %llu bytes, %.2f s, %.1f MiB/s aggregate, %d failed\n", n,
              static_cast<unsigned long long>(bytes.load()), total, static_cast<double>(bytes.load()) / (1 << 20) / total,
              failed.load());
  return failed ? 1 : 0;
}
