// Request size limits and the checks that enforce them.
//
// Thread safety: plain values and pure functions.
#ifndef KV_SERVER_LIMITS_H_
#define KV_SERVER_LIMITS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kv::server {

struct Limits {
  size_t max_key_bytes = 4096;
  size_t max_value_bytes = 1 << 20;
  size_t max_batch = 1000;  // Mutations or keys per batch call.
  // gRPC's own limit on one message: sized so one maximal put fits, plus room
  // for framing. 0 = derive it from the key and value limits.
  size_t max_message_bytes = 0;

  size_t EffectiveMaxMessageBytes() const {
    return max_message_bytes != 0 ? max_message_bytes
                                  : max_key_bytes + max_value_bytes + (64 << 10);
  }
};

// INVALID_ARGUMENT naming the limit (and the flag that sets it) when the key
// is empty or too long. `what` prefixes the message (e.g. "mutation 3: ").
absl::Status CheckKey(const Limits& limits, absl::string_view key,
                      absl::string_view what = "");
absl::Status CheckValue(const Limits& limits, absl::string_view value,
                        absl::string_view what = "");

}  // namespace kv::server

#endif  // KV_SERVER_LIMITS_H_
