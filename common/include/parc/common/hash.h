// Hashing and randomness (OpenSSL).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "parc/common/error.h"

namespace parc {

std::string HexEncode(std::string_view bytes);
// Lower- or upper-case hex back to bytes; kParse on odd length or another character.
Expected<std::string> HexDecode(std::string_view hex);
std::string Sha256(std::string_view data);     // raw 32 bytes
std::string Sha256Hex(std::string_view data);  // lower-case hex
// SHA-256 (lower-case hex) and size of a file, streamed in 1 MiB reads.
struct FileDigest {
  std::string sha256;
  uint64_t size = 0;
};
Expected<FileDigest> Sha256OfFile(const std::filesystem::path& path);
// Cryptographically random bytes (RAND_bytes); aborts only if the RNG is broken.
std::string RandomBytes(size_t n);
// Random URL-safe text of n random bytes (base32 without padding, lower case).
std::string RandomToken(size_t n_bytes);
// A random RFC 4122 version 4 UUID.
std::string RandomUuid();

}  // namespace parc
