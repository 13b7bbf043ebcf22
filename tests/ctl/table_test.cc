#include <catch2/catch.hpp>

#include <sstream>

#include "parc/ctl/table.h"
#include "parc/ctl/text.h"

using namespace parc::ctl;

namespace {
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}
}  // namespace

TEST_CASE("Table pads by display width, capitalises headers, no trailing spaces", "[ctl]") {
  Table t({"host id", "hostname", "status"});
  t.AddRow({"abcdef01", "élève-01", "online"});
  t.AddRow({"12345678", "pc", ""});
  std::string out = t.Render();
  CHECK(out ==
        "HOST ID   HOSTNAME  STATUS\n"
        "abcdef01  élève-01  online\n"
        "12345678  pc\n");
  for (const auto& line : Lines(out)) CHECK_FALSE(line.ends_with(" "));
}

TEST_CASE("Table columns line up when cells hold multi-byte characters", "[ctl]") {
  Table t({"a", "b"});
  t.AddRow({"ééé", "x"});
  t.AddRow({"abc", "y"});
  auto lines = Lines(t.Render());
  REQUIRE(lines.size() == 3);
  // The second column starts at the same display column on every line.
  CHECK(DisplayWidth(lines[1].substr(0, lines[1].find('x'))) == DisplayWidth(lines[2].substr(0, lines[2].find('y'))));
}

TEST_CASE("Table truncates the widest column to fit, unless unlimited", "[ctl]") {
  Table t({"id", "summary"});
  std::string long_text(300, 'x');
  t.AddRow({"1", long_text});
  auto narrow = Lines(t.Render(40));
  for (const auto& line : narrow) CHECK(DisplayWidth(line) <= 40);
  CHECK(narrow[1].ends_with("…"));
  auto wide = Lines(t.Render(0));
  CHECK(wide[1] == "1   " + long_text);
}

TEST_CASE("Table never shrinks a column below its header", "[ctl]") {
  Table t({"identity", "hosts"});
  t.AddRow({std::string(50, 'i'), std::string(50, 'h')});
  auto lines = Lines(t.Render(10));
  CHECK(lines[0] == "IDENTITY  HOSTS");
}

TEST_CASE("Table cells are made printable", "[ctl]") {
  Table t({"hostname"});
  t.AddRow({"evil\x1b[2J"});
  CHECK(t.Render() == "HOSTNAME\nevil\\x1b[2J\n");
}

TEST_CASE("Table fills missing cells", "[ctl]") {
  Table t({"a", "b", "c"});
  t.AddRow({"1"});
  CHECK(t.Render() == "A  B  C\n1\n");
}

TEST_CASE("FieldList aligns values and skips empty ones", "[ctl]") {
  FieldList f;
  f.Add("Host ID", "0123");
  f.Add("Peer", "");
  f.Add("Certificate expires", "never");
  CHECK(f.Render() ==
        "Host ID:             0123\n"
        "Certificate expires: never\n");
}
