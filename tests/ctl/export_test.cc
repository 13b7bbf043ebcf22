#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>

#include "parc/ctl/export.h"

using namespace parc::ctl;
namespace v1 = parc::v1;

namespace {
v1::InventoryRow Row(const std::string& host, const std::string& name, const std::string& version,
                     const std::string& summary) {
  v1::InventoryRow row;
  row.set_host_id(host);
  row.set_hostname("pc-" + host);
  auto* item = row.mutable_item();
  item->set_section("software");
  item->set_key(name + "|amd64");
  (*item->mutable_fields())["name"] = name;
  (*item->mutable_fields())["architecture"] = "amd64";
  (*item->mutable_fields())["version"] = version;
  if (!summary.empty()) (*item->mutable_fields())["summary"] = summary;
  return row;
}

std::string Export(ExportFormat format, std::optional<std::string> section, const std::vector<v1::InventoryRow>& rows) {
  std::ostringstream out;
  ExportWriter w(out, format, std::move(section));
  w.Begin();
  for (const auto& r : rows) w.Row(r);
  w.End();
  return out.str();
}
}  // namespace

TEST_CASE("CSV export of one section: one column per field, RFC 4180 quoting", "[ctl]") {
  std::string csv = Export(ExportFormat::kCsv, "software", {Row("h1", "bash", "5.2", "GNU \"Bourne Again\" shell, v5")});
  CHECK(csv ==
        "host_id,hostname,section,key,name,architecture,version,source,summary,installed_size_bytes,vendor\r\n"
        "h1,pc-h1,software,bash|amd64,bash,amd64,5.2,,\"GNU \"\"Bourne Again\"\" shell, v5\",,\r\n");
}

TEST_CASE("CSV export of every section: fields as a JSON column", "[ctl]") {
  std::string csv = Export(ExportFormat::kCsv, std::nullopt, {Row("h1", "vim", "9.0", "")});
  CHECK(csv ==
        "host_id,hostname,section,key,fields\r\n"
        "h1,pc-h1,software,vim|amd64,\"{\"\"architecture\"\":\"\"amd64\"\",\"\"name\"\":\"\"vim\"\",\"\"version\"\":"
        "\"\"9.0\"\"}\"\r\n");
}

TEST_CASE("JSON export is one array of row objects", "[ctl]") {
  std::string text = Export(ExportFormat::kJson, "software", {Row("h1", "bash", "5.2", ""), Row("h2", "vim", "9.0", "")});
  auto j = nlohmann::json::parse(text);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 2);
  CHECK(j[0]["host_id"] == "h1");
  CHECK(j[0]["hostname"] == "pc-h1");
  CHECK(j[0]["section"] == "software");
  CHECK(j[0]["key"] == "bash|amd64");
  CHECK(j[1]["fields"]["version"] == "9.0");
  CHECK(nlohmann::json::parse(Export(ExportFormat::kJson, std::nullopt, {})) == nlohmann::json::array());
}

TEST_CASE("JSON lines export: one object per line", "[ctl]") {
  std::string text = Export(ExportFormat::kJsonl, std::nullopt, {Row("h1", "bash", "5.2", ""), Row("h2", "vim", "9.0", "")});
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    CHECK(nlohmann::json::parse(line).is_object());
    ++n;
  }
  CHECK(n == 2);
}

TEST_CASE("Export format names", "[ctl]") {
  CHECK(ParseExportFormat("csv").value() == ExportFormat::kCsv);
  CHECK(ParseExportFormat("json").value() == ExportFormat::kJson);
  CHECK(ParseExportFormat("jsonl").value() == ExportFormat::kJsonl);
  CHECK_FALSE(ParseExportFormat("xml").has_value());
}
