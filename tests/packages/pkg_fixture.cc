#include "pkg_fixture.h"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <sys/stat.h>

#include "test_support.h"

namespace parc::pkg::testing {
namespace fs = std::filesystem;

KeyPair TestKey(const std::string& name) {
  auto k = GenerateKey(name);
  if (!k) throw std::runtime_error("GenerateKey: " + k.error().message());
  return *k;
}

Expected<Manifest> BuildTestPackage(const fs::path& work_dir, const TestPackageSpec& spec, const fs::path& out,
                                    const KeyPair* key, int64_t now, int64_t expires) {
  std::error_code ec;
  fs::create_directories(work_dir / "root", ec);
  nlohmann::json desc = nlohmann::json::parse(spec.extra_json);
  desc["name"] = spec.name;
  desc["version"] = spec.version;
  if (!desc.contains("summary")) desc["summary"] = "test package " + spec.name;
  if (!desc.contains("publisher")) desc["publisher"] = "Parc tests";
  if (!desc.contains("platforms")) desc["platforms"] = {"linux"};
  if (!desc.contains("architectures")) desc["architectures"] = {"all"};
  nlohmann::json overrides = desc.value("overrides", nlohmann::json::object());
  for (const auto& e : spec.entries) {
    fs::path p = work_dir / "root" / e.path.substr(1);
    fs::create_directories(p.parent_path(), ec);
    switch (e.type) {
      case EntryType::kFile:
        parc::test::WriteFile(p, e.content);
        ::chmod(p.c_str(), e.mode & 0777);
        if (e.mode & 07000) overrides[e.path]["mode"] = [&] {
          char b[16];
          std::snprintf(b, sizeof b, "%04o", e.mode & 07777u);
          return std::string(b);
        }();
        break;
      case EntryType::kDirectory:
        fs::create_directories(p, ec);
        ::chmod(p.c_str(), e.mode & 0777);
        break;
      case EntryType::kSymlink:
        fs::create_symlink(e.target, p, ec);
        break;
    }
  }
  if (!overrides.empty()) desc["overrides"] = overrides;
  for (const auto& [name, text] : spec.scripts) parc::test::WriteFile(work_dir / "scripts" / name, text);
  for (const auto& [name, bytes] : spec.native) parc::test::WriteFile(work_dir / "native" / name, bytes);
  parc::test::WriteFile(work_dir / "package.json", desc.dump(2));
  BuildOptions o;
  o.key = key;
  o.now = now;
  o.expires_at = expires;
  return BuildPackage(work_dir, out, o);
}

Expected<Manifest> BuildHelloPackage(const fs::path& work_dir, const fs::path& out, const KeyPair& key,
                                     const std::string& version) {
  TestPackageSpec spec;
  spec.version = version;
  spec.entries = {
      {"/opt/hello", EntryType::kDirectory, "", 0755, ""},
      {"/opt/hello/bin/hello", EntryType::kFile, "#!/bin/sh\necho hello " + version + "\n", 0755, ""},
      {"/opt/hello/share/readme.txt", EntryType::kFile, "Hello, world.\n", 0644, ""},
      {"/etc/hello.conf", EntryType::kFile, "greeting=hello\n", 0640, ""},
      {"/usr/bin/hello", EntryType::kSymlink, "", 0777, "../../opt/hello/bin/hello"},
  };
  spec.scripts["post_install"] = "#!/bin/sh\necho installed\n";
  spec.extra_json = R"({"overrides": {"/etc/hello.conf": {"config": true}}})";
  return BuildTestPackage(work_dir, spec, out, &key);
}

}  // namespace parc::pkg::testing
