// Deploy: a signed image onto a target directory or block target.
//
// Both verify the manifest signature first, then gather every chunk the
// image needs: the local cache, then the target's current content (seeding),
// then the fetcher for what is still missing; every fetched chunk is verified
// and kept in the cache before anything is written, so a tampered chunk or
// index leaves the target untouched and an interrupted deploy resumes with
// what it already has.
//
// Tree: written into a new directory next to the target (<parent>/.<name>.parc-new),
// synced, then swapped in atomically (renameat2 RENAME_EXCHANGE; two renames
// where the filesystem cannot). The previous tree stays as the rollback point
// (<parent>/.<name>.parc-previous) until CommitTree or RollbackTree. A small
// journal (<parent>/.<name>.parc-deploy.json) makes every step restartable.
//
// Block: written in place (only the chunks that differ), then read back and
// verified chunk by chunk.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"
#include "parc/imaging/chunk_store.h"
#include "parc/imaging/index.h"
#include "parc/imaging/progress.h"
#include "parc/packages/signing.h"

namespace parc::imaging {

struct DeployOptions {
  std::vector<pkg::PublicKey> trusted;  // publisher keys (pkg::LoadTrustedKeys)
  int64_t now = 0;                      // for the validity period; 0 = the clock
  unsigned threads = 0;                 // 0: one per core
  unsigned fetch_parallelism = 4;       // concurrent ChunkFetcher::Fetch calls
  unsigned fetch_attempts = 3;          // per chunk, resuming on Errc::kUnavailable
  // Wait before the next attempt: this times the attempt number, at most 5
  // times it (an agent waits out a server restart); 0: at once.
  std::chrono::milliseconds fetch_retry_delay{0};
  bool seed = true;                     // reuse the target's current content
  // Owners: the numeric ids of the image (right for a whole OS tree, whose
  // /etc/passwd comes with it), or its user/group names looked up in the
  // accounts of `accounts_root` (a tree deployed into another system);
  // names that are empty or unknown there keep their numeric id.
  bool owners_by_name = false;
  std::filesystem::path accounts_root;
  // Tree: the new tree is compared with the image (VerifyTree: every entry's
  // type, metadata and content) while it is synced and before it is swapped
  // in; a difference refuses the deployment and the target stays as it was.
  // Not with owners_by_name (the owners then differ from the image's ids).
  bool verify = false;
  // Tree: a deployment of another image still in place (swapped, not
  // committed: its previous tree kept as the rollback point) does not refuse
  // this one. It is committed when this one is swapped in (its previous tree
  // removed, the tree it deployed becoming this one's previous), not before:
  // if this deployment fails or is interrupted, that deployment and its
  // rollback point stay as they were. Without it such a deployment must be
  // committed or rolled back first.
  bool commit_previous = false;
  // Block: where chunks found elsewhere in the target are kept while the
  // target is rewritten (an unnamed temporary file); default the target's
  // directory for a file, the system temporary directory for a device.
  std::filesystem::path work_dir;
  // Block: bytes written, then read back from the device, as one unit while
  // later ones are written (docs/images.md, "Deploying").
  uint64_t readback_window = 32u << 20;
  IndexLimits limits;
  ProgressFn progress;
};

struct DeployReport {
  std::string name, version, image_id;  // image_id = ManifestId(manifest_json)
  uint64_t chunks = 0;          // distinct chunks the image needs
  uint64_t from_cache = 0;      // found in the cache
  uint64_t seeded = 0;          // found in the target's current content
  uint64_t fetched = 0;         // received from the fetcher
  uint64_t index_fetched = 0;   // chunks of the index body received from the fetcher
  uint64_t fetched_bytes = 0;   // every byte received from the fetcher (content, body, retried parts)
  uint64_t written_bytes = 0;   // plain bytes written to the target
  uint64_t unchanged_bytes = 0; // block: bytes already right, not written
  uint64_t verified_bytes = 0;  // block: bytes read back and checked
  std::filesystem::path previous;  // tree: the rollback point; empty if the target did not exist
  bool already_deployed = false;   // tree: this image was already swapped in (nothing done)
};

Expected<DeployReport> DeployTree(std::string_view manifest_json, std::string_view signature,
                                  const std::filesystem::path& target, ChunkStore& cache, ChunkFetcher* fetcher,
                                  const DeployOptions& options);
// Keeps the deployed tree: removes the rollback point. No deployment: nothing to do.
ExpectedVoid CommitTree(const std::filesystem::path& target);
// Puts the previous tree back (or removes the target if there was none), or
// discards an unfinished deployment that never reached the target.
ExpectedVoid RollbackTree(const std::filesystem::path& target);

struct TreeDeployment {
  enum class State { kNone, kWriting, kStaged, kSwapped, kRollingBack };
  State state = State::kNone;
  std::string name, version, image_id;
  std::filesystem::path previous;  // when swapped and the target existed before
  // Writing or staged with DeployOptions::commit_previous: the image of the
  // deployment still in place (swapped, uncommitted), which becomes the
  // deployment again if this one is discarded; "" otherwise.
  std::string kept_image_id;
};
Expected<TreeDeployment> InspectTree(const std::filesystem::path& target);

// target: a regular file (created if missing; its size becomes the image's)
// or a block device at least as large as the image.
Expected<DeployReport> DeployBlock(std::string_view manifest_json, std::string_view signature,
                                   const std::filesystem::path& target, ChunkStore& cache, ChunkFetcher* fetcher,
                                   const DeployOptions& options);

}  // namespace parc::imaging
