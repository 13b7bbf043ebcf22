// The agent's side of server-assigned hardening policies: a PolicyRun job
// (verify the signed manifest, refuse a stale or older policy, fetch the
// baseline and check its digest, then check or check-and-remediate), and
// policy rollback points reported and restored like package ones.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent_config.h"
#include "parc/common/error.h"
#include "parc/v1/agent.pb.h"

namespace parc::agent {

struct PolicyJobEnv {
  const AgentConfig* config = nullptr;
  // Downloads a content object (resuming) and returns its verified local file.
  std::function<Expected<std::filesystem::path>(const std::string& sha256, uint64_t size)> fetch;
  std::function<void(v1::JobUpdate::State state, uint32_t percent, const std::string& message)> progress;
  std::string crash_at;  // test-only fault injection, passed to the engine
};

v1::JobUpdate RunPolicyJob(const v1::Job& job, const PolicyJobEnv& env);

// The agent's policy rollback points, in the wire form of package ones
// (action "policy", package = the baseline).
std::vector<v1::RollbackPointInfo> PolicyRollbackPoints(const AgentConfig& config);

// Restores a policy rollback point if point_id names one (nullopt otherwise:
// it is a package point).
std::optional<v1::JobUpdate> RestorePolicyPoint(const std::string& job_id, const std::string& point_id,
                                                const AgentConfig& config);

}  // namespace parc::agent
