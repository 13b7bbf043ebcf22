// Aligned tables for people: headers in capitals, columns padded by display
// width, two spaces between columns, no trailing spaces.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace parc::ctl {

// Wide enough for a maximised terminal, narrow enough that a row stays on one line.
inline constexpr size_t kDefaultTableWidth = 160;

class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // Missing trailing cells are empty; extra cells are ignored.
  void AddRow(std::vector<std::string> cells);
  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }

  // Cells are made printable (see Printable). When the table would be wider
  // than max_width, the widest columns are shrunk and their long cells end in
  // "…"; max_width 0 means never truncate (--wide).
  std::string Render(size_t max_width = kDefaultTableWidth) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "label: value" lines with the values aligned; empty values are skipped.
class FieldList {
 public:
  void Add(std::string label, std::string value);
  std::string Render() const;

 private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

}  // namespace parc::ctl
