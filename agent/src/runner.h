// `parc-agent run`: the agent's life. One outbound session at a time, rebuilt
// with exponential backoff and jitter; inventories go through the outbox so
// nothing is lost while the server is away.
#pragma once

#include <atomic>

#include "agent_config.h"
#include "parc/common/error.h"

namespace parc::agent {

// Runs until `stop` becomes true. Returns an error only for problems that
// retrying cannot fix (not enrolled, unreadable key or outbox).
ExpectedVoid RunAgent(const AgentConfig& config, const std::atomic<bool>& stop);

// Delay before reconnect attempt `attempt` (0-based): "full jitter" — uniform in
// [base/2, min(cap, initial * 2^attempt)], so that thousands of agents cut off
// by one server restart come back spread out instead of all at once.
int64_t BackoffDelayMs(int attempt, int64_t initial_ms, int64_t cap_ms, uint64_t random);

}  // namespace parc::agent
