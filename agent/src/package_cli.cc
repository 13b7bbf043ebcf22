#include "package_cli.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "parc/common/files.h"
#include "parc/common/timeutil.h"
#include "parc/packages/archive.h"
#include "parc/packages/installer.h"
#include "parc/packages/signing.h"

namespace parc::agent {

namespace fs = std::filesystem;
using namespace parc::pkg;

struct PackageCommands {
  CLI::App* group = nullptr;
  CLI::App *install = nullptr, *remove = nullptr, *list = nullptr, *points = nullptr, *rollback = nullptr,
           *recover = nullptr;
  std::string root, state;
  std::string file, name, point;
  std::vector<std::string> trust;
  bool allow_downgrade = false;
  bool json = false;
};

namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitRefused = 4;

void AddCommon(CLI::App* sub, PackageCommands& c, bool with_json) {
  sub->add_option("--root", c.root, "target root directory (default: the agent's --root, /)");
  sub->add_option("--state,--state-dir", c.state, "agent state directory (default: the agent's, /var/lib/parc/agent)");
  if (with_json) sub->add_flag("--json", c.json, "JSON output");
}

bool IsRefusal(const Error& e) {
  return e.Is(Errc::kFailedPrecondition) || e.Is(Errc::kInvalidArgument) || e.Is(Errc::kCrypto) ||
         e.Is(Errc::kExpired) || e.Is(Errc::kUnauthenticated) || e.Is(Errc::kParse) ||
         e.Is(Errc::kResourceExhausted) || e.Is(Errc::kAlreadyExists);
}

int Report(const Error& e, bool refused_possible = true) {
  std::cerr << "parc-agent: " << e.message() << "\n";
  return refused_possible && IsRefusal(e) ? kExitRefused : kExitFailed;
}

nlohmann::json PointJson(const RollbackPoint& p) {
  return {{"id", p.id},           {"job_id", p.job_id}, {"package", p.package},   {"action", p.action},
          {"from_version", p.from_version}, {"to_version", p.to_version}, {"created_at", p.created_at},
          {"paths", p.paths},     {"bytes", p.bytes},   {"state", p.state}};
}

int PrintResult(const InstallResult& r, bool json) {
  if (json) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& s : r.steps)
      steps.push_back({{"what", s.what}, {"exit_code", s.exit_code}, {"timed_out", s.timed_out}, {"output", s.output}});
    nlohmann::json j{{"message", r.message}, {"steps", steps}};
    if (!r.point.id.empty()) j["point"] = PointJson(r.point);
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    for (const auto& s : r.steps)
      std::cout << "  " << s.what << ": " << (s.timed_out ? "timed out" : s.exit_code == 0 ? "ok" : "exit " + std::to_string(s.exit_code)) << "\n";
    std::cout << r.message << "\n";
    if (!r.point.id.empty()) std::cout << "Rollback point: " << r.point.id << "\n";
  }
  return kExitOk;
}

// Test-only fault injection: the crash tests set PARC_CRASH_AT to make the
// agent SIGKILL itself at a chosen instant ("after-extract", "mid-apply",
// "before-commit"). Never set in production.
std::string CrashAt() {
  const char* v = std::getenv("PARC_CRASH_AT");
  return v ? v : "";
}

int Install(PackageCommands& c, Installer& installer, const fs::path& root, const fs::path& state) {
  auto trusted = LoadTrustedKeys(state / "trusted_keys.json");
  if (!trusted) return Report(trusted.error(), false);
  for (const auto& t : c.trust) {
    auto pem = ReadFile(t);
    if (!pem) return Report(pem.error(), false);
    auto key = ParsePublicKey(*pem, fs::path(t).stem().string());
    if (!key) return Report(key.error().WithContext(t), false);
    trusted->push_back(*key);
  }
  auto opened = VerifyPackage(c.file, *trusted, NowUnix());
  if (!opened) {
    const Error& e = opened.error();
    bool refused = !(e.Is(Errc::kIo) || e.Is(Errc::kNotFound));
    std::cerr << "parc-agent: " << c.file << ": " << e.message() << "\n";
    return refused ? kExitRefused : kExitFailed;
  }
  if (!c.json)
    std::cout << "Verified " << opened->manifest.Id() << " (key " << opened->manifest.key_id << ")\n" << std::flush;
  fs::path staging = installer.NewStagingDir();
  if (auto x = ExtractPayload(c.file, *opened, staging); !x) {
    std::error_code ec;
    fs::remove(staging.parent_path(), ec);  // only when no other staging is left in it
    std::cerr << "parc-agent: " << c.file << ": " << x.error().message() << "\n";
    return x.error().Is(Errc::kIo) ? kExitFailed : kExitRefused;
  }
  InstallOptions o;
  o.allow_downgrade = c.allow_downgrade;
  o.live = root == "/";  // the running system: restart services
  o.crash_at = CrashAt();
  if (o.crash_at == "after-extract") ::raise(SIGKILL);
  auto progress = [&](const std::string& phase, int pct) {
    if (!c.json) std::cout << "[" << (pct < 10 ? "  " : pct < 100 ? " " : "") << pct << "%] " << phase << "\n" << std::flush;
  };
  auto r = installer.Install(*opened, staging, o, progress);
  if (!r) return Report(r.error());
  return PrintResult(*r, c.json);
}

}  // namespace

std::shared_ptr<PackageCommands> AddPackageCommands(CLI::App& app) {
  auto c = std::make_shared<PackageCommands>();
  c->group = app.add_subcommand("package", "install, remove and roll back Parc packages locally (transactional)");
  c->group->require_subcommand(1);
  c->install = c->group->add_subcommand("install", "verify and install (or upgrade) a package file");
  c->install->add_option("file", c->file, "package file (.parc)")->required();
  c->install->add_option("--trust", c->trust, "publisher public key (PEM) to trust, besides <state>/trusted_keys.json");
  c->install->add_flag("--allow-downgrade", c->allow_downgrade, "install an older version than the installed one");
  AddCommon(c->install, *c, true);
  c->remove = c->group->add_subcommand("remove", "remove an installed package");
  c->remove->add_option("name", c->name, "package name")->required();
  AddCommon(c->remove, *c, true);
  c->list = c->group->add_subcommand("list", "list installed packages");
  AddCommon(c->list, *c, true);
  c->points = c->group->add_subcommand("rollback-points", "list rollback points, oldest first");
  AddCommon(c->points, *c, true);
  c->rollback = c->group->add_subcommand("rollback", "restore the state recorded by a rollback point");
  c->rollback->add_option("point", c->point, "rollback point id")->required();
  AddCommon(c->rollback, *c, true);
  c->recover = c->group->add_subcommand("recover", "finish an interrupted transaction (restore its previous state)");
  AddCommon(c->recover, *c, true);
  return c;
}

bool PackageCommandChosen(const PackageCommands& c) { return c.group && c.group->parsed(); }

int RunPackageCommand(PackageCommands& c, const AgentConfig& config) {
  fs::path root = c.root.empty() ? config.root : fs::path(c.root);
  fs::path state = c.state.empty() ? config.state_dir : fs::path(c.state);
  auto installer = Installer::Open(root, state);
  if (!installer) return Report(installer.error(), false);
  Installer& in = **installer;
  // Every command first finishes what a crash interrupted.
  auto recovered = in.Recover();
  if (!recovered) return Report(recovered.error(), false);
  for (const auto& p : *recovered)
    std::cerr << "parc-agent: recovered an interrupted " << p.action << " of " << p.package
              << ": previous state restored (rollback point " << p.id << ")\n";

  if (*c.install) return Install(c, in, root, state);
  if (*c.recover) {
    if (c.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& p : *recovered) j.push_back(PointJson(p));
      std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else if (recovered->empty()) {
      std::cout << "Nothing to recover.\n";
    }
    return kExitOk;
  }
  if (*c.remove) {
    InstallOptions o;
    o.live = root == "/";
    auto r = in.Remove(c.name, o);
    if (!r) return Report(r.error());
    return PrintResult(*r, c.json);
  }
  if (*c.rollback) {
    InstallOptions o;
    o.live = root == "/";
    auto r = in.RollbackTo(c.point, o);
    if (!r) return Report(r.error());
    return PrintResult(*r, c.json);
  }
  if (*c.list) {
    auto l = in.ListInstalled();
    if (!l) return Report(l.error(), false);
    if (c.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& p : *l) j.push_back({{"name", p.name}, {"version", p.version}, {"installed_at", p.installed_at}});
      std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      if (l->empty()) std::cout << "No Parc package installed.\n";
      for (const auto& p : *l) std::printf("%-24s %-20s %s\n", p.name.c_str(), p.version.c_str(), FormatTime(p.installed_at).c_str());
    }
    return kExitOk;
  }
  if (*c.points) {
    auto l = in.ListRollbackPoints();
    if (!l) return Report(l.error(), false);
    if (c.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& p : *l) j.push_back(PointJson(p));
      std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      if (l->empty()) std::cout << "No rollback point.\n";
      for (const auto& p : *l)
        std::printf("%s  %-20s %-9s %-16s %-12s -> %-12s %6llu paths  %s\n", p.id.c_str(), FormatTime(p.created_at).c_str(),
                    p.action.c_str(), p.package.c_str(), p.from_version.empty() ? "-" : p.from_version.c_str(),
                    p.to_version.empty() ? "-" : p.to_version.c_str(), static_cast<unsigned long long>(p.paths),
                    p.state.c_str());
    }
    return kExitOk;
  }
  return kExitFailed;
}

}  // namespace parc::agent
