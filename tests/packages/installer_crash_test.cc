// Power-cut safety of the real agent: `parc-agent package install` is made to
// SIGKILL itself (PARC_CRASH_AT, test-only fault injection) after the
// extraction, half way through applying, and with everything applied but not
// committed. The next agent command must leave the root exactly as it was
// before the upgrade, and a normal install must then give the new state.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "installer_fixture.h"

using namespace parc;
using namespace parc::pkg;
using namespace parc::pkg::testing;
namespace fs = std::filesystem;

namespace {

struct Outcome {
  bool signaled = false;
  int signal = 0;
  int exit_code = -1;
  std::string out;
};

// Runs argv with extra environment variables; stdout+stderr captured through a file.
Outcome RunAgent(const std::vector<std::string>& args, const std::vector<std::string>& env, const fs::path& log) {
  std::vector<std::string> argv{parc::test::BinaryPath("parc-agent").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Outcome o;
  o.signaled = WIFSIGNALED(status);
  o.signal = o.signaled ? WTERMSIG(status) : 0;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = parc::test::ReadFileOrEmpty(log);
  return o;
}

TestPackageSpec Tool(const std::string& version, bool v2) {
  TestPackageSpec s;
  s.name = "tool";
  s.version = version;
  s.entries = {
      {"/opt/tool", EntryType::kDirectory, "", 0755, ""},
      {"/opt/tool/a.txt", EntryType::kFile, "a " + version, 0644, ""},
      {"/opt/tool/b.txt", EntryType::kFile, "b " + version, 0600, ""},
      {"/opt/tool/c.txt", EntryType::kFile, "c " + version, 0644, ""},
      {"/opt/tool/d.txt", EntryType::kFile, "d " + version, 0640, ""},
      {"/usr/bin/tool", EntryType::kSymlink, "", 0777, "../../opt/tool/a.txt"},
  };
  if (v2) {
    s.entries.erase(s.entries.begin() + 3);  // c.txt goes
    s.entries.push_back({"/opt/tool/e/new.txt", EntryType::kFile, "new", 0644, ""});
    s.extra_json = R"j({"overrides": {"/opt/tool/d.txt": {"owner": "hello", "group": "staff"}},
                       "config": [{"file": "/etc/tool.conf", "set": [{"key": "level", "value": "2"}]}]})j";
    s.scripts["post_install"] = "#!/bin/sh\necho post-install ran\n";
  }
  return s;
}

}  // namespace

TEST_CASE("installer crash: the agent killed at any point of an upgrade recovers the old tree", "[installer][crash]") {
  const std::string crash_at = GENERATE(std::string("after-extract"), std::string("mid-apply"), std::string("before-commit"));
  INFO("PARC_CRASH_AT=" << crash_at);
  InstallerEnv env;
  parc::test::WriteFile(env.root() / "etc/tool.conf", "# tool\nlevel=1\n");
  const fs::path pub = env.dir() / "publisher.pub";
  parc::test::WriteFile(pub, env.key().public_key.Pem());
  const fs::path v1 = env.Build(Tool("1.0", false), true);
  const fs::path v2 = env.Build(Tool("2.0", true), true);
  const fs::path log = env.dir() / "agent.log";
  const std::vector<std::string> where{"--root", env.root().string(), "--state", env.state().string()};
  auto args = [&](std::vector<std::string> a) {
    a.insert(a.end(), where.begin(), where.end());
    return a;
  };

  auto first = RunAgent(args({"package", "install", v1.string(), "--trust", pub.string()}), {}, log);
  INFO(first.out);
  REQUIRE(first.exit_code == 0);
  const TreeSnapshot old_tree = env.Tree();

  auto crashed = RunAgent(args({"package", "install", v2.string(), "--trust", pub.string()}), {"PARC_CRASH_AT=" + crash_at}, log);
  INFO(crashed.out);
  REQUIRE(crashed.signaled);
  CHECK(crashed.signal == SIGKILL);
  if (crash_at == "before-commit") {
    // Really applied before the kill: the crash point is not a no-op.
    CHECK(parc::test::ReadFileOrEmpty(env.root() / "opt/tool/e/new.txt") == "new");
    CHECK(parc::test::ReadFileOrEmpty(env.root() / "etc/tool.conf") == "# tool\nlevel=2\n");
  }
  if (crash_at == "mid-apply") CHECK(parc::test::ReadFileOrEmpty(env.root() / "opt/tool/a.txt") == "a 2.0");
  CHECK(fs::exists(env.root() / ".parc-staging"));

  auto recovered = RunAgent(args({"package", "recover"}), {}, log);
  INFO(recovered.out);
  REQUIRE(recovered.exit_code == 0);
  if (crash_at != "after-extract") CHECK_THAT(recovered.out, Catch::Contains("recovered an interrupted upgrade of tool"));
  {
    std::string diff = DiffTrees(old_tree, env.Tree());
    INFO(diff);
    REQUIRE(diff.empty());
  }
  auto list = RunAgent(args({"package", "list", "--json"}), {}, log);
  CHECK(list.exit_code == 0);
  CHECK_THAT(list.out, Catch::Contains("\"version\": \"1.0\""));
  // A second recover has nothing left to do.
  auto again = RunAgent(args({"package", "recover"}), {}, log);
  CHECK(again.out == "Nothing to recover.\n");

  // The upgrade then works and gives the same tree as an upgrade that never crashed.
  auto upgrade = RunAgent(args({"package", "install", v2.string(), "--trust", pub.string()}), {}, log);
  INFO(upgrade.out);
  REQUIRE(upgrade.exit_code == 0);
  CHECK_THAT(upgrade.out, Catch::Contains("upgraded tool 2.0 (was 1.0)"));

  InstallerEnv reference;
  parc::test::WriteFile(reference.root() / "etc/tool.conf", "# tool\nlevel=1\n");
  const fs::path rpub = reference.dir() / "publisher.pub";
  parc::test::WriteFile(rpub, env.key().public_key.Pem());
  const std::vector<std::string> rwhere{"--root", reference.root().string(), "--state", reference.state().string()};
  for (const auto& file : {v1, v2}) {
    std::vector<std::string> a{"package", "install", file.string(), "--trust", rpub.string()};
    a.insert(a.end(), rwhere.begin(), rwhere.end());
    REQUIRE(RunAgent(a, {}, reference.dir() / "agent.log").exit_code == 0);
  }
  std::string diff = DiffTrees(reference.Tree(), env.Tree());
  INFO(diff);
  CHECK(diff.empty());
}

TEST_CASE("installer crash: refusals exit 4 and change nothing", "[installer][crash]") {
  InstallerEnv env;
  const fs::path pub = env.dir() / "publisher.pub";
  parc::test::WriteFile(pub, env.key().public_key.Pem());
  const fs::path v2 = env.Build(Tool("2.0", false), true);
  const fs::path v1 = env.Build(Tool("1.0", false), true);
  const fs::path log = env.dir() / "agent.log";
  const std::vector<std::string> where{"--root", env.root().string(), "--state", env.state().string()};
  auto run = [&](std::vector<std::string> a) {
    a.insert(a.end(), where.begin(), where.end());
    return RunAgent(a, {}, log);
  };
  auto before = env.Tree();
  auto untrusted = run({"package", "install", v2.string()});
  INFO(untrusted.out);
  CHECK(untrusted.exit_code == 4);
  CHECK(env.Tree() == before);
  REQUIRE(run({"package", "install", v2.string(), "--trust", pub.string()}).exit_code == 0);
  auto down = run({"package", "install", v1.string(), "--trust", pub.string()});
  CHECK(down.exit_code == 4);
  CHECK_THAT(down.out, Catch::Contains("downgrade"));
  auto allowed = run({"package", "install", v1.string(), "--trust", pub.string(), "--allow-downgrade", "--json"});
  CHECK(allowed.exit_code == 0);
  CHECK_THAT(allowed.out, Catch::Contains("\"to_version\": \"1.0\""));
  auto points = run({"package", "rollback-points"});
  CHECK(points.exit_code == 0);
  CHECK_THAT(points.out, Catch::Contains("install") && Catch::Contains("upgrade"));
}
