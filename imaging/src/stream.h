// Cutting a file or device into chunks as it is read, in bounded memory.
#pragma once

#include <functional>
#include <string_view>

#include "parc/imaging/chunker.h"
#include "sys.h"

namespace parc::imaging::internal {

// Calls fn(chunk, offset) for every chunk of fd read from its current
// position to the end. Segments of at most 8 MiB plus one chunk.
ExpectedVoid CutStream(const sys::Fd& fd, uint64_t size_hint, const Chunker& chunker,
                       const std::function<ExpectedVoid(std::string_view chunk, uint64_t offset)>& fn);

}  // namespace parc::imaging::internal
