// The admin credentials file parc-server writes at first start (mode 0600):
//   # comment lines, among them "# server: HOST:PORT"
//   -----BEGIN PRIVATE KEY----- (the admin key)
//   -----BEGIN CERTIFICATE----- (the admin client certificate)
//   -----BEGIN CERTIFICATE----- (the CA certificate)
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "parc/common/error.h"

namespace parc::ctl {

inline constexpr const char* kDefaultCredentialsPath = "/var/lib/parc/server/admin.pem";

struct AdminCredentials {
  std::string server;           // from "# server:", "" if absent
  std::string private_key_pem;
  std::string certificate_pem;  // the admin certificate (plus any intermediates)
  std::string ca_pem;           // the last certificate of the file
};

// kParse when the key or either certificate is missing.
Expected<AdminCredentials> ParseCredentials(std::string_view text);

// Reads and parses; the message says which file and what to do about it, e.g.
// "cannot read admin credentials /p: Permission denied (run as root, or pass --credentials)".
Expected<AdminCredentials> LoadCredentials(const std::filesystem::path& path);

}  // namespace parc::ctl
