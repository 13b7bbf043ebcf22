// Collecting the local inventory. The neutral interface; the implementation is
// chosen by CMake from agent/platform/<os>/ (Linux today).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "parc/common/error.h"
#include "parc/v1/inventory.pb.h"

namespace parc::agent {

struct CollectOptions {
  // Everything is read under this directory: /etc, /var/lib/dpkg, /proc, /sys, /run ...
  // "/" is the live system; anything else is a prepared tree or an offline image.
  std::filesystem::path root = "/";
};

struct CollectResult {
  v1::Inventory inventory;
  // What could not be read, in words a technician understands ("no DMI table:
  // /sys/class/dmi/id is absent"). Missing information is never an error.
  std::vector<std::string> warnings;
};

// Collects every section. Fails only when the root itself is unusable.
Expected<CollectResult> CollectInventory(const CollectOptions& options);

}  // namespace parc::agent
