// Pure helpers of kvctl: parsing of flag values and the encoding of bytes in
// text and JSON output. No I/O. All functions are thread-safe.
#ifndef KV_CLIENT_KVCTL_UTIL_H_
#define KV_CLIENT_KVCTL_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace kv::client {

// Parses "HLC:NODE", both unsigned 64-bit decimal numbers, HLC > 0 (the form
// FormatVersion prints). INVALID_ARGUMENT otherwise, naming the input.
absl::StatusOr<Version> ParseVersion(absl::string_view text);

// "HLC:NODE" in decimal.
std::string FormatVersion(const Version& v);

// Parses a timeout: a plain number is seconds ("2.5"); otherwise an
// absl::ParseDuration string ("500ms", "1m30s", "inf"). INVALID_ARGUMENT when
// it is neither or not > 0.
absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text);

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, no
// code points above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// `s` as a quoted JSON string literal. REQUIRES: IsValidUtf8(s). Escapes ",
// \ and control characters (U+0000..U+001F, U+007F) and keeps other code
// points as UTF-8.
std::string JsonQuote(absl::string_view s);

// Appends `"name":<value>,"name_encoding":"<enc>"` for arbitrary bytes: when
// `bytes` is valid UTF-8 the value is the JSON string itself and enc is
// "utf8"; otherwise the value is standard base64 (RFC 4648, with padding) and
// enc is "base64".
void AppendJsonBytes(std::string* out, absl::string_view name,
                     absl::string_view bytes);

// `bytes` made safe for one line of text output: valid UTF-8 is kept except
// that \ becomes \\, tab, newline and carriage return become \t \n \r and
// other control characters \xNN; input that is not valid UTF-8 is hex-escaped
// byte by byte (absl::CHexEscape).
std::string TextEscape(absl::string_view bytes);

}  // namespace kv::client

#endif  // KV_CLIENT_KVCTL_UTIL_H_
