#include "parc/common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>

namespace parc {

void InitLogging(const std::string& component, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt(component);
  bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  logger->set_pattern(journal ? "%-5l [%n] %v" : "%Y-%m-%d %H:%M:%S.%e %-5l [%n] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace parc
