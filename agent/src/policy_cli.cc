#include "policy_cli.h"

#include <unistd.h>

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "parc/common/timeutil.h"
#include "parc/policy/baseline.h"
#include "parc/policy/engine.h"

namespace parc::agent {

namespace fs = std::filesystem;
using namespace parc::policy;

struct PolicyCommands {
  CLI::App* group = nullptr;
  CLI::App *check = nullptr, *apply = nullptr, *rollback = nullptr, *points = nullptr, *list = nullptr;
  std::string baseline, level = "intermediary", root, state, point;
  std::vector<std::string> rules;
  bool json = false, all = false;
};

namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitNonCompliant = 3;

void AddTarget(CLI::App* sub, PolicyCommands& c) {
  sub->add_option("--root", c.root, "target root: the live system (/, default) or an offline tree (image, chroot)");
  sub->add_option("--state,--state-dir", c.state, "agent state directory (rollback points; default: the agent's)");
  sub->add_flag("--json", c.json, "JSON output (the report format of docs/policy.md)");
}

void AddSelection(CLI::App* sub, PolicyCommands& c) {
  sub->add_option("--baseline,-b", c.baseline, "baseline name (see 'policy list') or a .toml file")->required();
  sub->add_option("--level,-l", c.level, "minimal, intermediary (default), enhanced or high: rules up to that level")
      ->check(CLI::IsMember({"minimal", "intermediary", "enhanced", "high"}));
  sub->add_option("--rule", c.rules, "only this rule id (repeatable)");
  AddTarget(sub, c);
}

std::string Short(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n - 3) + "..."; }

void PrintRules(const Report& rep, bool failures_only) {
  for (const auto& r : rep.rules) {
    if (failures_only && r.status != Status::kFail && r.status != Status::kError) continue;
    std::string status(StatusName(r.status));
    if (r.status == Status::kFail && r.manual) status = "fail*";
    if (r.remediated) status += r.status == Status::kPass ? " (fixed)" : " (tried)";
    std::cout << std::left << std::setw(14) << status << std::setw(6) << (r.anssi.empty() ? "-" : r.anssi) << r.id << "  "
              << Short(r.title, 70) << "\n";
    if (r.status == Status::kFail) {
      std::cout << "              expected: " << r.expected << "\n              found:    " << r.found << "\n";
    }
    if (!r.message.empty() && r.status != Status::kPass) std::cout << "              " << r.message << "\n";
  }
}

void PrintSummary(const Report& rep, const std::string& what) {
  int manual = 0;
  for (const auto& r : rep.rules) manual += r.status == Status::kFail && r.manual;
  std::cout << what << rep.baseline << " " << rep.baseline_version << " (" << LevelName(rep.level) << ") on " << rep.root << ": "
            << rep.Count(Status::kPass) << " pass, " << rep.Count(Status::kFail) << " fail";
  if (manual) std::cout << " (" << manual << " manual, marked fail*)";
  std::cout << ", " << rep.Count(Status::kNotApplicable) << " not applicable, " << rep.Count(Status::kError) << " error — score "
            << std::fixed << std::setprecision(1) << rep.Score() << "% (" << std::setprecision(0) << rep.duration_ms << " ms)\n";
}

int Check(PolicyCommands& c, const Baseline& b, const fs::path& root, const SelectOptions& s) {
  auto rep = CheckBaseline(b, root, s);
  if (c.json) {
    std::cout << rep.ToJson().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    PrintRules(rep, false);
    PrintSummary(rep, "");
    if (rep.Count(Status::kFail) > 0)
      std::cout << "Fix with: parc-agent policy apply --baseline " << b.name << " --level " << LevelName(s.level)
                << (root != "/" ? " --root " + root.string() : "") << " (a rollback point is recorded first)\n";
  }
  return rep.Count(Status::kFail) + rep.Count(Status::kError) > 0 ? kExitNonCompliant : kExitOk;
}

std::string CrashAt() {
  const char* v = std::getenv("PARC_CRASH_AT");  // test-only fault injection
  return v ? v : "";
}

void PrintRecovered(const Engine& e) {
  for (const auto& p : e.recovered())
    std::cerr << "parc-agent: an earlier policy apply (" << p.id << ", " << p.baseline
              << ") was interrupted; its changes were undone\n";
}

int Apply(PolicyCommands& c, const Baseline& b, Engine& engine, const SelectOptions& s) {
  auto r = engine.Apply(b, s, CrashAt());
  if (!r) {
    std::cerr << "parc-agent: " << r.error().message() << "\n";
    return kExitFailed;
  }
  if (c.json) {
    nlohmann::json j{{"before", r->before.ToJson()}, {"after", r->after.ToJson()}, {"notes", r->notes}};
    j["point"] = r->point.id.empty() ? nlohmann::json(nullptr) : r->point.ToJson();
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    PrintSummary(r->before, "Before: ");
    if (r->point.id.empty()) {
      std::cout << "Nothing to remediate: no change made.\n";
    } else {
      PrintRules(r->after, true);
      for (const auto& rr : r->after.rules)
        if (rr.remediated && rr.status == Status::kPass) std::cout << "fixed         " << rr.id << "\n";
      for (const auto& n : r->notes) std::cout << "note: " << n << "\n";
      std::cout << "Rollback point " << r->point.id << ": " << r->point.paths << " paths recorded, " << r->point.bytes
                << " bytes saved. Undo with: parc-agent policy rollback " << r->point.id << "\n";
    }
    PrintSummary(r->after, "After:  ");
  }
  int fails = r->after.Count(Status::kFail) + r->after.Count(Status::kError);
  return fails > 0 ? kExitNonCompliant : kExitOk;
}

int ListBaselines(PolicyCommands& c, const fs::path& state) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& dir : BaselineSearchPath(state)) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() != ".toml") continue;
      auto b = LoadBaseline(e.path());
      nlohmann::json j{{"file", e.path().string()}};
      if (!b) {
        j["error"] = b.error().message();
      } else {
        int counts[4] = {0, 0, 0, 0};
        for (const auto& r : b->rules) counts[static_cast<int>(r.level)]++;
        j.update({{"name", b->name}, {"title", b->title}, {"version", b->version}, {"rules", b->rules.size()},
                  {"minimal", counts[0]}, {"intermediary", counts[1]}, {"enhanced", counts[2]}, {"high", counts[3]}});
      }
      out.push_back(j);
    }
  }
  if (c.json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (out.empty()) std::cout << "No baselines found.\n";
  for (const auto& j : out) {
    if (j.contains("error")) {
      std::cout << j["file"].get<std::string>() << ": " << j["error"].get<std::string>() << "\n";
      continue;
    }
    std::cout << std::left << std::setw(26) << j["name"].get<std::string>() << j["title"].get<std::string>() << " (v"
              << j["version"].get<std::string>() << ", " << j["rules"].get<size_t>() << " rules: " << j["minimal"].get<int>()
              << " minimal, " << j["intermediary"].get<int>() << " intermediary)\n    " << j["file"].get<std::string>() << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<fs::path> BaselineSearchPath(const fs::path& state) {
  std::vector<fs::path> out{state / "policies"};
  if (const char* env = std::getenv("PARC_BASELINE_DIR"); env && *env) out.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back(exe.parent_path().parent_path() / "share/parc/baselines");
  out.emplace_back("/usr/local/share/parc/baselines");
  out.emplace_back("/usr/share/parc/baselines");
  return out;
}

std::shared_ptr<PolicyCommands> AddPolicyCommands(CLI::App& app) {
  auto c = std::make_shared<PolicyCommands>();
  c->group = app.add_subcommand("policy", "check, apply and roll back hardening baselines (ANSSI-BP-028 ...)");
  c->group->require_subcommand(1);
  c->group->footer(
      "Examples:\n"
      "  parc-agent policy list\n"
      "  parc-agent policy check --baseline anssi-bp28-debian12 --level minimal\n"
      "  parc-agent policy apply --baseline anssi-bp28-debian12 --root /srv/images/master   (offline tree)\n"
      "  parc-agent policy rollback-points\n"
      "  parc-agent policy rollback POINT\n"
      "Exit codes: 0 compliant/done, 1 failed (an apply that fails is undone), 2 usage or bad baseline,\n"
      "3 failing rules remain. The policy language is documented in docs/policy.md.");
  c->check = c->group->add_subcommand("check", "evaluate every rule: pass, fail (expected vs found), not applicable, error");
  AddSelection(c->check, *c);
  c->apply = c->group->add_subcommand("apply", "record a rollback point, then remediate the failing rules (idempotent)");
  AddSelection(c->apply, *c);
  c->rollback = c->group->add_subcommand("rollback", "restore a rollback point exactly (bytes, modes, owners)");
  c->rollback->add_option("point", c->point, "rollback point id (see rollback-points)")->required();
  AddTarget(c->rollback, *c);
  c->points = c->group->add_subcommand("rollback-points", "list policy rollback points, oldest first");
  AddTarget(c->points, *c);
  c->list = c->group->add_subcommand("list", "list the baselines this agent can find");
  c->list->add_option("--state,--state-dir", c->state, "agent state directory");
  c->list->add_flag("--json", c->json, "JSON output");
  return c;
}

bool PolicyCommandChosen(const PolicyCommands& c) { return c.group && c.group->parsed(); }

int RunPolicyCommand(PolicyCommands& c, const AgentConfig& config) {
  fs::path root = c.root.empty() ? config.root : fs::path(c.root);
  fs::path state = c.state.empty() ? config.state_dir : fs::path(c.state);
  if (*c.list) return ListBaselines(c, state);
  SelectOptions s;
  s.level = *ParseLevel(c.level);
  s.only_rules = c.rules;
  if (*c.check || *c.apply) {
    auto b = FindBaseline(c.baseline, BaselineSearchPath(state));
    if (!b) {
      std::cerr << "parc-agent: " << b.error().message() << "\n";
      return kExitUsage;
    }
    for (const auto& id : c.rules) {
      bool known = false;
      for (const auto& r : b->rules) known = known || r.id == id;
      if (!known) {
        std::cerr << "parc-agent: baseline " << b->name << " has no rule '" << id << "'\n";
        return kExitUsage;
      }
    }
    if (*c.check) return Check(c, *b, root, s);
    auto engine = Engine::Open(root, state);
    if (!engine) {
      std::cerr << "parc-agent: " << engine.error().message() << "\n";
      return kExitFailed;
    }
    PrintRecovered(**engine);
    return Apply(c, *b, **engine, s);
  }
  auto engine = Engine::Open(root, state);
  if (!engine) {
    std::cerr << "parc-agent: " << engine.error().message() << "\n";
    return kExitFailed;
  }
  PrintRecovered(**engine);
  if (*c.rollback) {
    auto p = (*engine)->Rollback(c.point);
    if (!p) {
      std::cerr << "parc-agent: " << p.error().message() << "\n";
      return p.error().Is(Errc::kNotFound) || p.error().Is(Errc::kInvalidArgument) ? kExitUsage : kExitFailed;
    }
    if (c.json) std::cout << p->ToJson().dump(2) << "\n";
    else std::cout << "Restored rollback point " << p->id << " (" << p->baseline << ", " << p->paths << " paths) on " << p->root << "\n";
    return kExitOk;
  }
  auto points = (*engine)->ListPoints();
  if (!points) {
    std::cerr << "parc-agent: " << points.error().message() << "\n";
    return kExitFailed;
  }
  if (c.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& p : *points) j.push_back(p.ToJson());
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (points->empty()) std::cout << "No policy rollback points.\n";
  for (const auto& p : *points)
    std::cout << p.id << "  " << FormatTime(p.created_at) << "  " << std::left << std::setw(12) << p.state << p.baseline << " ("
              << LevelName(p.level) << "), " << p.rules.size() << " rules, " << p.paths << " paths, root " << p.root << "\n";
  return kExitOk;
}

}  // namespace parc::agent
