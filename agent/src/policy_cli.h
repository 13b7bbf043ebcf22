// `parc-agent policy ...`: check, apply and roll back hardening baselines on
// the live system or an offline root (no server needed).
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>
#include <vector>

#include "agent_config.h"

namespace parc::agent {

struct PolicyCommands;

std::shared_ptr<PolicyCommands> AddPolicyCommands(CLI::App& app);
bool PolicyCommandChosen(const PolicyCommands& commands);
// Exit codes: 0 compliant / done, 1 failed, 2 usage or bad baseline,
// 3 check found failing rules (non-compliant).
int RunPolicyCommand(PolicyCommands& commands, const AgentConfig& config);

// Where baselines are looked up by name: <state>/policies (delivered by the
// server), $PARC_BASELINE_DIR, <exe>/../share/parc/baselines, then
// /usr/local/share/parc/baselines and /usr/share/parc/baselines.
std::vector<std::filesystem::path> BaselineSearchPath(const std::filesystem::path& state);

}  // namespace parc::agent
