#include "test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace parc::test {
namespace fs = std::filesystem;

std::string InPrivateMountNamespace(const std::function<std::string()>& fn) {
  int p[2];
  if (::pipe(p) != 0) return std::string("ERROR pipe: ") + std::strerror(errno);
  pid_t pid = ::fork();
  if (pid < 0) return std::string("ERROR fork: ") + std::strerror(errno);
  if (pid == 0) {
    ::close(p[0]);
    std::string out;
    if (::unshare(CLONE_NEWNS) != 0) out = std::string("ERROR unshare: ") + std::strerror(errno);
    else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      out = std::string("ERROR private: ") + std::strerror(errno);
    else out = fn();
    for (size_t at = 0; at < out.size();) {
      ssize_t w = ::write(p[1], out.data() + at, out.size() - at);
      if (w <= 0) break;
      at += static_cast<size_t>(w);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) out += "\nERROR the child did not exit normally";
  return out;
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!std::getenv("PARC_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
}

CommandResult Run(const std::vector<std::string>& argv, const std::string& stdin_data) {
  CommandResult result;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return result;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  size_t written = 0;
  if (stdin_data.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  struct pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
  int open_fds = 2;
  while (open_fds > 0 || fds[2].fd >= 0) {
    int n = poll(fds, 3, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[65536];
        ssize_t r = read(fds[i].fd, buf, sizeof buf);
        if (r <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        } else {
          (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(r));
        }
      }
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(fds[2].fd, stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 || written >= stdin_data.size()) {
        close(fds[2].fd);
        fds[2].fd = -1;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

CommandResult Shell(const std::string& command_line) { return Run({"/bin/sh", "-c", command_line}); }

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

std::string ReadFileOrEmpty(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

fs::path BinaryPath(const std::string& name) {
  for (const char* dir : {"/server/", "/agent/", "/ctl/", "/tests/bench/"}) {
    fs::path p = fs::path(PARC_BINARY_DIR + std::string(dir) + name);
    if (fs::exists(p)) return p;
  }
  return fs::path(PARC_BINARY_DIR) / name;
}

fs::path SourcePath(const std::string& rel) { return fs::path(PARC_SOURCE_DIR) / rel; }

}  // namespace parc::test
