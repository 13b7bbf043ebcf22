#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "collect.h"

extern char** environ;

namespace parc::agent::linux_inventory {

namespace {

struct FdCloser {
  void operator()(int* fd) const {
    if (*fd >= 0) ::close(*fd);
    delete fd;
  }
};
using UniqueFd = std::unique_ptr<int, FdCloser>;
UniqueFd MakeFd(int fd) { return UniqueFd(new int(fd)); }

struct SpawnActions {
  posix_spawn_file_actions_t actions;
  SpawnActions() { posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

// A collector must never hang the agent: a wedged systemd or rpm database is
// reported as "unknown", not waited for.
constexpr auto kProgramTimeout = std::chrono::seconds(20);

}  // namespace

std::string FindProgram(std::string_view name) {
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env && *path_env ? path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (std::string_view dir : Split(path, ':')) {
    if (dir.empty()) continue;
    std::string candidate = std::string(dir) + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

std::optional<ProgramOutput> RunProgram(const std::vector<std::string>& argv) {
  if (argv.empty()) return std::nullopt;
  std::string program = argv[0].find('/') == std::string::npos ? FindProgram(argv[0]) : argv[0];
  if (program.empty()) return std::nullopt;

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return std::nullopt;
  UniqueFd read_end = MakeFd(pipe_fds[0]);
  UniqueFd write_end = MakeFd(pipe_fds[1]);

  SpawnActions fa;
  posix_spawn_file_actions_addopen(&fa.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa.actions, *write_end, 1);
  posix_spawn_file_actions_addopen(&fa.actions, 2, "/dev/null", O_WRONLY, 0);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, program.c_str(), &fa.actions, nullptr, args.data(), environ) != 0) {
    return std::nullopt;
  }
  write_end.reset();

  ProgramOutput result;
  auto deadline = std::chrono::steady_clock::now() + kProgramTimeout;
  bool timed_out = false;
  char buf[65536];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {*read_end, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      timed_out = n == 0;
      break;
    }
    ssize_t r = ::read(*read_end, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    result.out.append(buf, static_cast<size_t>(r));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return std::nullopt;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace parc::agent::linux_inventory
