// kvd's log line formats (--log-format): spdlog's default text lines, or one
// JSON object per line for log shippers:
//
//   {"time":"2026-11-30T05:40:00.123Z","level":"info","node":"a","message":"..."}
//
// time is UTC with milliseconds; level is spdlog's name (trace, debug, info,
// warning, error, critical); the message is JSON-escaped, and bytes that are
// not UTF-8 become U+FFFD, so every line parses as JSON.
//
// Thread safety: a formatter is used by one sink at a time (spdlog's rule);
// SetLogFormat is for main() before threads start.
#ifndef KV_SERVER_LOG_FORMAT_H_
#define KV_SERVER_LOG_FORMAT_H_

#include <spdlog/formatter.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kv::server {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  explicit JsonLogFormatter(std::string node_name) : node_name_(std::move(node_name)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  const std::string node_name_;
};

// Appends `text` to `out` as the inside of a JSON string (no quotes).
void AppendJsonEscaped(absl::string_view text, std::string* out);

// Makes spdlog's default logger write `format` ("text" or "json") lines;
// `node_name` goes into every JSON line.
// Errors: INVALID_ARGUMENT for any other format.
absl::Status SetLogFormat(absl::string_view format, const std::string& node_name);

}  // namespace kv::server

#endif  // KV_SERVER_LOG_FORMAT_H_
