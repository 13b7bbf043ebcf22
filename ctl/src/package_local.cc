// parcctl's local package commands: keys, build, sign, verify. They work on
// files only and never contact a server.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

#include "commands.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/timeutil.h"
#include "parc/ctl/exit_codes.h"
#include "parc/packages/archive.h"
#include "parc/packages/signing.h"

namespace parc::ctl {
namespace fs = std::filesystem;
namespace {

struct Counts {
  size_t files = 0, directories = 0, symlinks = 0;
  uint64_t bytes = 0;
};

Counts CountOf(const pkg::Manifest& m) {
  Counts c;
  for (const auto& f : m.files) {
    if (f.type == pkg::EntryType::kFile) ++c.files;
    else if (f.type == pkg::EntryType::kDirectory) ++c.directories;
    else ++c.symlinks;
    c.bytes += f.size;
  }
  for (const auto& n : m.native) c.bytes += n.size;
  for (const auto& [k, s] : m.scripts) c.bytes += s.size;
  return c;
}

std::string Summary(const pkg::Manifest& m) {
  Counts c = CountOf(m);
  return m.name + " " + m.version + ", " + std::to_string(c.files) + " files, " + std::to_string(c.bytes) + " bytes";
}

// A private temporary directory for checking a payload without keeping it.
Expected<fs::path> ScratchDir() {
  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  for (int i = 0; i < 8; ++i) {
    fs::path p = base / ("parcctl-verify-" + RandomToken(8));
    if (fs::create_directory(p, ec)) {
      fs::permissions(p, fs::perms::owner_all, ec);
      return p;
    }
  }
  return Fail(Errc::kIo, "cannot create a temporary directory under " + base.string());
}

}  // namespace

int Commands::KeyCreate() {
  auto key = pkg::GenerateKey(o_.name);
  if (!key) return LocalError(key.error(), ExitCodeForError(key.error()));
  fs::path dir = o_.dir.empty() ? fs::path(".") : fs::path(o_.dir);
  if (auto w = pkg::WriteKeyPair(*key, dir); !w) return LocalError(w.error(), ExitCodeForError(w.error()));
  if (o_.json) {
    out_ << nlohmann::json{{"key_id", key->public_key.key_id},
                           {"name", o_.name},
                           {"private_key", (dir / (o_.name + ".key")).string()},
                           {"public_key", (dir / (o_.name + ".pub")).string()}}
                .dump()
         << "\n";
    return kExitOk;
  }
  out_ << "key id:      " << key->public_key.key_id << "\n"
       << "private key: " << (dir / (o_.name + ".key")).string() << "  (mode 0600: keep it secret, sign with it)\n"
       << "public key:  " << (dir / (o_.name + ".pub")).string()
       << "  (give it to the machines that must trust this publisher)\n";
  return kExitOk;
}

int Commands::PackageBuild() {
  pkg::BuildOptions options;
  std::optional<pkg::KeyPair> key;
  if (!o_.key.empty()) {
    auto k = pkg::LoadPrivateKey(o_.key);
    if (!k) return LocalError(k.error(), kExitFailure);
    key = std::move(*k);
    auto lifetime = ParseDuration(o_.expires);
    if (!lifetime || *lifetime <= 0) return UsageError("--expires: expected a duration such as 30d or 365d");
    options.key = &*key;
    options.now = now_;
    options.expires_at = now_ + *lifetime;
  }
  auto m = pkg::BuildPackage(o_.path, o_.output, options);
  if (!m) {
    int code = m.error().Is(Errc::kNotFound) ? kExitNotFound
               : m.error().Is(Errc::kParse) || m.error().Is(Errc::kInvalidArgument) ? kExitUsage
                                                                                    : kExitFailure;
    return LocalError(m.error(), code);
  }
  out_ << "built " << o_.output << ": " << Summary(*m) << "\n";
  if (key)
    out_ << "signed with key " << m->key_id << ", expires " << FormatTime(m->expires_at) << "\n";
  else
    out_ << "unsigned: sign it with 'parcctl package sign " << o_.output << " --key KEYFILE'\n";
  return kExitOk;
}

int Commands::PackageSign() {
  auto lifetime = ParseDuration(o_.expires);
  if (!lifetime || *lifetime <= 0) return UsageError("--expires: expected a duration such as 30d or 365d");
  auto key = pkg::LoadPrivateKey(o_.key);
  if (!key) return LocalError(key.error(), kExitFailure);
  auto m = pkg::SignPackage(o_.path, *key, now_, now_ + *lifetime);
  if (!m) return LocalError(m.error(), m.error().Is(Errc::kNotFound) ? kExitNotFound : kExitFailure);
  out_ << "signed " << o_.path << ": " << Summary(*m) << "\n"
       << "key " << m->key_id << ", expires " << FormatTime(m->expires_at) << "\n";
  return kExitOk;
}

int Commands::PackageVerify() {
  std::vector<pkg::PublicKey> trusted;
  for (const auto& file : o_.trust) {
    auto pem = ReadSmallFile(file, 64 << 10);
    if (!pem) return LocalError(pem.error(), kExitUsage);
    auto k = pkg::ParsePublicKey(*pem, fs::path(file).stem().string());
    if (!k) return LocalError(k.error().WithContext(file), kExitUsage);
    trusted.push_back(std::move(*k));
  }
  auto refuse = [&](const Error& e) {
    if (o_.json) {
      out_ << nlohmann::json{{"valid", false}, {"file", o_.path}, {"error", e.message()}}.dump(
                  -1, ' ', false, nlohmann::json::error_handler_t::replace)
           << "\n";
    } else {
      err_ << "parcctl: refused: " << o_.path << ": " << e.message() << "\n";
      if (e.Is(Errc::kUnauthenticated) && trusted.empty() && e.message() != "package is not signed")
        err_ << "parcctl: hint: pass the publisher's public key with --trust FILE.pub\n";
    }
    return kExitRefused;
  };
  auto opened = pkg::VerifyPackage(o_.path, trusted, now_);
  if (!opened) {
    if (opened.error().Is(Errc::kNotFound) || opened.error().Is(Errc::kIo))
      return LocalError(opened.error(), kExitFailure);
    return refuse(opened.error());
  }
  // The signature covers the manifest; the manifest names every payload byte
  // by digest, so checking the payload means extracting it once.
  auto scratch = ScratchDir();
  if (!scratch) return LocalError(scratch.error(), kExitFailure);
  auto extracted = pkg::ExtractPayload(o_.path, *opened, *scratch / "payload");
  std::error_code ec;
  fs::remove_all(*scratch, ec);
  if (!extracted) {
    if (extracted.error().Is(Errc::kIo)) return LocalError(extracted.error(), kExitFailure);
    return refuse(extracted.error());
  }

  const pkg::Manifest& m = opened->manifest;
  Counts c = CountOf(m);
  std::string key_name;
  for (const auto& k : trusted)
    if (k.key_id == m.key_id) key_name = k.name;
  if (o_.json) {
    std::vector<std::string> scripts;
    for (const auto& [k, s] : m.scripts) scripts.push_back(k);
    out_ << nlohmann::json{{"valid", true},
                           {"file", o_.path},
                           {"name", m.name},
                           {"version", m.version},
                           {"publisher", m.publisher},
                           {"summary", m.summary},
                           {"key_id", m.key_id},
                           {"key_name", key_name},
                           {"signed_at", m.signed_at},
                           {"expires_at", m.expires_at},
                           {"files", c.files},
                           {"directories", c.directories},
                           {"symlinks", c.symlinks},
                           {"native", m.native.size()},
                           {"scripts", scripts},
                           {"total_size", c.bytes},
                           {"manifest_sha256", Sha256Hex(opened->manifest_bytes)}}
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
         << "\n";
    return kExitOk;
  }
  out_ << o_.path << ": valid\n"
       << "  package    " << m.name << " " << m.version << "\n"
       << "  publisher  " << (m.publisher.empty() ? "-" : m.publisher) << "\n"
       << "  key id     " << m.key_id << (key_name.empty() ? "" : " (" + key_name + ")") << "\n"
       << "  signed     " << FormatTime(m.signed_at) << "\n"
       << "  expires    " << FormatTime(m.expires_at) << "\n"
       << "  entries    " << c.files << " files, " << c.directories << " directories, " << c.symlinks
       << " symlinks, " << m.native.size() << " native, " << m.scripts.size() << " scripts\n"
       << "  total size " << c.bytes << " bytes\n";
  return kExitOk;
}

}  // namespace parc::ctl
