// Threads and progress shared by capture, deploy and verify.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "parc/common/error.h"
#include "parc/imaging/progress.h"

namespace parc::imaging::internal {

// 0 = one per core (at least 1, at most 16).
unsigned ThreadCount(unsigned requested);

// Counters that worker threads bump and the calling thread reports.
class Ticker {
 public:
  explicit Ticker(const ProgressFn& fn) : fn_(fn) {}
  void Phase(std::string_view phase, uint64_t total_bytes, uint64_t total_items);
  void Add(uint64_t bytes, uint64_t items = 0) {
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    items_.fetch_add(items, std::memory_order_relaxed);
  }
  // Calls the callback if 100 ms passed (or `force`); false once cancelled.
  // Calling thread only.
  bool Tick(bool force = false);
  bool cancelled() const { return cancelled_.load(); }
  // From any thread: a ParallelFor ticking this stops at its next tick.
  void Cancel() { cancelled_ = true; }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t items() const { return items_.load(std::memory_order_relaxed); }
  static Error Cancelled() { return Error(Errc::kFailedPrecondition, "cancelled"); }

 private:
  const ProgressFn& fn_;
  std::string phase_;
  uint64_t total_bytes_ = 0, total_items_ = 0;
  std::atomic<uint64_t> bytes_{0}, items_{0};
  std::atomic<bool> cancelled_{false};
  std::chrono::steady_clock::time_point last_{};
};

// Runs fn on a thread of its own; Wait() joins it, calling `tick` about every
// 100 ms meanwhile. The destructor waits too.
class Background {
 public:
  explicit Background(std::function<ExpectedVoid()> fn);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ExpectedVoid Wait(const std::function<void()>& tick = {});

 private:
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  ExpectedVoid result_;
  std::thread thread_;
};

// Runs fn(i, worker) for every i in [0, n) on `threads` threads, ticking on
// the calling thread; stops at the first error (returned) or on cancel.
ExpectedVoid ParallelFor(size_t n, unsigned threads, Ticker& ticker, const std::function<ExpectedVoid(size_t, unsigned)>& fn);

}  // namespace parc::imaging::internal
