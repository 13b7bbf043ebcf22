// Internal to the Linux inventory collector: the reading context every section
// shares and the section collectors inventory_linux.cc calls in turn.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parc/v1/inventory.pb.h"

namespace parc::agent::linux_inventory {

namespace fs = std::filesystem;

struct Context {
  fs::path root;
  // Only the live system may be asked through syscalls and programs; a prepared
  // root is described by its files alone, or we would report the host instead.
  bool live = false;
  std::vector<std::string> warnings;

  fs::path Path(std::string_view absolute) const;
  // Whole file (up to max_bytes); nullopt when absent or unreadable.
  std::optional<std::string> Read(std::string_view absolute, size_t max_bytes = 1 << 20) const;
  // First line, whitespace trimmed; "" when absent or unreadable.
  std::string ReadValue(std::string_view absolute) const;
  bool Exists(std::string_view absolute) const;
  bool IsDirectory(std::string_view absolute) const;
  // Directory entry names, sorted; empty when absent.
  std::vector<std::string> List(std::string_view absolute) const;
  // Symlink text (not resolved); "" when not a symlink.
  std::string LinkTarget(std::string_view absolute) const;
  void Warn(std::string warning) { warnings.push_back(std::move(warning)); }
};

// ---- text helpers (text.cc) ----
std::string_view Trim(std::string_view s);
std::vector<std::string_view> Split(std::string_view s, char sep);
std::vector<std::string_view> SplitWords(std::string_view s);
// Calls f(line) for every line without its '\n'.
template <typename F>
void ForEachLine(std::string_view text, F&& f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}
// "key<sep>value" with both sides trimmed; false when sep is absent.
bool SplitKeyValue(std::string_view line, char sep, std::string_view& key, std::string_view& value);
std::optional<uint64_t> ParseU64(std::string_view s, int base = 10);
std::optional<int64_t> ParseI64(std::string_view s);
std::string ToLower(std::string_view s);
std::string Basename(std::string_view path);
// os-release style value: strips one level of quotes and backslash escapes.
std::string Unquote(std::string_view value);

// ---- running a program on the live system (process.cc) ----
struct ProgramOutput {
  int exit_code = -1;
  std::string out;
};
// Runs argv without a shell, stdin from /dev/null, stderr discarded.
std::optional<ProgramOutput> RunProgram(const std::vector<std::string>& argv);
// Absolute path of an executable found in the live PATH, or "".
std::string FindProgram(std::string_view name);

// ---- sections ----
// Software is collected first: the architecture of an offline root and the
// firewall packages are read from it.
void CollectSoftware(Context& ctx, v1::Inventory& inv);
void CollectOs(Context& ctx, v1::Inventory& inv);
void CollectHardware(Context& ctx, v1::Inventory& inv);  // DMI
void CollectCpu(Context& ctx, v1::Inventory& inv);
void CollectMemory(Context& ctx, v1::Inventory& inv);
void CollectDisks(Context& ctx, v1::Inventory& inv);
void CollectFilesystems(Context& ctx, v1::Inventory& inv);
void CollectNetwork(Context& ctx, v1::Inventory& inv);
void CollectServices(Context& ctx, v1::Inventory& inv);
void CollectAccounts(Context& ctx, v1::Inventory& inv);
void CollectMonitors(Context& ctx, v1::Inventory& inv);
void CollectVirtualization(Context& ctx, v1::Inventory& inv);  // after hardware and cpu
void CollectSecurity(Context& ctx, v1::Inventory& inv);        // after services and software

// Debian architecture name -> the kernel's (uname -m) name.
std::string DebianArchToMachine(std::string_view deb_arch);

}  // namespace parc::agent::linux_inventory
