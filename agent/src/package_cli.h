// `parc-agent package ...`: local install, remove, rollback and recovery of
// Parc packages through the transactional installer (no server needed).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

#include "agent_config.h"

namespace parc::agent {

struct PackageCommands;

// Adds the `package` group and its subcommands to app.
std::shared_ptr<PackageCommands> AddPackageCommands(CLI::App& app);
// Whether one of them was chosen on the command line.
bool PackageCommandChosen(const PackageCommands& commands);
// Runs the chosen one; config gives the default root and state directory.
// Exit codes: 0 ok, 1 failed (rolled back), 4 refused (nothing changed).
int RunPackageCommand(PackageCommands& commands, const AgentConfig& config);

}  // namespace parc::agent
