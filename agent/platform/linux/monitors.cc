// Connected monitors, from the EDID the kernel read over each DRM connector.
#include "collect.h"
#include "parc/agent/edid.h"

namespace parc::agent::linux_inventory {

void CollectMonitors(Context& ctx, v1::Inventory& inv) {
  for (const std::string& connector : ctx.List("/sys/class/drm")) {
    // A disconnected connector has an empty edid file.
    auto bytes = ctx.Read("/sys/class/drm/" + connector + "/edid", 64 * 1024);
    if (!bytes || bytes->empty()) continue;
    auto edid = ParseEdid(*bytes);
    if (!edid) {
      ctx.Warn("monitor on " + connector + " sent an invalid EDID (bad header or checksum): skipped");
      continue;
    }
    auto* m = inv.add_monitors();  // List() is sorted: the section is too
    m->set_connector(connector);
    m->set_manufacturer(edid->manufacturer);
    m->set_model(edid->name);
    m->set_serial(edid->serial);
    m->set_product_code(edid->product_code);
    m->set_year(edid->year);
    m->set_width_cm(edid->width_cm);
    m->set_height_cm(edid->height_cm);
  }
}

}  // namespace parc::agent::linux_inventory
