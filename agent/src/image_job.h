// The agent's side of image deployments: an ImageDeploy job (verify the
// signed manifest, fetch over GetContent only the chunks that neither the
// local chunk cache nor the target's current content hold, deploy, verify,
// commit). docs/images.md, "Server, agents and parcctl".
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent_config.h"
#include "parc/v1/agent.pb.h"

namespace grpc {
class Channel;
}

namespace parc::agent {

struct ImageJobEnv {
  const AgentConfig* config = nullptr;
  std::function<std::shared_ptr<grpc::Channel>()> channels;
  std::function<void(v1::JobUpdate::State state, uint32_t percent, const std::string& message, uint64_t done,
                     uint64_t total)>
      progress;
  // Test-only fault injection: "image-mid-fetch" SIGKILLs the agent once ten
  // chunks were fetched (an interrupted deployment, resumed from the cache).
  std::string crash_at;
};

v1::JobUpdate RunImageJob(const v1::Job& job, const ImageJobEnv& env);

}  // namespace parc::agent
