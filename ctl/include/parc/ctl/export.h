// Writers for `parcctl inventory export`: rows arrive one by one from the
// server's stream and are written as they come, so a fleet-wide export needs
// no more memory than one row.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"
#include "parc/v1/admin.pb.h"

namespace parc::ctl {

enum class ExportFormat { kCsv, kJson, kJsonl };
Expected<ExportFormat> ParseExportFormat(std::string_view name);

class ExportWriter {
 public:
  // With one section, CSV has one column per field of that section (header
  // host_id,hostname,section,key,<fields...>); with several, a single `fields`
  // column holds the item's fields as a JSON object. JSON is one array of
  // {host_id, hostname, section, key, fields} objects; JSON lines one object per line.
  ExportWriter(std::ostream& out, ExportFormat format, std::optional<std::string> single_section);

  void Begin();
  void Row(const v1::InventoryRow& row);
  void End();
  size_t rows() const { return rows_; }

 private:
  std::ostream& out_;
  ExportFormat format_;
  std::optional<std::string> section_;
  std::vector<std::string> columns_;
  size_t rows_ = 0;
};

}  // namespace parc::ctl
