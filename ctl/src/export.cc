#include "parc/ctl/export.h"

#include <nlohmann/json.hpp>

#include "parc/common/inventory_model.h"
#include "parc/ctl/csv.h"

namespace parc::ctl {
namespace {

nlohmann::json FieldsObject(const v1::InventoryItem& item) {
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& [k, v] : item.fields()) fields[k] = v;
  return fields;
}

// dump() throws on invalid UTF-8 by default; protobuf already checked the
// strings, but an export must never die half-way, so replace rather than throw.
std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

Expected<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "json") return ExportFormat::kJson;
  if (name == "jsonl") return ExportFormat::kJsonl;
  return Fail(Errc::kInvalidArgument, "unknown export format '" + std::string(name) + "' (use csv, json or jsonl)");
}

ExportWriter::ExportWriter(std::ostream& out, ExportFormat format, std::optional<std::string> single_section)
    : out_(out), format_(format), section_(std::move(single_section)) {
  if (section_) columns_ = inventory::FieldNames(*section_);
}

void ExportWriter::Begin() {
  if (format_ == ExportFormat::kCsv) {
    std::vector<std::string> header = {"host_id", "hostname", "section", "key"};
    if (section_) header.insert(header.end(), columns_.begin(), columns_.end());
    else header.push_back("fields");
    out_ << CsvRecord(header);
  } else if (format_ == ExportFormat::kJson) {
    out_ << "[";
  }
}

void ExportWriter::Row(const v1::InventoryRow& row) {
  const auto& item = row.item();
  if (format_ == ExportFormat::kCsv) {
    std::vector<std::string> record = {row.host_id(), row.hostname(), item.section(), item.key()};
    if (section_) {
      for (const auto& column : columns_) {
        auto it = item.fields().find(column);
        record.push_back(it == item.fields().end() ? "" : it->second);
      }
    } else {
      record.push_back(Dump(FieldsObject(item)));
    }
    out_ << CsvRecord(record);
  } else {
    nlohmann::json j = {{"host_id", row.host_id()},
                        {"hostname", row.hostname()},
                        {"section", item.section()},
                        {"key", item.key()},
                        {"fields", FieldsObject(item)}};
    if (format_ == ExportFormat::kJson) out_ << (rows_ ? ",\n" : "\n");
    out_ << Dump(j);
    if (format_ == ExportFormat::kJsonl) out_ << "\n";
  }
  ++rows_;
}

void ExportWriter::End() {
  if (format_ == ExportFormat::kJson) out_ << (rows_ ? "\n]\n" : "]\n");
  out_.flush();
}

}  // namespace parc::ctl
