// Maintenance windows: "Sat 22:00-06:00", "Mon-Fri 19:00-07:00",
// "Sat,Sun 00:00-24:00", "daily 22:00-06:00", in the server's local time. A
// window that crosses midnight belongs to the day it starts on.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>

#include "parc/common/error.h"

namespace parc::server {

struct MaintenanceWindow {
  std::bitset<7> days;  // 0 = Sunday ... 6 = Saturday (struct tm's tm_wday)
  int start_minute = 0; // minutes after local midnight
  int end_minute = 0;   // may be <= start_minute: crosses midnight

  // Is the local wall-clock moment (weekday, minute of day) inside?
  bool Contains(int wday, int minute_of_day) const;
  // Same for a Unix time, in the process's local time zone.
  bool ContainsTime(int64_t unix_seconds) const;
};

Expected<MaintenanceWindow> ParseWindow(const std::string& text);

}  // namespace parc::server
