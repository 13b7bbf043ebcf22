// The command handlers behind the parsed command line: validate locally,
// connect, call the admin API, print for people or as JSON.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "connection.h"
#include "parc/ctl/render.h"
#include "parc/common/hash.h"
#include "parc/v1/deploy.grpc.pb.h"
#include "parc/v1/image.grpc.pb.h"
#include "parc/v1/policy.grpc.pb.h"
#include "parc/v1/netboot.grpc.pb.h"

namespace parc::imaging {
class ChunkStore;
}
namespace parc::pkg {
struct KeyPair;
}

namespace parc::ctl {

// Everything the command line can set; each command reads what it needs.
struct Options {
  ConnectionOptions connection;
  bool json = false;
  bool wide = false;

  std::string host;
  std::string group;
  std::string ttl;
  std::string comment;
  std::string reason;
  std::string section;
  std::string format;
  std::string output;
  std::string since;
  std::string stale;
  std::string name;
  std::string description;
  bool online = false;
  bool offline = false;
  bool all = false;
  bool full = false;
  uint32_t limit = 0;

  // Local package commands (package_local.cc).
  std::string path;                // package file or build directory
  std::string key;                 // --key FILE (private key)
  std::string expires = "365d";
  std::string dir;                 // key create --dir
  std::vector<std::string> trust;  // --trust FILE (public keys), repeatable

  // Distribution commands (deploy_commands.cc).
  std::string package_ref;         // NAME or NAME=VERSION
  std::string id;                  // deployment id or prefix
  std::string point;               // rollback point id or prefix
  std::vector<std::string> to;     // --to group:G / host:H, repeatable
  bool remove = false;
  bool watch = false;
  bool commit = false;  // image deploy: drop each host's previous tree (no rollback point)
  bool dry_run = false;        // image gc
  std::string older_than;      // image gc: grace period (DURATION)
  std::string start;
  std::string deadline;
  std::string window;
  std::string max_parallel;        // N or P%
  std::string halt_on_failure;     // P%

  // Hardening policies (policy_commands.cc).
  std::string mode;                // audit | enforce
  std::string level;               // minimal ... high
  std::string every;               // check interval, e.g. 6h
  std::string rule;
  std::string policy;
  bool by_rule = false;
  std::string fail_under;          // compliance: exit 1 when the score is lower

  // Network installation (netboot_commands.cc).
  std::string mac, hostname, os, disk, locale, keyboard, timezone, asset;
  std::string arm_for;             // duration
  std::string kernel;              // [NAME=]FILE
  std::vector<std::string> initrds;  // [NAME=]FILE, repeatable
  std::vector<std::string> files;    // NAME=FILE, repeatable
  std::string cmdline;
  std::string interface, subnet, netmask, tftp_root, chain;
  bool tftp_copy = false;
  std::string answer_file;         // netboot preview --file
  // Images (image_commands.cc).
  std::string from;                // capture --from DIR|FILE|/dev/X
  std::string image_version;       // capture --version
  std::string store;               // --store DIR: a local chunk store
  std::string target;              // deploy/verify --target DIR|FILE|/dev/X
  std::string other_ref;           // diff: the second image
  std::vector<std::string> exclude;// capture --exclude PATH, repeatable
  bool push = false;               // capture --push
  std::string on;                  // capture --on host:H (a capture job on that agent)
};

// Pure helpers of the distribution commands (deploy_commands.cc), tested alone.
struct PackageRef {
  std::string name;
  std::string version;  // "" = newest
};
// "hello" or "hello=1.0-1".
Expected<PackageRef> ParsePackageRef(std::string_view text);
// --to values: at least one, each group:NAME or host:HOST (the usage error otherwise).
ExpectedVoid CheckTargets(const std::vector<std::string>& to);
struct Parallelism {
  uint32_t count = 0;    // hosts at once, 0 = no limit
  uint32_t percent = 0;  // of the targets, 0 = not given
};
// "5" or "25%".
Expected<Parallelism> ParseMaxParallel(std::string_view text);
// "10%" or "10" (0..100).
Expected<uint32_t> ParsePercent(std::string_view text);
// A time in the future: absolute ("2026-11-28", "2026-11-28T10:00:00Z") or
// from now ("+2h", "30m", "1d12h").
Expected<int64_t> ParseFutureTime(std::string_view text, int64_t now);
// "42% 12.5 MiB of 30.0 MiB, 8.3 MiB/s"
std::string UploadProgress(uint64_t done, uint64_t total, uint64_t sent_now, double seconds);
// Every job in a terminal state and the deployment completed or canceled.
bool DeploymentFinished(const v1::DeploymentInfo& d);
// Jobs per state, in lifecycle order: "3 hosts: 1 succeeded, 2 pending".
std::string DeploymentCounts(const v1::DeploymentInfo& d);

class Commands {
 public:
  Commands(const Options& options, std::ostream& out, std::ostream& err, const Hooks& hooks);

  int TokenCreate();
  int Hosts();
  int HostShow();
  int HostRevoke();
  int Inventory();
  int InventoryExport();
  int History();
  int GroupCreate();
  int GroupList();
  int GroupAdd();
  int GroupRemove();
  int Duplicates();
  int Collect();
  int Audit();

  // Local: no server needed (package_local.cc).
  int KeyCreate();
  int PackageBuild();
  int PackageSign();
  int PackageVerify();

  // Distribution through the server's DeployService (deploy_commands.cc).
  int KeyAdd();
  int KeyList();
  int PackagePush();
  int PackageList();
  int PackageShow();
  int PackageRemove();
  int DeployCreate();
  int DeployStatus();
  int DeployList();
  int DeployHalt();
  int DeployResume();
  int DeployCancel();
  int RollbackPoints();
  int RollbackHost();

  // Hardening policies through the server's PolicyService (policy_commands.cc).
  int PolicyPush();
  int PolicyList();
  int PolicyShow();
  int PolicyAssign();
  int PolicyUnassign();
  int PolicyRun();
  int Compliance();

  // Network installation through the server's NetbootService (netboot_commands.cc).
  int NetbootAdd();
  int NetbootList();
  int NetbootShow();
  int NetbootRemove();
  int NetbootArm();
  int NetbootPreview();
  int NetbootAssetsAdd();
  int NetbootAssetsList();
  int NetbootAssetsRemove();
  int NetbootDnsmasqConfig();
  int NetbootTemplateShow();
  int NetbootTemplateSet();
  int NetbootTemplateReset();
  // Images: local capture/verify, the server's ImageService (image_commands.cc).
  int ImageCapture();
  int ImagePush();
  int ImageList();
  int ImageShow();
  int ImageDiff();
  int ImageDeploy();
  int ImageVerify();
  int ImageRemove();
  int ImageGc();

 private:
  // Non-zero exit code if the connection could not be set up.
  int Connect();
  int UsageError(const std::string& message);
  int LocalError(const Error& error, int exit_code);
  int RpcFailed(const grpc::Status& status);
  // Prints `message` as JSON with --json, else what `human` renders.
  int Emit(const google::protobuf::Message& message, const std::function<std::string()>& human);
  HostNames FetchHostNames();
  RenderOptions Render() const;
  int GroupMembership(bool add);
  // Connect() plus a DeployService stub on the same server (deploy_commands.cc).
  int ConnectDeploy();
  int ControlDeployment(const std::string& action);
  // Uploads a file to the content store (resumable); fills its digest.
  int UploadContent(const std::string& path, FileDigest& digest);
  // ConnectDeploy() plus a PolicyService stub.
  int ConnectPolicy();
  int WatchDeployment();
  // ConnectDeploy() plus a NetbootService stub.
  int ConnectNetboot();
  // ConnectDeploy() plus an ImageService stub.
  int ConnectImage();
  int CaptureOnHost(const pkg::KeyPair& key, int64_t lifetime);
  int PushImage(imaging::ChunkStore& store, const std::string& manifest_json, const std::string& signature,
                v1::ImageInfo& info, uint64_t& uploaded, uint64_t& present);

  const Options& o_;
  std::ostream& out_;
  std::ostream& err_;
  const Hooks& hooks_;
  int64_t now_;
  std::optional<Connection> conn_;
  std::unique_ptr<v1::DeployService::Stub> deploy_;
  std::unique_ptr<v1::PolicyService::Stub> policy_;
  std::unique_ptr<v1::NetbootService::Stub> netboot_;
  std::unique_ptr<v1::ImageService::Stub> image_;
  std::string watch_id_;  // WatchDeployment: this deployment instead of o_.id (image deploy --watch)
  std::shared_ptr<grpc::Channel> deploy_channel_;
};

}  // namespace parc::ctl
