#include "parc/common/timeutil.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace parc {

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Expected<int64_t> ParseDuration(std::string_view text) {
  if (text.empty()) return Fail(Errc::kInvalidArgument, "empty duration");
  int64_t total = 0;
  int64_t number = 0;
  bool have_digits = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      number = number * 10 + (c - '0');
      have_digits = true;
      if (number > 100LL * 365 * 86400) return Fail(Errc::kInvalidArgument, "duration too large: " + std::string(text));
      continue;
    }
    if (!have_digits) return Fail(Errc::kInvalidArgument, "bad duration '" + std::string(text) + "' (use e.g. 30s, 15m, 24h, 7d)");
    int64_t unit = 0;
    switch (c) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return Fail(Errc::kInvalidArgument, "bad duration unit '" + std::string(1, c) + "' in '" + std::string(text) + "' (use s, m, h, d or w)");
    }
    total += number * unit;
    number = 0;
    have_digits = false;
  }
  if (have_digits) total += number;
  return total;
}

Expected<int64_t> ParseTimePoint(std::string_view text, int64_t now) {
  if (text.size() >= 10 && text[4] == '-' && text[7] == '-') {
    std::tm tm{};
    std::string s(text);
    if (s.back() == 'Z') s.pop_back();
    const char* end = nullptr;
    if (s.size() == 10) end = strptime(s.c_str(), "%Y-%m-%d", &tm);
    else end = strptime(s.c_str(), s.find('T') != std::string::npos ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
    if (!end || *end != '\0') return Fail(Errc::kInvalidArgument, "bad time '" + std::string(text) + "' (use 2026-11-28, 2026-11-28T10:00:00Z or 7d)");
    return static_cast<int64_t>(timegm(&tm));
  }
  auto d = ParseDuration(text);
  if (!d) return Fail(Errc::kInvalidArgument, "bad time '" + std::string(text) + "' (use 2026-11-28, 2026-11-28T10:00:00Z or 7d for 7 days ago)");
  return now - *d;
}

std::string FormatTime(int64_t t) {
  if (t <= 0) return "never";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string FormatAge(int64_t t, int64_t now) {
  if (t <= 0) return "never";
  int64_t d = now - t;
  if (d < 0) d = 0;
  char buf[32];
  if (d < 60) std::snprintf(buf, sizeof buf, "%llds ago", static_cast<long long>(d));
  else if (d < 3600) std::snprintf(buf, sizeof buf, "%lldm ago", static_cast<long long>(d / 60));
  else if (d < 86400) std::snprintf(buf, sizeof buf, "%lldh ago", static_cast<long long>(d / 3600));
  else std::snprintf(buf, sizeof buf, "%lldd ago", static_cast<long long>(d / 86400));
  return buf;
}

}  // namespace parc
