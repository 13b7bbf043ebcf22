#include "pipeline.h"

#include "codec.h"

namespace parc::imaging::internal {

namespace {
constexpr size_t kMaxInflightBytes = 64u << 20;
constexpr size_t kNone = static_cast<size_t>(-1);
}  // namespace

Pipeline::Pipeline(ChunkStore& store, int zstd_level, unsigned threads, const ReuseMap& reuse, Ticker& ticker)
    : store_(store), level_(zstd_level), reuse_(reuse), ticker_(ticker) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) workers_.emplace_back([this] { Work(); });
}

Pipeline::~Pipeline() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

Expected<size_t> Pipeline::Submit(std::shared_ptr<const std::string> buf, const std::vector<std::pair<size_t, size_t>>& spans) {
  size_t bytes = 0;
  for (const auto& [off, len] : spans) bytes += len;
  std::unique_lock lock(mu_);
  while (!failed_ && inflight_bytes_ > 0 && inflight_bytes_ + bytes > kMaxInflightBytes) {
    room_cv_.wait_for(lock, std::chrono::milliseconds(100));
    lock.unlock();
    bool go = ticker_.Tick();
    lock.lock();
    if (!go && !failed_) failed_ = true, error_ = Ticker::Cancelled();
  }
  if (failed_) return Fail(error_);
  size_t first = slots_;
  for (const auto& [off, len] : spans) {
    queue_.push_back(Task{buf, off, len, slots_++});
    refs_.emplace_back();
    alias_.push_back(kNone);
  }
  inflight_bytes_ += bytes;
  lock.unlock();
  work_cv_.notify_all();
  return first;
}

ExpectedVoid Pipeline::Finish() {
  std::unique_lock lock(mu_);
  while (!failed_ && (!queue_.empty() || busy_ > 0)) {
    idle_cv_.wait_for(lock, std::chrono::milliseconds(100));
    lock.unlock();
    bool go = ticker_.Tick();
    lock.lock();
    if (!go && !failed_) failed_ = true, error_ = Ticker::Cancelled();
  }
  if (failed_) {
    queue_.clear();
    while (busy_ > 0) idle_cv_.wait(lock);
    return Fail(error_);
  }
  for (size_t s = 0; s < slots_; ++s)
    if (alias_[s] != kNone) refs_[s] = refs_[alias_[s]];
  return {};
}

void Pipeline::Work() {
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Task t = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    bool skip = failed_;
    lock.unlock();
    auto r = skip ? ExpectedVoid{} : Process(t);
    lock.lock();
    --busy_;
    inflight_bytes_ -= t.len;
    if (!r && !failed_) failed_ = true, error_ = r.error();
    room_cv_.notify_one();
    if (queue_.empty() && busy_ == 0) idle_cv_.notify_all();
  }
}

ExpectedVoid Pipeline::Process(const Task& t) {
  std::string_view plain(t.buf->data() + t.off, t.len);
  Digest sha = Digest::Of(plain);
  ticker_.Add(t.len, 1);
  if (auto it = reuse_.find(sha); it != reuse_.end() && it->second.size == t.len && store_.Has(it->second.object)) {
    std::lock_guard lock(mu_);
    refs_[t.slot] = it->second;
    ++stats_.reused;
    return {};
  }
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = first_.emplace(sha, t.slot);
    if (!inserted) {
      alias_[t.slot] = it->second;
      ++stats_.reused;
      return {};
    }
  }
  auto stored = CompressFrame(plain, level_);
  if (!stored) return Fail(stored.error());
  ChunkRef ref;
  ref.sha256 = sha;
  ref.object = Digest::Of(*stored);
  ref.size = static_cast<uint32_t>(t.len);
  ref.stored_size = static_cast<uint32_t>(stored->size());
  bool fresh = !store_.Has(ref.object);
  if (fresh)
    if (auto p = store_.Put(ref.object, *stored); !p) return p;
  std::lock_guard lock(mu_);
  refs_[t.slot] = ref;
  ++stats_.compressed;
  if (fresh) ++stats_.objects_written, stats_.bytes_written += ref.stored_size;
  return {};
}

}  // namespace parc::imaging::internal
