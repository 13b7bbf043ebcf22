// What the installer reads from and does to the target system besides
// placing files: owner names from the root's own account files, systemd unit
// links, config line edits, and running scripts and dpkg under a timeout.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <charconv>
#include <sstream>

#include "installer_internal.h"
#include "parc/common/files.h"

namespace parc::pkg::rootfs {

namespace {

std::map<std::string, uint32_t> ReadIdFile(const fs::path& file) {
  std::map<std::string, uint32_t> ids;
  auto text = ReadFile(file);
  if (!text) return ids;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    // name:x:id:...
    auto a = line.find(':');
    if (a == std::string::npos) continue;
    auto b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    auto c = line.find(':', b + 1);
    std::string id = line.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1);
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
    if (ec == std::errc() && p == id.data() + id.size() && !id.empty()) ids.emplace(line.substr(0, a), v);
  }
  return ids;
}

Expected<uint32_t> Lookup(const std::map<std::string, uint32_t>& ids, const std::string& name, const fs::path& file,
                          const char* what) {
  if (auto it = ids.find(name); it != ids.end()) return it->second;
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (!name.empty() && ec == std::errc() && p == name.data() + name.size()) return v;
  if (name == "root") return 0u;  // a bare tree without account files
  return Fail(Errc::kFailedPrecondition, std::string(what) + " '" + name + "' does not exist in " + file.string() +
                                             " (create it first, or give a numeric id)");
}

std::string Trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string_view::npos) return "";
  size_t b = s.find_last_not_of(" \t\r");
  return std::string(s.substr(a, b - a + 1));
}

}  // namespace

Accounts LoadAccounts(const fs::path& root) {
  Accounts a;
  a.root = root;
  a.users = ReadIdFile(UnderRoot(root, "/etc/passwd"));
  a.groups = ReadIdFile(UnderRoot(root, "/etc/group"));
  return a;
}

Expected<uint32_t> Accounts::Uid(const std::string& name) const {
  return Lookup(users, name, UnderRoot(root, "/etc/passwd"), "user");
}
Expected<uint32_t> Accounts::Gid(const std::string& name) const {
  return Lookup(groups, name, UnderRoot(root, "/etc/group"), "group");
}

std::vector<std::string> ParseWantedBy(const std::string& unit_file) {
  std::vector<std::string> out;
  std::istringstream in(unit_file);
  std::string line, section;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = t;
      continue;
    }
    if (section != "[Install]") continue;
    auto eq = t.find('=');
    if (eq == std::string::npos || Trim(t.substr(0, eq)) != "WantedBy") continue;
    std::istringstream words(t.substr(eq + 1));
    std::string w;
    while (words >> w)
      if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  }
  return out;
}

std::string ServiceState(const fs::path& root, const std::string& unit) {
  fs::path etc = UnderRoot(root, "/etc/systemd/system");
  std::error_code ec;
  if (fs::is_symlink(etc / unit, ec) && fs::read_symlink(etc / unit, ec) == "/dev/null") return "masked";
  return WantsLinks(root, unit).empty() ? "disabled" : "enabled";
}

std::vector<std::string> WantsLinks(const fs::path& root, const std::string& unit) {
  std::vector<std::string> out;
  fs::path etc = UnderRoot(root, "/etc/systemd/system");
  std::error_code ec;
  for (fs::directory_iterator it(etc, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() < 6 || name.substr(name.size() - 6) != ".wants") continue;
    std::error_code e2;
    if (fs::is_symlink(it->path() / unit, e2)) out.push_back("/etc/systemd/system/" + name + "/" + unit);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string EditConfigText(const std::string& text, const std::string& separator,
                           const std::vector<std::pair<std::string, std::string>>& set) {
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
  }
  const bool blank_sep = Trim(separator).empty();
  for (const auto& [key, value] : set) {
    bool done = false;
    for (auto& line : lines) {
      std::string t = Trim(line);
      if (t.empty() || t[0] == '#' || t[0] == ';') continue;
      size_t pos = blank_sep ? t.find_first_of(" \t") : t.find(Trim(separator));
      if (pos == std::string::npos) continue;
      if (Trim(t.substr(0, pos)) != key) continue;
      line = key + separator + value;
      done = true;
      break;
    }
    if (!done) lines.push_back(key + separator + value);
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

ExpectedVoid ReplaceFileKeepingMeta(const fs::path& host, const std::string& content) {
  struct stat st {};
  unsigned mode = 0644;
  uid_t uid = 0;
  gid_t gid = 0;
  if (::stat(host.c_str(), &st) == 0) {
    mode = st.st_mode & 07777;
    uid = st.st_uid;
    gid = st.st_gid;
  }
  fs::path tmp = host;
  tmp += ".parc-new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrnoError(errno, "cannot create " + tmp.string()));
  size_t off = 0;
  bool ok = true;
  while (ok && off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = false;
    else off += static_cast<size_t>(n);
  }
  ok = ok && ::fchown(fd, uid, gid) == 0 && ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), host.c_str()) != 0) {
    if (ok) err = errno;
    ::unlink(tmp.c_str());
    return Fail(ErrnoError(err, "cannot rewrite " + host.string()));
  }
  return FsyncPath(host.parent_path());
}

StepOutput RunStep(const std::string& what, const std::vector<std::string>& argv,
                   const std::vector<std::string>& env, const fs::path& cwd, uint32_t timeout_seconds) {
  constexpr size_t kMaxOutput = 64 * 1024;
  StepOutput out;
  out.what = what;
  out.exit_code = -1;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    out.output = std::string("cannot create a pipe: ") + std::strerror(errno);
    return out;
  }
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::string dir = cwd.string();
  pid_t pid = ::fork();
  if (pid < 0) {
    out.output = std::string("cannot fork: ") + std::strerror(errno);
    ::close(p[0]);
    ::close(p[1]);
    return out;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    signal(SIGPIPE, SIG_DFL);
    if (::chdir(dir.c_str()) != 0) _exit(126);
    ::execve(args[0], args.data(), envp.data());
    static const char msg[] = "cannot execute the program\n";
    (void)!::write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  ::setpgid(pid, pid);  // also from here: no window where a kill(-pid) misses
  ::close(p[1]);
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  bool truncated = false;
  auto append = [&](const char* b, size_t n) {
    out.output.append(b, n);
    if (out.output.size() > kMaxOutput) {
      out.output.erase(0, out.output.size() - kMaxOutput);
      truncated = true;
    }
  };
  auto drain = [&]() {
    char buf[8192];
    while (true) {
      ssize_t n = ::read(p[0], buf, sizeof buf);
      if (n > 0) append(buf, static_cast<size_t>(n));
      else if (n < 0 && errno == EINTR) continue;
      else return n == 0;  // true at end of output
    }
  };
  int status = 0;
  bool exited = false;
  bool eof = false;
  while (!exited) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      out.timed_out = true;
      drain();
      break;
    }
    if (!eof) {
      struct pollfd fd = {p[0], POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(std::min<long long>(left, 100)));
      eof = drain();
    } else {
      ::usleep(10'000);
    }
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
      drain();
    }
  }
  ::close(p[0]);
  if (out.timed_out) {
    out.exit_code = -1;
    append("", 0);
    out.output += "\n[killed after " + std::to_string(timeout_seconds) + " s]";
  } else if (WIFEXITED(status)) {
    out.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.exit_code = 128 + WTERMSIG(status);
  }
  if (truncated) out.output = "[output truncated to the last 64 KiB]\n" + out.output;
  return out;
}

std::string LastLines(const std::string& output, size_t n) {
  std::string s = output;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  size_t start = s.size();
  for (size_t lines = 0; lines < n && start > 0; ++lines) {
    size_t nl = s.rfind('\n', start - 1);
    start = nl == std::string::npos ? 0 : nl;
    if (nl == std::string::npos) break;
  }
  std::string tail = s.substr(start < s.size() && s[start] == '\n' ? start + 1 : start);
  if (tail.size() > 2000) tail = "..." + tail.substr(tail.size() - 2000);
  return tail;
}

}  // namespace parc::pkg::rootfs
