// parc-extract-bench: builds a package from a directory, or extracts one the
// way the agent does (verify, then ExtractPayload into a fresh staging
// directory). Timed from outside by extract_vs_tar.sh, like `tar -xf`.
//
//   parc-extract-bench build SRC_DIR OUT.parc      (also writes OUT.parc.pub)
//   parc-extract-bench extract PKG.parc STAGING_DIR
#include <chrono>
#include <cstdio>
#include <string>

#include "parc/common/files.h"
#include "parc/common/timeutil.h"
#include "parc/packages/archive.h"

using namespace parc;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s build SRC_DIR OUT.parc | extract PKG.parc STAGING_DIR\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  int64_t now = NowUnix();
  if (mode == "build") {
    auto key = pkg::GenerateKey("bench");
    if (!key) return std::fprintf(stderr, "%s\n", key.error().message().c_str()), 1;
    pkg::BuildOptions o;
    o.key = &*key;
    o.now = now;
    o.expires_at = now + 86400;
    auto m = pkg::BuildPackage(argv[2], argv[3], o);
    if (!m) return std::fprintf(stderr, "build: %s\n", m.error().message().c_str()), 1;
    if (auto w = WriteFileAtomic(std::string(argv[3]) + ".pub", key->public_key.Pem()); !w) return 1;
    std::printf("built %s: %zu entries\n", argv[3], m->files.size());
    return 0;
  }
  if (mode == "extract") {
    auto pem = ReadFile(std::string(argv[2]) + ".pub");
    if (!pem) return std::fprintf(stderr, "%s\n", pem.error().message().c_str()), 1;
    auto pub = pkg::ParsePublicKey(*pem);
    if (!pub) return std::fprintf(stderr, "%s\n", pub.error().message().c_str()), 1;
    auto t0 = std::chrono::steady_clock::now();
    auto opened = pkg::VerifyPackage(argv[2], {*pub}, now);
    if (!opened) return std::fprintf(stderr, "verify: %s\n", opened.error().message().c_str()), 1;
    auto t1 = std::chrono::steady_clock::now();
    if (auto r = pkg::ExtractPayload(argv[2], *opened, argv[3]); !r)
      return std::fprintf(stderr, "extract: %s\n", r.error().message().c_str()), 1;
    auto t2 = std::chrono::steady_clock::now();
    auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    // Where the time goes (stderr, so the timing script's output stays tidy).
    std::fprintf(stderr, "verify %.0f ms, extract %.0f ms\n", ms(t1 - t0), ms(t2 - t1));
    return 0;
  }
  std::fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
