// Real processes for end-to-end tests: a parc-server on loopback with its own
// state directory, parc-agents enrolled against it with prepared roots, and
// parcctl with the server's admin credentials. Real TLS everywhere.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.h"

namespace parc::test {

// A child process whose output goes to a log file; killed (SIGKILL) on destruction.
class Process {
 public:
  Process(std::vector<std::string> argv, std::filesystem::path log);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  bool Running();
  void Signal(int sig);
  // Sends SIGTERM and waits up to `timeout`; SIGKILL after that. Returns the exit code (-1 if killed).
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void Kill();  // SIGKILL, as a power cut would
  std::string Log() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::filesystem::path log_;
};

uint16_t FreePort();

// Polls `condition` every 100 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout = std::chrono::seconds(20));

class Server {
 public:
  explicit Server(const std::filesystem::path& state_dir, uint16_t port = 0);
  ~Server();
  // Extra parc-server arguments for the next Start (e.g. --boot-listen).
  void SetExtraArgs(std::vector<std::string> args) { extra_args_ = std::move(args); }
  void Start();
  int Stop();  // SIGTERM, then SIGKILL after 10 s: the exit code, -1 when killed
  void Kill();
  bool Running() const;
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  std::filesystem::path credentials() const { return state_dir_ / "admin.pem"; }
  std::string Log() const;

  // parcctl with this server's credentials. `json` adds --json.
  CommandResult Ctl(std::vector<std::string> args) const;
  // parcctl ... --json, parsed; fails the test if the command fails.
  nlohmann::json CtlJson(std::vector<std::string> args) const;
  // A fresh enrollment token (optionally for a group) and the CA fingerprint.
  std::pair<std::string, std::string> Token(const std::string& group = "", const std::string& ttl = "") const;

 private:
  std::filesystem::path state_dir_;
  uint16_t port_;
  std::unique_ptr<Process> process_;
  int starts_ = 0;
  std::vector<std::string> extra_args_;
};

class Agent {
 public:
  Agent(const std::filesystem::path& state_dir, const std::filesystem::path& root);
  ~Agent();
  // parc-agent enroll; returns the command result (exit code and messages).
  CommandResult Enroll(const Server& server, const std::string& token, const std::string& ca_fingerprint,
                       const std::vector<std::string>& extra = {});
  void Start(int inventory_interval_seconds = 3600);
  void Stop();
  void Kill();
  bool Running();
  std::string host_id() const;
  nlohmann::json Status() const;  // parc-agent status --json
  std::string Log() const;
  const std::filesystem::path& root() const { return root_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }

 private:
  std::filesystem::path state_dir_;
  std::filesystem::path root_;
  std::unique_ptr<Process> process_;
  int starts_ = 0;
};

// Appends a package stanza to ROOT/var/lib/dpkg/status.
void AddDpkgPackage(const std::filesystem::path& root, const std::string& name, const std::string& version,
                    const std::string& arch = "amd64");

// A uint64 field of parcctl's --json output: protobuf's JSON mapping writes
// 64-bit integers as strings and leaves zeros out.
inline uint64_t U64(const nlohmann::json& j, const std::string& key) {
  if (!j.contains(key)) return 0;
  if (j[key].is_string()) return std::stoull(j[key].get<std::string>());
  return j[key].get<uint64_t>();
}

}  // namespace parc::test
