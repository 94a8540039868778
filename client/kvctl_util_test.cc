#include "client/kvctl_util.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kv::client {
namespace {

using ::testing::HasSubstr;

TEST(ParseVersionTest, RoundTrips) {
  const Version v{0x0123456789ABCDEFull, 18446744073709551615ull};
  const std::string s = FormatVersion(v);
  EXPECT_EQ(s, "81985529216486895:18446744073709551615");
  absl::StatusOr<Version> parsed = ParseVersion(s);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, v);
  EXPECT_EQ(*ParseVersion("1:0"), (Version{1, 0}));
}

TEST(ParseVersionTest, RejectsMalformed) {
  for (const char* bad :
       {"", ":", "1", "1:", ":2", "0:5", "a:1", "1:b", "1:2:3", " 1:2", "1:2 ",
        "+1:2", "-1:2", "1:18446744073709551616", "0x10:1"}) {
    absl::StatusOr<Version> v = ParseVersion(bad);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(ParseVersion("x").status().message()),
              HasSubstr("HLC:NODE"));
}

TEST(ParseTimeoutTest, SecondsAndDurations) {
  EXPECT_EQ(*ParseTimeout("2"), absl::Seconds(2));
  EXPECT_EQ(*ParseTimeout("2.5"), absl::Milliseconds(2500));
  EXPECT_EQ(*ParseTimeout("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseTimeout("1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseTimeout("inf"), absl::InfiniteDuration());
  for (const char* bad : {"", "0", "0s", "-1", "-1s", "abc", "1x", "."}) {
    EXPECT_EQ(ParseTimeout(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(Utf8Test, AcceptsWellFormed) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("hello"));
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9"));          // é
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // 😀
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

TEST(Utf8Test, RejectsMalformed) {
  EXPECT_FALSE(IsValidUtf8("\x80"));              // Lone continuation.
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xC3\x28"));          // Bad continuation.
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // Overlong '/'.
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // Surrogate U+D800.
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000.
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("ok\xFE"));
}

TEST(JsonTest, QuoteEscapes) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(JsonQuote(std::string("\0\x01\x1f\x7f", 4)),
            "\"\\u0000\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(JsonQuote("/\xC3\xA9"), "\"/\xC3\xA9\"");  // UTF-8 kept as is.
}

TEST(JsonTest, BytesAsUtf8OrBase64) {
  std::string out;
  AppendJsonBytes(&out, "value", "hi \"x\"");
  EXPECT_EQ(out, R"("value":"hi \"x\"","value_encoding":"utf8")");
  out.clear();
  AppendJsonBytes(&out, "value", std::string("\xFF\x00\x01", 3));
  EXPECT_EQ(out, R"("value":"/wAB","value_encoding":"base64")");
  out.clear();
  AppendJsonBytes(&out, "key", "");
  EXPECT_EQ(out, R"("key":"","key_encoding":"utf8")");
}

TEST(TextEscapeTest, KeepsUtf8EscapesControls) {
  EXPECT_EQ(TextEscape("plain \xC3\xA9"), "plain \xC3\xA9");
  EXPECT_EQ(TextEscape("a\tb\nc\\d\re"), "a\\tb\\nc\\\\d\\re");
  EXPECT_EQ(TextEscape(std::string("\0\x1b", 2)), "\\x00\\x1b");
  EXPECT_EQ(TextEscape("\xFF"
                       "z"),
            "\\xffz");
}

}  // namespace
}  // namespace kv::client
