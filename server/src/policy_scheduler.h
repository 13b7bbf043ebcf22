// Periodic policy checks: turns every assignment into one check run per host
// of its group, each interval (and at once when assigned or asked), as jobs
// the deployment scheduler sends over the agents' sessions. Stores what the
// agents answer before their jobs are marked finished.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "parc/server/policy_store.h"
#include "scheduler.h"

namespace parc::server {

class PolicyScheduler {
 public:
  PolicyScheduler(PolicyStore& store, Scheduler& jobs) : store_(store), jobs_(jobs) {}
  ~PolicyScheduler() { Stop(); }

  void Start();
  void Stop();
  void Wake();
  // Creates the runs that are due now; returns how many.
  uint32_t Tick(int64_t now);
  // "Check now": every host of the assignment is due again, and the runs are
  // created before this returns (the loop cannot take them in between, so
  // the count is what the request created).
  Expected<uint32_t> RunNow(const std::string& assignment_id, int64_t now);
  // The Scheduler's terminal hook: stores a policy job's report.
  ExpectedVoid OnTerminal(const JobRecord& job, const v1::JobUpdate& update);

 private:
  void Loop();
  uint32_t TickLocked(int64_t now);  // tick_mutex_ held

  PolicyStore& store_;
  Scheduler& jobs_;
  std::mutex mutex_;
  std::mutex tick_mutex_;  // one Tick at a time: two would both see a host due
  std::condition_variable cv_;
  bool wake_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace parc::server
