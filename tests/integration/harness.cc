#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <thread>

namespace parc::test {
namespace fs = std::filesystem;

Process::Process(std::vector<std::string> argv, fs::path log) : log_(std::move(log)) {
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
}

Process::~Process() {
  if (!reaped_) Kill();
}

bool Process::Running() {
  if (reaped_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

void Process::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Process::Stop(std::chrono::milliseconds timeout) {
  if (reaped_) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return -1;
}

void Process::Kill() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, &status_, 0);
  reaped_ = true;
}

std::string Process::Log() const { return ReadFileOrEmpty(log_); }

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  uint16_t port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Server::Server(const fs::path& state_dir, uint16_t port) : state_dir_(state_dir), port_(port ? port : FreePort()) {}

Server::~Server() {
  if (process_) process_->Kill();
}

void Server::Start() {
  fs::create_directories(state_dir_);
  fs::remove(state_dir_ / "server.addr");
  std::vector<std::string> argv{BinaryPath("parc-server").string(), "--state-dir", state_dir_.string(), "--listen",
                                "127.0.0.1:" + std::to_string(port_), "--heartbeat", "2", "--log-level", "debug"};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  process_ = std::make_unique<Process>(argv, state_dir_ / ("server-" + std::to_string(++starts_) + ".log"));
  bool up = WaitFor([&] { return fs::exists(state_dir_ / "server.addr") || !process_->Running(); },
                    std::chrono::seconds(30));
  INFO(process_->Log());
  REQUIRE(up);
  REQUIRE(process_->Running());
}

int Server::Stop() { return process_ ? process_->Stop() : 0; }

void Server::Kill() {
  if (process_) process_->Kill();
}

bool Server::Running() const { return process_ && process_->Running(); }

std::string Server::Log() const { return process_ ? process_->Log() : std::string(); }

CommandResult Server::Ctl(std::vector<std::string> args) const {
  std::vector<std::string> argv{BinaryPath("parcctl").string(), "--server", address(), "--credentials",
                                credentials().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

nlohmann::json Server::CtlJson(std::vector<std::string> args) const {
  args.push_back("--json");
  auto r = Ctl(args);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  INFO("parcctl " << cmd << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.out);
}

std::pair<std::string, std::string> Server::Token(const std::string& group, const std::string& ttl) const {
  std::vector<std::string> args{"token", "create"};
  if (!group.empty()) args.insert(args.end(), {"--group", group});
  if (!ttl.empty()) args.insert(args.end(), {"--ttl", ttl});
  auto j = CtlJson(args);
  return {j.at("token").get<std::string>(), j.at("ca_fingerprint").get<std::string>()};
}

Agent::Agent(const fs::path& state_dir, const fs::path& root) : state_dir_(state_dir), root_(root) {}

Agent::~Agent() {
  if (process_) process_->Kill();
}

CommandResult Agent::Enroll(const Server& server, const std::string& token, const std::string& ca_fingerprint,
                            const std::vector<std::string>& extra) {
  std::vector<std::string> argv{BinaryPath("parc-agent").string(), "--state-dir", state_dir_.string(), "--root",
                                root_.string(), "enroll", "--server", server.address(), "--token", token};
  if (!ca_fingerprint.empty()) argv.insert(argv.end(), {"--ca-fingerprint", ca_fingerprint});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Run(argv);
}

void Agent::Start(int inventory_interval_seconds) {
  process_ = std::make_unique<Process>(
      std::vector<std::string>{BinaryPath("parc-agent").string(), "--state-dir", state_dir_.string(), "--root",
                               root_.string(), "--log-level", "debug", "run", "--inventory-interval",
                               std::to_string(inventory_interval_seconds)},
      state_dir_.parent_path() / (state_dir_.filename().string() + "-" + std::to_string(++starts_) + ".log"));
}

void Agent::Stop() {
  if (process_) process_->Stop();
}
void Agent::Kill() {
  if (process_) process_->Kill();
}
bool Agent::Running() { return process_ && process_->Running(); }
std::string Agent::Log() const { return process_ ? process_->Log() : std::string(); }

nlohmann::json Agent::Status() const {
  auto r = Run({BinaryPath("parc-agent").string(), "--state-dir", state_dir_.string(), "status", "--json"});
  if (r.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::string Agent::host_id() const {
  auto s = Status();
  return s.is_object() && s.contains("host_id") ? s["host_id"].get<std::string>() : std::string();
}

void AddDpkgPackage(const fs::path& root, const std::string& name, const std::string& version,
                    const std::string& arch) {
  std::ofstream f(root / "var/lib/dpkg/status", std::ios::app);
  f << "\nPackage: " << name << "\nStatus: install ok installed\nPriority: optional\nSection: misc\n"
    << "Installed-Size: 100\nMaintainer: Parc Tests <tests@parc.invalid>\nArchitecture: " << arch
    << "\nVersion: " << version << "\nDescription: test package " << name << "\n";
}

}  // namespace parc::test
