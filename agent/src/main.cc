// parc-agent: the Parc endpoint agent.
#include <google/protobuf/util/json_util.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "agent_config.h"
#include "enroll.h"
#include "outbox.h"
#include "package_cli.h"
#include "policy_cli.h"
#include "parc/agent/inventory.h"
#include "parc/common/files.h"
#include "parc/common/inventory_model.h"
#include "parc/common/log.h"
#include "parc/common/timeutil.h"
#include "runner.h"

using namespace parc;
using namespace parc::agent;

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

std::string Bytes(uint64_t b) {
  char buf[32];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

void PrintSummary(const CollectResult& r, double ms) {
  const auto& inv = r.inventory;
  auto line = [](const std::string& k, const std::string& v) { std::printf("%-16s %s\n", (k + ":").c_str(), v.c_str()); };
  line("Host", inv.os().fqdn().empty() ? inv.os().hostname() : inv.os().fqdn());
  line("OS", inv.os().pretty_name() + " (kernel " + inv.os().kernel_release() + ", " + inv.os().architecture() + ")");
  if (!inv.hardware().system_vendor().empty() || !inv.hardware().product_name().empty())
    line("Hardware", inv.hardware().system_vendor() + " " + inv.hardware().product_name() +
                         (inv.hardware().serial_number().empty() ? "" : " (serial " + inv.hardware().serial_number() + ")"));
  line("CPU", inv.cpu().model() + " — " + std::to_string(inv.cpu().sockets()) + " socket(s), " +
                  std::to_string(inv.cpu().cores()) + " core(s), " + std::to_string(inv.cpu().threads()) + " thread(s)");
  line("Memory", Bytes(inv.memory().total_bytes()) + ", swap " + Bytes(inv.memory().swap_total_bytes()));
  for (const auto& d : inv.disks())
    line("Disk " + d.name(), Bytes(d.size_bytes()) + " " + d.model() + (d.rotational() ? " (rotational)" : ""));
  for (const auto& n : inv.interfaces()) {
    std::string addrs;
    for (const auto& a : n.addresses()) addrs += (addrs.empty() ? "" : " ") + a;
    line("Net " + n.name(), n.state() + " " + n.mac() + " " + addrs);
  }
  std::string virt = inv.virtualization().role();
  if (!inv.virtualization().hypervisor().empty()) virt += " (" + inv.virtualization().hypervisor() + ")";
  if (!inv.virtualization().container().empty()) virt += " (" + inv.virtualization().container() + ")";
  line("Virtualization", virt);
  line("Software", std::to_string(inv.software_size()) + " packages");
  line("Services", std::to_string(inv.services_size()));
  line("Users/groups", std::to_string(inv.users_size()) + " / " + std::to_string(inv.groups_size()));
  line("Firewall", inv.security().firewall_present() ? (inv.security().firewall_kind() + (inv.security().firewall_active() ? ", active" : ", inactive")) : "none");
  line("Secure Boot", inv.security().secure_boot());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  line("Collected in", buf);
  for (const auto& w : r.warnings) std::printf("note: %s\n", w.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"parc-agent: the Parc endpoint agent.\n"
               "Connects out to parc-server (never listens), reports this machine's inventory and\n"
               "carries out the work the server pushes. Offline, reports wait in a local outbox."};
  app.footer("Typical use:\n"
             "  parc-agent enroll --server parc.example.lan:7443 --token ID.SECRET --ca-fingerprint SHA256\n"
             "  parc-agent run                  (foreground; systemd runs it as a service)\n"
             "  parc-agent inventory            (what would be reported, without a server)\n"
             "  parc-agent inventory --root /mnt/image --json\n"
             "  parc-agent package install hello_1.0-1.parc --trust publisher.pub\n"
             "  parc-agent policy check --baseline anssi-bp28-debian12 --level minimal\n"
             "Exit codes: 0 ok, 1 failure, 2 usage error, 3 refused by the server, 4 package refused, 5 server unreachable.");
  app.set_version_flag("--version", std::string("parc-agent ") + PARC_VERSION);
  app.require_subcommand(1);
  AgentConfig config;
  std::string config_file, state_dir, root, log_level;
  app.add_option("-c,--config", config_file, "TOML configuration file ([agent] section)");
  app.add_option("--state-dir", state_dir, "state directory: key, certificate, outbox (default /var/lib/parc/agent)");
  app.add_option("--root", root, "read the machine under this directory instead of / (prepared trees, offline images)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");

  auto* enroll = app.add_subcommand("enroll", "enroll this machine with a token from 'parcctl token create'");
  EnrollOptions eo;
  enroll->add_option("--server", eo.server, "server address HOST:PORT")->required();
  enroll->add_option("--token", eo.token, "single-use enrollment token")->required();
  enroll->add_option("--ca-fingerprint", eo.ca_fingerprint, "SHA-256 of the server's CA certificate, as printed by parcctl (strongly advised)");
  enroll->add_option("--server-name", eo.server_name, "name to verify in the server certificate when it differs from HOST");
  enroll->add_flag("--force", eo.force, "enroll again, replacing the current identity");

  auto* run = app.add_subcommand("run", "run the agent in the foreground until SIGTERM/SIGINT");
  int64_t interval = 0;
  run->add_option("--inventory-interval", interval, "seconds between scheduled inventories (default 3600)");

  auto* inv = app.add_subcommand("inventory", "collect and print this machine's inventory (no server needed)");
  bool json = false;
  inv->add_flag("--json", json, "print the inventory as JSON (protobuf JSON mapping, field names as in inventory.proto)");

  auto packages = AddPackageCommands(app);
  auto policies = AddPolicyCommands(app);

  auto* status = app.add_subcommand("status", "show enrollment and outbox state");
  bool status_json = false;
  status->add_flag("--json", status_json, "JSON output");

  CLI11_PARSE(app, argc, argv);
  if (!config_file.empty()) {
    if (auto r = LoadAgentConfigFile(config_file, config); !r) {
      std::cerr << "parc-agent: " << r.error().message() << "\n";
      return 2;
    }
  }
  if (!state_dir.empty()) config.state_dir = state_dir;
  if (!root.empty()) config.root = root;
  if (!log_level.empty()) config.log_level = log_level;
  if (interval > 0) config.inventory_interval = interval;
  InitLogging("agent", config.log_level);

  if (PackageCommandChosen(*packages)) return RunPackageCommand(*packages, config);
  if (PolicyCommandChosen(*policies)) return RunPolicyCommand(*policies, config);

  if (*inv) {
    auto start = std::chrono::steady_clock::now();
    auto r = CollectInventory(CollectOptions{config.root});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!r) {
      std::cerr << "parc-agent: " << r.error().message() << "\n";
      return 1;
    }
    if (json) {
      std::string out;
      google::protobuf::util::JsonPrintOptions opts;
      opts.preserve_proto_field_names = true;
      opts.add_whitespace = true;
      (void)google::protobuf::util::MessageToJsonString(r->inventory, &out, opts);
      std::cout << out;
      for (const auto& w : r->warnings) std::cerr << "note: " << w << "\n";
    } else {
      PrintSummary(*r, ms);
    }
    return 0;
  }

  if (*enroll) {
    auto e = Enroll(config, eo);
    if (!e) {
      std::cerr << "parc-agent: " << e.error().message() << "\n";
      if (e.error().Is(Errc::kUnavailable)) return 5;
      if (e.error().Is(Errc::kInvalidArgument)) return 2;
      return e.error().Is(Errc::kUnauthenticated) || e.error().Is(Errc::kAlreadyExists) ? 3 : 1;
    }
    std::cout << "Enrolled as host " << e->host_id << " with " << e->server << ".\n"
              << "Pinned CA " << e->ca_fingerprint << ".\n"
              << "Start the agent: parc-agent run --state-dir " << config.state_dir.string() << "\n";
    return 0;
  }

  if (*status) {
    auto e = LoadEnrollment(config);
    if (!e) {
      std::cerr << "parc-agent: " << e.error().message() << "\n";
      return 1;
    }
    // A normal (WAL) connection sees what the running agent committed; the file
    // is only opened when it exists, so status never creates state.
    size_t pending = 0;
    std::string digest;
    if (PathExists(config.outbox_path())) {
      auto outbox = Outbox::Open(config.outbox_path());
      if (!outbox) {
        std::cerr << "parc-agent: " << outbox.error().message() << "\n";
        return 1;
      }
      pending = outbox->PendingCount().value_or(0);
      digest = outbox->AckedDigest().value_or("");
    }
    if (status_json) {
      std::printf("{\"host_id\":\"%s\",\"server\":\"%s\",\"ca_fingerprint\":\"%s\",\"pending_reports\":%zu,\"acked_inventory_digest\":\"%s\"}\n",
                  e->host_id.c_str(), e->server.c_str(), e->ca_fingerprint.c_str(), pending, digest.c_str());
    } else {
      std::printf("Host id:          %s\nServer:           %s\nCA fingerprint:   %s\nEnrolled:         %s\nPending reports:  %zu\n",
                  e->host_id.c_str(), e->server.c_str(), e->ca_fingerprint.c_str(), FormatTime(e->enrolled_at).c_str(), pending);
    }
    return 0;
  }

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  auto r = RunAgent(config, g_stop);
  if (!r) {
    spdlog::critical("{}", r.error().message());
    return 1;
  }
  return 0;
}
