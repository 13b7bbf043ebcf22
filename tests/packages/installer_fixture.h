// A prepared target root (with its own /etc/passwd and /etc/group), a state
// directory and a publisher key, plus helpers that build a real package,
// verify, extract and install it the way the agent does.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

#include "parc/packages/installer.h"
#include "pkg_fixture.h"
#include "test_support.h"
#include "tree_snapshot.h"

namespace parc::pkg::testing {

inline constexpr uint32_t kHelloUid = 1234;  // "hello" in the prepared root, absent from the host
inline constexpr uint32_t kStaffGid = 50;

class InstallerEnv {
 public:
  InstallerEnv();
  const std::filesystem::path& root() const { return root_; }
  const std::filesystem::path& state() const { return state_; }
  const std::filesystem::path& dir() const { return tmp_.path(); }
  const KeyPair& key() const { return key_; }

  // A fresh Installer (the previous one, if any, is closed first: one per state dir).
  Installer& Open();
  Installer& installer() { return *installer_; }
  void Close() { installer_.reset(); }

  // Builds a signed package file (signed "now" when real_time, else at kTestNow).
  std::filesystem::path Build(const TestPackageSpec& spec, bool real_time = false);
  // Build + verify + extract into a new staging dir + Install.
  Expected<InstallResult> Install(const TestPackageSpec& spec, const InstallOptions& options = {});
  Expected<InstallResult> InstallFile(const std::filesystem::path& file, const InstallOptions& options = {});

  TreeSnapshot Tree() const { return Snapshot(root_, skip_); }
  void SkipInSnapshot(const std::string& in_system) { skip_.push_back(in_system); }

 private:
  parc::test::TempDir tmp_{"parc-installer"};
  std::filesystem::path root_, state_;
  KeyPair key_;
  std::unique_ptr<Installer> installer_;
  int builds_ = 0;
  std::vector<std::string> skip_;
};

struct StatInfo {
  bool exists = false;
  unsigned mode = 0;
  uint32_t uid = 0, gid = 0;
};
StatInfo LStat(const std::filesystem::path& p);

}  // namespace parc::pkg::testing
