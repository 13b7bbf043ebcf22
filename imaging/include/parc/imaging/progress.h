// Progress of a long imaging step, reported on the thread that called it.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace parc::imaging {

struct Progress {
  std::string_view phase;  // "scan", "chunk", "seed", "fetch", "write", "sync", "swap", "verify"
  uint64_t done_bytes = 0, total_bytes = 0;
  uint64_t done_items = 0, total_items = 0;  // files, chunks: what the phase counts
};

// Called about every 100 ms and at the end of each phase, never concurrently,
// always on the calling thread. Returning false cancels the step: it stops as
// soon as it safely can and fails with Errc::kFailedPrecondition ("cancelled"),
// leaving a deploy target untouched.
using ProgressFn = std::function<bool(const Progress&)>;

}  // namespace parc::imaging
