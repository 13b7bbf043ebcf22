// The agent's side of images: an ImageDeploy job (verify the signed
// manifest, fetch over GetContent only the chunks that neither the local
// chunk cache nor the target's current content hold, deploy, verify, commit)
// and an ImageCapture job (a master captured on this host, uploaded for an
// admin to sign). docs/images.md, "Server, agents and parcctl".
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// Drops from the chunk cache what the images in place on this host do not
// use (docs/images.md, "The agent's chunk cache"). Run after a successful
// image job has been reported: housekeeping, not part of the deployment.
void PruneImageCache(const AgentConfig& config);

// The rollback points of tree deployments not committed yet: one per target
// at most, its previous tree (action "deploy", package "image:NAME"), and the
// points already restored.
std::vector<v1::RollbackPointInfo> ImageRollbackPoints(const AgentConfig& config);
// Restores an image rollback point (the previous tree swapped back in);
// nullopt when point_id is not an image point of this agent.
std::optional<v1::JobUpdate> RestoreImagePoint(const std::string& job_id, const std::string& point_id,
                                               const AgentConfig& config);

// An ImageCapture job: chunk a directory, image file or block device of this
// host into the chunk cache, upload what the server lacks, answer with the
// unsigned manifest (agent.proto, ImageCapture).
v1::JobUpdate RunCaptureJob(const v1::Job& job, const ImageJobEnv& env);

}  // namespace parc::agent
