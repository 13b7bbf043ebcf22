#include "window.h"

#include <ctime>
#include <regex>

namespace parc::server {
namespace {

int DayIndex(std::string d) {
  static const char* kNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  for (auto& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (d.size() > 3) d = d.substr(0, 3);
  for (int i = 0; i < 7; ++i)
    if (d == kNames[i]) return i;
  return -1;
}

}  // namespace

bool MaintenanceWindow::Contains(int wday, int minute) const {
  if (start_minute < end_minute) return days[static_cast<size_t>(wday)] && minute >= start_minute && minute < end_minute;
  // Crossing midnight: the evening part today, or the morning part of a window that started yesterday.
  if (days[static_cast<size_t>(wday)] && minute >= start_minute) return true;
  int yesterday = (wday + 6) % 7;
  return days[static_cast<size_t>(yesterday)] && minute < end_minute;
}

bool MaintenanceWindow::ContainsTime(int64_t unix_seconds) const {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  localtime_r(&t, &tm);
  return Contains(tm.tm_wday, tm.tm_hour * 60 + tm.tm_min);
}

Expected<MaintenanceWindow> ParseWindow(const std::string& text) {
  static const std::regex kRe(R"(^\s*([A-Za-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$)");
  std::smatch m;
  auto bad = [&](const std::string& why) {
    return Fail(Errc::kInvalidArgument, "maintenance window '" + text + "': " + why +
                                            " (examples: 'Sat 22:00-06:00', 'Mon-Fri 19:00-07:00', 'daily 22:00-06:00')");
  };
  if (!std::regex_match(text, m, kRe)) return bad("expected DAYS HH:MM-HH:MM");
  MaintenanceWindow w;
  std::string days = m[1].str();
  std::string lower = days;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "daily" || lower == "everyday" || lower == "any") {
    w.days.set();
  } else {
    size_t pos = 0;
    while (pos <= days.size()) {
      size_t comma = days.find(',', pos);
      std::string part = days.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      size_t dash = part.find('-');
      if (dash == std::string::npos) {
        int d = DayIndex(part);
        if (d < 0) return bad("unknown day '" + part + "'");
        w.days.set(static_cast<size_t>(d));
      } else {
        int a = DayIndex(part.substr(0, dash)), b = DayIndex(part.substr(dash + 1));
        if (a < 0 || b < 0) return bad("unknown day range '" + part + "'");
        for (int d = a;; d = (d + 1) % 7) {
          w.days.set(static_cast<size_t>(d));
          if (d == b) break;
        }
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  int h1 = std::stoi(m[2].str()), m1 = std::stoi(m[3].str()), h2 = std::stoi(m[4].str()), m2 = std::stoi(m[5].str());
  if (h1 > 23 || m1 > 59 || h2 > 24 || m2 > 59 || (h2 == 24 && m2 != 0)) return bad("invalid time");
  w.start_minute = h1 * 60 + m1;
  w.end_minute = h2 * 60 + m2;
  if (w.start_minute == w.end_minute) return bad("the window is empty");
  return w;
}

}  // namespace parc::server
