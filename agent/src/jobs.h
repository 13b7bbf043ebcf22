// Runs the jobs the server pushes (install, remove, roll back), one at a time
// on a worker thread: fetch the package from the content store (resuming a
// partial download), verify its digest and signature, extract into staging,
// install through the transactional installer, report progress and outcome.
//
// Each job runs at most once: its terminal update is kept in <state>/jobs.db
// and sent again when the server pushes the same job again (after a reconnect
// or a server restart). A job interrupted by an agent crash is restored by the
// installer's journal at the next start and then run again (up to 3 attempts).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent_config.h"
#include "parc/common/error.h"
#include "parc/common/sqlite.h"
#include "parc/v1/agent.pb.h"

namespace grpc {
class Channel;
}

namespace parc::agent {

class JobExecutor {
 public:
  using Sender = std::function<void(v1::AgentMessage)>;
  // bulk = a channel for content downloads (its own connection, tuned for throughput).
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(bool bulk)>;

  static Expected<std::unique_ptr<JobExecutor>> Open(const AgentConfig& config, ChannelFactory channels, Sender send);
  ~JobExecutor();

  void Submit(const v1::Job& job);
  // Sends every rollback point this agent holds (after Hello and after each job).
  void ReportRollbackPoints();
  // Replaces the trusted publisher keys with the server's list.
  void SetTrustedKeys(const google::protobuf::RepeatedPtrField<v1::PublisherKey>& keys);

 private:
  JobExecutor(const AgentConfig& config, ChannelFactory channels, Sender send, sql::Database db);
  void Worker();
  v1::JobUpdate Run(const v1::Job& job);
  v1::JobUpdate Install(const v1::Job& job);
  // A content object into <state>/cache/<sha256><suffix>, resuming a partial
  // download; its digest is checked before it leaves <sha256>.part.
  struct FetchStats {
    uint64_t resumed_at = 0;  // bytes kept from an earlier attempt
    uint64_t bytes = 0;       // size of the object
  };
  Expected<std::filesystem::path> Fetch(const std::string& sha256, uint64_t size, const std::string& job_id,
                                        const std::string& suffix, FetchStats* stats);
  void Progress(const std::string& job_id, v1::JobUpdate::State state, uint32_t percent, const std::string& message,
                uint64_t done = 0, uint64_t total = 0);
  void SendRollbackPoints();  // worker thread only (the installer lock)
  void Record(const std::string& job_id, const v1::JobUpdate* terminal, int attempts);

  AgentConfig config_;
  ChannelFactory channels_;
  Sender send_;
  sql::Database db_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<v1::Job> queue_;
  std::string running_;
  bool stop_ = false;
  bool report_points_ = false;
  std::thread worker_;
};

}  // namespace parc::agent
