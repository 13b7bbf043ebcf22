// RFC 4180 CSV: fields holding a comma, quote, CR or LF are quoted, quotes
// doubled, records end with CRLF. Values are written as they are (no
// spreadsheet-formula escaping), so a CSV round-trips to the same data.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace parc::ctl {

std::string CsvField(std::string_view value);
std::string CsvRecord(const std::vector<std::string>& fields);

}  // namespace parc::ctl
