#include "work.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace parc::imaging::internal {

unsigned ThreadCount(unsigned requested) {
  if (requested) return std::min(requested, 64u);
  unsigned hw = std::thread::hardware_concurrency();
  return std::clamp(hw, 1u, 16u);
}

void Ticker::Phase(std::string_view phase, uint64_t total_bytes, uint64_t total_items) {
  phase_ = phase;
  total_bytes_ = total_bytes;
  total_items_ = total_items;
  bytes_ = 0;
  items_ = 0;
  Tick(true);
}

bool Ticker::Tick(bool force) {
  if (cancelled_) return false;
  if (!fn_) return true;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ < std::chrono::milliseconds(100)) return true;
  last_ = now;
  Progress p{phase_, bytes_.load(), total_bytes_, items_.load(), total_items_};
  if (!fn_(p)) cancelled_ = true;
  return !cancelled_;
}

Background::Background(std::function<ExpectedVoid()> fn)
    : thread_([this, fn = std::move(fn)] {
        auto r = fn();
        std::lock_guard lock(mu_);
        result_ = std::move(r);
        done_ = true;
        done_cv_.notify_all();
      }) {}

Background::~Background() {
  if (thread_.joinable()) thread_.join();
}

ExpectedVoid Background::Wait(const std::function<void()>& tick) {
  {
    std::unique_lock lock(mu_);
    while (!done_) {
      done_cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (tick && !done_) {
        lock.unlock();
        tick();
        lock.lock();
      }
    }
  }
  if (thread_.joinable()) thread_.join();
  return result_;
}

ExpectedVoid ParallelFor(size_t n, unsigned threads, Ticker& ticker, const std::function<ExpectedVoid(size_t, unsigned)>& fn) {
  threads = static_cast<unsigned>(std::min<size_t>(std::max(1u, threads), std::max<size_t>(n, 1)));
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable done_cv;
  unsigned running = threads;
  Error first;
  bool failed = false;
  auto work = [&](unsigned w) {
    while (!stop.load(std::memory_order_relaxed)) {
      size_t i = next.fetch_add(1);
      if (i >= n) break;
      auto r = fn(i, w);
      if (!r) {
        std::lock_guard lock(mu);
        if (!failed) failed = true, first = r.error();
        stop = true;
      }
    }
    std::lock_guard lock(mu);
    if (--running == 0) done_cv.notify_all();
  };
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < threads; ++w) pool.emplace_back(work, w);
  {
    std::unique_lock lock(mu);
    while (running > 0) {
      done_cv.wait_for(lock, std::chrono::milliseconds(100));
      lock.unlock();
      if (!ticker.Tick()) stop = true;
      lock.lock();
    }
  }
  for (auto& t : pool) t.join();
  if (failed) return Fail(first);
  if (ticker.cancelled()) return Fail(Ticker::Cancelled());
  ticker.Tick(true);
  return {};
}

}  // namespace parc::imaging::internal
