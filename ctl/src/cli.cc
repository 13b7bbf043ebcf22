#include "parc/ctl/cli.h"

#include <CLI/CLI.hpp>

#include "commands.h"
#include "parc/ctl/credentials.h"
#include "parc/ctl/exit_codes.h"
#include "parc/ctl/sections.h"

namespace parc::ctl {
namespace {

constexpr const char* kCommonGroup = "Connection and output";

// Every command accepts these, before or after its name, so that
// `parcctl --json hosts` and `parcctl hosts --json` both work and each
// command's --help shows them. Environment fallbacks are applied when
// connecting, not by CLI11, so a flag always beats the environment.
void AddCommonOptions(CLI::App& app, Options& o) {
  app.add_option("--server", o.connection.server,
                 "Server address HOST:PORT (default: $PARC_SERVER, else the '# server:' line of the credentials file)")
      ->type_name("HOST:PORT")
      ->group(kCommonGroup);
  app.add_option("--credentials", o.connection.credentials,
                 std::string("Admin credentials PEM bundle (default: $PARC_CREDENTIALS, else ") + kDefaultCredentialsPath +
                     ")")
      ->type_name("FILE")
      ->group(kCommonGroup);
  app.add_option("--server-name", o.connection.server_name,
                 "Name to expect in the server's TLS certificate, when it differs from HOST")
      ->type_name("NAME")
      ->group(kCommonGroup);
  app.add_option("--timeout", o.connection.timeout_seconds, "Seconds to wait for the server (default 30)")
      ->type_name("SECONDS")
      ->check(CLI::PositiveNumber.description(""))
      ->group(kCommonGroup);
  app.add_flag("--json", o.json, "Print the server's answer as one JSON document (for scripts)")->group(kCommonGroup);
  app.add_flag("--wide", o.wide, "Never shorten table cells with '…'")->group(kCommonGroup);
}

std::string MainFooter() {
  return std::string(
             "Examples:\n"
             "  parcctl token create --group lab --ttl 2h       token to enroll a new machine into group 'lab'\n"
             "  parcctl hosts --offline --stale 7d              machines silent for a week or more\n"
             "  parcctl host show pc-042                        everything known about one host\n"
             "  parcctl inventory pc-042 --section hardware     its hardware, CPU, memory, disks, monitors\n"
             "  parcctl inventory export --section software --output software.csv\n"
             "  parcctl history pc-042 --since 7d               what changed on it this week\n"
             "  parcctl collect --group lab                     ask a group for a fresh inventory now\n"
             "  parcctl hosts --json | jq -r '.hosts[].hostname'\n"
             "  parcctl package push hello_1.0-1.parc          upload and register a signed package\n"
             "  parcctl deploy create hello --to group:lab      install it on a group\n"
             "  parcctl deploy status 3f2a9c1e --watch          follow the rollout\n"
             "  parcctl policy assign anssi-bp28-debian12 --to group:lab --mode audit   harden, check\n"
             "  parcctl compliance --group lab                  scores and drift per host\n"
             "  parcctl image capture --from /srv/master --name ws --version 1 --key acme.key --push\n"
             "\n"
             "Hosts are named by host id, a unique id prefix (the 8 characters tables show) or hostname.\n"
             "Server: --server, else $PARC_SERVER, else the '# server:' line of the credentials file.\n"
             "Credentials: --credentials, else $PARC_CREDENTIALS, else ") +
         kDefaultCredentialsPath + " (readable by root only).\n\n" + ExitCodeHelp();
}

std::string SectionOptionHelp() { return "Inventory section(s), comma separated. " + ValidSectionNames(); }

// The path of selected subcommands, for "see parcctl host revoke --help".
std::string CommandPath(const CLI::App& app) {
  std::string path = "parcctl";
  const CLI::App* current = &app;
  while (true) {
    auto selected = current->get_subcommands();
    if (selected.empty()) break;
    current = selected.front();
    path += " " + current->get_name();
  }
  return path;
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Hooks& hooks) {
  Options o;
  Commands commands(o, out, err, hooks);
  using Handler = int (Commands::*)();
  std::vector<std::pair<CLI::App*, Handler>> leaves;

  CLI::App app("parcctl - administer a Parc fleet: enroll machines, list hosts, read and export their\n"
               "inventory, see what changed, organise groups, deploy signed packages and roll them back,\n"
               "harden machines with signed ANSSI baselines and follow their compliance.\n"
               "Talks to parc-server's admin API over mutual TLS.",
               "parcctl");
  app.set_version_flag("--version", std::string("parcctl ") + PARC_VERSION, "Print the version and exit");
  app.require_subcommand(1);
  app.footer(MainFooter());
  AddCommonOptions(app, o);

  auto leaf = [&](CLI::App* parent, const std::string& name, const std::string& description, Handler handler,
                  const std::string& footer = "") {
    CLI::App* sub = parent->add_subcommand(name, description);
    AddCommonOptions(*sub, o);
    if (!footer.empty()) sub->footer(footer);
    leaves.emplace_back(sub, handler);
    return sub;
  };
  auto group_of = [&](const std::string& name, const std::string& description) {
    CLI::App* sub = app.add_subcommand(name, description);
    sub->require_subcommand(1);
    return sub;
  };

  // token
  CLI::App* token = group_of("token", "Enrollment tokens for new machines");
  CLI::App* token_create = leaf(token, "create",
                                "Create a single-use, expiring enrollment token and print the parc-agent command "
                                "that enrolls a machine with it",
                                &Commands::TokenCreate,
                                "Examples:\n  parcctl token create --group lab --ttl 2h\n"
                                "  parcctl token create --comment 'desk 12, ticket 4711'");
  token_create->add_option("--group", o.group, "Put the machines enrolled with it into this group")->type_name("GROUP");
  token_create->add_option("--ttl", o.ttl, "How long the token stays valid: 30m, 2h, 24h, 7d (default: server's, 24h)")
      ->type_name("DURATION");
  token_create->add_option("--comment", o.comment, "Note kept with the token in the audit log")->type_name("TEXT");

  // hosts
  CLI::App* hosts = leaf(&app, "hosts", "List enrolled hosts with status, last contact, OS and groups", &Commands::Hosts,
                         "Examples:\n  parcctl hosts --group lab --online\n  parcctl hosts --stale 7d\n"
                         "HOST ID shows the first 8 characters; --json gives full ids.");
  hosts->add_option("--group", o.group, "Only hosts in this group")->type_name("GROUP");
  CLI::Option* online = hosts->add_flag("--online", o.online, "Only hosts with a live session");
  CLI::Option* offline = hosts->add_flag("--offline", o.offline, "Only hosts without a live session");
  online->excludes(offline);
  hosts->add_option("--stale", o.stale, "Only hosts not seen for at least this long, e.g. 7d")->type_name("DURATION");

  // host show / revoke
  CLI::App* host = group_of("host", "Show or revoke one host");
  CLI::App* host_show = leaf(host, "show", "Everything the server knows about one host", &Commands::HostShow,
                             "Example:\n  parcctl host show pc-042");
  host_show->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");
  CLI::App* host_revoke = leaf(host, "revoke",
                               "Revoke a host now: its certificate is refused from then on (asks no confirmation)",
                               &Commands::HostRevoke,
                               "Example:\n  parcctl host revoke pc-042 --reason 'stolen, ticket 4711'\n"
                               "The machine must be enrolled again with a new token to come back.");
  host_revoke->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");
  host_revoke->add_option("--reason", o.reason, "Why, for the audit log")->type_name("TEXT");

  // inventory HOST / inventory export
  CLI::App* inventory = leaf(&app, "inventory", "Show a host's inventory, or export the fleet's (inventory export)",
                             &Commands::Inventory,
                             "Examples:\n  parcctl inventory pc-042\n  parcctl inventory pc-042 --section hardware\n"
                             "  parcctl inventory pc-042 --section software --wide");
  inventory->require_subcommand(0, 1);
  inventory->add_option("host", o.host, "Host id, unique id prefix or hostname")->type_name("HOST");
  inventory->add_option("--section", o.section, SectionOptionHelp())->type_name("SECTION");
  CLI::App* inventory_export =
      leaf(inventory, "export", "Export the inventory of many hosts as CSV or JSON, streamed as the server sends it",
           &Commands::InventoryExport,
           "Examples:\n  parcctl inventory export --section software --output software.csv\n"
           "  parcctl inventory export --format json --group lab > lab.json\n"
           "CSV (RFC 4180): host_id,hostname,section,key, then one column per field when one section is\n"
           "chosen, or a 'fields' column holding a JSON object otherwise. JSON: an array of\n"
           "{host_id, hostname, section, key, fields} objects; jsonl: one such object per line.");
  inventory_export->add_option("--format", o.format, "csv, json or jsonl (default csv; json with --json)")
      ->check(CLI::IsMember({"csv", "json", "jsonl"}))
      ->type_name("FORMAT");
  inventory_export->add_option("--section", o.section, SectionOptionHelp())->type_name("SECTION");
  inventory_export->add_option("--group", o.group, "Only hosts in this group")->type_name("GROUP");
  inventory_export->add_option("--output", o.output, "Write to FILE (complete or not at all) instead of stdout")
      ->type_name("FILE");

  // history
  CLI::App* history = leaf(&app, "history", "What changed in a host's inventory, and when", &Commands::History,
                           "Examples:\n  parcctl history pc-042 --since 7d\n"
                           "  parcctl history pc-042 --since 2026-11-01 --section software");
  history->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");
  history->add_option("--since", o.since, "Only changes after this time: 2026-11-28, 2026-11-28T10:00:00Z or 7d (ago)")
      ->type_name("TIME");
  history->add_option("--section", o.section, SectionOptionHelp())->type_name("SECTION");

  // group
  CLI::App* group = group_of("group", "Create groups and manage their members");
  CLI::App* group_create = leaf(group, "create", "Create a group", &Commands::GroupCreate,
                                "Example:\n  parcctl group create lab --description 'training room B12'");
  group_create->add_option("name", o.name, "Group name")->required()->type_name("NAME");
  group_create->add_option("--description", o.description, "What the group is for")->type_name("TEXT");
  leaf(group, "list", "List groups with their number of hosts", &Commands::GroupList);
  CLI::App* group_add = leaf(group, "add", "Add a host to a group", &Commands::GroupAdd,
                             "Example:\n  parcctl group add lab pc-042");
  group_add->add_option("group", o.name, "Group name")->required()->type_name("GROUP");
  group_add->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");
  CLI::App* group_remove = leaf(group, "remove", "Remove a host from a group", &Commands::GroupRemove,
                                "Example:\n  parcctl group remove lab pc-042");
  group_remove->add_option("group", o.name, "Group name")->required()->type_name("GROUP");
  group_remove->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");

  // duplicates
  leaf(&app, "duplicates",
       "Hardware identities (SMBIOS UUID, MAC ...) claimed by more than one host: cloned masters, re-enrolled machines",
       &Commands::Duplicates);

  // collect
  CLI::App* collect = leaf(&app, "collect", "Ask connected hosts to send their inventory now", &Commands::Collect,
                           "Examples:\n  parcctl collect pc-042\n  parcctl collect --group lab --full\n"
                           "  parcctl collect --all\n"
                           "Offline hosts are listed, not queued: they report in full when they reconnect.");
  collect->add_option("host", o.host, "Host id, unique id prefix or hostname")->type_name("HOST");
  collect->add_option("--group", o.group, "Every host of this group")->type_name("GROUP");
  collect->add_flag("--all", o.all, "Every host");
  collect->add_flag("--full", o.full, "Send the whole inventory, not only what changed");

  // audit
  CLI::App* audit = leaf(&app, "audit", "Who did what through the admin API", &Commands::Audit,
                         "Example:\n  parcctl audit --since 1d --limit 50");
  audit->add_option("--since", o.since, "Only entries after this time: 2026-11-28 or 1d (ago)")->type_name("TIME");
  audit->add_option("--limit", o.limit, "At most N entries")->type_name("N");

  // key / package: local commands on package files (no server needed), and
  // their server side (deploy_commands.cc).
  CLI::App* key = group_of("key", "Publisher signing keys: create locally, add to / list on the server");
  CLI::App* key_create = leaf(key, "create", "Create an Ed25519 publisher key pair: NAME.key (secret) and NAME.pub",
                              &Commands::KeyCreate, "Example:\n  parcctl key create --name acme --dir ~/keys");
  key_create->add_option("--name", o.name, "Key name (file names NAME.key, NAME.pub)")->required()->type_name("NAME");
  key_create->add_option("--dir", o.dir, "Directory to write the key files into (default: current)")->type_name("DIR");

  CLI::App* key_add = leaf(key, "add", "Trust a publisher's public key: the server accepts packages it signed and "
                                     "sends it to every agent",
                           &Commands::KeyAdd,
                           "Examples:\n  parcctl key add acme.pub\n  parcctl key add acme.pub --name 'ACME IT'");
  key_add->add_option("pubfile", o.path, "Public key file (NAME.pub from parcctl key create)")
      ->required()
      ->type_name("PUBFILE");
  key_add->add_option("--name", o.name, "Publisher label (default: the key id)")->type_name("NAME");
  leaf(key, "list", "Publisher keys the server trusts", &Commands::KeyList,
       "Example:\n  parcctl key list --json | jq -r '.keys[].key_id'");

  CLI::App* package = group_of("package", "Build, sign and verify package files locally (see docs/packages.md); "
                                          "push them to the server and list them there");
  CLI::App* package_build =
      leaf(package, "build", "Build a package file from a directory (package.json, root/, scripts/, native/)",
           &Commands::PackageBuild,
           "Example:\n  parcctl package build ./hello -o hello_1.0-1.parc --key acme.key --expires 90d");
  package_build->add_option("dir", o.path, "Package source directory")->required()->type_name("DIR");
  package_build->add_option("-o,--output", o.output, "Package file to write")->required()->type_name("FILE");
  package_build->add_option("--key", o.key, "Sign with this private key (else the package is unsigned)")
      ->type_name("KEYFILE");
  package_build->add_option("--expires", o.expires, "Signature lifetime: 30d, 365d ... (default 365d)")
      ->type_name("DURATION");
  CLI::App* package_sign = leaf(package, "sign", "Sign (or re-sign) a package file in place", &Commands::PackageSign,
                                "Example:\n  parcctl package sign hello_1.0-1.parc --key acme.key --expires 30d");
  package_sign->add_option("file", o.path, "Package file")->required()->type_name("FILE");
  package_sign->add_option("--key", o.key, "Private key")->required()->type_name("KEYFILE");
  package_sign->add_option("--expires", o.expires, "Signature lifetime (default 365d)")->type_name("DURATION");
  CLI::App* package_verify =
      leaf(package, "verify", "Check a package file: signature, expiry, canonical manifest and every payload digest",
           &Commands::PackageVerify,
           "Example:\n  parcctl package verify hello_1.0-1.parc --trust acme.pub\n"
           "Exit code 0: valid; 4: refused (unsigned, untrusted key, bad signature, expired, damaged).");
  package_verify->add_option("file", o.path, "Package file")->required()->type_name("FILE");
  package_verify->add_option("--trust", o.trust, "Trust this public key (repeatable)")->type_name("PUBFILE");
  CLI::App* package_push = leaf(
      package, "push", "Upload a signed package file to the server and register it (resumable)",
      &Commands::PackagePush,
      "Examples:\n  parcctl package push hello_1.0-1.parc\n  parcctl package push hello_1.0-1.parc --json\n"
      "The file is identified by its SHA-256: bytes already on the server are not sent again, and an\n"
      "interrupted upload continues where it stopped when the same command is run again. Progress\n"
      "goes to stderr (not with --json). The server checks the signature against 'parcctl key list'.");
  package_push->add_option("file", o.path, "Package file")->required()->type_name("FILE");
  CLI::App* package_list = leaf(package, "list", "Packages registered on the server, every version",
                                &Commands::PackageList,
                                "Examples:\n  parcctl package list\n  parcctl package list hello");
  package_list->add_option("name", o.name, "Only this package's versions")->type_name("NAME");
  CLI::App* package_show = leaf(package, "show",
                                "One registered package: signature, size, files, depends, scripts, services",
                                &Commands::PackageShow,
                                "Examples:\n  parcctl package show hello          the newest version\n"
                                "  parcctl package show hello=1.0-1\n"
                                "  parcctl package show hello --json | jq -r .manifest_json");
  package_show->add_option("package", o.package_ref, "NAME or NAME=VERSION (default: newest version)")
      ->required()
      ->type_name("NAME[=VERSION]");
  CLI::App* package_remove = leaf(
      package, "remove", "Unregister one package version and delete its file when nothing else uses it",
      &Commands::PackageRemove,
      "Example:\n  parcctl package remove hello=1.0-1\n"
      "Refused while a deployment of that version is not finished, halted ones included (parcctl deploy cancel ID first).\n"
      "Hosts that installed it keep it, and their rollback points; it can no longer be deployed.");
  package_remove->add_option("package", o.package_ref, "NAME=VERSION (the version is required)")
      ->required()
      ->type_name("NAME=VERSION");

  // deploy
  CLI::App* deploy = group_of("deploy", "Install or remove packages on groups and hosts, and follow the rollout");
  CLI::App* deploy_create = leaf(
      deploy, "create", "Deploy a registered package (or remove one) to groups and hosts", &Commands::DeployCreate,
      "Examples:\n"
      "  parcctl deploy create hello --to group:lab\n"
      "  parcctl deploy create hello=1.0-1 --to group:lab --to host:pc-042 --max-parallel 25% --halt-on-failure 10%\n"
      "  parcctl deploy create hello --to group:office --window 'Sat 22:00-06:00' --deadline 2026-12-06\n"
      "  parcctl deploy create hello --to group:lab --start +2h --deadline +1d --comment 'ticket 4711'\n"
      "  parcctl deploy create hello --remove --to host:pc-042\n"
      "Groups are resolved now: hosts joining the group later do not get this deployment.\n"
      "Times: 2026-11-28T22:00:00Z, 2026-11-28 (UTC midnight), or +2h / 30m / 1d12h from now.\n"
      "Windows are in the server's local time.");
  deploy_create->add_option("package", o.package_ref, "NAME or NAME=VERSION (default: newest registered version)")
      ->required()
      ->type_name("PKG[=VER]");
  deploy_create->add_option("--to", o.to, "Target, repeatable: group:NAME or host:HOST")
      ->allow_extra_args(false)  // one value per --to, so `--to group:lab hello` leaves hello as the package
      ->type_name("TARGET");
  deploy_create->add_flag("--remove", o.remove, "Remove the package instead of installing it");
  deploy_create->add_option("--start", o.start, "Do not start before this time (default: now)")->type_name("TIME");
  deploy_create->add_option("--deadline", o.deadline, "Jobs not started by this time fail")->type_name("TIME");
  deploy_create->add_option("--window", o.window,
                            "Only work inside this maintenance window: 'Sat 22:00-06:00' or 'daily 22:00-06:00'")
      ->type_name("WINDOW");
  deploy_create->add_option("--max-parallel", o.max_parallel, "Hosts working at once: a number (5) or a share (25%)")
      ->type_name("N|P%");
  deploy_create->add_option("--halt-on-failure", o.halt_on_failure,
                            "Halt when this share of finished jobs failed, e.g. 10% (default: never)")
      ->type_name("P%");
  deploy_create->add_option("--comment", o.comment, "Note kept in the audit log")->type_name("TEXT");
  CLI::App* deploy_status =
      leaf(deploy, "status", "A deployment's state and its jobs: host, state, progress, message",
           &Commands::DeployStatus,
           "Examples:\n  parcctl deploy status 3f2a9c1e\n  parcctl deploy status 3f2a9c1e --watch\n"
           "  parcctl deploy status 3f2a9c1e --watch --json     one JSON document per line and update\n"
           "--watch prints the whole status once, then a summary line and the jobs that changed on each\n"
           "update, and returns when the deployment is finished.\n"
           "Exit code once the deployment is finished: 0 if every job succeeded, 1 if any failed or was\n"
           "canceled (0 while it still runs).");
  deploy_status->add_option("id", o.id, "Deployment id or unique prefix")->required()->type_name("ID");
  deploy_status->add_flag("--watch", o.watch, "Follow the deployment until it is finished");
  leaf(deploy, "list", "Deployments with their state and job counts", &Commands::DeployList,
       "Example:\n  parcctl deploy list --wide");
  auto control = [&](const std::string& name, const std::string& description, Handler handler,
                     const std::string& footer) {
    CLI::App* sub = leaf(deploy, name, description, handler, footer);
    sub->add_option("id", o.id, "Deployment id or unique prefix")->required()->type_name("ID");
    sub->add_option("--reason", o.reason, "Why, for the audit log and the deployment's state")->type_name("TEXT");
  };
  control("halt", "Stop starting new jobs; jobs already sent finish on their hosts", &Commands::DeployHalt,
          "Example:\n  parcctl deploy halt 3f2a9c1e --reason 'printer driver breaks scanning'");
  control("resume", "Continue a halted deployment", &Commands::DeployResume,
          "Example:\n  parcctl deploy resume 3f2a9c1e --reason 'fixed in 1.0-2'");
  control("cancel", "Cancel a deployment for good: pending jobs are canceled", &Commands::DeployCancel,
          "Example:\n  parcctl deploy cancel 3f2a9c1e --reason 'wrong group'");

  // rollback
  CLI::App* rollback_points =
      leaf(&app, "rollback-points", "Rollback points a host reported (package operations, policy remediations, image deployments)",
           &Commands::RollbackPoints, "Example:\n  parcctl rollback-points pc-042");
  rollback_points->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");
  CLI::App* rollback = leaf(&app, "rollback", "Order a host to restore a committed rollback point (a job)",
                            &Commands::RollbackHost,
                            "Example:\n  parcctl rollback-points pc-042\n  parcctl rollback pc-042 5c1d0e7a");
  rollback->add_option("host", o.host, "Host id, unique id prefix or hostname")->required()->type_name("HOST");
  rollback->add_option("point", o.point, "Rollback point id or unique prefix")->required()->type_name("POINT");

  // policy / compliance
  CLI::App* policy = group_of("policy", "Hardening baselines (ANSSI-BP-028 ...): sign and upload, assign to groups");
  CLI::App* policy_push = leaf(
      policy, "push", "Sign a baseline file with a publisher key, upload it and register it", &Commands::PolicyPush,
      "Examples:\n  parcctl policy push anssi-bp28-debian12.toml --key acme-it.key\n"
      "  parcctl policy push windows-workstation.toml --key acme-it.key --expires 90d\n"
      "The file is checked first (errors name the file and line); agents accept it only while the\n"
      "signature is valid and never go back to an older version unless an assignment pins it.\n"
      "The policy language: docs/policy.md.");
  policy_push->add_option("file", o.path, "Baseline file (TOML)")->required()->type_name("FILE");
  policy_push->add_option("--key", o.key, "Publisher private key (parcctl key create)")->required()->type_name("KEYFILE");
  policy_push->add_option("--expires", o.expires, "Signature lifetime: 30d, 365d ... (default 365d)")
      ->type_name("DURATION");
  CLI::App* policy_list = leaf(policy, "list", "Registered policies and their assignments", &Commands::PolicyList,
                               "Example:\n  parcctl policy list --group lab");
  policy_list->add_option("--group", o.group, "Only assignments of this group")->type_name("GROUP");
  policy_list->add_flag("--all", o.all, "Also removed assignments");
  CLI::App* policy_show = leaf(policy, "show", "One policy: signature and rules", &Commands::PolicyShow,
                               "Examples:\n  parcctl policy show anssi-bp28-debian12\n"
                               "  parcctl policy show anssi-bp28-debian12=1.0 --json");
  policy_show->add_option("policy", o.package_ref, "NAME or NAME=VERSION (default: newest)")->required()->type_name("POLICY");
  CLI::App* policy_assign = leaf(
      policy, "assign", "Check (audit) or enforce a policy on every host of a group, now and then periodically",
      &Commands::PolicyAssign,
      "Examples:\n  parcctl policy assign anssi-bp28-debian12 --to group:lab --mode audit --level minimal\n"
      "  parcctl policy assign anssi-bp28-debian12 --to group:servers --mode enforce --every 6h\n"
      "  parcctl policy assign anssi-bp28-debian12=1.0 --to group:lab --mode enforce   (pinned version)\n"
      "audit only reports; enforce records a rollback point on the host, then remediates the failing\n"
      "rules (undo with parcctl rollback HOST POINT). Hosts that join the group later are checked too.");
  policy_assign->add_option("policy", o.package_ref, "NAME or NAME=VERSION (default: always the newest)")
      ->required()
      ->type_name("POLICY");
  policy_assign->add_option("--to", o.to, "group:NAME")->allow_extra_args(false)->type_name("group:NAME");
  policy_assign->add_option("--mode", o.mode, "audit (check only) or enforce (check and remediate)")
      ->required()
      ->check(CLI::IsMember({"audit", "enforce"}));
  policy_assign->add_option("--level", o.level, "minimal, intermediary (default), enhanced or high")
      ->check(CLI::IsMember({"minimal", "intermediary", "enhanced", "high"}));
  policy_assign->add_option("--every", o.every, "Time between checks of a host: 30m, 6h, 1d (default 24h)")
      ->type_name("DURATION");
  policy_assign->add_option("--comment", o.comment, "Note kept in the audit log")->type_name("TEXT");
  CLI::App* policy_unassign = leaf(policy, "unassign", "Stop checking a policy on a group", &Commands::PolicyUnassign,
                                   "Example:\n  parcctl policy unassign 5c1d0e7a");
  policy_unassign->add_option("assignment", o.id, "Assignment id or unique prefix (parcctl policy list)")
      ->required()
      ->type_name("ID");
  CLI::App* policy_run = leaf(policy, "run", "Check the hosts of an assignment now", &Commands::PolicyRun,
                              "Example:\n  parcctl policy run 5c1d0e7a && parcctl compliance --group lab");
  policy_run->add_option("assignment", o.id, "Assignment id or unique prefix")->required()->type_name("ID");

  CLI::App* compliance = leaf(
      &app, "compliance", "Latest policy results: score per host and per rule, and drift since the previous check",
      &Commands::Compliance,
      "Examples:\n  parcctl compliance --group lab\n  parcctl compliance --group lab --by-rule\n"
      "  parcctl compliance --host pc-042                  every rule, expected vs found\n"
      "  parcctl compliance --rule sshd_disable_root_login that rule on every host\n"
      "  parcctl compliance --group lab --format csv --output lab-compliance.csv\n"
      "  parcctl compliance --group lab --fail-under 90%   exit 1 below 90% (for scripts)\n"
      "SCORE = pass / (pass + fail); not applicable rules do not count. DRIFT -2 +1: at its last check\n"
      "the host got 2 rules worse and 1 better. CSV: one row per host and rule.");
  compliance->add_option("--group", o.group, "Only hosts in this group")->type_name("GROUP");
  compliance->add_option("--host", o.host, "One host: every rule with expected vs found")->type_name("HOST");
  compliance->add_option("--rule", o.rule, "One rule on every host")->type_name("RULE");
  compliance->add_option("--policy", o.policy, "Only this policy")->type_name("NAME");
  compliance->add_flag("--by-rule", o.by_rule, "Also a table per rule across the hosts");
  compliance->add_option("--format", o.format, "table (default), csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}))
      ->type_name("FORMAT");
  compliance->add_option("--output", o.output, "Write to FILE instead of stdout")->type_name("FILE");
  compliance->add_option("--fail-under", o.fail_under, "Exit 1 when the score is below this percentage")
      ->type_name("PERCENT");

  // netboot (netboot_commands.cc)
  CLI::App* netboot = group_of("netboot", "Unattended OS installation over the network: machines by MAC, boot files, "
                                          "answer file templates, dnsmasq (docs/netboot.md)");
  CLI::App* nb_add = leaf(
      netboot, "add", "Record a machine to install and arm it: its next network boot installs it and enrolls it",
      &Commands::NetbootAdd,
      "Examples:\n"
      "  parcctl netboot add --mac 52:54:00:12:34:56 --hostname pc-042 --group lab --os debian12 \\\n"
      "          --disk /dev/sda --locale fr_FR.UTF-8 --keyboard fr --timezone Europe/Paris\n"
      "  parcctl netboot add --mac 52-54-00-AB-CD-EF --hostname PC-043 --group office --os windows11 --locale fr_FR.UTF-8\n"
      "The answer file is served once, over HTTPS, with a fresh single-use enrollment token for the\n"
      "group; the machine is then disarmed (its later network boots start the local disk).");
  nb_add->add_option("--mac", o.mac, "MAC address of the network card it boots from")->required()->type_name("MAC");
  nb_add->add_option("--hostname", o.hostname, "Host name (RFC 1123; 15 characters at most for Windows)")
      ->required()
      ->type_name("NAME");
  nb_add->add_option("--group", o.group, "Group it enrolls into (created if needed)")->required()->type_name("GROUP");
  nb_add->add_option("--os", o.os, "debian12, windows11 or ubuntu-cloud")
      ->required()
      ->check(CLI::IsMember({"debian12", "windows11", "ubuntu-cloud"}));
  nb_add->add_option("--disk", o.disk, "Disk to install on, wiped (default /dev/sda)")->type_name("DEVICE");
  nb_add->add_option("--locale", o.locale, "Locale, e.g. fr_FR.UTF-8 (default en_US.UTF-8)")->type_name("LOCALE");
  nb_add->add_option("--keyboard", o.keyboard, "Keymap, e.g. fr (default: from the locale)")->type_name("KEYMAP");
  nb_add->add_option("--timezone", o.timezone, "IANA time zone, e.g. Europe/Paris (default UTC)")->type_name("ZONE");
  nb_add->add_option("--asset", o.asset, "Boot files to load (default: the asset named like --os)")->type_name("NAME");
  nb_add->add_option("--arm-for", o.arm_for, "How long it stays armed: 4h, 1d (default: server's, 24h)")
      ->type_name("DURATION");
  nb_add->add_option("--comment", o.comment, "Note kept with the record")->type_name("TEXT");
  CLI::App* nb_list = leaf(netboot, "list", "Machines recorded for network installation and their state",
                           &Commands::NetbootList,
                           "Example:\n  parcctl netboot list --group lab\n"
                           "STATE: armed (the next network boot installs), installing (answer file served, token\n"
                           "not used yet), enrolled (the agent enrolled with the token), idle.");
  nb_list->add_option("--group", o.group, "Only machines of this group")->type_name("GROUP");
  CLI::App* nb_show = leaf(netboot, "show", "One machine: values, state, token, enrollment", &Commands::NetbootShow,
                           "Example:\n  parcctl netboot show 52:54:00:12:34:56");
  nb_show->add_option("host", o.host, "MAC or host name")->required()->type_name("HOST");
  CLI::App* nb_remove = leaf(netboot, "remove", "Forget a machine (its unused token stops working)",
                             &Commands::NetbootRemove, "Example:\n  parcctl netboot remove pc-042");
  nb_remove->add_option("host", o.host, "MAC or host name")->required()->type_name("HOST");
  CLI::App* nb_arm = leaf(netboot, "arm", "Arm a machine again to reinstall it at its next network boot",
                          &Commands::NetbootArm, "Example:\n  parcctl netboot arm pc-042 --for 4h");
  nb_arm->add_option("host", o.host, "MAC or host name")->required()->type_name("HOST");
  nb_arm->add_option("--for", o.arm_for, "How long (default: server's, 24h)")->type_name("DURATION");
  CLI::App* nb_preview = leaf(
      netboot, "preview", "Print a machine's answer file (or iPXE script) with a placeholder instead of a token",
      &Commands::NetbootPreview,
      "Examples:\n  parcctl netboot preview pc-042\n  parcctl netboot preview pc-042 --file boot.ipxe\n"
      "Nothing is changed: no token is created and the machine stays armed.");
  nb_preview->add_option("host", o.host, "MAC or host name")->required()->type_name("HOST");
  nb_preview->add_option("--file", o.answer_file,
                         "preseed.cfg, autounattend.xml, user-data, meta-data or boot.ipxe (default: the answer file)")
      ->type_name("FILE");

  CLI::App* nb_assets = netboot->add_subcommand("assets", "Boot files (kernel, initrd, WinPE files, agent packages)");
  nb_assets->require_subcommand(1);
  CLI::App* nb_assets_add = leaf(
      nb_assets, "add", "Upload boot files into the content store and register them under a name",
      &Commands::NetbootAssetsAdd,
      "Examples:\n"
      "  parcctl netboot assets add --name debian12 --kernel linux --initrd initrd.gz\n"
      "  parcctl netboot assets add --name windows11 --kernel wimboot --initrd BCD --initrd boot.sdi --initrd boot.wim\n"
      "  parcctl netboot assets add --name parc-agent --file parc-agent.deb=./parc-agent_0.1.0_amd64.deb\n"
      "Files are named by their base name, or NAME=FILE. Uploads resume; identical bytes are stored once.");
  nb_assets_add->add_option("--name", o.name, "Asset name (machines use the one named like their os)")
      ->required()
      ->type_name("NAME");
  nb_assets_add->add_option("--kernel", o.kernel, "Kernel (or wimboot) iPXE boots")->type_name("[NAME=]FILE");
  nb_assets_add->add_option("--initrd", o.initrds, "Loaded with the kernel, repeatable")
      ->allow_extra_args(false)
      ->type_name("[NAME=]FILE");
  nb_assets_add->add_option("--file", o.files, "Served only, repeatable (agent packages)")
      ->allow_extra_args(false)
      ->type_name("[NAME=]FILE");
  nb_assets_add->add_option("--cmdline", o.cmdline, "Extra kernel arguments")->type_name("ARGS");
  leaf(nb_assets, "list", "Registered boot files", &Commands::NetbootAssetsList);
  CLI::App* nb_assets_remove = leaf(nb_assets, "remove", "Unregister boot files", &Commands::NetbootAssetsRemove);
  nb_assets_remove->add_option("name", o.name, "Asset name")->required()->type_name("NAME");

  CLI::App* nb_dnsmasq = leaf(
      netboot, "dnsmasq-config", "Print a dnsmasq configuration for proxy-DHCP + TFTP that chains machines to Parc",
      &Commands::NetbootDnsmasqConfig,
      "Examples:\n"
      "  parcctl netboot dnsmasq-config --interface eth0 --subnet 192.168.10.0\n"
      "  parcctl netboot dnsmasq-config --interface eth0 --subnet 192.168.10.0 --tftp-root /srv/parc/tftp \\\n"
      "          --tftp-copy --output /etc/dnsmasq.d/parc.conf\n"
      "The site's DHCP server keeps handing out addresses. --tftp-copy copies iPXE from this machine's\n"
      "ipxe package (apt-get install ipxe) into the TFTP root.");
  nb_dnsmasq->add_option("--interface", o.interface, "Interface dnsmasq answers on")->required()->type_name("IF");
  nb_dnsmasq->add_option("--subnet", o.subnet, "Network address, e.g. 192.168.10.0")->required()->type_name("ADDRESS");
  nb_dnsmasq->add_option("--netmask", o.netmask, "Default 255.255.255.0")->type_name("MASK");
  nb_dnsmasq->add_option("--tftp-root", o.tftp_root, "Default /srv/parc/tftp")->type_name("DIR");
  nb_dnsmasq->add_option("--chain", o.chain, "https (iPXE trusting the parc CA) or http (default: http if on)")
      ->check(CLI::IsMember({"https", "http"}));
  nb_dnsmasq->add_flag("--tftp-copy", o.tftp_copy, "Copy the iPXE files into the TFTP root");
  nb_dnsmasq->add_option("--output", o.output, "Write the configuration to FILE")->type_name("FILE");

  CLI::App* nb_template = netboot->add_subcommand("template", "Answer file templates: show, replace, reset");
  nb_template->require_subcommand(1);
  auto os_option = [&](CLI::App* sub) {
    sub->add_option("--os", o.os, "debian12, windows11 or ubuntu-cloud")
        ->required()
        ->check(CLI::IsMember({"debian12", "windows11", "ubuntu-cloud"}));
  };
  CLI::App* nb_tshow = leaf(nb_template, "show", "Print the template in force", &Commands::NetbootTemplateShow,
                            "Example:\n  parcctl netboot template show --os debian12 > preseed.cfg.tmpl");
  os_option(nb_tshow);
  CLI::App* nb_tset = leaf(nb_template, "set", "Use your own template (checked first: unknown {{variables}} refused)",
                           &Commands::NetbootTemplateSet,
                           "Example:\n  parcctl netboot template set --os debian12 preseed.cfg.tmpl\n"
                           "Variables and escaping rules: docs/netboot.md.");
  os_option(nb_tset);
  nb_tset->add_option("file", o.path, "Template file")->required()->type_name("FILE");
  CLI::App* nb_treset = leaf(nb_template, "reset", "Go back to the shipped template", &Commands::NetbootTemplateReset);
  os_option(nb_treset);
  // image: capture/verify locally, push, list, diff and deploy (image_commands.cc, docs/images.md)
  CLI::App* image = group_of("image", "OS images: capture a master, sign, push, diff, deploy to hosts, verify");
  CLI::App* image_capture = leaf(
      image, "capture", "Capture a directory tree, an image file or a block device as a signed, chunked image",
      &Commands::ImageCapture,
      "Examples:\n"
      "  parcctl image capture --from /srv/master --name ws-debian12 --version 1 --key acme.key -o /srv/images\n"
      "  parcctl image capture --from /srv/master --name ws-debian12 --version 2 --key acme.key -o /srv/images --push\n"
      "  parcctl image capture --from /dev/sdb --name thin-client --version 2026.12 --key acme.key --push\n"
      "  parcctl image capture --on host:master-ws --from / --name ws-debian12 --version 3 --key acme.key\n"
      "With --on the capture is a job on that enrolled host (a master workstation): its agent chunks --from\n"
      "there (/ is the whole system; mount points and the agent's own state are left out) and uploads only\n"
      "what the server lacks; parcctl waits, signs the manifest with --key and registers the image.\n"
      "The store DIR (-o) is a content store layout (objects/ab/<sha256>) plus images/NAME_VERSION.manifest.json\n"
      "and .sig: chunks of earlier versions there are reused, not compressed again. --push uploads only\n"
      "the chunks the server lacks, then registers the image. Progress goes to stderr.");
  image_capture->add_option("--from", o.from, "Directory tree, image file or block device to capture")
      ->required()
      ->type_name("DIR|FILE|/dev/X");
  image_capture->add_option("--name", o.name, "Image name: [a-z0-9][a-z0-9+._-]*")->required()->type_name("NAME");
  image_capture->add_option("--version", o.image_version, "Image version: [A-Za-z0-9.+~:_-]+")
      ->required()
      ->type_name("VERSION");
  image_capture->add_option("--key", o.key, "Sign with this publisher private key (parcctl key create)")
      ->type_name("KEYFILE");
  image_capture->add_option("--expires", o.expires, "Signature lifetime: 30d, 365d ... (default 365d)")
      ->type_name("DURATION");
  image_capture->add_option("-o,--output", o.output, "Local chunk store to write into (created if missing)")
      ->type_name("DIR");
  image_capture->add_flag("--push", o.push, "Upload to the server and register the image (needs --key)");
  image_capture->add_option("--on", o.on,
                            "Capture on this enrolled host instead (host:HOST, a master workstation): the agent "
                            "chunks --from there and uploads, parcctl signs with --key and registers")
      ->type_name("host:HOST");
  image_capture->add_option("--exclude", o.exclude, "In-image path left out with everything below it (repeatable)")
      ->type_name("PATH");
  CLI::App* image_push = leaf(image, "push", "Upload an image of a local store to the server and register it",
                              &Commands::ImagePush,
                              "Example:\n  parcctl image push ws-debian12=2 --store /srv/images");
  image_push->add_option("image", o.package_ref, "NAME or NAME=VERSION (default: newest in the store)")
      ->required()
      ->type_name("NAME[=VERSION]");
  image_push->add_option("--store", o.store, "Local chunk store")->required()->type_name("DIR");
  CLI::App* image_list = leaf(image, "list", "Images registered on the server, every version", &Commands::ImageList,
                              "Examples:\n  parcctl image list\n  parcctl image list ws-debian12 --json");
  image_list->add_option("name", o.name, "Only this image's versions")->type_name("NAME");
  CLI::App* image_show = leaf(image, "show", "One registered image: kind, size, chunks, signature", &Commands::ImageShow,
                              "Examples:\n  parcctl image show ws-debian12\n  parcctl image show ws-debian12=1 --json");
  image_show->add_option("image", o.package_ref, "NAME or NAME=VERSION (default: newest)")
      ->required()
      ->type_name("NAME[=VERSION]");
  CLI::App* image_diff = leaf(
      image, "diff", "What changed between two images, and how much a host holding the first must fetch",
      &Commands::ImageDiff,
      "Examples:\n  parcctl image diff ws-debian12=1 ws-debian12=2\n"
      "  parcctl image diff ws-debian12=1 ws-debian12=2 --store /srv/images     (local, no server)\n"
      "Lines: + added, - removed, ~ changed (content, mode, owner, mtime, xattrs ...).");
  image_diff->add_option("from", o.package_ref, "NAME=VERSION")->required()->type_name("A");
  image_diff->add_option("to", o.other_ref, "NAME=VERSION")->required()->type_name("B");
  image_diff->add_option("--store", o.store, "Compare images of this local store instead of the server's")
      ->type_name("DIR");
  CLI::App* image_deploy = leaf(
      image, "deploy", "Deploy a registered image to hosts: one job per host, followed like a package deployment",
      &Commands::ImageDeploy,
      "Examples:\n  parcctl image deploy ws-debian12 --to group:lab --target /srv/ws\n"
      "  parcctl image deploy thin-client=2026.12 --to host:tc-07 --target /dev/sda2\n"
      "Each agent fetches only the chunks neither its cache nor the target's current content holds,\n"
      "verifies every chunk and the signature, swaps a tree in atomically (a block target is written\n"
      "in place and read back), and leaves the target as it was if anything fails.\n"
      "A tree that replaced another keeps that one as the host's rollback point until the next\n"
      "deployment to the target is swapped in: parcctl rollback-points HOST, parcctl rollback HOST POINT.\n"
      "--commit drops it at once (saves the disk space of a second tree; no way back); deploying the\n"
      "version in place again with --commit commits it later.\n"
      "Then: parcctl deploy status ID --watch (or give --watch here).");
  image_deploy->add_option("image", o.package_ref, "NAME or NAME=VERSION (default: newest)")
      ->required()
      ->type_name("NAME[=VERSION]");
  image_deploy->add_option("--to", o.to, "Target, repeatable: group:NAME or host:HOST")
      ->allow_extra_args(false)
      ->type_name("TARGET");
  image_deploy->add_option("--target", o.target, "Where on each host: a directory (tree) or a file or /dev/X (block)")
      ->required()
      ->type_name("DIR|/dev/X");
  image_deploy->add_option("--max-parallel", o.max_parallel, "Hosts working at once")->type_name("N");
  image_deploy->add_option("--comment", o.comment, "Note kept in the audit log")->type_name("TEXT");
  image_deploy->add_flag("--watch", o.watch, "Follow the deployment until every host is done (exit 1 if one failed)");
  image_deploy->add_flag("--commit", o.commit, "Tree: drop each host's previous tree once the new one is verified");
  CLI::App* image_verify = leaf(
      image, "verify", "Check an image of a local store (signature, every chunk) and optionally a target against it",
      &Commands::ImageVerify,
      "Examples:\n  parcctl image verify ws-debian12=2 --store /srv/images --trust acme.pub\n"
      "  parcctl image verify ws-debian12=2 --store /srv/images --target /srv/ws\n"
      "Exit code 0: everything matches; 1: a bad chunk, signature or difference (listed).");
  image_verify->add_option("image", o.package_ref, "NAME or NAME=VERSION (default: newest in the store)")
      ->required()
      ->type_name("NAME[=VERSION]");
  image_verify->add_option("--store", o.store, "Local chunk store")->required()->type_name("DIR");
  image_verify->add_option("--target", o.target, "Also compare this tree, file or device with the image")
      ->type_name("DIR|FILE|/dev/X");
  image_verify->add_option("--trust", o.trust, "Check the signature with this public key (repeatable)")
      ->type_name("PUBFILE");
  CLI::App* image_remove = leaf(
      image, "remove", "Unregister one image version and delete the chunks no other image uses",
      &Commands::ImageRemove,
      "Example:\n  parcctl image remove ws-debian12=1\n"
      "Refused while a deployment of that version is not finished, halted ones included (parcctl deploy cancel ID first).\n"
      "Chunks shared with other images, packages or policies stay. Hosts that hold the image keep it.");
  image_remove->add_option("image", o.package_ref, "NAME=VERSION (the version is required)")
      ->required()
      ->type_name("NAME=VERSION");
  // The content store is shared by images, packages and policies: one gc,
  // reachable from either side.
  const char* gc_help =
      "Examples:\n  parcctl image gc --dry-run\n  parcctl package gc --older-than 7d\n"
      "Deleted once older than the grace period: objects no registered image, package or policy names (an\n"
      "abandoned image push; a package or policy file pushed but never registered, its registration refused\n"
      "say) and unfinished uploads nobody resumed. Kept: everything an image, package or policy names, and\n"
      "anything younger than the grace period (an upload in progress). 'image gc' and 'package gc' are the\n"
      "same command.";
  for (CLI::App* parent : {image, package}) {
    CLI::App* gc = leaf(parent, "gc", "Delete what nothing uses from the server's content store, after a grace period",
                        &Commands::ImageGc, gc_help);
    gc->add_option("--older-than", o.older_than, "Grace period: 12h, 1d, 7d (default 1d)")->type_name("DURATION");
    gc->add_flag("--dry-run", o.dry_run, "Count what would be deleted, delete nothing");
  }

  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e, out, err);
    err << "parcctl: error: " << e.what() << "\n"
        << "Run '" << CommandPath(app) << " --help' for usage.\n";
    return kExitUsage;
  }

  // The deepest selected command runs: `inventory export` rather than `inventory`.
  for (auto it = leaves.rbegin(); it != leaves.rend(); ++it)
    if (it->first->parsed()) return (commands.*(it->second))();
  err << "parcctl: error: no command given\nRun 'parcctl --help' for usage.\n";
  return kExitUsage;
}

}  // namespace parc::ctl
