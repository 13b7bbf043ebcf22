// The one writer path of the parc database: a thread that owns the write
// connection and commits queued tasks in batches. Batching is what makes
// thousands of small reports per second possible on SQLite: the cost of a
// commit (WAL append + fsync policy) is paid once per batch, not per report.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "parc/common/error.h"
#include "parc/common/sqlite.h"

namespace parc::server::detail {

class WriteQueue {
 public:
  // Runs inside the batch transaction, in its own SAVEPOINT: an error rolls
  // back this task only.
  using Work = std::function<ExpectedVoid(sql::Database&)>;
  // Called on the writer thread once the batch is over. batch_error is set
  // when the task's work succeeded but did not reach the disk (failed COMMIT,
  // transaction lost to an I/O error); the task's own outcome otherwise.
  using Finish = std::function<void(const Error* batch_error)>;

  explicit WriteQueue(sql::Database db, size_t max_batch = 512);
  ~WriteQueue();  // commits everything still queued, then joins
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  void Push(Work work, Finish finish);
  // Returns once everything pushed before the call is committed (or failed).
  void Flush();

  // Typed helpers: fn computes a result inside the transaction; done gets it
  // after the commit (or the commit's error).
  template <typename T>
  void Submit(std::function<Expected<T>(sql::Database&)> fn, std::function<void(Expected<T>)> done) {
    auto result = std::make_shared<std::optional<Expected<T>>>();
    Push(
        [fn = std::move(fn), result](sql::Database& db) -> ExpectedVoid {
          result->emplace(fn(db));
          if (!**result) return Fail((**result).error());
          return {};
        },
        [done = std::move(done), result](const Error* batch_error) {
          if (!result->has_value()) {
            done(Fail(batch_error ? *batch_error : Error(Errc::kInternal, "write task did not run")));
          } else if (batch_error && **result) {
            done(Fail(*batch_error));
          } else {
            done(std::move(**result));
          }
        });
  }

  // Blocking form for the synchronous Storage methods. Must not be called
  // from inside a task's work (it would wait for its own batch).
  template <typename T>
  Expected<T> Call(std::function<Expected<T>(sql::Database&)> fn) {
    auto promise = std::make_shared<std::promise<Expected<T>>>();
    auto future = promise->get_future();
    Submit<T>(std::move(fn), [promise](Expected<T> r) { promise->set_value(std::move(r)); });
    return future.get();
  }

  bool OnWriterThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  struct Task {
    Work work;
    Finish finish;
    bool ok = false;                  // work succeeded
    std::optional<Error> batch_error;  // ... but the batch did not commit it
  };

  void Loop();
  void RunBatch(std::vector<Task>& batch);

  sql::Database db_;
  const size_t max_batch_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable progress_;
  std::deque<Task> queue_;
  uint64_t pushed_ = 0;
  uint64_t finished_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after everything above is ready
};

}  // namespace parc::server::detail
