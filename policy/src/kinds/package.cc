// package: a dpkg package installed or absent in the root, read from its
// /var/lib/dpkg/status. Removing one runs the real dpkg --purge after every
// path it can touch has been recorded, so that a rollback puts the files, the
// maintainer scripts and dpkg's database back exactly.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <memory>
#include <set>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

namespace rootfs = pkg::rootfs;

constexpr uint32_t kDpkgTimeoutSeconds = 600;
constexpr const char* kAdmin = "/var/lib/dpkg";

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// One stanza of the status file for the package (one per architecture).
struct Instance {
  std::string arch, version, status;  // status: "install ok installed"
  bool essential = false;             // Essential: yes or Protected: yes
  std::string State() const {         // the third word: installed, config-files, ...
    auto w = SplitWords(status);
    return w.size() == 3 ? w[2] : status;
  }
  bool Installed() const {
    auto s = State();
    return s == "installed" || s == "triggers-awaited" || s == "triggers-pending";
  }
  // Files of the package are (or may be) on disk.
  bool Present() const { return State() != "not-installed" && State() != "config-files" && !State().empty(); }
};

std::vector<Instance> Instances(const std::string& status_text, const std::string& name) {
  std::vector<Instance> out;
  Instance cur;
  std::string pkg;
  auto flush = [&] {
    if (pkg == name) out.push_back(cur);
    cur = Instance{};
    pkg.clear();
  };
  for (const auto& line : Lines(status_text)) {
    if (Trim(line).empty()) {
      flush();
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') continue;  // continuation of a multi-line field
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = Trim(line.substr(colon + 1));
    if (key == "Package") pkg = value;
    else if (key == "Status") cur.status = value;
    else if (key == "Version") cur.version = value;
    else if (key == "Architecture") cur.arch = value;
    else if ((key == "Essential" || key == "Protected") && value == "yes") cur.essential = true;
  }
  flush();
  return out;
}

std::vector<std::string> Components(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// dpkg --root opens <root>/path and the kernel follows the links on the way as
// the host sees them: an absolute link in the root would take it to the
// host's own files. Context::Resolve reads such a link inside the root, so the
// recorded path would not be the one dpkg changes. Refuse both cases.
ExpectedVoid KernelStaysInRoot(const Context& ctx, const std::string& path) {
  if (ctx.live()) return {};
  std::vector<std::string> todo = Components(path);
  std::reverse(todo.begin(), todo.end());
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.back());
    todo.pop_back();
    if (c == ".") continue;
    if (c == "..") {
      if (done.empty()) return Fail(Errc::kPermissionDenied, path + " climbs above the root: refused");
      done.pop_back();
      continue;
    }
    done.push_back(c);
    if (todo.empty()) break;  // dpkg does not follow the last component
    fs::path host = ctx.root();
    for (const auto& d : done) host /= d;
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) continue;
    if (++links > 40) return Fail(Errc::kInvalidArgument, "too many symbolic links in " + path);
    std::string target(4096, '\0');
    ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
    if (n < 0) return Fail(ErrnoError(errno, "cannot read link " + host.string()));
    target.resize(static_cast<size_t>(n));
    if (!target.empty() && target[0] == '/')
      return Fail(Errc::kPermissionDenied, "the link " + ctx.InSystem(host) + " -> " + target + " (on the way to " + path +
                                               ") is absolute: dpkg --root would follow it to the host's " + target +
                                               "; refused");
    done.pop_back();
    auto parts = Components(target);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
  }
  return {};
}

std::string FindDpkg() {
  for (const char* d : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    std::string p = std::string(d) + "/dpkg";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

class Package final : public Check {
 public:
  Package(std::string name, bool want_installed) : name_(std::move(name)), want_installed_(want_installed) {}

  Finding Evaluate(const Context& ctx) const override {
    auto status = ctx.Read(std::string(kAdmin) + "/status");
    if (!status) {
      if (status.error().Is(Errc::kNotFound)) return NotApplicable("this root has no dpkg database (/var/lib/dpkg/status)");
      return ErrorFinding(status.error().message());
    }
    auto all = Instances(*status, name_);
    std::string expected = "package " + name_ + (want_installed_ ? " installed" : " absent");
    std::string found = Describe(all);
    bool installed = false, present = false;
    for (const auto& i : all) {
      installed = installed || i.Installed();
      present = present || i.Present();
    }
    bool ok = want_installed_ ? installed : !present;
    return ok ? Pass(expected, found) : FailWith(expected, found);
  }

  std::string CannotRemediate(const Context& ctx) const override {
    if (want_installed_)
      return "install " + name_ + " with a Parc package (or apt on the machine): a hardening policy does not install software";
    if (FindDpkg().empty()) return "dpkg is not available on this machine to remove " + name_;
    auto status = ctx.Read(std::string(kAdmin) + "/status");
    if (status)
      for (const auto& i : Instances(*status, name_))
        if (i.Present() && i.essential) return name_ + " is an essential (or protected) package: dpkg will not remove it";
    auto paths = PathsToRecord(ctx);
    if (!paths) return paths.error().message();
    return "";
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    std::string dpkg = FindDpkg();
    if (dpkg.empty()) return Fail(Errc::kNotFound, "dpkg is not available on this machine");
    auto status = ctx.Read(std::string(kAdmin) + "/status");
    if (!status) return Fail(status.error());
    auto all = Instances(*status, name_);
    std::vector<std::string> targets;
    for (const auto& i : all)
      if (i.Present()) targets.push_back(all.size() > 1 && !i.arch.empty() ? name_ + ":" + i.arch : name_);
    if (targets.empty()) return {};
    auto touched = PathsToRecord(ctx);
    if (!touched) return Fail(touched.error());
    for (const auto& p : touched->paths)
      if (auto r = change.Record(p); !r) return r;

    std::vector<std::string> argv{dpkg};
    if (!ctx.live()) {
      argv.push_back("--root=" + ctx.root().string());
      // The host's dpkg.cfg names the host's log: the target's history stays in the target.
      auto log_dir = ctx.Resolve("/var/log");
      struct stat st {};
      bool has_log_dir = log_dir && ::stat(log_dir->c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      argv.push_back("--log=" + (has_log_dir ? (*log_dir / "dpkg.log").string() : std::string("/dev/null")));
    }
    if (::geteuid() != 0) argv.push_back("--force-not-root");
    argv.push_back("--purge");
    for (const auto& t : targets) argv.push_back(t);
    std::string what = "dpkg --purge " + name_;
    auto step = rootfs::RunStep(what, argv,
                                {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C",
                                 "DEBIAN_FRONTEND=noninteractive"},
                                "/", kDpkgTimeoutSeconds);
    if (step.timed_out) return Fail(Errc::kIo, what + " did not finish within " + std::to_string(kDpkgTimeoutSeconds) + " s");
    if (step.exit_code != 0)
      return Fail(Errc::kIo, what + " failed (exit " + std::to_string(step.exit_code) + "): " + rootfs::LastLines(step.output, 8));
    if (touched->has_scripts)
      change.Note(name_ + ": its maintainer scripts (prerm/postrm) ran; alternatives, init and systemd links, ucf and "
                          "account files were recorded for a rollback, anything else they changed is not");
    return {};
  }

 private:
  std::string Describe(const std::vector<Instance>& all) const {
    if (all.empty()) return "not installed (no entry in /var/lib/dpkg/status)";
    std::string out;
    for (const auto& i : all) {
      std::string one;
      if (i.Installed()) one = "installed, version " + i.version;
      else if (i.State() == "config-files") one = "removed, its configuration files remain";
      else if (i.State() == "not-installed") one = "not installed";
      else one = "partly installed (" + i.State() + "), version " + i.version;
      if (all.size() > 1 && !i.arch.empty()) one = i.arch + ": " + one;
      out += (out.empty() ? "" : "; ") + one + " (dpkg status: " + i.status + ")";
    }
    return out;
  }

  // Names under /var/lib/dpkg/info that belong to the package: NAME.ext and
  // NAME:ARCH.ext where ext has no dot (so that "libfoo" does not take
  // "libfoo.0-1.list" of another package).
  bool OwnInfoFile(const std::string& file) const {
    std::string rest;
    if (file.starts_with(name_ + ".")) rest = file.substr(name_.size() + 1);
    else if (file.starts_with(name_ + ":")) {
      auto dot = file.find('.', name_.size() + 1);
      if (dot == std::string::npos) return false;
      rest = file.substr(dot + 1);
    } else {
      return false;
    }
    return !rest.empty() && rest.find('.') == std::string::npos;
  }

  // Every in-system path the purge may create, change or remove, canonical
  // (links on the way resolved in the root), each checked to be the path dpkg
  // itself will reach.
  struct Touched {
    std::vector<std::string> paths;
    bool has_scripts = false;  // prerm/postrm: they may change more than we know
  };
  Expected<Touched> PathsToRecord(const Context& ctx) const {
    std::set<std::string> out;
    bool has_scripts = false;
    std::string info = std::string(kAdmin) + "/info";
    auto add = [&](const std::string& p) -> ExpectedVoid {
      if (auto k = KernelStaysInRoot(ctx, p); !k) return k;
      auto host = ctx.Resolve(p, false);
      if (!host) return Fail(host.error());
      std::string canon = ctx.InSystem(*host);
      if (canon != "/") out.insert(canon);
      return {};
    };
    for (const auto& file : ListDir(ctx, info)) {
      if (!OwnInfoFile(file)) continue;
      std::string p = info + "/" + file;
      if (auto r = add(p); !r) return Fail(r.error());
      std::string ext = file.substr(file.rfind('.') + 1);
      if (ext == "prerm" || ext == "postrm") has_scripts = true;
      if (ext == "list") {
        auto text = ctx.Read(p);
        if (!text) return Fail(text.error());
        for (const auto& line : Lines(*text)) {
          if (line.empty() || line == "/." || line[0] != '/') continue;
          if (auto r = add(line); !r) return Fail(r.error());
        }
      }
      if (ext == "conffiles") {
        // The purge also removes the conffile's backups (.dpkg-old, .dpkg-dist, ~, ...).
        auto text = ctx.Read(p);
        if (!text) return Fail(text.error());
        for (const auto& line : Lines(*text)) {
          auto w = SplitWords(line);
          if (w.empty() || w[0][0] != '/') continue;
          const std::string& conf = w[0];
          if (auto r = add(conf); !r) return Fail(r.error());
          std::string dir = conf.substr(0, conf.rfind('/')), base = conf.substr(conf.rfind('/') + 1);
          if (dir.empty()) dir = "/";
          for (const auto& n : ListDir(ctx, dir))
            if (n.starts_with(base) || n == "#" + base + "#" || n == ".#" + base)
              if (auto r = add((dir == "/" ? "" : dir) + "/" + n); !r) return Fail(r.error());
        }
      }
    }
    // dpkg's own database and locks, recorded present or absent.
    for (const char* f : {"status", "status-old", "available", "available-old", "lock", "lock-frontend",
                          "triggers/Lock", "triggers/Unincorp", "triggers/File"})
      if (auto r = add(std::string(kAdmin) + "/" + f); !r) return Fail(r.error());
    for (const char* sub : {"", "/triggers", "/updates"}) {
      std::string dir = std::string(kAdmin) + sub;
      for (const auto& n : ListDir(ctx, dir)) {
        auto host = ctx.Resolve(dir + "/" + n, false);
        struct stat st {};
        if (host && ::lstat(host->c_str(), &st) == 0 && S_ISREG(st.st_mode))
          if (auto r = add(dir + "/" + n); !r) return Fail(r.error());
      }
    }
    if (has_scripts)
      if (auto r = AddScriptPlaces(ctx, add); !r) return Fail(r.error());
    // The target's dpkg.log (offline roots: an image keeps no trace of a rolled-back
    // change). On the live system the log is history and is left as dpkg wrote it.
    if (!ctx.live() && ctx.Exists("/var/log"))
      if (auto r = add("/var/log/dpkg.log"); !r) return Fail(r.error());
    return Touched{std::vector<std::string>(out.begin(), out.end()), has_scripts};
  }

  // What Debian maintainer scripts change outside the package's own files on
  // purge, recorded so that a rollback gives back a working package:
  // update-alternatives (its database, /etc/alternatives and the links it
  // manages, e.g. /usr/bin/telnet), update-rc.d (/etc/rc?.d links),
  // deb-systemd-helper (.wants links and its state), ucf, and deluser/delgroup
  // (the account files).
  template <typename Add>
  ExpectedVoid AddScriptPlaces(const Context& ctx, Add& add) const {
    auto add_dir_entries = [&](const std::string& dir) -> ExpectedVoid {
      for (const auto& n : ListDir(ctx, dir))
        if (auto r = add(dir + "/" + n); !r) return r;
      return {};
    };
    const std::string alt_db = std::string(kAdmin) + "/alternatives";
    for (const auto& name : ListDir(ctx, alt_db)) {
      if (auto r = add(alt_db + "/" + name); !r) return r;
      if (auto r = add("/etc/alternatives/" + name); !r) return r;
      auto text = ctx.Read(alt_db + "/" + name);
      if (!text) continue;
      // Line 1 auto|manual, line 2 the master link, then slave name / slave link pairs up to an empty line.
      auto lines = Lines(*text);
      if (lines.size() >= 2 && !lines[1].empty() && lines[1][0] == '/')
        if (auto r = add(lines[1]); !r) return r;
      for (size_t i = 2; i + 1 < lines.size() && !lines[i].empty(); i += 2) {
        if (lines[i].find('/') != std::string::npos) break;  // not a slave name: malformed, stop
        if (auto r = add("/etc/alternatives/" + lines[i]); !r) return r;
        if (!lines[i + 1].empty() && lines[i + 1][0] == '/')
          if (auto r = add(lines[i + 1]); !r) return r;
      }
    }
    for (const char* rc : {"/etc/rc0.d", "/etc/rc1.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d", "/etc/rc6.d",
                           "/etc/rcS.d"})
      if (auto r = add_dir_entries(rc); !r) return r;
    for (const auto& wants : ListDir(ctx, "/etc/systemd/system"))
      if (wants.ends_with(".wants") || wants.ends_with(".requires"))
        if (auto r = add_dir_entries("/etc/systemd/system/" + wants); !r) return r;
    for (const char* dir : {"/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked",
                            "/var/lib/ucf"}) {
      if (auto r = add_dir_entries(dir); !r) return r;
      for (const auto& sub : ListDir(ctx, dir))
        if (sub.ends_with(".wants") || sub.ends_with(".requires") || sub == "cache")
          if (auto r = add_dir_entries(std::string(dir) + "/" + sub); !r) return r;
    }
    for (const char* f : {"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid"})
      if (ctx.Exists(f))
        if (auto r = add(f); !r) return r;
    return {};
  }

  std::string name_;
  bool want_installed_;
};

}  // namespace

Expected<CheckPtr> MakePackage(Fields& f) {
  auto name = f.String("name");
  if (!name) return Fail(name.error());
  // Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+
  auto valid_char = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-'; };
  bool valid = name->size() >= 2 && std::all_of(name->begin(), name->end(), valid_char) && std::isalnum(static_cast<unsigned char>((*name)[0]));
  if (!valid)
    return Fail(f.Bad("name", "'" + *name + "' is not a Debian package name ([a-z0-9][a-z0-9+.-]+)"));
  auto state = f.OneOf("state", {"installed", "absent"});
  if (!state) return Fail(state.error());
  return std::make_shared<Package>(*name, *state == "installed");
}

}  // namespace parc::policy::kinds
