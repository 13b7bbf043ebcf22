// Whole disks from /sys/block and mounted filesystems.
#include <sys/statvfs.h>

#include <algorithm>
#include <map>

#include "collect.h"

namespace parc::agent::linux_inventory {

namespace {

// Virtual and transient block devices are not hardware an asset manager tracks.
// Optical drives (sr*) are kept: the drive is hardware, its medium is not.
bool IsVirtualBlockDevice(std::string_view name) {
  for (std::string_view prefix : {"loop", "ram", "zram", "dm-", "md", "nbd"}) {
    if (name.starts_with(prefix)) return true;
  }
  return false;
}

std::string TransportFromPath(std::string_view name, std::string_view device_path) {
  if (name.starts_with("sr")) return "optical";
  // Order matters: a USB stick sits under a SCSI host under a USB port.
  if (device_path.find("/usb") != std::string_view::npos) return "usb";
  if (device_path.find("/nvme") != std::string_view::npos || name.starts_with("nvme")) return "nvme";
  if (device_path.find("/virtio") != std::string_view::npos || name.starts_with("vd")) return "virtio";
  if (device_path.find("/mmc") != std::string_view::npos || name.starts_with("mmcblk")) return "mmc";
  if (device_path.find("/ata") != std::string_view::npos) return "sata";
  if (device_path.find("vbd-") != std::string_view::npos || name.starts_with("xvd")) return "xen";
  if (device_path.find("/host") != std::string_view::npos) return "scsi";
  return {};
}

// udev's database keeps what it learnt from the device (ATA serials, which sysfs
// does not expose): "E:ID_SERIAL_SHORT=WD-WX12..." lines in /run/udev/data/b8:0.
std::string UdevProperty(Context& ctx, const std::string& dev, std::string_view property) {
  if (dev.empty()) return {};
  auto text = ctx.Read("/run/udev/data/b" + dev);
  if (!text) return {};
  std::string prefix = "E:" + std::string(property) + "=";
  std::string found;
  ForEachLine(*text, [&](std::string_view line) {
    if (found.empty() && line.starts_with(prefix)) found = Trim(line.substr(prefix.size()));
  });
  return found;
}

std::string FirstNonEmpty(std::initializer_list<std::string> values) {
  for (const auto& v : values) {
    if (!v.empty()) return v;
  }
  return {};
}

}  // namespace

void CollectDisks(Context& ctx, v1::Inventory& inv) {
  for (const std::string& name : ctx.List("/sys/block")) {
    if (IsVirtualBlockDevice(name)) continue;
    std::string base = "/sys/block/" + name;
    auto* d = inv.add_disks();
    d->set_name(name);
    std::string dev = ctx.ReadValue(base + "/dev");
    d->set_model(FirstNonEmpty({ctx.ReadValue(base + "/device/model"), UdevProperty(ctx, dev, "ID_MODEL")}));
    std::string vendor = ctx.ReadValue(base + "/device/vendor");
    // virtio and NVMe put a PCI vendor number here ("0x1af4"), not a name.
    d->set_vendor(vendor.starts_with("0x") ? "" : vendor);
    d->set_serial(FirstNonEmpty({ctx.ReadValue(base + "/device/serial"), ctx.ReadValue(base + "/serial"),
                                 UdevProperty(ctx, dev, "ID_SERIAL_SHORT")}));
    // The medium of an optical drive comes and goes; its size is not the drive's.
    if (!name.starts_with("sr")) {
      if (auto sectors = ParseU64(ctx.ReadValue(base + "/size"))) d->set_size_bytes(*sectors * 512);
    }
    d->set_rotational(ctx.ReadValue(base + "/queue/rotational") == "1");
    d->set_removable(ctx.ReadValue(base + "/removable") == "1");
    d->set_transport(TransportFromPath(name, ctx.LinkTarget(base)));
    d->set_wwn(FirstNonEmpty({ctx.ReadValue(base + "/device/wwid"), ctx.ReadValue(base + "/wwid"),
                              UdevProperty(ctx, dev, "ID_WWN")}));
  }
  auto* disks = inv.mutable_disks();
  std::sort(disks->begin(), disks->end(),
            [](const v1::BlockDevice& a, const v1::BlockDevice& b) { return a.name() < b.name(); });
}

namespace {

bool IsPseudoFilesystem(std::string_view type) {
  static constexpr std::string_view kPseudo[] = {
      "proc",     "sysfs",     "tmpfs",   "devtmpfs",   "devpts",     "securityfs", "pstore",
      "bpf",      "tracefs",   "debugfs", "mqueue",     "hugetlbfs",  "configfs",   "fusectl",
      "autofs",   "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs",    "ramfs",      "squashfs",
      "cgroup",   "cgroup2",   "swap",    "none",       "selinuxfs",  "fuse.gvfsd-fuse", "fuse.portal",
  };
  return std::find(std::begin(kPseudo), std::end(kPseudo), type) != std::end(kPseudo) || type.starts_with("cgroup");
}

// /proc/mounts and fstab escape blanks in paths as octal: "/media/My\040Disk".
std::string DecodeOctal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      auto code = ParseU64(s.substr(i + 1, 3), 8);
      if (code && *code < 256) {
        out.push_back(static_cast<char>(*code));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// Resolves a symlink found under the root the way the running system would,
// without leaving the root: "../../sda1" in /dev/disk/by-uuid is "/dev/sda1".
std::string ResolveInRoot(const std::string& link_dir, const std::string& target) {
  fs::path p = target.starts_with('/') ? fs::path(target) : fs::path(link_dir) / target;
  return p.lexically_normal().string();
}

std::map<std::string, std::string> UuidsByDevice(Context& ctx) {
  std::map<std::string, std::string> uuids;
  for (const std::string& uuid : ctx.List("/dev/disk/by-uuid")) {
    std::string target = ctx.LinkTarget("/dev/disk/by-uuid/" + uuid);
    if (!target.empty()) uuids[ResolveInRoot("/dev/disk/by-uuid", target)] = uuid;
  }
  return uuids;
}

}  // namespace

void CollectFilesystems(Context& ctx, v1::Inventory& inv) {
  std::optional<std::string> table;
  bool from_fstab = false;
  if (ctx.live) {
    table = ctx.Read("/proc/self/mounts");
  } else {
    table = ctx.Read("/proc/mounts");
    if (!table) {
      table = ctx.Read("/etc/fstab");
      from_fstab = true;
    }
  }
  if (!table) {
    ctx.Warn(ctx.live ? "cannot read /proc/self/mounts: filesystems unknown"
                      : "neither /proc/mounts nor /etc/fstab in the root: filesystems unknown");
    return;
  }
  auto uuids = UuidsByDevice(ctx);
  std::map<std::string, v1::Filesystem> by_mount_point;  // a later mount hides an earlier one
  ForEachLine(*table, [&](std::string_view line) {
    if (Trim(line).starts_with('#')) return;
    auto f = SplitWords(line);
    if (f.size() < 4) return;
    std::string mount_point = DecodeOctal(f[1]);
    if (IsPseudoFilesystem(f[2]) || !mount_point.starts_with('/')) return;
    v1::Filesystem fs;
    fs.set_mount_point(mount_point);
    fs.set_type(std::string(f[2]));
    std::string device = DecodeOctal(f[0]);
    if (device.starts_with("UUID=")) {
      fs.set_uuid(ToLower(device.substr(5)));
    } else {
      std::string resolved = device;
      std::string target = device.starts_with("/dev/") ? ctx.LinkTarget(device) : "";
      if (!target.empty()) resolved = ResolveInRoot(fs::path(device).parent_path().string(), target);
      auto it = uuids.find(resolved);
      if (it == uuids.end()) it = uuids.find(device);
      if (it != uuids.end()) fs.set_uuid(it->second);
    }
    fs.set_device(device);
    for (auto opt : Split(f[3], ',')) {
      if (opt == "ro") fs.set_read_only(true);
    }
    // Sizes only from the live system: under a prepared root, statvfs would
    // describe the host filesystem the tree happens to sit on.
    if (ctx.live && !from_fstab) {
      struct statvfs st = {};
      if (::statvfs(mount_point.c_str(), &st) == 0) {
        fs.set_size_bytes(static_cast<uint64_t>(st.f_blocks) * st.f_frsize);
        fs.set_free_bytes(static_cast<uint64_t>(st.f_bavail) * st.f_frsize);
      }
    }
    by_mount_point[mount_point] = std::move(fs);
  });
  for (auto& [mount_point, fs] : by_mount_point) *inv.add_filesystems() = std::move(fs);
}

}  // namespace parc::agent::linux_inventory
