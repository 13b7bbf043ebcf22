// Time helpers: Unix seconds, human durations ("24h", "7d", "90m", "30s") and display.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "parc/common/error.h"

namespace parc {

int64_t NowUnix();
int64_t NowMillis();
// "30s", "15m", "24h", "7d", "2w", or plain seconds; combined forms like "1d12h".
Expected<int64_t> ParseDuration(std::string_view text);
// Absolute ("2026-11-28", "2026-11-28T10:00:00Z") or relative ("7d" = 7 days ago) time.
Expected<int64_t> ParseTimePoint(std::string_view text, int64_t now);
// "2026-11-28 15:04:05Z"; "never" for 0.
std::string FormatTime(int64_t unix_seconds);
// "3m ago", "2d ago"
std::string FormatAge(int64_t unix_seconds, int64_t now);

}  // namespace parc
