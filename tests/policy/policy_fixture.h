// Prepared roots and one-rule baselines for the hardening engine tests.
#pragma once

#include <filesystem>
#include <string>

#include "parc/policy/baseline.h"
#include "parc/policy/engine.h"
#include "test_support.h"

namespace parc::test {

// A temporary Debian 12 root (etc/os-release, passwd, group) plus a state dir.
class PolicyRoot {
 public:
  PolicyRoot();
  const std::filesystem::path& root() const { return root_; }
  const std::filesystem::path& state() const { return state_; }
  // Writes <root><path> (creating parents) with a mode.
  void Write(const std::string& path, const std::string& content, unsigned mode = 0644) const;
  std::string Read(const std::string& path) const;
  std::filesystem::path Host(const std::string& path) const { return root_ / path.substr(1); }
  // Adds a dpkg status entry "installed" for name.
  void AddDpkgPackage(const std::string& name, const std::string& version = "1.0-1") const;

 private:
  TempDir dir_;
  std::filesystem::path root_, state_;
};

// A baseline holding the given [[rule]] bodies (TOML text without the header);
// fails the test when it does not parse.
policy::Baseline MakeBaseline(const std::string& rules_toml);
// Checks one rule (all levels) and returns its result.
policy::RuleResult CheckOne(const policy::Baseline& b, const std::filesystem::path& root);
// Applies all levels; fails the test on error.
policy::ApplyResult ApplyAll(const policy::Baseline& b, const PolicyRoot& r);

}  // namespace parc::test
