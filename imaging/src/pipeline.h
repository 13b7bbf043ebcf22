// The capture pipeline: the calling thread reads and cuts, worker threads
// hash, deduplicate, compress and store each chunk. Results come back in
// submission order (slots), so the index does not depend on thread timing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "parc/imaging/chunk_store.h"
#include "work.h"

namespace parc::imaging::internal {

using ReuseMap = std::unordered_map<Digest, ChunkRef, DigestHash>;  // plain digest -> stored chunk

struct PipelineStats {
  uint64_t compressed = 0, reused = 0, objects_written = 0, bytes_written = 0;
};

class Pipeline {
 public:
  Pipeline(ChunkStore& store, int zstd_level, unsigned threads, const ReuseMap& reuse, Ticker& ticker);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Queues the chunks buf[off, off+len) for each span; returns the slot of
  // the first. Blocks (ticking progress) while too much is in flight; fails
  // once a worker failed or the caller cancelled.
  Expected<size_t> Submit(std::shared_ptr<const std::string> buf, const std::vector<std::pair<size_t, size_t>>& spans);
  // Waits for every chunk; the first error if any.
  ExpectedVoid Finish();
  const ChunkRef& Ref(size_t slot) const { return refs_[slot]; }
  const PipelineStats& stats() const { return stats_; }

 private:
  struct Task {
    std::shared_ptr<const std::string> buf;
    size_t off, len, slot;
  };
  void Work();
  ExpectedVoid Process(const Task& t);

  ChunkStore& store_;
  int level_;
  const ReuseMap& reuse_;
  Ticker& ticker_;
  std::mutex mu_;
  std::condition_variable work_cv_, room_cv_, idle_cv_;
  std::deque<Task> queue_;
  size_t inflight_bytes_ = 0, busy_ = 0, slots_ = 0;
  bool closing_ = false, failed_ = false;
  Error error_;
  std::deque<ChunkRef> refs_;
  std::vector<size_t> alias_;  // slot -> slot holding the same plain bytes, or npos
  std::unordered_map<Digest, size_t, DigestHash> first_;  // plain digest -> first slot
  PipelineStats stats_;
  std::vector<std::thread> workers_;
};

}  // namespace parc::imaging::internal
