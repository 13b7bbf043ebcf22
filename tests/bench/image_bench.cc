// parc-image-bench: the imaging library driven from the command line for
// image_vs_casync.sh (timed from outside, like casync), plus the chunker
// alone, timed inside on one core.
//
//   parc-image-bench chunker [--mb N] [FILE...]
//   parc-image-bench capture-tree|capture-block SRC STORE OUT [--reuse PREV] [--key KEYFILE] [--inline-max N] [--zstd-level L]
//   parc-image-bench deploy-tree|deploy-block OUT STORE TARGET
//   parc-image-bench diff A B STORE
//
// OUT is a prefix: OUT.manifest.json, OUT.sig, OUT.pub. Every command but
// chunker prints one JSON object on stdout.
#include <time.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/imaging/capture.h"
#include "parc/imaging/deploy.h"
#include "parc/imaging/inspect.h"

using namespace parc;
using namespace parc::imaging;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double ThreadCpu() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}
double Wall() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int Die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "parc-image-bench: %s: %s\n", what.c_str(), e.message().c_str());
  return 1;
}

// One core: wall and thread CPU time (the machine is shared; CPU time is the
// per-core figure), best of 5.
int ChunkerBench(size_t mb, const std::vector<std::string>& files) {
  std::vector<std::pair<std::string, std::string>> inputs;
  std::string random(mb << 20, '\0');
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= random.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(random.data() + i, &v, 8);
  }
  inputs.emplace_back("random " + std::to_string(mb) + " MiB", std::move(random));
  for (const auto& f : files) {
    auto d = ReadFile(f);
    if (!d) return Die(f, d.error());
    inputs.emplace_back(f, std::move(*d));
  }
  for (const auto& [name, data] : inputs) {
    double best_wall = 1e9, best_cpu = 1e9;
    size_t chunks = 0;
    for (int rep = 0; rep < 5; ++rep) {
      double w0 = Wall(), c0 = ThreadCpu();
      chunks = ChunkLengths(data).size();
      best_cpu = std::min(best_cpu, ThreadCpu() - c0);
      best_wall = std::min(best_wall, Wall() - w0);
    }
    double sha_cpu = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      double c0 = ThreadCpu();
      (void)Sha256(data);
      sha_cpu = std::min(sha_cpu, ThreadCpu() - c0);
    }
    double gb = static_cast<double>(data.size()) / 1e9;
    std::printf("%-40s chunker %.2f GB/s per core (CPU time; wall %.2f GB/s), %zu chunks, mean %.0f bytes; SHA-256 %.2f GB/s\n",
                name.c_str(), gb / best_cpu, gb / best_wall, chunks, static_cast<double>(data.size()) / chunks, gb / sha_cpu);
  }
  return 0;
}

Expected<pkg::KeyPair> Key(const std::string& file) {
  if (PathExists(file)) return pkg::LoadPrivateKey(file);
  auto k = pkg::GenerateKey(fs::path(file).stem().string());
  if (!k) return k;
  if (auto w = pkg::WriteKeyPair(*k, fs::path(file).parent_path()); !w) return Fail(w.error());
  return k;
}

struct Loaded {
  std::string json, sig;
  pkg::PublicKey pub;
};
Expected<Loaded> LoadOut(const std::string& out) {
  Loaded l;
  auto j = ReadFile(out + ".manifest.json");
  if (!j) return Fail(j.error());
  auto s = ReadFile(out + ".sig");
  if (!s) return Fail(s.error());
  auto p = ReadFile(out + ".pub");
  if (!p) return Fail(p.error());
  auto pub = pkg::ParsePublicKey(*p);
  if (!pub) return Fail(pub.error());
  l.json = *j;
  l.sig = *s;
  l.pub = *pub;
  return l;
}

Expected<Image> LoadOutImage(const std::string& out, ChunkStore& store) {
  auto j = ReadFile(out + ".manifest.json");
  if (!j) return Fail(j.error());
  auto m = ParseManifest(*j);
  if (!m) return Fail(m.error());
  return LoadImage(*m, store, nullptr);
}

int Capture(bool tree, const std::string& src, const std::string& store_dir, const std::string& out, const std::string& reuse,
            const std::string& key_file, uint32_t inline_max, int zstd_level) {
  auto key = Key(key_file);
  if (!key) return Die("key", key.error());
  auto store = DirChunkStore::Open(store_dir);
  if (!store) return Die("store", store.error());
  CaptureOptions o;
  o.name = "bench";
  o.version = "1";
  o.inline_max = inline_max;
  o.zstd_level = zstd_level;
  std::optional<Image> previous;
  if (!reuse.empty()) {
    auto p = LoadOutImage(reuse, **store);
    if (!p) return Die("reuse", p.error());
    previous = std::move(*p);
    o.reuse = {&*previous};
  }
  double t0 = Wall();
  auto r = tree ? CaptureTree(src, **store, o) : CaptureBlock(src, **store, o);
  double t1 = Wall();
  if (!r) return Die("capture", r.error());
  int64_t now = NowUnix();
  auto s = SignManifest(r->image.manifest, *key, now, now + 30 * 86400);
  if (!s) return Die("sign", s.error());
  if (auto w = WriteFileAtomic(out + ".manifest.json", s->json); !w) return Die("write", w.error());
  if (auto w = WriteFileAtomic(out + ".sig", s->signature); !w) return Die("write", w.error());
  if (auto w = WriteFileAtomic(out + ".pub", key->public_key.Pem()); !w) return Die("write", w.error());
  uint64_t body_stored = 0;
  for (const auto& c : s->manifest.body_chunks) body_stored += c.stored_size;
  json j{{"seconds", t1 - t0},
         {"read_bytes", r->read_bytes},
         {"size", s->manifest.size},
         {"entries", s->manifest.entries},
         {"chunks", s->manifest.chunks},
         {"stored_size", s->manifest.stored_size},
         {"body_size", s->manifest.body_size},
         {"body_chunks", s->manifest.body_chunks.size()},
         {"body_stored", body_stored},
         {"manifest_bytes", s->json.size()},
         {"compressed", r->chunks_compressed},
         {"reused", r->chunks_reused},
         {"objects_written", r->objects_written},
         {"bytes_written", r->bytes_written},
         {"notes", r->notes.size()}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int Deploy(bool tree, const std::string& out, const std::string& store_dir, const std::string& target) {
  auto l = LoadOut(out);
  if (!l) return Die("load", l.error());
  auto store = DirChunkStore::Open(store_dir);
  if (!store) return Die("store", store.error());
  DeployOptions o;
  o.trusted = {l->pub};
  // Wall seconds per phase ("fetch", "write", "sync", "verify", ...), from its first report to the next phase's.
  json phases = json::object();
  std::string phase;
  double phase_start = 0;
  o.progress = [&](const imaging::Progress& p) {
    if (p.phase != phase) {
      double t = Wall();
      if (!phase.empty()) phases[phase] = phases.value(phase, 0.0) + (t - phase_start);
      phase = std::string(p.phase);
      phase_start = t;
    }
    return true;
  };
  double t0 = Wall();
  auto r = tree ? DeployTree(l->json, l->sig, target, **store, nullptr, o) : DeployBlock(l->json, l->sig, target, **store, nullptr, o);
  double t1 = Wall();
  if (!phase.empty()) phases[phase] = phases.value(phase, 0.0) + (t1 - phase_start);
  if (!r) return Die("deploy", r.error());
  if (tree)
    if (auto c = CommitTree(target); !c) return Die("commit", c.error());
  json j{{"seconds", t1 - t0},         {"chunks", r->chunks},     {"from_cache", r->from_cache},
         {"written_bytes", r->written_bytes}, {"verified_bytes", r->verified_bytes},
         {"phases", phases}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int Diff(const std::string& a, const std::string& b, const std::string& store_dir) {
  auto store = DirChunkStore::Open(store_dir);
  if (!store) return Die("store", store.error());
  auto ia = LoadOutImage(a, **store);
  if (!ia) return Die(a, ia.error());
  auto ib = LoadOutImage(b, **store);
  if (!ib) return Die(b, ib.error());
  ImageDiff d = DiffImages(*ia, *ib);
  std::unordered_set<Digest, DigestHash> had;
  for (const auto& c : ia->manifest.body_chunks) had.insert(c.object);
  uint64_t body_chunks = 0, body_bytes = 0;
  for (const auto& c : ib->manifest.body_chunks)
    if (!had.contains(c.object)) ++body_chunks, body_bytes += c.stored_size;
  auto manifest = ReadFile(b + ".manifest.json");
  json j{{"added", d.added.size()},
         {"removed", d.removed.size()},
         {"changed", d.changed.size()},
         {"added_bytes", d.added_bytes},
         {"changed_bytes", d.changed_bytes},
         {"chunks_to_transfer", d.chunks_to_transfer},
         {"bytes_to_transfer", d.bytes_to_transfer},
         {"index_chunks_to_transfer", body_chunks},
         {"index_bytes_to_transfer", body_bytes},
         {"manifest_bytes", manifest ? manifest->size() : 0}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Parc imaging benchmark driver"};
  app.require_subcommand(1);
  size_t mb = 512;
  std::vector<std::string> files;
  auto* chunker = app.add_subcommand("chunker", "the chunker alone, one core");
  chunker->add_option("--mb", mb, "MiB of random data");
  chunker->add_option("files", files, "also cut these files");
  std::string src, store, out, reuse, key = "/var/tmp/parc-image-bench/bench.key", target, a, b;
  uint32_t inline_max = 4096;
  int zstd_level = imaging::CaptureOptions{}.zstd_level;
  auto capture = [&](const char* name) {
    auto* c = app.add_subcommand(name, "capture into a store");
    c->add_option("src", src)->required();
    c->add_option("store", store)->required();
    c->add_option("out", out)->required();
    c->add_option("--reuse", reuse, "earlier image (OUT prefix) in the same store");
    c->add_option("--key", key, "publisher key file (created if missing)");
    c->add_option("--inline-max", inline_max, "tree: files up to this size live in the index (default 4096)");
    c->add_option("--zstd-level", zstd_level, "zstd level of chunks and index (default: CaptureOptions, 5)");
    return c;
  };
  auto* ct = capture("capture-tree");
  auto* cb = capture("capture-block");
  auto deploy = [&](const char* name) {
    auto* d = app.add_subcommand(name, "deploy from a local store");
    d->add_option("out", out)->required();
    d->add_option("store", store)->required();
    d->add_option("target", target)->required();
    return d;
  };
  auto* dt = deploy("deploy-tree");
  auto* db = deploy("deploy-block");
  auto* diff = app.add_subcommand("diff", "what deploying B costs a machine that has A");
  diff->add_option("a", a)->required();
  diff->add_option("b", b)->required();
  diff->add_option("store", store)->required();
  CLI11_PARSE(app, argc, argv);
  if (chunker->parsed()) return ChunkerBench(mb, files);
  if (ct->parsed() || cb->parsed()) return Capture(ct->parsed(), src, store, out, reuse, key, inline_max, zstd_level);
  if (dt->parsed() || db->parsed()) return Deploy(dt->parsed(), out, store, target);
  if (diff->parsed()) return Diff(a, b, store);
  return 2;
}
