// Helpers shared by the tests: temporary directories that clean up after
// themselves, running a command and capturing its output, writing files.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace parc::test {

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "parc-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;   // -1 if it could not run or was killed by a signal
  std::string out;      // stdout
  std::string err;      // stderr
};

// Runs argv[0] with arguments (no shell), waits, returns exit code and output.
CommandResult Run(const std::vector<std::string>& argv, const std::string& stdin_data = "");
// Runs a shell command line with /bin/sh -c.
CommandResult Shell(const std::string& command_line);

// Writes a file, creating parent directories.
void WriteFile(const std::filesystem::path& path, const std::string& content);
std::string ReadFileOrEmpty(const std::filesystem::path& path);

// Runs fn in a forked child inside a private mount namespace (unshare
// CLONE_NEWNS, / made private), so that what fn mounts never reaches the test
// machine's mount table and is gone when the child exits. Returns what fn
// returned, or "ERROR ..." when the namespace could not be made (needs root
// or CAP_SYS_ADMIN). fn must not use Catch2 assertions (it runs in the child).
std::string InPrivateMountNamespace(const std::function<std::string()>& fn);

// Absolute path of a built program ("parc-server", "parc-agent", "parcctl").
std::filesystem::path BinaryPath(const std::string& name);
// Path of a file in the source tree.
std::filesystem::path SourcePath(const std::string& rel);

}  // namespace parc::test
