// CollectInventory for Linux: runs every section collector over one root.
#include "parc/agent/inventory.h"

#include <system_error>

#include "collect.h"

namespace parc::agent {

Expected<CollectResult> CollectInventory(const CollectOptions& options) {
  namespace li = linux_inventory;
  std::error_code ec;
  if (!std::filesystem::is_directory(options.root, ec)) {
    return Fail(Errc::kNotFound, "inventory root " + options.root.string() + " is not a directory");
  }
  li::Context ctx;
  ctx.root = options.root;
  ctx.live = std::filesystem::equivalent(options.root, "/", ec);

  CollectResult result;
  v1::Inventory& inv = result.inventory;
  // Order matters where a section reads another: os (architecture) and security
  // (firewall packages) read software; virtualization reads hardware; security
  // reads services.
  li::CollectSoftware(ctx, inv);
  li::CollectOs(ctx, inv);
  li::CollectHardware(ctx, inv);
  li::CollectCpu(ctx, inv);
  li::CollectMemory(ctx, inv);
  li::CollectDisks(ctx, inv);
  li::CollectFilesystems(ctx, inv);
  li::CollectNetwork(ctx, inv);
  li::CollectServices(ctx, inv);
  li::CollectAccounts(ctx, inv);
  li::CollectMonitors(ctx, inv);
  li::CollectVirtualization(ctx, inv);
  li::CollectSecurity(ctx, inv);
  result.warnings = std::move(ctx.warnings);
  return result;
}

}  // namespace parc::agent
