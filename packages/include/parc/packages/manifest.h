// The package manifest: what a package is, every byte it carries, and what
// installing it does. Its canonical JSON form is what the publisher signs.
// See docs/packages.md for the format, written for people who build packages
// without our tools.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/version.h"

namespace parc::pkg {

inline constexpr int kFormatVersion = 1;

enum class EntryType { kFile, kDirectory, kSymlink };

// One thing placed on the target by the package ("files" in the manifest).
// Archive member: "files/<path without leading '/'>".
struct FileEntry {
  std::string path;        // absolute target path, normalised, e.g. "/opt/hello/bin/hello"
  EntryType type = EntryType::kFile;
  std::string sha256;      // files only, lower-case hex
  uint64_t size = 0;       // files only
  unsigned mode = 0644;    // permission bits incl. setuid/setgid/sticky (declared explicitly)
  std::string owner = "root";
  std::string group = "root";
  std::string target;      // symlinks only; must resolve inside the target root
  bool config = false;     // a configuration file: kept on remove? no — reported; see docs
};

// A native installer carried by the package ("native"). Archive member: "native/<name>".
enum class NativeKind { kDeb, kMsi, kExe };
struct NativePayload {
  NativeKind kind = NativeKind::kDeb;
  std::string name;        // plain file name, no '/'
  std::string sha256;
  uint64_t size = 0;
  std::string silent_args; // msi/exe: e.g. "/qn /norestart"; validated, executed by Windows code
};

// A maintainer script ("scripts"). Archive member: "scripts/<name>".
struct Script {
  std::string name;
  std::string sha256;
  uint64_t size = 0;
};

struct ServiceAction {
  std::string unit;        // "hello.service"
  bool enable = false;     // enable at install (disable again on remove)
  bool restart = false;    // restart after install/upgrade when running live
};

// Set "key<separator>value" lines in a configuration file (replace the first
// active line for the key, append when missing). Undone by the rollback point.
struct ConfigAction {
  std::string file;        // absolute target path
  std::string separator = "=";
  std::vector<std::pair<std::string, std::string>> set;
};

struct Manifest {
  int format = kFormatVersion;
  std::string name;        // [a-z0-9][a-z0-9+.-]*
  std::string version;     // Debian rules
  std::string summary;
  std::string publisher;
  std::vector<std::string> platforms;      // "linux", "windows"
  std::vector<std::string> architectures;  // "x86_64", "aarch64", "all"
  std::vector<Constraint> depends, conflicts, provides;
  std::vector<FileEntry> files;
  std::vector<NativePayload> native;
  std::map<std::string, Script> scripts;   // keys: pre_install, post_install, pre_remove, post_remove
  uint32_t script_timeout_seconds = 300;
  std::vector<ServiceAction> services;
  std::vector<ConfigAction> config;

  // Signing fields (set by Sign, covered by the signature).
  std::string key_id;      // 16 hex chars, see signing.h
  int64_t signed_at = 0;   // Unix seconds
  int64_t expires_at = 0;  // Unix seconds; 0 = unsigned

  std::string Id() const { return name + "=" + version; }
};

// Strict parsing: unknown keys, bad types, unsafe paths ('..', relative,
// duplicates), undeclared setuid are errors naming the field.
Expected<Manifest> ParseManifest(std::string_view json);
// Canonical form: UTF-8 JSON, keys sorted, no insignificant whitespace, arrays
// in manifest order. The exact bytes stored as "manifest.json" and signed.
std::string CanonicalJson(const Manifest& m);

// Archive member names used in a package file.
inline constexpr const char* kManifestMember = "manifest.json";
inline constexpr const char* kSignatureMember = "manifest.sig";
std::string FileMember(const FileEntry& f);       // "files/opt/hello/bin/hello"
std::string NativeMember(const NativePayload& n); // "native/hello.deb"
std::string ScriptMember(const Script& s);        // "scripts/postinst"

// Checks shared by the manifest parser and the archive code.
// An absolute, normalised target path: no "", ".", ".." or empty component, not "/".
ExpectedVoid CheckTargetPath(const std::string& field, const std::string& path);
// Whether a symlink at link_path (absolute, inside the target root) pointing to
// target stays inside the root; absolute targets are read inside the root.
bool SymlinkStaysInside(const std::string& link_path, const std::string& target);

}  // namespace parc::pkg
