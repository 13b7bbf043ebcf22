// Sending an image's objects (body and content chunks) to a server that may
// hold many of them already: each object once, asking which ones the server
// lacks, then only those, in batches. The transport is the caller's (parcctl
// through ImageService, an agent capturing a master through AgentService), so
// this stays free of gRPC like the rest of imaging.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "parc/common/error.h"
#include "parc/imaging/chunk_store.h"
#include "parc/imaging/index.h"
#include "parc/imaging/progress.h"

namespace parc::imaging {

struct UploadHooks {
  // Of these hex digests (at most kMissingPerCall), the ones the server does not hold.
  std::function<Expected<std::vector<std::string>>(const std::vector<std::string>&)> missing;
  // Stores one batch of (hex digest, stored bytes); the number of objects stored now.
  std::function<Expected<uint64_t>(std::vector<std::pair<std::string, std::string>>&)> put;
  ProgressFn progress;  // phase "upload": bytes and objects of the missing ones
};

struct UploadReport {
  uint64_t objects = 0;       // distinct objects of the image
  uint64_t missing = 0;       // of those, not on the server
  uint64_t missing_bytes = 0;
  uint64_t stored = 0;        // stored by the server now (others may have raced us)
};

inline constexpr size_t kMissingPerCall = 10000;
inline constexpr size_t kPutBatchBytes = 8u << 20;  // per put() call

// image must be the parsed body of m; every object is read from `store`.
Expected<UploadReport> UploadImage(const Manifest& m, const Image& image, const ChunkStore& store,
                                   const UploadHooks& hooks);

}  // namespace parc::imaging
