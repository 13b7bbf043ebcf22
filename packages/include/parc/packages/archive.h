// Package files: a pax tar in one zstd frame with a content checksum, whose
// first member is the canonical manifest ("manifest.json"), second its raw
// 64-byte Ed25519 signature ("manifest.sig", empty or absent when unsigned),
// then the declared payload ("files/...", "native/NAME", "scripts/NAME").
// The format is specified in docs/packages.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/packages/manifest.h"
#include "parc/packages/signing.h"

namespace parc::pkg {

// `parcctl package build DIR`: DIR holds "package.json" (the manifest without
// files/sizes/digests: name, version, actions, scripts by file name, native by
// file name, optional per-path mode/owner overrides) and "root/" (the tree to
// place), "native/", "scripts/". Build fills in every file with its SHA-256,
// size, mode, owner and writes an unsigned package (or signed when key given).
struct BuildOptions {
  const KeyPair* key = nullptr;  // sign while building
  int64_t now = 0;
  int64_t expires_at = 0;
  int zstd_level = 3;
};
Expected<Manifest> BuildPackage(const std::filesystem::path& dir, const std::filesystem::path& out,
                                const BuildOptions& options);
// Re-signs an existing package (rewrites it atomically with new signing fields).
Expected<Manifest> SignPackage(const std::filesystem::path& package, const KeyPair& key, int64_t now,
                               int64_t expires_at);

struct OpenedPackage {
  Manifest manifest;
  std::string manifest_bytes;  // canonical JSON as stored
  std::string signature;       // raw 64 bytes ("" when unsigned)
};
// Reads only the first two members: no payload is touched.
Expected<OpenedPackage> ReadManifest(const std::filesystem::path& package);
// ReadManifest + VerifyManifest, and the manifest must be in canonical form.
Expected<OpenedPackage> VerifyPackage(const std::filesystem::path& package, const std::vector<PublicKey>& trusted,
                                      int64_t now);

struct ExtractLimits {
  uint64_t max_total_bytes = 64ull << 30;  // sum of declared sizes and of bytes written
  uint64_t max_ratio = 200;                // uncompressed / compressed
  uint64_t max_entries = 1'000'000;
};
// Extracts the payload of a verified package into staging (created, must not
// exist): members land at staging/<member name>. Every member must be declared
// in the manifest with its type, size and digest; absolute names, '..',
// hardlinks, device nodes, fifos, symlinks leaving the root, undeclared
// setuid/setgid, size or digest mismatch, bombs and truncation are refused
// with a clear error, and staging is removed on any error. The package file's
// head is re-read and must equal `opened` byte for byte (it may have changed
// since it was verified). Files get their declared mode, not their owner
// (the installer applies owners); nothing is fsynced (the caller syncs what it
// keeps). Progress is reported about every MiB, and once at the end.
using Progress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;
ExpectedVoid ExtractPayload(const std::filesystem::path& package, const OpenedPackage& opened,
                            const std::filesystem::path& staging, const ExtractLimits& limits = {},
                            const Progress& progress = {});

}  // namespace parc::pkg
