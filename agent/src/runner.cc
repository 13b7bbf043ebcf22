#include "runner.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "channel.h"
#include "jobs.h"
#include "outbox.h"
#include "parc/agent/inventory.h"
#include "parc/common/files.h"
#include "parc/common/hash.h"
#include "parc/common/inventory_model.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "parc/v1/agent.grpc.pb.h"

namespace parc::agent {

int64_t BackoffDelayMs(int attempt, int64_t initial_ms, int64_t cap_ms, uint64_t random) {
  int64_t ceiling = initial_ms;
  for (int i = 0; i < attempt && ceiling < cap_ms; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap_ms);
  int64_t floor = ceiling / 2;
  return floor + static_cast<int64_t>(random % static_cast<uint64_t>(ceiling - floor + 1));
}

namespace {

constexpr size_t kWindow = 16;  // reports in flight before waiting for acks

// Messages from the reader thread to the session loop.
class Inbox {
 public:
  void Push(v1::ServerMessage m) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(m));
    cv_.notify_one();
  }
  void Close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    cv_.notify_one();
  }
  // Waits until a message, close, or the deadline.
  std::optional<v1::ServerMessage> Pop(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, deadline, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return std::nullopt;
    auto m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }
  bool closed() {
    std::lock_guard lock(mutex_);
    return closed_ && queue_.empty();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<v1::ServerMessage> queue_;
  bool closed_ = false;
};

using Clock = std::chrono::steady_clock;

class Runner {
 public:
  Runner(const AgentConfig& config, Enrollment enrollment, Outbox outbox, std::string key, std::string cert,
         std::string ca, const std::atomic<bool>& stop)
      : config_(config), enrollment_(std::move(enrollment)), outbox_(std::move(outbox)), key_(std::move(key)),
        cert_(std::move(cert)), ca_(std::move(ca)), stop_(stop), rng_(std::random_device{}()) {}

  ~Runner() { jobs_.reset(); }  // joins the job worker before the queue it sends to goes

  ExpectedVoid Init() {
    auto jobs = JobExecutor::Open(
        config_,
        [this](bool bulk) {
          ChannelOptions co = ChannelOpts();
          co.bulk = bulk;
          return MakeChannel(co);
        },
        [this](v1::AgentMessage m) {
          std::lock_guard lock(out_mutex_);
          if (out_.size() < 10000) out_.push_back(std::move(m));
          if (current_inbox_) current_inbox_->Push(v1::ServerMessage());  // wakes the session loop
        });
    if (!jobs) return Fail(jobs.error());
    jobs_ = std::move(*jobs);
    return {};
  }

  ExpectedVoid Loop() {
    next_inventory_ = Clock::now();
    int attempt = 0;
    while (!stop_) {
      SessionEnd end = Session();
      if (stop_) break;
      if (end.welcomed) attempt = 0;
      int64_t delay = BackoffDelayMs(attempt++, config_.initial_backoff_ms, config_.max_backoff * 1000, rng_());
      if (end.refused) delay = std::max<int64_t>(delay, config_.max_backoff * 1000 / 2);
      spdlog::warn("{}; reconnecting in {:.1f}s", end.reason, static_cast<double>(delay) / 1000.0);
      WaitOffline(Clock::now() + std::chrono::milliseconds(delay));
    }
    spdlog::info("agent stopped");
    return {};
  }

 private:
  struct SessionEnd {
    bool welcomed = false;
    bool refused = false;  // the server refused our identity: retrying fast is pointless
    std::string reason;
  };

  // While disconnected, scheduled inventories still go to the outbox.
  void WaitOffline(Clock::time_point until) {
    while (!stop_ && Clock::now() < until) {
      if (Clock::now() >= next_inventory_) ScheduledInventory();
      auto slice = std::min(until, Clock::now() + std::chrono::milliseconds(200));
      std::this_thread::sleep_until(slice);
    }
  }

  void ScheduledInventory() {
    (void)CollectAndQueue(false);
    // ±10% so that a fleet started together does not report together forever.
    int64_t interval_ms = config_.inventory_interval * 1000;
    int64_t jitter = interval_ms / 10;
    int64_t delay = interval_ms - jitter + (jitter > 0 ? static_cast<int64_t>(rng_() % static_cast<uint64_t>(2 * jitter + 1)) : 0);
    next_inventory_ = Clock::now() + std::chrono::milliseconds(std::max<int64_t>(delay, 1000));
  }

  // Collects the inventory and queues a full report or a delta against the last
  // queued one. Returns a sentence for the technician.
  std::string CollectAndQueue(bool full) {
    auto collected = CollectInventory(CollectOptions{config_.root});
    if (!collected) {
      spdlog::error("inventory failed: {}", collected.error().message());
      return "inventory failed: " + collected.error().message();
    }
    for (const auto& w : collected->warnings) spdlog::debug("inventory: {}", w);
    auto now_items = inventory::Flatten(collected->inventory);
    auto queued = outbox_.QueuedInventory();
    auto pending = outbox_.PendingCount();
    if (pending && *pending >= config_.max_outbox_reports) {
      spdlog::warn("{} reports waiting for the server: replacing queued inventories by one full report", *pending);
      (void)outbox_.DropInventoryReports();
      full = true;
    }
    v1::Report report;
    report.set_report_id(RandomUuid());
    report.set_created_at(NowUnix());
    std::string digest;
    if (full || !queued || !queued->has_value()) {
      *report.mutable_full_inventory() = collected->inventory;
      digest = inventory::Digest(now_items);
    } else {
      auto before = inventory::Flatten(**queued);
      if (before == now_items) return "inventory unchanged";
      auto delta = inventory::Diff(before, now_items);
      digest = delta.digest();
      *report.mutable_inventory_delta() = std::move(delta);
    }
    auto r = outbox_.EnqueueInventory(std::move(report), digest, collected->inventory);
    if (!r) {
      spdlog::error("cannot queue inventory: {}", r.error().message());
      return "cannot queue inventory: " + r.error().message();
    }
    bool is_full = r->report.has_full_inventory();
    spdlog::info("queued {} inventory report {} ({} items)", is_full ? "full" : "delta", r->report.report_id(),
                 is_full ? now_items.size() : static_cast<size_t>(r->report.inventory_delta().upserts_size() +
                                                                  r->report.inventory_delta().removals_size()));
    return std::string(is_full ? "full" : "delta") + " inventory queued";
  }

  ChannelOptions ChannelOpts() const {
    ChannelOptions co;
    co.server = enrollment_.server;
    co.server_name = enrollment_.server_name;
    co.ca_pem = ca_;
    co.key_pem = key_;
    co.cert_pem = cert_;
    return co;
  }

  SessionEnd Session() {
    SessionEnd end;
    auto stub = v1::AgentService::NewStub(MakeChannel(ChannelOpts()));
    grpc::ClientContext ctx;
    auto stream = stub->Connect(&ctx);
    Inbox inbox;
    {
      // Job messages of an earlier session are stale: the server pushes
      // unfinished jobs again after Hello and gets their recorded outcome.
      std::lock_guard lock(out_mutex_);
      out_.clear();
      current_inbox_ = &inbox;
    }
    std::thread reader([&] {
      v1::ServerMessage m;
      while (stream->Read(&m)) inbox.Push(m);
      inbox.Close();
    });

    v1::AgentMessage hello_msg;
    auto* hello = hello_msg.mutable_hello();
    hello->set_agent_version(PARC_VERSION);
    hello->mutable_platform()->set_os("linux");
    hello->set_inventory_digest(outbox_.AckedDigest().value_or(""));
    if (auto hn = ReadSmallFile(UnderRoot(config_.root, "/etc/hostname"), 255)) {
      std::string h = *hn;
      while (!h.empty() && (h.back() == '\n' || h.back() == ' ')) h.pop_back();
      hello->set_hostname(h);
    }
    bool ok = stream->Write(hello_msg);

    std::set<std::string> in_flight;
    int64_t last_sent = 0;
    auto next_heartbeat = Clock::time_point::max();
    std::chrono::seconds heartbeat{60};
    end.reason = "connection to " + enrollment_.server + " lost";

    while (ok && !stop_) {
      auto deadline = std::min({next_heartbeat, next_inventory_, Clock::now() + std::chrono::milliseconds(500)});
      auto msg = inbox.Pop(deadline);
      if (msg) {
        switch (msg->body_case()) {
          case v1::ServerMessage::kWelcome: {
            end.welcomed = true;
            heartbeat = std::chrono::seconds(std::max<uint32_t>(1, msg->welcome().heartbeat_seconds()));
            next_heartbeat = Clock::now() + heartbeat;
            spdlog::info("connected to {} as host {}", enrollment_.server, msg->welcome().host_id());
            jobs_->SetTrustedKeys(msg->welcome().trusted_keys());
            jobs_->ReportRollbackPoints();
            if (msg->welcome().full_inventory_wanted()) {
              spdlog::info("the server asks for a full inventory");
              (void)outbox_.DropInventoryReports();
              in_flight.clear();
              CollectAndQueue(true);
            }
            break;
          }
          case v1::ServerMessage::kReportAck: {
            const auto& ack = msg->report_ack();
            if (!in_flight.erase(ack.report_id())) break;  // stale ack of a dropped report
            if (ack.stored()) {
              if (auto r = outbox_.Acknowledge(ack.report_id()); !r)
                spdlog::error("outbox: {}", r.error().message());
            } else if (ack.full_inventory_wanted()) {
              spdlog::info("the server's inventory differs from ours: sending a full inventory");
              (void)outbox_.DropInventoryReports();
              in_flight.clear();
              CollectAndQueue(true);
            } else if (ack.rejected()) {
              spdlog::error("the server rejected report {}: {}; it is dropped", ack.report_id(), ack.error());
              (void)outbox_.Discard(ack.report_id());
            } else {
              end.reason = "the server could not store report " + ack.report_id() + " (" + ack.error() + ")";
              ok = false;  // keep it and retry after a reconnect
            }
            break;
          }
          case v1::ServerMessage::kCommand: {
            const auto& cmd = msg->command();
            if (cmd.has_job()) {
              jobs_->Submit(cmd.job());  // progress and outcome come back as JobUpdate
              break;
            }
            if (cmd.has_trusted_keys()) {
              jobs_->SetTrustedKeys(cmd.trusted_keys().keys());
              break;
            }
            v1::AgentMessage result;
            result.mutable_command_result()->set_command_id(cmd.command_id());
            if (cmd.has_collect_inventory()) {
              spdlog::info("the server asks for an inventory now");
              std::string what = CollectAndQueue(cmd.collect_inventory().full());
              result.mutable_command_result()->set_ok(what.find("failed") == std::string::npos);
              result.mutable_command_result()->set_message(what);
            } else {
              result.mutable_command_result()->set_ok(false);
              result.mutable_command_result()->set_message("this agent does not know that command; upgrade it");
            }
            ok = stream->Write(result);
            break;
          }
          case v1::ServerMessage::kNotice:
            spdlog::warn("server says: {}", msg->notice().message());
            end.reason = "the server closed the session: " + msg->notice().message();
            break;
          default:
            break;
        }
      }
      if (inbox.closed()) break;
      if (end.welcomed && ok) {
        std::deque<v1::AgentMessage> pending_out;
        {
          std::lock_guard lock(out_mutex_);
          pending_out.swap(out_);
        }
        for (auto& m : pending_out)
          if (ok) ok = stream->Write(m);
      }
      auto now = Clock::now();
      if (now >= next_inventory_) ScheduledInventory();
      if (end.welcomed && now >= next_heartbeat) {
        v1::AgentMessage hb;
        hb.mutable_heartbeat()->set_sent_at(NowUnix());
        ok = ok && stream->Write(hb);
        next_heartbeat = now + heartbeat;
      }
      if (end.welcomed && ok && in_flight.size() < kWindow) {
        auto pending = outbox_.Pending(kWindow + in_flight.size());
        if (pending) {
          for (auto& p : *pending) {
            if (p.sequence <= last_sent || in_flight.size() >= kWindow) continue;
            v1::AgentMessage m;
            *m.mutable_report() = std::move(p.report);
            std::string id = m.report().report_id();
            if (!stream->Write(m)) {
              ok = false;
              break;
            }
            in_flight.insert(id);
            last_sent = p.sequence;
          }
        }
      }
    }
    // Cancelling a stream the server already ended would hide its status
    // (e.g. UNAUTHENTICATED for a revoked host) behind CANCELLED.
    if (!inbox.closed()) ctx.TryCancel();
    reader.join();
    {
      std::lock_guard lock(out_mutex_);
      current_inbox_ = nullptr;
    }
    grpc::Status status = stream->Finish();
    if (!stop_ && !status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      end.reason = "session with " + enrollment_.server + " ended: " + status.error_message();
      if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
          status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
        end.refused = true;
        end.reason = "the server refused this agent (" + status.error_message() +
                     "); if the host was revoked, enroll it again with a new token";
      } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !end.welcomed) {
        end.reason = "cannot reach the server at " + enrollment_.server + " (" + status.error_message() + ")";
      }
    }
    return end;
  }

  AgentConfig config_;
  Enrollment enrollment_;
  Outbox outbox_;
  std::string key_, cert_, ca_;
  const std::atomic<bool>& stop_;
  std::mt19937_64 rng_;
  Clock::time_point next_inventory_;
  std::mutex out_mutex_;
  std::deque<v1::AgentMessage> out_;  // from the job worker, written by the session loop
  Inbox* current_inbox_ = nullptr;
  std::unique_ptr<JobExecutor> jobs_;
};

}  // namespace

ExpectedVoid RunAgent(const AgentConfig& config, const std::atomic<bool>& stop) {
  auto enrollment = LoadEnrollment(config);
  if (!enrollment) return Fail(enrollment.error());
  auto key = ReadFile(config.key_path());
  auto cert = ReadFile(config.cert_path());
  auto ca = ReadFile(config.ca_path());
  if (!key || !cert || !ca)
    return Fail(Errc::kNotFound, "the agent's key, certificate or CA is missing in " + config.state_dir.string() +
                                     "; enroll again with parc-agent enroll --force");
  auto outbox = Outbox::Open(config.outbox_path());
  if (!outbox) return Fail(outbox.error());
  spdlog::info("parc-agent {} starting: host {}, server {}, root {}", PARC_VERSION, enrollment->host_id,
               enrollment->server, config.root.string());
  Runner runner(config, std::move(*enrollment), std::move(*outbox), std::move(*key), std::move(*cert),
                std::move(*ca), stop);
  if (auto r = runner.Init(); !r) return r;
  return runner.Loop();
}

}  // namespace parc::agent
