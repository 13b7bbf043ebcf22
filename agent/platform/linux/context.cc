#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "collect.h"
#include "parc/common/files.h"

namespace parc::agent::linux_inventory {

fs::path Context::Path(std::string_view absolute) const { return UnderRoot(root, absolute); }

std::optional<std::string> Context::Read(std::string_view absolute, size_t max_bytes) const {
  auto data = ReadSmallFile(Path(absolute), max_bytes);
  if (!data) return std::nullopt;
  return std::move(*data);
}

std::string Context::ReadValue(std::string_view absolute) const {
  // sysfs attributes are one short line; 4 KiB is a page, the most sysfs returns.
  auto data = Read(absolute, 4096);
  if (!data) return {};
  std::string_view v = *data;
  v = v.substr(0, v.find('\n'));
  return std::string(Trim(v));
}

bool Context::Exists(std::string_view absolute) const {
  std::error_code ec;
  return fs::exists(fs::symlink_status(Path(absolute), ec));
}

bool Context::IsDirectory(std::string_view absolute) const {
  std::error_code ec;
  return fs::is_directory(Path(absolute), ec);
}

std::vector<std::string> Context::List(std::string_view absolute) const {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(Path(absolute), ec), end;
  for (; !ec && it != end; it.increment(ec)) names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string Context::LinkTarget(std::string_view absolute) const {
  // The link text is what we want, not where it leads: in a prepared root an
  // absolute target points into the host, not into the root.
  char buf[4096];
  ssize_t n = ::readlink(Path(absolute).c_str(), buf, sizeof buf);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace parc::agent::linux_inventory
