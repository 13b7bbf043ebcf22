#include "installer_fixture.h"

#include <stdexcept>

#include "parc/common/timeutil.h"

namespace parc::pkg::testing {
namespace fs = std::filesystem;

InstallerEnv::InstallerEnv() : key_(TestKey()) {
  root_ = tmp_.path() / "root";
  state_ = tmp_.path() / "state";
  parc::test::WriteFile(root_ / "etc/passwd",
                        "root:x:0:0:root:/root:/bin/sh\n"
                        "hello:x:1234:1234:Hello service:/nonexistent:/usr/sbin/nologin\n");
  parc::test::WriteFile(root_ / "etc/group", "root:x:0:\nstaff:x:50:hello\nhello:x:1234:\n");
  fs::permissions(root_, fs::perms(0755));
  fs::permissions(root_ / "etc", fs::perms(0755));
}

Installer& InstallerEnv::Open() {
  installer_.reset();
  auto in = Installer::Open(root_, state_);
  if (!in) throw std::runtime_error("Installer::Open: " + in.error().message());
  installer_ = std::move(*in);
  return *installer_;
}

fs::path InstallerEnv::Build(const TestPackageSpec& spec, bool real_time) {
  int n = ++builds_;
  fs::path out = tmp_.path() / (spec.name + "_" + spec.version + "_" + std::to_string(n) + ".parc");
  int64_t now = real_time ? NowUnix() - 60 : kTestNow;
  auto m = BuildTestPackage(tmp_.path() / ("work" + std::to_string(n)), spec, out, &key_, now, now + 86400 * 30);
  if (!m) throw std::runtime_error("BuildTestPackage: " + m.error().message());
  return out;
}

Expected<InstallResult> InstallerEnv::InstallFile(const fs::path& file, const InstallOptions& options) {
  if (!installer_) Open();
  auto opened = VerifyPackage(file, {key_.public_key}, kTestNow);
  if (!opened) return Fail(opened.error());
  fs::path staging = installer_->NewStagingDir();
  if (auto x = ExtractPayload(file, *opened, staging); !x) return Fail(x.error());
  return installer_->Install(*opened, staging, options);
}

Expected<InstallResult> InstallerEnv::Install(const TestPackageSpec& spec, const InstallOptions& options) {
  return InstallFile(Build(spec), options);
}

StatInfo LStat(const fs::path& p) {
  StatInfo s;
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return s;
  s.exists = true;
  s.mode = st.st_mode & 07777;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  return s;
}

}  // namespace parc::pkg::testing
