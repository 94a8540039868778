#include "client/kvctl_output.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kv::client {
namespace {

// Code points in valid UTF-8 (continuation bytes do not count); for other
// input a close enough measure.
size_t DisplayWidth(absl::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

constexpr char kGap[] = "  ";

}  // namespace

const std::vector<std::string>& OutputFormatNames() {
  static const auto* const kNames = new std::vector<std::string>{"text", "json", "table"};
  return *kNames;
}

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view flag,
                                               absl::string_view value) {
  if (value == "text") return OutputFormat::kText;
  if (value == "json") return OutputFormat::kJson;
  if (value == "table") return OutputFormat::kTable;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": bad value \"", value, "\": want text, json or table"));
}

Table::Table(std::vector<std::string> header)
    : header_(std::move(header)), right_(header_.size(), false) {}

Table& Table::AlignRight(size_t column) {
  if (column < right_.size()) right_[column] = true;
  return *this;
}

void Table::AddRow(std::vector<std::string> cells) {
  if (cells.size() > header_.size()) cells.resize(header_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  const size_t columns = header_.size();
  std::vector<size_t> width(columns, 0);
  for (size_t i = 0; i < columns; ++i) width[i] = DisplayWidth(header_[i]);
  for (const std::vector<std::string>& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      // A short row's last cell runs on; it does not widen its column.
      if (i + 1 == row.size() && row.size() < columns) break;
      width[i] = std::max(width[i], DisplayWidth(row[i]));
    }
  }
  std::string out;
  auto render_row = [&](const std::vector<std::string>& row) {
    size_t content_end = out.size();  // Past the last text: no trailing pad.
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) out += kGap;
      const size_t w = DisplayWidth(row[i]);
      const std::string pad(width[i] > w ? width[i] - w : 0, ' ');
      if (i + 1 == row.size() && row.size() < columns) {
        out += row[i];  // Runs on past its column.
      } else if (right_[i]) {
        absl::StrAppend(&out, pad, row[i]);
      } else {
        out += row[i];
        if (!row[i].empty()) content_end = out.size();
        out += pad;
        continue;
      }
      if (!row[i].empty()) content_end = out.size();
    }
    out.resize(content_end);
    out += "\n";
  };
  render_row(header_);
  for (const std::vector<std::string>& row : rows_) render_row(row);
  return out;
}

}  // namespace kv::client
