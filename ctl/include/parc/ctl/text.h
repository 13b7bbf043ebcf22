// Text helpers for what parcctl shows people: widths, truncation, and making
// agent-supplied strings safe to print on an admin's terminal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parc::ctl {

// Unicode code points in UTF-8 text: the column count a terminal uses for the
// Latin, Greek and Cyrillic text our inventories hold (wide CJK glyphs are rare
// enough in host data that we accept misalignment there).
size_t DisplayWidth(std::string_view text);

// At most `width` code points; ends with "…" when something was cut.
std::string TruncateToWidth(std::string_view text, size_t width);

// Hostnames, package summaries and the like come from agents, which an admin
// does not control: control characters (ESC, CR, C1 CSI) could move the cursor
// or recolour the terminal, so they are shown as escapes instead. Invalid
// UTF-8 bytes are escaped too, so widths stay honest.
std::string Printable(std::string_view text);

std::string ToUpper(std::string_view text);
std::string Join(const std::vector<std::string>& parts, std::string_view separator);
std::string Trim(std::string_view text);

// First 8 characters of a host id: enough to tell hosts apart and accepted by
// the server as a unique id prefix.
std::string ShortId(std::string_view host_id);

// 1536 -> "1.5 KiB"; exact bytes below 1 KiB.
std::string HumanBytes(uint64_t bytes);

// An inventory value as people read it: sizes in KiB/MiB/GiB, times as dates.
// CSV and JSON keep the raw value.
std::string HumanFieldValue(std::string_view field, const std::string& value);

}  // namespace parc::ctl
