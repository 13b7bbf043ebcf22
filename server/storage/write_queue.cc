#include "write_queue.h"

#include <spdlog/spdlog.h>

namespace parc::server::detail {

WriteQueue::WriteQueue(sql::Database db, size_t max_batch)
    : db_(std::move(db)), max_batch_(max_batch), thread_([this] { Loop(); }) {}

WriteQueue::~WriteQueue() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void WriteQueue::Push(Work work, Finish finish) {
  Task task{std::move(work), std::move(finish)};
  if (OnWriterThread()) {
    // A done callback (or the stop path) writing again: the writer is between
    // batches here, so run it at once instead of waiting for ourselves.
    std::vector<Task> batch;
    batch.push_back(std::move(task));
    RunBatch(batch);
    return;
  }
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(task));
    ++pushed_;
  }
  wake_.notify_one();
}

void WriteQueue::Flush() {
  if (OnWriterThread()) return;  // nothing can be pending behind the caller's own batch
  std::unique_lock lock(mu_);
  const uint64_t target = pushed_;
  progress_.wait(lock, [&] { return finished_ >= target; });
}

void WriteQueue::Loop() {
  std::vector<Task> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    RunBatch(batch);
    {
      std::lock_guard lock(mu_);
      finished_ += batch.size();
    }
    batch.clear();
    progress_.notify_all();
  }
}

void WriteQueue::RunBatch(std::vector<Task>& batch) {
  // Tasks [open_from, i) ran in the currently open transaction.
  size_t open_from = 0;
  auto lose_open = [&](size_t end, const Error& why) {
    for (size_t k = open_from; k < end; ++k)
      if (batch[k].ok) batch[k].batch_error = why;
  };

  auto begin = db_.Exec("BEGIN IMMEDIATE");
  for (size_t i = 0; i < batch.size(); ++i) {
    Task& task = batch[i];
    if (!begin) {
      task.batch_error = begin.error();
      continue;
    }
    if (auto sp = db_.Exec("SAVEPOINT task"); !sp) {
      task.batch_error = sp.error();
      continue;
    }
    auto r = task.work(db_);
    task.ok = r.has_value();
    if (task.ok) {
      (void)db_.Exec("RELEASE task");
      continue;
    }
    if (db_.InTransaction()) {
      if (db_.Exec("ROLLBACK TO task") && db_.Exec("RELEASE task")) continue;
      // The task's half-done writes could not be undone alone: drop the batch
      // rather than commit them.
      (void)db_.Exec("ROLLBACK");
    }
    // The whole transaction is gone (SQLite rolls back by itself on some disk
    // full and I/O errors): the tasks before this one in the batch are lost
    // too. Tell them, and carry on with the rest in a fresh transaction.
    lose_open(i, r.error().WithContext("the write was rolled back with another that failed"));
    open_from = i + 1;
    begin = db_.Exec("BEGIN IMMEDIATE");
  }
  if (begin) {
    if (auto c = db_.Exec("COMMIT"); !c) {
      if (db_.InTransaction()) (void)db_.Exec("ROLLBACK");
      lose_open(batch.size(), c.error().WithContext("saving to the parc database failed"));
      spdlog::error("parc database: commit of {} writes failed: {}", batch.size() - open_from, c.error().message());
    }
  }
  for (Task& task : batch) task.finish(task.batch_error ? &*task.batch_error : nullptr);
}

}  // namespace parc::server::detail
