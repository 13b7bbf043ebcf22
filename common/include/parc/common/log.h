// Logging for technicians: one line per event, local time, level, component.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace parc {

// Sets up the default logger: stderr, "2026-11-28 15:04:05 INFO  [server] message".
// level: trace, debug, info, warn, error. When stderr is a journal (systemd), the
// timestamp is left to the journal.
void InitLogging(const std::string& component, const std::string& level);

}  // namespace parc
