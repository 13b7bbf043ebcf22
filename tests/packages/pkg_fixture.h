// Building real, signed test packages through BuildPackage, for the package
// format tests and for anyone else who needs a package file (installer tests).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "parc/packages/archive.h"
#include "parc/packages/signing.h"

namespace parc::pkg::testing {

inline constexpr int64_t kTestNow = 1'800'000'000;           // 2027-01-15
inline constexpr int64_t kTestExpires = kTestNow + 86400 * 365;

struct TestEntry {
  std::string path;              // absolute target path, "/opt/hello/bin/hello"
  EntryType type = EntryType::kFile;
  std::string content;           // files
  unsigned mode = 0644;          // files and directories (symlinks: ignored)
  std::string target;            // symlinks
};

struct TestPackageSpec {
  std::string name = "hello";
  std::string version = "1.0-1";
  std::vector<TestEntry> entries;
  std::map<std::string, std::string> scripts;  // "post_install" -> script text
  std::map<std::string, std::string> native;   // "hello.deb" -> bytes
  // Extra package.json fields merged in as they are (JSON text of an object),
  // e.g. R"({"depends": ["libfoo (>= 1.0)"], "services": [{"unit": "hello.service"}]})".
  std::string extra_json = "{}";
};

// A fresh Ed25519 key (cheap; one per test is fine).
KeyPair TestKey(const std::string& name = "test-publisher");

// Writes the package source tree for spec into work_dir (package.json, root/,
// scripts/, native/), builds `out` with BuildPackage, signed with key when
// given (signed_at = now, expires_at = expires). Returns the manifest.
Expected<Manifest> BuildTestPackage(const std::filesystem::path& work_dir, const TestPackageSpec& spec,
                                    const std::filesystem::path& out, const KeyPair* key, int64_t now = kTestNow,
                                    int64_t expires = kTestExpires);

// A signed test package with a couple of files, a directory and a symlink.
Expected<Manifest> BuildHelloPackage(const std::filesystem::path& work_dir, const std::filesystem::path& out,
                                     const KeyPair& key, const std::string& version = "1.0-1");

}  // namespace parc::pkg::testing
