#include "policy_fixture.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

namespace parc::test {

PolicyRoot::PolicyRoot() : dir_("parc-policy") {
  root_ = dir_ / "root";
  state_ = dir_ / "state";
  std::filesystem::create_directories(root_);
  std::filesystem::create_directories(state_);
  Write("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n");
  Write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n");
  Write("/etc/group", "root:x:0:\ndaemon:x:1:\nshadow:x:42:\n");
  Write("/var/lib/dpkg/status", "");
}

void PolicyRoot::Write(const std::string& path, const std::string& content, unsigned mode) const {
  auto host = Host(path);
  test::WriteFile(host, content);
  ::chmod(host.c_str(), mode);
}

std::string PolicyRoot::Read(const std::string& path) const { return ReadFileOrEmpty(Host(path)); }

void PolicyRoot::AddDpkgPackage(const std::string& name, const std::string& version) const {
  std::string s = Read("/var/lib/dpkg/status");
  s += "Package: " + name + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + version + "\n\n";
  Write("/var/lib/dpkg/status", s);
}

policy::Baseline MakeBaseline(const std::string& rules_toml) {
  std::string text = "[baseline]\nname = \"test\"\ntitle = \"test\"\nversion = \"1\"\n\n" + rules_toml;
  auto b = policy::ParseBaseline(text, "test.toml");
  INFO(text);
  if (!b) FAIL(b.error().message());
  return *b;
}

policy::RuleResult CheckOne(const policy::Baseline& b, const std::filesystem::path& root) {
  policy::SelectOptions s;
  s.level = policy::Level::kHigh;
  auto rep = policy::CheckBaseline(b, root, s);
  REQUIRE(rep.rules.size() >= 1);
  return rep.rules.front();
}

policy::ApplyResult ApplyAll(const policy::Baseline& b, const PolicyRoot& r) {
  auto engine = policy::Engine::Open(r.root(), r.state());
  if (!engine) FAIL(engine.error().message());
  policy::SelectOptions s;
  s.level = policy::Level::kHigh;
  auto res = (*engine)->Apply(b, s);
  if (!res) FAIL(res.error().message());
  return *res;
}

}  // namespace parc::test
