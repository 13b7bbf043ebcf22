#include "parc/ctl/credentials.h"

#include <vector>

#include "parc/common/files.h"
#include "parc/ctl/text.h"

namespace parc::ctl {
namespace {

struct PemBlock {
  std::string label;  // "PRIVATE KEY", "CERTIFICATE" ...
  std::string text;   // BEGIN line to END line, each line ending in '\n'
};

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kEnd = "-----END ";
constexpr std::string_view kDashes = "-----";

std::string LabelOf(std::string_view line, std::string_view prefix) {
  if (!line.starts_with(prefix) || !line.ends_with(kDashes) || line.size() < prefix.size() + kDashes.size()) return "";
  return std::string(line.substr(prefix.size(), line.size() - prefix.size() - kDashes.size()));
}

}  // namespace

Expected<AdminCredentials> ParseCredentials(std::string_view text) {
  AdminCredentials creds;
  std::vector<PemBlock> blocks;
  PemBlock* open = nullptr;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line = Trim(text.substr(start, nl - start));
    start = nl + 1;
    if (open) {
      open->text += line + "\n";
      if (line.starts_with(kEnd)) {
        if (LabelOf(line, kEnd) != open->label)
          return Fail(Errc::kParse, "PEM block " + open->label + " ends with '" + line + "'");
        open = nullptr;
      }
      continue;
    }
    if (line.starts_with("#")) {
      std::string comment = Trim(std::string_view(line).substr(1));
      if (comment.starts_with("server:")) creds.server = Trim(std::string_view(comment).substr(7));
      continue;
    }
    if (line.starts_with(kBegin)) {
      blocks.push_back({LabelOf(line, kBegin), line + "\n"});
      open = &blocks.back();
    }
    // Anything else between blocks (blank lines, OpenSSL's "Bag Attributes") is not ours to judge.
  }
  if (open) return Fail(Errc::kParse, "PEM block " + open->label + " is not terminated");

  std::vector<std::string> certificates;
  for (const auto& b : blocks) {
    if (b.label == "CERTIFICATE") certificates.push_back(b.text);
    else if (b.label.ends_with("PRIVATE KEY") && creds.private_key_pem.empty()) creds.private_key_pem = b.text;
  }
  if (creds.private_key_pem.empty()) return Fail(Errc::kParse, "no private key");
  if (certificates.size() < 2)
    return Fail(Errc::kParse, "expected the admin certificate followed by the CA certificate, found " +
                                  std::to_string(certificates.size()) + " certificate(s)");
  creds.ca_pem = certificates.back();
  certificates.pop_back();
  creds.certificate_pem = Join(certificates, "");
  return creds;
}

Expected<AdminCredentials> LoadCredentials(const std::filesystem::path& path) {
  auto text = ReadFile(path);
  if (!text) {
    const Error& e = text.error();
    // ReadFile says "cannot open PATH: <strerror>"; keep only the reason.
    std::string reason = e.message();
    if (auto colon = reason.rfind(": "); colon != std::string::npos) reason = reason.substr(colon + 2);
    std::string hint;
    if (e.Is(Errc::kPermissionDenied)) hint = " (run as root, or pass --credentials)";
    else if (e.Is(Errc::kNotFound))
      hint = " (is parc-server installed on this machine? otherwise copy its admin.pem here and pass --credentials)";
    return Fail(e.errc(), "cannot read admin credentials " + path.string() + ": " + reason + hint);
  }
  auto creds = ParseCredentials(*text);
  if (!creds) return Fail(creds.error().WithContext("bad admin credentials " + path.string()));
  return creds;
}

}  // namespace parc::ctl
