// kvctl's output formats (--output text|json|table) and the one table
// formatter every `--output table` view goes through. No I/O. The functions
// are thread-safe; a Table is not (one per output).
#ifndef KV_CLIENT_KVCTL_OUTPUT_H_
#define KV_CLIENT_KVCTL_OUTPUT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kv::client {

enum class OutputFormat {
  kText,   // Per command, see client/kvctl.cc; raw bytes for get.
  kJson,   // One JSON object (per line for --all).
  kTable,  // A header row and aligned columns (Table).
};

// The values --output takes, in this order: "text", "json", "table".
const std::vector<std::string>& OutputFormatNames();

// Parses the value of the flag `flag` (e.g. "--output"). INVALID_ARGUMENT
// for anything else, naming the flag, the value and the choices:
//   --output: bad value "yaml": want text, json or table
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view flag,
                                               absl::string_view value);

// Columns of text with a header row, each column as wide as its widest cell
// (counted in UTF-8 code points), two spaces between columns, no trailing
// spaces. Cells are printed as given: escape bytes first (TextEscape).
//
// A row may have fewer cells than the header: its last cell then runs on
// past its column and does not widen it (an error message in place of the
// remaining columns). Cells beyond the header's count are dropped.
class Table {
 public:
  explicit Table(std::vector<std::string> header);

  // Right-aligns column `column` (numbers), header included. Out-of-range
  // columns are ignored.
  Table& AlignRight(size_t column);

  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // The header line, then one line per row, each ending in "\n".
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_;  // Per column: right-aligned.
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace kv::client

#endif  // KV_CLIENT_KVCTL_OUTPUT_H_
