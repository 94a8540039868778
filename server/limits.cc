#include "server/limits.h"

#include "absl/strings/str_cat.h"

namespace kv::server {

absl::Status CheckKey(const Limits& limits, absl::string_view key,
                      absl::string_view what) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(what, "key is empty"));
  if (key.size() > limits.max_key_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "key is ", key.size(), " bytes, over the limit of ",
        limits.max_key_bytes, " bytes (--max-key-bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckValue(const Limits& limits, absl::string_view value,
                        absl::string_view what) {
  if (value.size() > limits.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "value is ", value.size(), " bytes, over the limit of ",
        limits.max_value_bytes, " bytes (--max-value-bytes)"));
  }
  return absl::OkStatus();
}

}  // namespace kv::server
