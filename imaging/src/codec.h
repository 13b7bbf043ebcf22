// Chunk compression without the digests (callers that already hashed).
#pragma once

#include <string>
#include <string_view>

#include "parc/common/error.h"

namespace parc::imaging::internal {

Expected<std::string> CompressFrame(std::string_view plain, int zstd_level);

}  // namespace parc::imaging::internal
