// A real Debian 12 tree (debootstrap --variant=minbase, cached) captured and
// deployed by Parc: identical to the source, verified, and usable: chroot
// into it and run commands. Builds the cached tree itself when missing
// (minutes, with network); see tests/imaging/CMakeLists.txt.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>

#include "imaging_fixture.h"
#include "parc/common/files.h"

using namespace parc;
using namespace parc::imaging;
using namespace parc::imaging::testing;

namespace {

// The same tree and recipe as tests/reference/compare_oscap.sh, so that both
// share one cache ($PARC_REFERENCE_CACHE, default /var/tmp/parc-reference).
fs::path ReferenceTree() {
  const char* env = std::getenv("PARC_REFERENCE_CACHE");
  fs::path cache = env && *env ? env : "/var/tmp/parc-reference";
  fs::path base = cache / "bookworm-base";
  if (fs::exists(cache / "bookworm-base.complete")) return base;
  const char* mirror_env = std::getenv("DEBIAN_MIRROR");
  std::string mirror = mirror_env && *mirror_env ? mirror_env : "http://deb.debian.org/debian";
  if (!fs::exists("/usr/sbin/debootstrap"))
    FAIL("debootstrap is not installed (installer/install-deps.sh installs it); it builds " << base);
  fs::create_directories(cache);
  WARN("building " << base << " with debootstrap (a few minutes, needs " << mirror << ")");
  // flock: another test or compare_oscap.sh may be building it right now.
  std::string script = "set -e; cd '" + cache.string() + "'; "
                       "if [ ! -f bookworm-base.complete ]; then rm -rf bookworm-base bookworm-base.tmp; "
                       "debootstrap --variant=minbase --include=linux-base,openssh-server,sudo bookworm bookworm-base.tmp '" +
                       mirror + "' > debootstrap.log 2>&1; mv bookworm-base.tmp bookworm-base; touch bookworm-base.complete; fi";
  auto r = test::Run({"/usr/bin/flock", (cache / ".bookworm-base.lock").string(), "/bin/sh", "-c", script});
  if (r.exit_code != 0) FAIL("debootstrap failed (see " << cache / "debootstrap.log" << "): " << r.err);
  return base;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

TEST_CASE("debian: a debootstrap'd Debian 12 tree deployed by Parc runs commands in a chroot", "[debian][debootstrap]") {
  fs::path base = ReferenceTree();
  Env env;
  auto t0 = std::chrono::steady_clock::now();
  auto img = env.CaptureTreeSigned(base, "12");
  double capture_s = Seconds(t0);
  CHECK(img.image().entries.size() > 5000);
  fs::path target = env.dir() / "roots" / "bookworm";
  fs::create_directories(target.parent_path());
  TestFetcher fetcher(env.server());
  t0 = std::chrono::steady_clock::now();
  auto r = REQUIRE_OK(DeployTree(img.json(), img.sig(), target, env.cache(), &fetcher, env.Options()));
  double deploy_s = Seconds(t0);
  WARN("bookworm-base: " << img.image().manifest.size / 1e6 << " MB in " << img.image().entries.size() << " entries, "
                         << img.image().manifest.chunks << " chunks (" << img.image().manifest.stored_size / 1e6
                         << " MB stored); capture " << capture_s << " s, deploy " << deploy_s << " s");
  REQUIRE_VOID_OK(CommitTree(target));
  CHECK(r.fetched == r.chunks);

  std::string diff = DiffSnapshots(TakeSnapshot(base), TakeSnapshot(target));
  INFO(diff.substr(0, 4000));
  CHECK(diff.empty());
  auto verify = REQUIRE_OK(VerifyTree(img.image(), target));
  CHECK(verify.ok());

  auto out = test::Run({"/usr/sbin/chroot", target.string(), "/bin/sh", "-c",
                        "cat /etc/debian_version; dpkg-query -W -f '${Package}\\n' | wc -l; id -un; "
                        "ls -l /usr/bin/sudo | cut -c1-10; getent passwd _apt | cut -d: -f1"});
  INFO(out.err);
  REQUIRE(out.exit_code == 0);
  CHECK_THAT(out.out, Catch::StartsWith("12."));
  CHECK_THAT(out.out, Catch::Contains("root\n-rwsr-xr-x\n_apt\n"));
  std::string status = test::ReadFileOrEmpty(base / "var/lib/dpkg/status");
  size_t packages = 0;
  for (size_t p = status.find("Package: "); p != std::string::npos; p = status.find("\nPackage: ", p + 1)) ++packages;
  CHECK_THAT(out.out, Catch::Contains("\n" + std::to_string(packages) + "\n"));
}
