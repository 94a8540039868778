#include "client/kvctl_util.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace kv::client {

absl::StatusOr<Version> ParseVersion(absl::string_view text) {
  const size_t colon = text.find(':');
  Version v;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(text.substr(0, colon), &v.hlc) ||
      !absl::SimpleAtoi(text.substr(colon + 1), &v.node_id) || v.hlc == 0 ||
      // SimpleAtoi accepts surrounding spaces and a '+'; we do not.
      text.find_first_not_of("0123456789:") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad version \"", absl::CHexEscape(text),
                     "\": want HLC:NODE, two decimal numbers, HLC > 0 "
                     "(as printed by put and get)"));
  }
  return v;
}

std::string FormatVersion(const Version& v) {
  return absl::StrCat(v.hlc, ":", v.node_id);
}

absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text) {
  absl::Duration d;
  double seconds;
  if (absl::SimpleAtod(text, &seconds) &&
      text.find_first_not_of("0123456789.") == absl::string_view::npos) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad timeout \"", absl::CHexEscape(text),
                     "\": want seconds (2.5) or a duration (500ms, 1m, inf)"));
  }
  if (d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("timeout must be > 0, got \"", text, "\""));
  }
  return d;
}

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // Continuation byte or 0xF8..0xFF as a lead byte.
    }
    if (end - p < len) return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len]) return false;                // Overlong.
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // Surrogate.
    if (cp > 0x10FFFF) return false;                 // Out of range.
    p += len;
  }
  return true;
}

namespace {

// Appends byte `c` escaped for JSON strings (json) or for kvctl's text
// output: backslash forms for \\ \n \r \t (and, in JSON, \" \b \f),
// other control bytes as \u00XX (JSON) or \xXX (text).
void AppendEscaped(unsigned char c, bool json, std::string* out) {
  switch (c) {
    case '\\':
      *out += "\\\\";
      return;
    case '\n':
      *out += "\\n";
      return;
    case '\r':
      *out += "\\r";
      return;
    case '\t':
      *out += "\\t";
      return;
    default:
      break;
  }
  if (json) {
    if (c == '"') {
      *out += "\\\"";
      return;
    }
    if (c == '\b') {
      *out += "\\b";
      return;
    }
    if (c == '\f') {
      *out += "\\f";
      return;
    }
  }
  if (c < 0x20 || c == 0x7F) {
    if (json) {
      absl::StrAppendFormat(out, "\\u%04x", c);
    } else {
      absl::StrAppendFormat(out, "\\x%02x", c);
    }
  } else {
    out->push_back(static_cast<char>(c));
  }
}

}  // namespace

std::string JsonQuote(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char ch : s) AppendEscaped(static_cast<unsigned char>(ch), true, &out);
  out.push_back('"');
  return out;
}

void AppendJsonBytes(std::string* out, absl::string_view name,
                     absl::string_view bytes) {
  const bool utf8 = IsValidUtf8(bytes);
  absl::StrAppend(
      out, JsonQuote(name), ":",
      JsonQuote(utf8 ? std::string(bytes) : absl::Base64Escape(bytes)), ",",
      JsonQuote(absl::StrCat(name, "_encoding")), ":",
      utf8 ? "\"utf8\"" : "\"base64\"");
}

std::string TextEscape(absl::string_view bytes) {
  if (!IsValidUtf8(bytes)) return absl::CHexEscape(bytes);
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) AppendEscaped(static_cast<unsigned char>(ch), false, &out);
  return out;
}

}  // namespace kv::client
