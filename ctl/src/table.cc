#include "parc/ctl/table.h"

#include <algorithm>

#include "parc/ctl/text.h"

namespace parc::ctl {
namespace {

constexpr size_t kGap = 2;
// A column is never shrunk below this, nor below its header: a few characters
// plus "…" still let people recognise the value.
constexpr size_t kMinColumn = 6;

void AppendPadded(std::string& line, const std::string& cell, size_t width) {
  line += cell;
  size_t w = DisplayWidth(cell);
  if (w < width) line.append(width - w, ' ');
}

void RightTrim(std::string& line) {
  while (!line.empty() && line.back() == ' ') line.pop_back();
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render(size_t max_width) const {
  const size_t columns = headers_.size();
  if (columns == 0) return "";
  std::vector<std::string> header(columns);
  std::vector<std::vector<std::string>> body(rows_.size(), std::vector<std::string>(columns));
  std::vector<size_t> width(columns, 0);
  for (size_t c = 0; c < columns; ++c) {
    header[c] = Printable(ToUpper(headers_[c]));
    width[c] = DisplayWidth(header[c]);
  }
  for (size_t r = 0; r < rows_.size(); ++r)
    for (size_t c = 0; c < columns; ++c) {
      body[r][c] = Printable(rows_[r][c]);
      width[c] = std::max(width[c], DisplayWidth(body[r][c]));
    }

  if (max_width > 0) {
    auto total = [&] {
      size_t sum = kGap * (columns - 1);
      for (size_t w : width) sum += w;
      return sum;
    };
    // Shrinking the widest column first spreads the cut over the long free-text
    // columns (summaries, groups) and spares short ones such as STATUS.
    for (size_t t = total(); t > max_width; --t) {
      size_t widest = columns;
      for (size_t c = 0; c < columns; ++c) {
        size_t floor = std::max(kMinColumn, DisplayWidth(header[c]));
        if (width[c] > floor && (widest == columns || width[c] > width[widest])) widest = c;
      }
      if (widest == columns) break;
      --width[widest];
    }
  }

  std::string out;
  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      if (c) line.append(kGap, ' ');
      AppendPadded(line, TruncateToWidth(cells[c], width[c]), width[c]);
    }
    RightTrim(line);
    out += line;
    out += '\n';
  };
  emit(header);
  for (const auto& row : body) emit(row);
  return out;
}

void FieldList::Add(std::string label, std::string value) {
  if (value.empty()) return;
  lines_.emplace_back(std::move(label), std::move(value));
}

std::string FieldList::Render() const {
  size_t width = 0;
  for (const auto& [label, value] : lines_) width = std::max(width, DisplayWidth(label) + 1);
  std::string out;
  for (const auto& [label, value] : lines_) {
    std::string line;
    AppendPadded(line, label + ":", width + 1);
    line += Printable(value);
    RightTrim(line);
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace parc::ctl
