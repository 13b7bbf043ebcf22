// parc-load: N simulated agents in ONE process, each a real mutual-TLS gRPC
// connection with its own key and certificate, against a real parc-server
// process started here. Measures enrollment, connection, full and delta
// inventory ingest, push-to-all latency, server memory per connection and idle
// CPU, plus a raw SQLite baseline for the ingest figure.
//
// Streams use the gRPC callback API (one ClientBidiReactor per agent, no thread
// per stream). Facts applied from DESIGN.md: abseil deadlock detection off, one
// connection per channel (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL via
// ChannelOptions::own_connection), fd limit raised to the hard limit (20,000
// here), per stream at most one outstanding write.
#include <absl/synchronization/mutex.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <optional>
#include <random>
#include <semaphore>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "channel.h"
#include "parc/common/hash.h"
#include "parc/common/inventory_model.h"
#include "parc/common/pki.h"
#include "parc/v1/admin.grpc.pb.h"
#include "parc/v1/agent.grpc.pb.h"

namespace fs = std::filesystem;
namespace v1 = parc::v1;
namespace inv = parc::inventory;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------
// Small helpers

int64_t NowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }
double SecondsSince(int64_t start_ns) { return (NowNs() - start_ns) / 1e9; }
int64_t UnixNow() { return static_cast<int64_t>(::time(nullptr)); }

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load();
  while (v > cur && !a.compare_exchange_weak(cur, v)) {
  }
}

// Polls pred every `poll` until it holds or `timeout` passes; bounded by construction.
bool WaitFor(const std::function<bool()>& pred, double timeout_s, std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
  int64_t deadline = NowNs() + static_cast<int64_t>(timeout_s * 1e9);
  while (!pred()) {
    if (NowNs() >= deadline) return pred();
    std::this_thread::sleep_for(poll);
  }
  return true;
}

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

void Line(const std::string& label, const std::string& value) {
  std::printf("  %-34s %s\n", (label + ":").c_str(), value.c_str());
  std::fflush(stdout);
}
void How(const std::string& text) {
  std::printf("  %-34s %s\n", "measured as:", text.c_str());
  std::fflush(stdout);
}
void Header(const std::string& title) {
  std::printf("\n== %s ==\n", title.c_str());
  std::fflush(stdout);
}
void Note(const std::string& text) {
  std::printf("  note: %s\n", text.c_str());
  std::fflush(stdout);
}

std::optional<std::string> ReadWhole(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// /proc/<pid>/status field in its unit (kB for VmRSS), -1 if unreadable.
long ProcStatusField(pid_t pid, const std::string& field) {
  auto text = ReadWhole("/proc/" + std::to_string(pid) + "/status");
  if (!text) return -1;
  auto pos = text->find("\n" + field + ":");
  if (pos == std::string::npos) return -1;
  return std::strtol(text->c_str() + pos + field.size() + 2, nullptr, 10);
}

// utime + stime of a process, in seconds.
double ProcCpuSeconds(pid_t pid) {
  auto text = ReadWhole("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return -1;
  auto close = text->rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(text->substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (in >> tok) f.push_back(tok);
  if (f.size() < 13) return -1;  // f[0] is field 3 (state); utime is field 14, stime 15
  double ticks = std::stod(f[11]) + std::stod(f[12]);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Per-thread utime+stime of a process: tid -> (thread name, seconds).
std::map<int, std::pair<std::string, double>> ThreadCpu(pid_t pid) {
  std::map<int, std::pair<std::string, double>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    auto text = ReadWhole(e.path() / "stat");
    if (!text) continue;
    auto open = text->find('('), close = text->rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream in(text->substr(close + 2));
    std::vector<std::string> f;
    std::string tok;
    while (in >> tok) f.push_back(tok);
    if (f.size() < 13) continue;
    double secs = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
    out[std::atoi(e.path().filename().c_str())] = {text->substr(open + 1, close - open - 1), secs};
  }
  return out;
}

// "name(tid) 93%, ..." for the busiest threads between two snapshots.
std::string BusiestThreads(const std::map<int, std::pair<std::string, double>>& before,
                           const std::map<int, std::pair<std::string, double>>& after, double seconds, size_t top) {
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [tid, v] : after) {
    auto it = before.find(tid);
    double used = v.second - (it == before.end() ? 0.0 : it->second.second);
    rows.emplace_back(used, v.first + "(" + std::to_string(tid) + ")");
  }
  std::sort(rows.rbegin(), rows.rend());
  std::string out;
  for (size_t i = 0; i < rows.size() && i < top; ++i)
    out += (i ? ", " : "") + rows[i].second + Fmt(" %.0f%%", rows[i].first / seconds * 100);
  return out;
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

// ---------------------------------------------------------------------------
// inventory::Digest, incrementally: the canonical encoding of each item is kept
// and only the changed items are re-encoded; the SHA-256 runs over the pieces.
// Same bytes as inventory::Digest (checked at start-up and, for every report,
// by the server, which refuses a delta whose digest does not match).

void AppendLp(std::string& out, const std::string& s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

std::string CanonPiece(const inv::ItemId& id, const inv::Fields& fields) {
  std::string out;
  AppendLp(out, id.first);
  AppendLp(out, id.second);
  out += std::to_string(fields.size());
  out += '{';
  for (const auto& [k, v] : fields) {
    AppendLp(out, k);
    AppendLp(out, v);
  }
  out += '}';
  return out;
}

std::string DigestOfPieces(const std::vector<std::string>& pieces) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  for (const auto& p : pieces) EVP_DigestUpdate(ctx.get(), p.data(), p.size());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return parc::HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

// ---------------------------------------------------------------------------
// Options and global counters

struct Options {
  std::string server_binary;
  int agents = 1000;
  int full_agents = -1;  // default min(N, 200)
  int packages = 1500;
  double delta_seconds = 10;
  int push_rounds = 5;
  std::string state_dir;
  int port = 0;
  int enroll_threads = 8;
  int connect_concurrency = 200;
  int delta_pipeline = 2;
  double settle_seconds = 3;
  double idle_seconds = 5;
  uint32_t heartbeat = 60;
  std::string server_log_level;
  bool keep_state = false;
};

struct Bench {
  int rounds = 0;
  // connect
  std::unique_ptr<std::counting_semaphore<1 << 20>> connect_slots;
  std::atomic<int> streams_started{0}, streams_done{0};
  std::atomic<int> welcomed{0}, connect_failed{0}, lost_after_welcome{0};
  std::atomic<int64_t> last_welcome_ns{0};
  std::atomic<bool> shutting_down{false};
  // full inventories: [0] the ingest phase (big), [1] preparation (small)
  std::atomic<int> full_acked[2]{}, full_failed[2]{};
  std::atomic<int64_t> last_full_ack_ns[2]{};
  // deltas
  std::atomic<bool> delta_active{false};
  size_t delta_pipeline = 2;
  std::atomic<int64_t> delta_deadline_ns{0};
  std::atomic<int64_t> delta_acked_second_half{0}, delta_half_ns{0};
  std::atomic<int64_t> delta_acked_window{0}, delta_acked_total{0}, delta_failed{0}, delta_outstanding{0};
  std::atomic<int64_t> last_delta_ack_ns{0};
  // push
  std::atomic<int> current_round{-1};
  std::vector<std::atomic<int64_t>> round_t0_ns;
  std::vector<std::atomic<int>> round_received;
  std::atomic<int> unexpected_commands{0};
  std::atomic<int> notices{0};
  // first few errors, for the report
  std::mutex err_mu;
  std::vector<std::string> errors;
  int errors_total = 0;

  void NoteError(const std::string& e) {
    std::lock_guard lock(err_mu);
    ++errors_total;
    if (errors.size() < 12) errors.push_back(e);
  }
};
Bench g;

// ---------------------------------------------------------------------------
// Synthetic inventories

const char* kPrefixes[] = {"lib", "python3-", "fonts-", "gir1.2-", "node-", "r-cran-", "golang-", "texlive-", "perl-", "x11-"};

void FillCommon(v1::Inventory& inv, int idx, const std::string& hostname) {
  auto* os = inv.mutable_os();
  os->set_id("debian");
  os->set_name("Debian GNU/Linux");
  os->set_version_id("12");
  os->set_pretty_name("Debian GNU/Linux 12 (bookworm)");
  os->set_version_codename("bookworm");
  os->set_kernel_name("Linux");
  os->set_kernel_release("6.1.0-18-amd64");
  os->set_kernel_version("#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)");
  os->set_architecture("x86_64");
  os->set_hostname(hostname);
  os->set_fqdn(hostname + ".lab.example.org");
  os->set_timezone("Europe/Paris");
  os->set_boot_time(1700000000 + idx);
  os->set_machine_id(Fmt("%032x", idx + 1));
  auto* hw = inv.mutable_hardware();
  hw->set_system_vendor("Dell Inc.");
  hw->set_product_name("OptiPlex 7090");
  hw->set_product_version("1.0");
  hw->set_serial_number(Fmt("SYN%07d", idx));
  hw->set_system_uuid(Fmt("4c4c4544-0000-4000-8000-%012x", idx));
  hw->set_bios_vendor("Dell Inc.");
  hw->set_bios_version("1.21.0");
  hw->set_bios_date("08/14/2023");
  hw->set_board_vendor("Dell Inc.");
  hw->set_board_name("0K6CP0");
  hw->set_board_serial(Fmt("/BRD%07d/", idx));
  hw->set_chassis_type("Desktop");
  hw->set_chassis_serial(Fmt("CH%07d", idx));
  auto* cpu = inv.mutable_cpu();
  cpu->set_model("Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz");
  cpu->set_vendor("GenuineIntel");
  cpu->set_sockets(1);
  cpu->set_cores(6);
  cpu->set_threads(12);
  cpu->set_flags_digest("9f2c4e1a7b3d5c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcd");
  cpu->set_max_mhz(4500);
  auto* mem = inv.mutable_memory();
  mem->set_total_bytes(16ull << 30);
  mem->set_swap_total_bytes(2ull << 30);
  mem->set_available_bytes((9ull << 30) + idx * 4096ull);
  mem->set_swap_free_bytes(2ull << 30);
  auto* d = inv.add_disks();
  d->set_name("nvme0n1");
  d->set_model("PC SN730 NVMe WDC 512GB");
  d->set_serial(Fmt("WD%010d", idx));
  d->set_size_bytes(512110190592ull);
  d->set_transport("nvme");
  d->set_wwn(Fmt("eui.e8238fa6bf53%04x", idx & 0xffff));
  for (auto [mp, dev, type, size] : {std::tuple{"/", "/dev/nvme0n1p2", "ext4", 250ull << 30},
                                     std::tuple{"/boot/efi", "/dev/nvme0n1p1", "vfat", 512ull << 20}}) {
    auto* f = inv.add_filesystems();
    f->set_mount_point(mp);
    f->set_device(dev);
    f->set_type(type);
    f->set_uuid(Fmt("%08x-%04x-4000-8000-%012x", idx, static_cast<unsigned>(size >> 20) & 0xffff, idx));
    f->set_size_bytes(size);
    f->set_free_bytes(size / 3);
  }
  auto* lo = inv.add_interfaces();
  lo->set_name("lo");
  lo->add_addresses("127.0.0.1/8");
  lo->add_addresses("::1/128");
  lo->set_state("unknown");
  lo->set_mtu(65536);
  lo->set_type("loopback");
  auto* en = inv.add_interfaces();
  en->set_name("enp0s31f6");
  en->set_mac(Fmt("52:54:00:%02x:%02x:%02x", (idx >> 16) & 0xff, (idx >> 8) & 0xff, idx & 0xff));
  en->add_addresses(Fmt("10.%d.%d.%d/16", 20 + (idx >> 16), (idx >> 8) & 0xff, idx & 0xff));
  en->set_state("up");
  en->set_speed_mbps(1000);
  en->set_mtu(1500);
  en->set_type("ether");
  en->set_driver("e1000e");
  auto* net = inv.mutable_network();
  net->set_default_gateway("10.20.0.1");
  net->set_default_interface("enp0s31f6");
  net->add_dns_servers("10.20.0.53");
  net->add_dns_servers("10.20.0.54");
  net->add_search_domains("lab.example.org");
  inv.mutable_virtualization()->set_role("none");
  auto* sec = inv.mutable_security();
  sec->set_firewall_present(true);
  sec->set_firewall_active(true);
  sec->set_firewall_kind("nftables");
  sec->set_secure_boot("enabled");
}

void AddPackages(v1::Inventory& inv, int idx, int count) {
  for (int j = 0; j < count; ++j) {
    auto* p = inv.add_software();
    p->set_name(std::string(kPrefixes[j % 10]) + "synthetic" + std::to_string(j));
    p->set_architecture(j % 10 == 9 ? "all" : "amd64");
    std::string version = Fmt("%d.%d.%d-%d", 1 + j % 7, j % 17, j % 5, 1 + j % 3);
    if ((j + idx) % 97 == 0) version += "+deb12u1";  // hosts differ a little
    p->set_version(version);
    p->set_source("dpkg");
    p->set_summary("synthetic package " + std::to_string(j) + " generated by parc-load");
    p->set_installed_size_bytes(1024ull * (1 + (j * 37) % 5000));
    p->set_vendor("Debian Synthetic Maintainers <synthetic@lists.example.org>");
  }
}

// big: the ingest-phase inventory (P packages and fuller sections); otherwise a
// small one, enough to give every agent a stored base for deltas.
v1::Inventory MakeInventory(int idx, const std::string& hostname, int packages, bool big) {
  v1::Inventory inv;
  FillCommon(inv, idx, hostname);
  AddPackages(inv, idx, packages);
  int services = big ? 60 : 3, users = big ? 30 : 2, groups = big ? 50 : 2;
  for (int j = 0; j < services; ++j) {
    auto* s = inv.add_services();
    s->set_name(Fmt("synthetic-%d.service", j));
    s->set_enabled(j % 4 == 0 ? "disabled" : "enabled");
    s->set_active(j % 4 != 0);
    s->set_description(Fmt("Synthetic service %d", j));
  }
  for (int j = 0; j < users; ++j) {
    auto* u = inv.add_users();
    u->set_name(j == 0 ? "root" : Fmt("user%d", j));
    u->set_uid(j == 0 ? 0 : 1000 + j);
    u->set_gid(j == 0 ? 0 : 1000 + j);
    u->set_home(j == 0 ? "/root" : Fmt("/home/user%d", j));
    u->set_shell("/bin/bash");
    u->set_system(j == 0);
  }
  for (int j = 0; j < groups; ++j) {
    auto* gr = inv.add_groups();
    gr->set_name(j == 0 ? "root" : Fmt("group%d", j));
    gr->set_gid(j == 0 ? 0 : 1000 + j);
    if (j % 5 == 1) gr->add_members("user1");
  }
  if (big) {
    auto* m = inv.add_monitors();
    m->set_connector("card0-DP-1");
    m->set_manufacturer("DEL");
    m->set_model("DELL P2422H");
    m->set_serial(Fmt("MON%06d", idx));
    m->set_product_code(41393);
    m->set_year(2022);
    m->set_width_cm(53);
    m->set_height_cm(30);
  }
  return inv;
}

// ---------------------------------------------------------------------------
// Simulated agents

struct Agent;

// One agent session: a bidi stream with at most one outstanding write and one
// outstanding read. A hold keeps OnDone from running (and the stream from being
// freed) until Close(), so that Send() can never touch a finished stream.
class Stream final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  explicit Stream(Agent* agent) : agent_(agent) {}
  void Begin(v1::AgentService::Stub* stub);
  bool Send(v1::AgentMessage message);
  void Close();
  bool done() const { return done_.load(); }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  Agent* agent_;
  grpc::ClientContext context_;
  v1::ServerMessage incoming_;
  // Recursive: gRPC may run OnWriteDone inline from StartWrite on this thread.
  std::recursive_mutex mutex_;
  std::deque<v1::AgentMessage> outgoing_;
  bool writing_ = false;
  bool write_failed_ = false;
  bool closed_ = false;
  std::atomic<bool> done_{false};
  std::atomic<bool> ended_early_{false};
  bool welcomed_before_end_ = false;
};

struct Agent {
  int index = 0;
  std::string hostname, token, key_pem, csr_pem;
  std::string host_id, cert_pem;
  bool enrolled = false;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::AgentService::Stub> stub;
  std::unique_ptr<Stream> stream;
  // 0 idle, 1 connecting, 2 welcomed, 3 failed before Welcome
  std::atomic<int> state{0};

  // Inventory state, touched by the main thread between phases and by this
  // agent's read callbacks during them.
  std::mutex inv_mu;
  inv::ItemMap items;
  std::string digest;              // after the last report sent
  std::vector<inv::ItemId> churn;  // items deltas change
  std::vector<size_t> churn_pos;   // their positions in `pieces`
  std::vector<std::string> pieces; // canonical encoding of each item, in map order
  bool has_base = false;           // a full inventory was accepted
  bool broken = false;             // a delta was refused: stop sending deltas
  uint64_t sequence = 0;
  std::deque<int64_t> delta_sent_ns;
  std::vector<float> delta_ack_ms;
  std::mt19937 rng;

  std::unique_ptr<std::atomic<int32_t>[]> push_us;  // per round, -1 = not received

  // Takes a new full inventory as the agent's state. Requires inv_mu.
  void SetInventory(const v1::Inventory& inventory) {
    items = inv::Flatten(inventory);
    pieces.clear();
    churn.clear();
    churn_pos.clear();
    pieces.reserve(items.size());
    for (const auto& [id, fields] : items) {
      if (id.first == "software") {
        churn.push_back(id);
        churn_pos.push_back(pieces.size());
      }
      pieces.push_back(CanonPiece(id, fields));
    }
    digest = DigestOfPieces(pieces);
  }
};

void OnDeltaAck(Agent& a, const v1::ReportAck& ack);
bool SendDelta(Agent& a);

void Stream::Begin(v1::AgentService::Stub* stub) {
  stub->async()->Connect(&context_, this);
  AddHold();
  StartRead(&incoming_);
  v1::AgentMessage hello;
  auto* h = hello.mutable_hello();
  h->set_agent_version("parc-load");
  h->mutable_platform()->set_os("linux");
  h->mutable_platform()->set_arch("x86_64");
  h->mutable_platform()->set_distribution("debian 12");
  h->set_hostname(agent_->hostname);
  Send(std::move(hello));
  StartCall();
}

bool Stream::Send(v1::AgentMessage message) {
  std::lock_guard lock(mutex_);
  if (closed_ || write_failed_) return false;
  outgoing_.push_back(std::move(message));
  if (!writing_) {
    writing_ = true;
    StartWrite(&outgoing_.front());
  }
  return true;
}

void Stream::OnWriteDone(bool ok) {
  std::lock_guard lock(mutex_);
  outgoing_.pop_front();
  if (!ok) write_failed_ = true;
  if (!ok || closed_ || outgoing_.empty()) {
    if (!ok || closed_) outgoing_.clear();
    writing_ = false;
    return;
  }
  StartWrite(&outgoing_.front());
}

void Stream::Close() {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  closed_ = true;
  context_.TryCancel();
  RemoveHold();
}

// The hold keeps OnDone back until Close(), so failures are noticed here, when
// the read fails, and their status is reported by OnDone at the end.
void Stream::OnDone(const grpc::Status& status) {
  if (ended_early_.load())
    g.NoteError((welcomed_before_end_ ? "session of " : "connect ") + agent_->hostname + " ended: status " +
                std::to_string(status.error_code()) + " " + status.error_message());
  done_ = true;
  g.streams_done++;
}

void Stream::OnReadDone(bool ok) {
  Agent& a = *agent_;
  if (!ok) {
    if (g.shutting_down.load()) return;
    ended_early_ = true;
    int expected = 1;
    if (a.state.compare_exchange_strong(expected, 3)) {
      g.connect_failed++;
      g.connect_slots->release();
    } else if (a.state.load() == 2) {
      welcomed_before_end_ = true;
      g.lost_after_welcome++;
    }
    return;
  }
  switch (incoming_.body_case()) {
    case v1::ServerMessage::kWelcome: {
      int expected = 1;
      if (a.state.compare_exchange_strong(expected, 2)) {
        AtomicMax(g.last_welcome_ns, NowNs());
        g.welcomed++;
        g.connect_slots->release();
      }
      break;
    }
    case v1::ServerMessage::kReportAck: {
      const auto& ack = incoming_.report_ack();
      const std::string& id = ack.report_id();
      if (!id.empty() && id[0] == 'd') {
        OnDeltaAck(a, ack);
      } else {
        int kind = (!id.empty() && id[0] == 's') ? 1 : 0;
        AtomicMax(g.last_full_ack_ns[kind], NowNs());
        std::lock_guard lock(a.inv_mu);
        if (ack.stored()) {
          a.has_base = true;
          g.full_acked[kind]++;
        } else {
          g.full_failed[kind]++;
          g.NoteError("full inventory " + id + " of " + a.hostname + " not stored: " + ack.error() +
                      (ack.full_inventory_wanted() ? " (full wanted)" : "") + (ack.rejected() ? " (rejected)" : ""));
        }
      }
      break;
    }
    case v1::ServerMessage::kCommand: {
      int r = g.current_round.load();
      if (r >= 0 && r < g.rounds) {
        int32_t us = static_cast<int32_t>(std::min<int64_t>((NowNs() - g.round_t0_ns[r].load()) / 1000, INT32_MAX));
        int32_t none = -1;
        if (a.push_us[r].compare_exchange_strong(none, us)) g.round_received[r]++;
      } else {
        g.unexpected_commands++;
      }
      break;
    }
    case v1::ServerMessage::kNotice:
      g.notices++;
      g.NoteError("notice to " + a.hostname + ": " + incoming_.notice().message());
      break;
    default:
      break;
  }
  StartRead(&incoming_);
}

// A delta of 1-3 changed software items on top of the agent's last report.
// Built directly (ToProto + Digest) rather than by Diff over a copy of the whole
// inventory: same result (checked once at start-up), without copying 1,500 items
// per report on the two cores the server also needs.
bool SendDelta(Agent& a) {
  v1::AgentMessage m;
  // Held until the report is queued on the stream: two threads (the kick-off
  // loop and an ack callback) may send for the same agent, and the reports must
  // reach the wire in digest order.
  std::lock_guard lock(a.inv_mu);
  {
    if (a.broken || !a.has_base || a.churn.empty() || !g.delta_active.load() || NowNs() >= g.delta_deadline_ns.load() ||
        a.delta_sent_ns.size() >= g.delta_pipeline)
      return false;
    auto* r = m.mutable_report();
    ++a.sequence;
    r->set_report_id(Fmt("d-%d-%" PRIu64, a.index, a.sequence));
    r->set_sequence(a.sequence);
    r->set_created_at(UnixNow());
    auto* d = r->mutable_inventory_delta();
    d->set_base_digest(a.digest);
    int k = 1 + static_cast<int>(a.rng() % 3);
    k = std::min<int>(k, static_cast<int>(a.churn.size()));
    size_t first = a.rng() % a.churn.size();
    for (int j = 0; j < k; ++j) {
      size_t c = (first + j) % a.churn.size();
      const auto& id = a.churn[c];
      auto& fields = a.items[id];
      fields["version"] = Fmt("9.%" PRIu64 ".%d-1", a.sequence, j);
      *d->add_upserts() = inv::ToProto(id, fields);
      a.pieces[a.churn_pos[c]] = CanonPiece(id, fields);
    }
    a.digest = DigestOfPieces(a.pieces);
    d->set_digest(a.digest);
    a.delta_sent_ns.push_back(NowNs());
  }
  g.delta_outstanding++;
  if (!a.stream->Send(std::move(m))) {
    g.delta_outstanding--;
    a.delta_sent_ns.pop_back();
    a.broken = true;
    return false;
  }
  return true;
}

void OnDeltaAck(Agent& a, const v1::ReportAck& ack) {
  int64_t now = NowNs();
  bool again = false;
  {
    std::lock_guard lock(a.inv_mu);
    if (!a.delta_sent_ns.empty()) {
      a.delta_ack_ms.push_back(static_cast<float>((now - a.delta_sent_ns.front()) / 1e6));
      a.delta_sent_ns.pop_front();
    }
    if (ack.stored()) {
      g.delta_acked_total++;
      if (now <= g.delta_deadline_ns.load()) {
        g.delta_acked_window++;
        if (now >= g.delta_half_ns.load()) g.delta_acked_second_half++;
      }
      AtomicMax(g.last_delta_ack_ns, now);
      again = !a.broken;
    } else {
      g.delta_failed++;
      if (!a.broken)
        g.NoteError("delta " + ack.report_id() + " of " + a.hostname + " not stored: " + ack.error() +
                    (ack.full_inventory_wanted() ? " (full wanted)" : "") + (ack.rejected() ? " (rejected)" : ""));
      a.broken = true;
    }
  }
  g.delta_outstanding--;
  if (again) SendDelta(a);
}

// ---------------------------------------------------------------------------
// The server process

struct ServerProcess {
  pid_t pid = -1;
  fs::path log;
  bool reaped = false;
  int status = 0;

  bool Running() {
    if (reaped) return false;
    if (waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    return !reaped;
  }
  // SIGTERM, then SIGKILL after timeout. Returns a description.
  std::string Stop(double timeout_s) {
    if (pid <= 0) return "not started";
    if (!reaped) {
      kill(pid, SIGTERM);
      WaitFor([&] { return !Running(); }, timeout_s, std::chrono::milliseconds(20));
      if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        reaped = true;
        return "did not stop within " + Fmt("%.0f", timeout_s) + " s of SIGTERM: killed";
      }
    }
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "ended";
  }
};

ServerProcess StartServer(const Options& o, const fs::path& state_dir) {
  ServerProcess sp;
  sp.log = state_dir / "server.log";
  std::vector<std::string> argv = {o.server_binary, "--state-dir", state_dir.string(), "--listen",
                                   "127.0.0.1:" + std::to_string(o.port), "--heartbeat", std::to_string(o.heartbeat)};
  if (!o.server_log_level.empty()) {
    argv.push_back("--log-level");
    argv.push_back(o.server_log_level);
  }
  pid_t parent = getpid();
  sp.pid = fork();
  if (sp.pid == 0) {
    // The server must not outlive this tool, whatever happens to it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    int fd = open(sp.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  return sp;
}

std::string LogTail(const fs::path& log, size_t bytes = 3000) {
  auto text = ReadWhole(log).value_or("");
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

// ---------------------------------------------------------------------------
// Admin credentials (STATE_DIR/admin.pem)

struct AdminCreds {
  std::string key_pem, cert_pem, ca_pem, server;
};

std::optional<AdminCreds> ReadAdminCreds(const fs::path& path) {
  auto text = ReadWhole(path);
  if (!text) return std::nullopt;
  AdminCreds c;
  auto kb = text->find("-----BEGIN PRIVATE KEY-----");
  const std::string kEnd = "-----END PRIVATE KEY-----";
  auto ke = text->find(kEnd, kb == std::string::npos ? 0 : kb);
  if (kb == std::string::npos || ke == std::string::npos) return std::nullopt;
  c.key_pem = text->substr(kb, ke + kEnd.size() - kb) + "\n";
  auto certs = parc::pki::SplitPemCertificates(*text);
  if (certs.size() < 2) return std::nullopt;
  c.cert_pem = certs[0];
  c.ca_pem = certs[1];
  auto sl = text->find("# server: ");
  if (sl != std::string::npos) {
    auto end = text->find('\n', sl);
    c.server = text->substr(sl + 10, end - sl - 10);
  }
  return c;
}

// ---------------------------------------------------------------------------
// Raw SQLite baseline: the same rows, the same column content, one transaction
// per inventory, prepared statement, WAL + synchronous=NORMAL.

struct BaselineResult {
  bool ok = false;
  std::string error;
  size_t rows = 0;
  double seconds = 0;
};

BaselineResult RawSqliteBaseline(const fs::path& db_path, const std::vector<std::vector<std::array<std::string, 4>>>& batches) {
  BaselineResult res;
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    res.error = raw ? sqlite3_errmsg(raw) : "cannot open";
    sqlite3_close(raw);
    return res;
  }
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, sqlite3_close);
  auto exec = [&](const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db.get(), sql, nullptr, nullptr, &err) != SQLITE_OK) {
      res.error = std::string(sql) + ": " + (err ? err : "?");
      sqlite3_free(err);
      return false;
    }
    return true;
  };
  // Same table as the server's inventory_items (primary key, WITHOUT ROWID).
  if (!exec("PRAGMA journal_mode=WAL") || !exec("PRAGMA synchronous=NORMAL") ||
      !exec("CREATE TABLE inventory_items (host_id TEXT NOT NULL, section TEXT NOT NULL, item_key TEXT NOT NULL, "
            "fields TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (host_id, section, item_key)) WITHOUT ROWID"))
    return res;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v3(db.get(),
                         "INSERT INTO inventory_items(host_id, section, item_key, fields, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                         -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK) {
    res.error = sqlite3_errmsg(db.get());
    return res;
  }
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(st, sqlite3_finalize);
  int64_t now = UnixNow();
  int64_t t0 = NowNs();
  for (const auto& batch : batches) {
    if (!exec("BEGIN")) return res;
    for (const auto& row : batch) {
      for (int c = 0; c < 4; ++c)
        sqlite3_bind_text(st, c + 1, row[c].data(), static_cast<int>(row[c].size()), SQLITE_STATIC);
      sqlite3_bind_int64(st, 5, now);
      if (sqlite3_step(st) != SQLITE_DONE) {
        res.error = sqlite3_errmsg(db.get());
        return res;
      }
      sqlite3_reset(st);
      ++res.rows;
    }
    if (!exec("COMMIT")) return res;
  }
  res.seconds = SecondsSince(t0);
  res.ok = true;
  return res;
}

// One-time check that a delta built by SendDelta's method equals Diff's.
bool DeltaMethodMatchesDiff() {
  auto inv = MakeInventory(0, "check", 20, false);
  inv::ItemMap before = inv::Flatten(inv);
  inv::ItemMap after = before;
  v1::InventoryDelta mine;
  mine.set_base_digest(inv::Digest(before));
  int n = 0;
  for (auto& [id, fields] : after) {
    if (id.first != "software" || n >= 2) continue;
    fields["version"] = "9.9." + std::to_string(n++);
    *mine.add_upserts() = inv::ToProto(id, fields);
  }
  mine.set_digest(inv::Digest(after));
  auto ref = inv::Diff(before, after);
  if (ref.base_digest() != mine.base_digest() || ref.digest() != mine.digest()) return false;
  if (ref.upserts_size() != mine.upserts_size() || ref.removals_size() != 0) return false;
  for (int i = 0; i < ref.upserts_size(); ++i)
    if (ref.upserts(i).SerializeAsString() != mine.upserts(i).SerializeAsString()) {
      // map field order may differ in serialization; compare semantically
      if (ref.upserts(i).section() != mine.upserts(i).section() || ref.upserts(i).key() != mine.upserts(i).key() ||
          ref.upserts(i).fields().size() != mine.upserts(i).fields().size())
        return false;
    }
  inv::ItemMap applied = before;
  if (!inv::Apply(applied, mine) || applied != after) return false;
  // The incremental digest must give inventory::Digest's bytes.
  Agent probe;
  probe.SetInventory(MakeInventory(7, "check", 50, true));
  if (probe.digest != inv::Digest(probe.items)) return false;
  auto& f = probe.items[probe.churn[3]];
  f["version"] = "9.9.9";
  probe.pieces[probe.churn_pos[3]] = CanonPiece(probe.churn[3], f);
  return DigestOfPieces(probe.pieces) == inv::Digest(probe.items);
}

// ---------------------------------------------------------------------------

struct Summary {
  double enroll_rate = 0, connect_rate = 0, connect_s = 0;
  int enrolled = 0, connected = 0;
  double full_inv_rate = 0, full_rows_rate = 0;
  double delta_rate = 0;
  double push_p50 = 0, push_p99 = 0, push_max = 0;
  long push_samples = 0, push_expected = 0;
  double rss_per_agent_kib = 0;
  double raw_rows_rate = 0, ratio = 0;
  double idle_cpu = 0, idle_cpu_hb = -1;
  long threads = 0;
};

int Main(const Options& opt_in) {
  Options o = opt_in;
  if (o.full_agents < 0) o.full_agents = std::min(o.agents, 200);
  o.full_agents = std::min(o.full_agents, o.agents);
  g.rounds = o.push_rounds;
  g.delta_pipeline = static_cast<size_t>(std::max(1, o.delta_pipeline));
  g.round_t0_ns = std::vector<std::atomic<int64_t>>(std::max(1, o.push_rounds));
  g.round_received = std::vector<std::atomic<int>>(std::max(1, o.push_rounds));
  g.connect_slots = std::make_unique<std::counting_semaphore<1 << 20>>(std::max(1, o.connect_concurrency));
  Summary sum;
  int64_t run_start = NowNs();

  std::printf("parc-load: %d agents (%d send a full inventory of %d packages), delta phase %.0f s, %d push rounds\n",
              o.agents, o.full_agents, o.packages, o.delta_seconds, o.push_rounds);

  if (!DeltaMethodMatchesDiff()) {
    std::fprintf(stderr, "parc-load: internal check failed: hand-built delta differs from inventory::Diff\n");
    return 2;
  }

  // --- file descriptors: one per agent here and one per agent in the server
  // (which inherits this limit), plus room for the database, logs and gRPC.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) std::perror("setrlimit(RLIMIT_NOFILE)");
  getrlimit(RLIMIT_NOFILE, &rl);
  std::printf("fd limit (soft, raised to hard): %llu\n", static_cast<unsigned long long>(rl.rlim_cur));
  if (static_cast<unsigned long long>(o.agents) + 200 > rl.rlim_cur) {
    std::printf("WARNING: %d agents need about %d file descriptors in this process and in the server; the limit is %llu. "
                "Connections beyond it will fail (EMFILE).\n",
                o.agents, o.agents + 200, static_cast<unsigned long long>(rl.rlim_cur));
  }

  // --- state directory and server
  fs::path state_dir;
  bool temporary_state = o.state_dir.empty();
  if (o.state_dir.empty()) {
    char tmpl[] = "/tmp/parc-load.XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("mkdtemp");
      return 2;
    }
    state_dir = tmpl;
  } else {
    state_dir = o.state_dir;
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (fs::exists(state_dir / "parc.db")) {
      std::fprintf(stderr, "parc-load: %s already holds a parc database; give a fresh --state-dir\n", state_dir.c_str());
      return 2;
    }
  }
  fs::path server_dir = state_dir / "server";
  std::printf("state directory: %s (server log: %s)\n", state_dir.c_str(), (server_dir / "server.log").c_str());
  std::error_code ec;
  fs::create_directories(server_dir, ec);
  ServerProcess server = StartServer(o, server_dir);
  if (server.pid < 0) {
    std::perror("fork");
    return 2;
  }
  int rc = 0;
  auto finish = [&](int code) {
    // Sessions first (a clean cancel on each stream), then the server.
    g.shutting_down = true;
    int started = g.streams_started.load();
    Header("shutdown");
    int64_t t0 = NowNs();
    // Agents are closed by the caller (it owns them); here only the server.
    std::string how = server.Stop(20);
    Line("server stop", how + Fmt(" (%.1f s after SIGTERM)", SecondsSince(t0)));
    if (temporary_state && !o.keep_state) {
      // The databases of a 10,000-agent run weigh ~0.7 GB; the log stays.
      std::error_code rm;
      std::vector<fs::path> doomed;
      for (const auto& e : fs::recursive_directory_iterator(state_dir, rm))
        if (e.path().filename().string().find(".db") != std::string::npos) doomed.push_back(e.path());
      for (const auto& p : doomed) fs::remove(p, rm);
      Line("state directory", state_dir.string() + " (databases removed; --keep-state keeps them)");
    }
    (void)started;
    Line("total run time", Fmt("%.1f s", SecondsSince(run_start)));
    std::fflush(stdout);
    return code;
  };

  bool addr_ok = WaitFor([&] { return fs::exists(server_dir / "server.addr") || !server.Running(); }, 60,
                         std::chrono::milliseconds(20));
  if (!addr_ok || !server.Running()) {
    std::fprintf(stderr, "parc-load: the server did not start (no server.addr within 60 s). Log tail:\n%s\n",
                 LogTail(server.log).c_str());
    return finish(1);
  }
  std::string addr = ReadWhole(server_dir / "server.addr").value_or("");
  while (!addr.empty() && (addr.back() == '\n' || addr.back() == ' ')) addr.pop_back();
  auto creds = ReadAdminCreds(server_dir / "admin.pem");
  if (!creds) {
    std::fprintf(stderr, "parc-load: cannot read admin credentials %s\n", (server_dir / "admin.pem").c_str());
    return finish(1);
  }
  std::printf("server pid %d listening on %s\n", server.pid, addr.c_str());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long rss_start = ProcStatusField(server.pid, "VmRSS");

  parc::agent::ChannelOptions admin_opts;
  admin_opts.server = addr;
  admin_opts.ca_pem = creds->ca_pem;
  admin_opts.key_pem = creds->key_pem;
  admin_opts.cert_pem = creds->cert_pem;
  admin_opts.own_connection = true;
  auto admin_channel = parc::agent::MakeChannel(admin_opts);
  auto admin = v1::AdminService::NewStub(admin_channel);

  // --- agents: keys, CSRs, tokens (preparation, not part of any rate)
  std::vector<std::unique_ptr<Agent>> agents;
  agents.reserve(o.agents);
  for (int i = 0; i < o.agents; ++i) {
    auto a = std::make_unique<Agent>();
    a->index = i;
    a->hostname = Fmt("load-%05d", i);
    a->rng.seed(0x9e3779b9u ^ static_cast<unsigned>(i));
    a->push_us = std::make_unique<std::atomic<int32_t>[]>(std::max(1, o.push_rounds));
    for (int r = 0; r < std::max(1, o.push_rounds); ++r) a->push_us[r] = -1;
    agents.push_back(std::move(a));
  }
  auto close_all = [&] {
    g.shutting_down = true;
    int started = g.streams_started.load();
    for (auto& a : agents)
      if (a->stream) a->stream->Close();
    bool all = WaitFor([&] { return g.streams_done.load() >= started; }, 30, std::chrono::milliseconds(10));
    Line("agent sessions closed", Fmt("%d / %d%s", g.streams_done.load(), started, all ? "" : " (timed out after 30 s)"));
  };

  Header("preparation (not timed as a result)");
  {
    int64_t t0 = NowNs();
    std::atomic<int> next{0}, bad{0};
    unsigned nthreads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < nthreads; ++t)
      ts.emplace_back([&] {
        for (int i; (i = next++) < o.agents;) {
          auto key = parc::pki::GenerateKeyPem();
          if (!key) { bad++; continue; }
          auto csr = parc::pki::MakeCsr(*key, agents[i]->hostname);
          if (!csr) { bad++; continue; }
          agents[i]->key_pem = std::move(*key);
          agents[i]->csr_pem = std::move(*csr);
        }
      });
    for (auto& t : ts) t.join();
    Line("agent keys + CSRs (P-256)", Fmt("%d in %.2f s (%d failed)", o.agents - bad.load(), SecondsSince(t0), bad.load()));
  }
  {
    int64_t t0 = NowNs();
    std::atomic<int> next{0}, bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        for (int i; (i = next++) < o.agents;) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::CreateTokenRequest req;
          req.set_comment("parc-load");
          v1::CreateTokenResponse resp;
          auto st = admin->CreateToken(&ctx, req, &resp);
          if (!st.ok()) {
            bad++;
            g.NoteError("CreateToken: " + st.error_message());
            continue;
          }
          agents[i]->token = resp.token();
        }
      });
    for (auto& t : ts) t.join();
    double s = SecondsSince(t0);
    Line("enrollment tokens (CreateToken)", Fmt("%d in %.2f s = %.0f tokens/s over 4 threads, one admin connection (%d failed)",
                                               o.agents - bad.load(), s, (o.agents - bad.load()) / s, bad.load()));
    if (bad.load() == o.agents) {
      std::fprintf(stderr, "parc-load: no token could be created; server log tail:\n%s\n", LogTail(server.log).c_str());
      return finish(1);
    }
  }

  // --- 1. enrollment
  Header("1. enrollment");
  {
    std::atomic<int> next{0}, ok{0}, bad{0};
    std::atomic<int64_t> last_ns{0};
    int threads = std::max(1, o.enroll_threads);
    // One server-auth TLS connection per client thread, opened before timing.
    std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
    for (int t = 0; t < threads; ++t) {
      parc::agent::ChannelOptions co;
      co.server = addr;
      co.ca_pem = creds->ca_pem;
      co.own_connection = true;
      auto ch = parc::agent::MakeChannel(co);
      ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
      stubs.push_back(v1::AgentService::NewStub(ch));
    }
    int64_t t0 = NowNs();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        for (int i; (i = next++) < o.agents;) {
          Agent& a = *agents[i];
          if (a.token.empty() || a.csr_pem.empty()) { bad++; continue; }
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::EnrollRequest req;
          req.set_token(a.token);
          req.set_csr_pem(a.csr_pem);
          req.set_hostname(a.hostname);
          req.mutable_platform()->set_os("linux");
          req.mutable_platform()->set_arch("x86_64");
          req.mutable_platform()->set_distribution("debian 12");
          req.add_fingerprint(Fmt("uuid:4c4c4544-0000-4000-8000-%012x", i));
          req.add_fingerprint(Fmt("mac:52:54:00:%02x:%02x:%02x", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff));
          v1::EnrollResponse resp;
          auto st = stubs[t]->Enroll(&ctx, req, &resp);
          AtomicMax(last_ns, NowNs());
          if (!st.ok()) {
            bad++;
            g.NoteError("Enroll " + a.hostname + ": " + st.error_message());
            continue;
          }
          a.host_id = resp.host_id();
          a.cert_pem = resp.certificate_pem();
          a.enrolled = true;
          ok++;
        }
      });
    for (auto& t : ts) t.join();
    double s = (last_ns.load() - t0) / 1e9;
    sum.enrolled = ok.load();
    sum.enroll_rate = s > 0 ? ok.load() / s : 0;
    Line("agents enrolled", Fmt("%d / %d (%d failed)", ok.load(), o.agents, bad.load()));
    Line("enroll rate", Fmt("%.1f enrollments/s (%.2f s)", sum.enroll_rate, s));
    How(Fmt("%d client threads, each with its own server-auth TLS connection (opened beforehand), one blocking "
            "Enroll (token + CSR -> certificate) at a time per thread; wall time first request -> last response; "
            "keys, CSRs and tokens prepared before",
            threads));
  }
  if (sum.enrolled == 0) {
    close_all();
    return finish(1);
  }

  // --- server idle, 0 agents connected (enroll connections closed above)
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long rss_idle = ProcStatusField(server.pid, "VmRSS");

  // --- 2. connect
  Header("2. connect (mutual TLS, Connect + Hello until Welcome)");
  {
    int64_t t0 = NowNs();
    double phase_timeout = 60 + sum.enrolled * 0.02;
    int64_t deadline = t0 + static_cast<int64_t>(phase_timeout * 1e9);
    double cpu_srv0 = ProcCpuSeconds(server.pid), cpu_self0 = SelfCpuSeconds();
    bool timed_out = false;
    for (auto& ap : agents) {
      Agent& a = *ap;
      if (!a.enrolled) continue;
      auto wait = std::chrono::nanoseconds(std::max<int64_t>(0, deadline - NowNs()));
      if (!g.connect_slots->try_acquire_for(wait)) {
        timed_out = true;
        break;
      }
      parc::agent::ChannelOptions co;
      co.server = addr;
      co.ca_pem = creds->ca_pem;
      co.key_pem = a.key_pem;
      co.cert_pem = a.cert_pem;
      co.own_connection = true;
      a.channel = parc::agent::MakeChannel(co);
      a.stub = v1::AgentService::NewStub(a.channel);
      a.stream = std::make_unique<Stream>(&a);
      a.state = 1;
      g.streams_started++;
      a.stream->Begin(a.stub.get());
    }
    int started = g.streams_started.load();
    bool all = WaitFor([&] { return g.welcomed.load() + g.connect_failed.load() >= started; },
                       std::max(1.0, (deadline - NowNs()) / 1e9));
    timed_out = timed_out || !all;
    double s = ((g.welcomed.load() ? g.last_welcome_ns.load() : NowNs()) - t0) / 1e9;
    sum.connected = g.welcomed.load();
    sum.connect_s = s;
    sum.connect_rate = s > 0 ? sum.connected / s : 0;
    Line("agents connected", Fmt("%d / %d enrolled (%d failed%s)", sum.connected, sum.enrolled, g.connect_failed.load(),
                                 timed_out ? Fmt(", phase timed out after %.0f s", phase_timeout).c_str() : ""));
    Line("connect rate", Fmt("%.1f connections/s (%.2f s for all)", sum.connect_rate, s));
    Line("cpu during phase", Fmt("server %.2f s, parc-load %.2f s", ProcCpuSeconds(server.pid) - cpu_srv0,
                                 SelfCpuSeconds() - cpu_self0));
    How(Fmt("one channel (own TCP+TLS 1.3 connection, own key and certificate) and one callback-API bidi stream "
            "(ClientBidiReactor) per agent, at most %d handshakes in flight; wall time from the first stream start "
            "to the last Welcome received",
            o.connect_concurrency));
  }

  // --- 6. memory, idle CPU, threads (before any inventory, so that the
  // database cache is not counted as per-connection memory)
  Header("6. server memory, idle CPU and threads with all agents connected");
  {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.settle_seconds));
    long rss_conn = ProcStatusField(server.pid, "VmRSS");
    long threads = ProcStatusField(server.pid, "Threads");
    sum.threads = threads;
    double per = sum.connected > 0 ? static_cast<double>(rss_conn - rss_idle) / sum.connected : 0;
    sum.rss_per_agent_kib = per;
    Line("server RSS at start", Fmt("%ld KiB", rss_start));
    Line("server RSS idle, 0 agents", Fmt("%ld KiB (after enrollment, enroll connections closed)", rss_idle));
    Line("server RSS, all connected", Fmt("%ld KiB (%d agents, %.0f s after the last Welcome)", rss_conn, sum.connected,
                                          o.settle_seconds));
    Line("server RSS per connected agent", Fmt("%.1f KiB", per));
    How("VmRSS from /proc/<server pid>/status; (connected - idle) / connected agents");
    Line("parc-load RSS", Fmt("%ld KiB (client side: ~150 KB per simulated agent expected)", ProcStatusField(getpid(), "VmRSS")));

    double c0 = ProcCpuSeconds(server.pid);
    int64_t t0 = NowNs();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));
    double cpu = (ProcCpuSeconds(server.pid) - c0) / SecondsSince(t0) * 100;
    sum.idle_cpu = cpu;
    Line("server idle CPU", Fmt("%.2f %% of one core over %.1f s (no traffic but keepalive)", cpu, o.idle_seconds));

    // The same with every agent sending its heartbeat at the server's interval
    // (what an idle fleet really sends), phases spread evenly.
    if (sum.connected > 0 && o.heartbeat > 0) {
      std::vector<Agent*> live;
      for (auto& a : agents)
        if (a->state.load() == 2) live.push_back(a.get());
      double per_s = static_cast<double>(live.size()) / o.heartbeat;
      c0 = ProcCpuSeconds(server.pid);
      t0 = NowNs();
      size_t cursor = 0;
      double owed = 0;
      long sent = 0;
      while (SecondsSince(t0) < o.idle_seconds) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        owed += per_s * 0.05;
        while (owed >= 1) {
          owed -= 1;
          v1::AgentMessage hb;
          hb.mutable_heartbeat()->set_sent_at(UnixNow());
          live[cursor % live.size()]->stream->Send(std::move(hb));
          ++cursor;
          ++sent;
        }
      }
      double secs = SecondsSince(t0);
      double cpu_hb = (ProcCpuSeconds(server.pid) - c0) / secs * 100;
      sum.idle_cpu_hb = cpu_hb;
      Line("server CPU with heartbeats", Fmt("%.2f %% of one core over %.1f s (%ld heartbeats = %.0f/s, i.e. every "
                                             "agent once per %u s)", cpu_hb, secs, sent, sent / secs, o.heartbeat));
    }
    Line("server threads", Fmt("%ld", threads));
    How("utime+stime from /proc/<server pid>/stat over the window, as % of one core; Threads from /proc/<pid>/status");
  }

  // --- 3. full-inventory ingest
  Header("3. full-inventory ingest");
  std::vector<Agent*> live;
  for (auto& a : agents)
    if (a->state.load() == 2) live.push_back(a.get());
  int m = std::min<int>(o.full_agents, static_cast<int>(live.size()));
  size_t total_rows = 0;
  std::vector<std::vector<std::array<std::string, 4>>> baseline_rows;
  std::vector<BaselineResult> baseline_runs;
  {
    int64_t tp = NowNs();
    std::vector<v1::AgentMessage> msgs(m);
    for (int i = 0; i < m; ++i) {
      Agent& a = *live[i];
      auto inventory = MakeInventory(a.index, a.hostname, o.packages, true);
      {
        std::lock_guard lock(a.inv_mu);
        a.SetInventory(inventory);
        total_rows += a.items.size();
      }
      auto* r = msgs[i].mutable_report();
      r->set_report_id(Fmt("f-%d", a.index));
      r->set_sequence(++a.sequence);
      r->set_created_at(UnixNow());
      *r->mutable_full_inventory() = std::move(inventory);
    }
    size_t bytes = m > 0 ? msgs[0].ByteSizeLong() : 0;
    Note(Fmt("built %d inventories of %zu rows on average (%zu bytes each on the wire) in %.2f s", m,
             m ? total_rows / m : 0, bytes, SecondsSince(tp)));

    // Rows for the baseline, exactly what the server stores in inventory_items.
    for (int i = 0; i < m; ++i) {
      Agent& a = *live[i];
      std::lock_guard lock(a.inv_mu);
      auto& batch = baseline_rows.emplace_back();
      batch.reserve(a.items.size());
      for (const auto& [id, fields] : a.items)
        batch.push_back({a.host_id, id.first, id.second, nlohmann::json(fields).dump()});
    }
    // Baseline run 1 of 3 before Parc's ingest, 2 and 3 after (phase 7).
    baseline_runs.push_back(RawSqliteBaseline(state_dir / "baseline-1.db", baseline_rows));

    double cpu_srv0 = ProcCpuSeconds(server.pid);
    int64_t t0 = NowNs();
    for (int i = 0; i < m; ++i) live[i]->stream->Send(std::move(msgs[i]));
    bool all = WaitFor([&] { return g.full_acked[0].load() + g.full_failed[0].load() >= m; }, 120 + m * 1.0);
    int64_t t_end = g.last_full_ack_ns[0].load();
    double s = t_end > t0 ? (t_end - t0) / 1e9 : SecondsSince(t0);
    int acked = g.full_acked[0].load();
    size_t rows_acked = m ? total_rows / m * acked : 0;
    sum.full_inv_rate = acked / s;
    sum.full_rows_rate = rows_acked / s;
    Line("full inventories stored", Fmt("%d / %d (%d refused%s)", acked, m, g.full_failed[0].load(),
                                        all ? "" : ", timed out"));
    Line("ingest wall time", Fmt("%.2f s", s));
    Line("full inventories/s", Fmt("%.1f inventories/s", sum.full_inv_rate));
    Line("inventory rows/s", Fmt("%.0f rows/s (rows = items: %zu per inventory)", sum.full_rows_rate, m ? total_rows / m : 0));
    Line("server cpu during phase", Fmt("%.2f s", ProcCpuSeconds(server.pid) - cpu_srv0));
    How(Fmt("%d agents each send one Report{full_inventory} (%d packages + os, hardware, cpu, memory, disks, "
            "filesystems, interfaces, network, services, users, groups, monitors, virtualization, security) all at "
            "once; wall time from the first send to the last ReportAck{stored}",
            m, o.packages));
  }

  // --- 7. raw SQLite baseline (right after, same machine, server idle)
  Header("7. baseline: raw SQLite insert of the same rows");
  {
    for (int run = 2; run <= 3; ++run)
      baseline_runs.push_back(RawSqliteBaseline(state_dir / Fmt("baseline-%d.db", run), baseline_rows));
    std::vector<double> rates;
    for (size_t i = 0; i < baseline_runs.size(); ++i) {
      const auto& res = baseline_runs[i];
      if (!res.ok) {
        Line(Fmt("run %zu", i + 1), "FAILED: " + res.error);
        continue;
      }
      rates.push_back(res.rows / res.seconds);
      Line(Fmt("run %zu (%s)", i + 1, i == 0 ? "before parc ingest" : "after"),
           Fmt("%zu rows in %.3f s = %.0f rows/s", res.rows, res.seconds, res.rows / res.seconds));
    }
    if (!rates.empty()) {
      std::sort(rates.begin(), rates.end());
      sum.raw_rows_rate = rates[rates.size() / 2];
      sum.ratio = sum.raw_rows_rate > 0 ? sum.full_rows_rate / sum.raw_rows_rate : 0;
      Line("raw SQLite rows/s (median)", Fmt("%.0f rows/s", sum.raw_rows_rate));
      Line("ratio parc / raw", Fmt("%.3f (parc full-ingest rows/s / median raw rows/s)", sum.ratio));
      How(Fmt("each run a fresh SQLite file, WAL, synchronous=NORMAL, table shaped like the server's inventory_items "
              "(host_id, section, item_key, fields JSON, updated_at; PRIMARY KEY, WITHOUT ROWID), one prepared INSERT, "
              "one transaction per inventory (%zu transactions); JSON encoded beforehand, so only SQLite is timed; "
              "run 1 just before phase 3, runs 2-3 just after",
              baseline_rows.size()));
    }
    baseline_rows.clear();
    baseline_rows.shrink_to_fit();
  }

  // --- preparation for deltas: every other agent sends a small full inventory
  Header("preparation: small full inventories for the other agents (base for deltas)");
  {
    int rest = static_cast<int>(live.size()) - m;
    int64_t t0 = NowNs();
    size_t rows = 0;
    for (int i = m; i < static_cast<int>(live.size()); ++i) {
      Agent& a = *live[i];
      auto inventory = MakeInventory(a.index, a.hostname, 8, false);
      v1::AgentMessage msg;
      {
        std::lock_guard lock(a.inv_mu);
        a.SetInventory(inventory);
        rows = a.items.size();
      }
      auto* r = msg.mutable_report();
      r->set_report_id(Fmt("s-%d", a.index));
      r->set_sequence(++a.sequence);
      r->set_created_at(UnixNow());
      *r->mutable_full_inventory() = std::move(inventory);
      a.stream->Send(std::move(msg));
    }
    if (rest == 0) Note("none needed: every connected agent sent a full inventory in phase 3");
    bool all = WaitFor([&] { return g.full_acked[1].load() + g.full_failed[1].load() >= rest; }, 60 + rest * 0.05);
    double s = rest > 0 ? (g.last_full_ack_ns[1].load() - t0) / 1e9 : 0;
    if (rest > 0) Line("small inventories stored", Fmt("%d / %d (%zu rows each; %d refused%s) in %.2f s = %.0f inventories/s",
                                         g.full_acked[1].load(), rest, rows, g.full_failed[1].load(),
                                         all ? "" : ", timed out", s, s > 0 ? g.full_acked[1].load() / s : 0));
  }

  // --- 4. delta ingest
  Header("4. delta ingest");
  {
    int senders = 0;
    for (Agent* a : live) {
      std::lock_guard lock(a->inv_mu);
      if (a->has_base) ++senders;
    }
    double cpu_srv0 = ProcCpuSeconds(server.pid), cpu_self0 = SelfCpuSeconds();
    auto threads0 = ThreadCpu(server.pid);
    int64_t t0 = NowNs();
    g.delta_deadline_ns = t0 + static_cast<int64_t>(o.delta_seconds * 1e9);
    g.delta_half_ns = t0 + static_cast<int64_t>(o.delta_seconds * 0.5e9);
    g.delta_active = true;
    for (int p = 0; p < std::max(1, o.delta_pipeline); ++p)
      for (Agent* a : live) SendDelta(*a);
    double kickoff_s = SecondsSince(t0);
    WaitFor([&] { return NowNs() >= g.delta_deadline_ns.load(); }, o.delta_seconds + 1, std::chrono::milliseconds(20));
    double cpu_srv = ProcCpuSeconds(server.pid) - cpu_srv0, cpu_self = SelfCpuSeconds() - cpu_self0;
    std::string busiest = BusiestThreads(threads0, ThreadCpu(server.pid), o.delta_seconds, 4);
    int64_t window_acked = g.delta_acked_window.load();
    bool drained = WaitFor([&] { return g.delta_outstanding.load() <= 0; }, 60, std::chrono::milliseconds(10));
    g.delta_active = false;
    double drain_s = (std::max(g.last_delta_ack_ns.load(), g.delta_deadline_ns.load()) - g.delta_deadline_ns.load()) / 1e9;
    int64_t total = g.delta_acked_total.load();
    sum.delta_rate = window_acked / o.delta_seconds;
    std::vector<double> lat;
    for (Agent* a : live) {
      std::lock_guard lock(a->inv_mu);
      for (float v : a->delta_ack_ms) lat.push_back(v);
    }
    std::sort(lat.begin(), lat.end());
    Line("delta senders", Fmt("%d agents, up to %d reports outstanding each", senders, o.delta_pipeline));
    Line("acknowledged delta reports/s", Fmt("%.0f reports/s (%" PRId64 " stored acks within the %.0f s window)",
                                             sum.delta_rate, window_acked, o.delta_seconds));
    Line("after the window", Fmt("%" PRId64 " stored in total, %" PRId64 " refused; drained in %.2f s%s", total,
                                 g.delta_failed.load(), drain_s, drained ? "" : " (NOT drained after 60 s)"));
    double sustained_s = (std::max(g.last_delta_ack_ns.load(), t0 + 1) - t0) / 1e9;
    Line("sustained, window + drain", Fmt("%.0f reports/s (%" PRId64 " stored / %.2f s from the first send to the last ack)",
                                          total / sustained_s, total, sustained_s));
    Line("second half of the window", Fmt("%.0f reports/s (stored acks in the last %.1f s, after the ramp-up)",
                                          g.delta_acked_second_half.load() / (o.delta_seconds / 2), o.delta_seconds / 2));
    Line("initial sends", Fmt("%.2f s to queue the first %d report(s) of every agent", kickoff_s, o.delta_pipeline));
    Line("delta ack latency", Fmt("p50 %.1f ms, p99 %.1f ms, max %.1f ms (send -> ack)", Percentile(lat, 50),
                                  Percentile(lat, 99), lat.empty() ? 0.0 : lat.back()));
    Line("cpu during window", Fmt("server %.2f s (%.0f %% of one core), parc-load %.2f s (%.0f %%)", cpu_srv,
                                  cpu_srv / o.delta_seconds * 100, cpu_self, cpu_self / o.delta_seconds * 100));
    Line("busiest server threads", busiest + " (of one core, over the window)");
    if (window_acked > 0)
      Line("server CPU per stored delta", Fmt("%.3f ms (= %.0f deltas/s per fully used server core)",
                                              cpu_srv * 1000 / window_acked, window_acked / cpu_srv));
    How("every connected agent sends Report{inventory_delta} of 1-3 changed software items, based on the digest of "
        "its previous report (Digest/ToProto from inventory_model), next one sent when an ack arrives; stored acks "
        "received within S seconds of the first send, divided by S");
  }

  // --- 5. push-to-all
  Header("5. push-to-all latency (AdminService.CollectInventory to all hosts)");
  {
    std::vector<double> lat;
    long expected_total = 0;
    std::vector<std::pair<std::string, std::string>> per_round;
    for (int r = 0; r < o.push_rounds; ++r) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      g.round_t0_ns[r] = NowNs();
      g.current_round = r;
      int64_t t0 = g.round_t0_ns[r].load();
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::CollectInventoryRequest req;
      v1::CollectInventoryResponse resp;
      auto st = admin->CollectInventory(&ctx, req, &resp);
      double call_ms = SecondsSince(t0) * 1000;
      if (!st.ok()) {
        per_round.emplace_back(Fmt("round %d", r + 1), "CollectInventory failed: " + st.error_message());
        continue;
      }
      int want = resp.sent_to_size();
      expected_total += want;
      bool all = WaitFor([&] { return g.round_received[r].load() >= want; }, 30, std::chrono::milliseconds(2));
      double last_ms = 0;
      for (Agent* a : live) {
        int32_t us = a->push_us[r].load();
        if (us >= 0) {
          lat.push_back(us / 1000.0);
          last_ms = std::max(last_ms, us / 1000.0);
        }
      }
      per_round.emplace_back(Fmt("round %d", r + 1),
                             Fmt("sent_to %d, offline %d, received %d%s, admin call %.0f ms, last arrival %.0f ms", want,
                                 resp.offline_size(), g.round_received[r].load(), all ? "" : " (timed out after 30 s)",
                                 call_ms, last_ms));
    }
    g.current_round = -1;
    std::sort(lat.begin(), lat.end());
    sum.push_samples = static_cast<long>(lat.size());
    sum.push_expected = expected_total;
    sum.push_p50 = Percentile(lat, 50);
    sum.push_p99 = Percentile(lat, 99);
    sum.push_max = lat.empty() ? 0 : lat.back();
    for (const auto& [label, text] : per_round) Line(label, text);
    Line("push latency", Fmt("p50 %.0f ms, p99 %.0f ms, max %.0f ms over %ld deliveries (%ld expected)", sum.push_p50,
                             sum.push_p99, sum.push_max, sum.push_samples, sum.push_expected));
    How("per agent and round: time from just before the admin CollectInventory{host:\"\", group:\"\"} call until that "
        "agent's Command arrives on its stream (the simulated agents do not answer); rounds 1 s apart");
  }

  // --- end
  Header("errors and anomalies");
  {
    std::lock_guard lock(g.err_mu);
    Line("sessions lost after Welcome", std::to_string(g.lost_after_welcome.load()));
    Line("notices from the server", std::to_string(g.notices.load()));
    Line("errors recorded", std::to_string(g.errors_total));
    for (const auto& e : g.errors) Line("error", e);
  }

  Header("summary");
  auto verdict = [](bool ok) { return ok ? "met" : "NOT met"; };
  Line("1 enroll", Fmt("%d enrolled, %.1f enrollments/s", sum.enrolled, sum.enroll_rate));
  Line("2 connect", Fmt("%d connected, %.1f connections/s (%.1f s for all)", sum.connected, sum.connect_rate, sum.connect_s));
  Line("3 full ingest", Fmt("%.1f inventories/s, %.0f rows/s", sum.full_inv_rate, sum.full_rows_rate));
  Line("4 delta ingest", Fmt("%.0f acked reports/s   [target >= 2000/s: %s]", sum.delta_rate, verdict(sum.delta_rate >= 2000)));
  Line("5 push-to-all", Fmt("p50 %.0f ms, p99 %.0f ms, max %.0f ms   [target p99 <= 2000 ms at 10,000 agents: %s%s]",
                            sum.push_p50, sum.push_p99, sum.push_max,
                            verdict(sum.push_p99 <= 2000 && sum.push_samples == sum.push_expected && sum.push_expected > 0),
                            sum.connected < 10000 ? Fmt(", measured at %d", sum.connected).c_str() : ""));
  Line("6 server RSS / agent", Fmt("%.1f KiB   [target <= 64 KiB: %s; DESIGN.md floor with this TLS stack ~90 KB]",
                                   sum.rss_per_agent_kib, verdict(sum.rss_per_agent_kib <= 64)));
  Line("7 raw SQLite", Fmt("%.0f rows/s; parc/raw = %.3f   [target >= 0.25: %s]", sum.raw_rows_rate, sum.ratio,
                           verdict(sum.ratio >= 0.25)));
  Line("idle server CPU", Fmt("%.2f %% (keepalive only), %s; %ld threads", sum.idle_cpu,
                              sum.idle_cpu_hb >= 0 ? Fmt("%.2f %% with heartbeats", sum.idle_cpu_hb).c_str() : "n/a",
                              sum.threads));

  close_all();
  rc = (sum.connected == sum.enrolled && sum.enrolled == o.agents) ? 0 : 3;
  return finish(rc);
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil has the deadlock detector on; it costs memory and CPU per
  // gRPC stream in this process too (DESIGN.md).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"parc-load: simulate many agents (real TLS connections, one process) against a parc-server it starts"};
  app.footer("Example (the full target):\n"
             "  parc-load --server-binary build/server/parc-server --agents 10000\n"
             "Uses ~150 KB per agent in this process; the fd hard limit (20,000 here) caps --agents below ~19,800.");
  Options o;
  app.add_option("--server-binary", o.server_binary, "parc-server executable to start")->required()->check(CLI::ExistingFile);
  app.add_option("--agents", o.agents, "simulated agents")->check(CLI::Range(1, 1000000));
  app.add_option("--full-agents", o.full_agents, "agents sending a full inventory in the ingest phase (default min(N, 200))");
  app.add_option("--packages", o.packages, "software items per full inventory")->check(CLI::Range(0, 400000));
  app.add_option("--delta-seconds", o.delta_seconds, "duration of the delta phase, seconds");
  app.add_option("--push-rounds", o.push_rounds, "push-to-all rounds")->check(CLI::Range(0, 1000));
  app.add_option("--state-dir", o.state_dir, "server state directory (default: a fresh /tmp/parc-load.XXXXXX)");
  app.add_option("--port", o.port, "listen port (default 0: the server picks one)");
  app.add_option("--enroll-threads", o.enroll_threads, "concurrent Enroll calls");
  app.add_option("--connect-concurrency", o.connect_concurrency, "TLS handshakes in flight while connecting");
  app.add_option("--delta-pipeline", o.delta_pipeline, "delta reports outstanding per agent (1 or 2)")->check(CLI::Range(1, 2));
  app.add_option("--settle-seconds", o.settle_seconds, "wait after connect-all before reading RSS");
  app.add_option("--idle-seconds", o.idle_seconds, "idle CPU measurement window");
  app.add_option("--heartbeat", o.heartbeat, "server --heartbeat seconds (also the heartbeat rate simulated)");
  app.add_option("--server-log-level", o.server_log_level, "server --log-level (default: the server's, info)");
  app.add_flag("--keep-state", o.keep_state,
               "keep the databases of a temporary state directory (by default only server.log is kept)");
  CLI11_PARSE(app, argc, argv);

  int rc = Main(o);
  std::fflush(stdout);
  std::fflush(stderr);
  // The server is stopped and the sessions closed; skip tearing down thousands
  // of channels one by one.
  std::_Exit(rc);
}
