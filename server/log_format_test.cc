#include "server/log_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <string>

namespace kv::server {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::string Escaped(absl::string_view s) {
  std::string out;
  AppendJsonEscaped(s, &out);
  return out;
}

TEST(LogFormatTest, EscapesQuotesControlCharactersAndBadUtf8) {
  EXPECT_EQ(Escaped("plain"), "plain");
  EXPECT_EQ(Escaped("a \"q\" \\ b"), "a \\\"q\\\" \\\\ b");
  EXPECT_EQ(Escaped("l1\nl2\tx\r"), "l1\\nl2\\tx\\r");
  EXPECT_EQ(Escaped(std::string("\x01\x7f", 2)), "\\u0001\\u007f");
  EXPECT_EQ(Escaped("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // Valid UTF-8 kept.
  EXPECT_EQ(Escaped("a\xff" "b"), "a\\ufffdb");
  EXPECT_EQ(Escaped("\xc3"), "\\ufffd");              // Truncated sequence.
  EXPECT_EQ(Escaped("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // A surrogate.
}

TEST(LogFormatTest, JsonLineHasTimeLevelNodeAndMessage) {
  JsonLogFormatter f("node \"a\"");
  spdlog::details::log_msg msg("kvd", spdlog::level::warn, "key \"k\"\nrefused");
  spdlog::memory_buf_t buf;
  f.format(msg, buf);
  const std::string line(buf.data(), buf.size());
  EXPECT_THAT(line,
              MatchesRegex(R"(\{"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z",)"
                           R"("level":"warning","node":"node \\"a\\"",)"
                           R"("message":"key \\"k\\"\\nrefused"\}
)"));
  auto clone = f.clone();
  spdlog::memory_buf_t buf2;
  clone->format(msg, buf2);
  EXPECT_THAT(std::string(buf2.data(), buf2.size()), HasSubstr(R"("node":"node \"a\"")"));
}

TEST(LogFormatTest, UnknownFormatIsAnErrorNamingTheFlag) {
  absl::Status s = SetLogFormat("jsno", "a");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--log-format: 'jsno' is not text or json"));
  EXPECT_TRUE(SetLogFormat("text", "a").ok());
}

}  // namespace
}  // namespace kv::server
