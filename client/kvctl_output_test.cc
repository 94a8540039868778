#include "client/kvctl_output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kv::client {
namespace {

using ::testing::ElementsAre;

TEST(ParseOutputFormatTest, KnownValues) {
  EXPECT_EQ(*ParseOutputFormat("--output", "text"), OutputFormat::kText);
  EXPECT_EQ(*ParseOutputFormat("--output", "json"), OutputFormat::kJson);
  EXPECT_EQ(*ParseOutputFormat("--output", "table"), OutputFormat::kTable);
  EXPECT_THAT(OutputFormatNames(), ElementsAre("text", "json", "table"));
}

TEST(ParseOutputFormatTest, BadValueNamesTheFlag) {
  for (const char* bad : {"", "yaml", "JSON", "table "}) {
    auto r = ParseOutputFormat("--output", bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(),
              std::string("--output: bad value \"") + bad + "\": want text, json or table");
  }
}

TEST(TableTest, AlignsColumnsUnderAHeader) {
  Table t({"KEY", "VALUE", "VERSION"});
  t.AddRow({"a", "hello world", "17:1"});
  t.AddRow({"longer-key", "v", "1234567:2"});
  EXPECT_EQ(t.rows(), 2u);
  EXPECT_EQ(t.Render(),
            "KEY         VALUE        VERSION\n"
            "a           hello world  17:1\n"
            "longer-key  v            1234567:2\n");
}

TEST(TableTest, RightAlignedNumbersAndNoTrailingSpaces) {
  Table t({"NAME", "KEYS", "NOTE"});
  t.AlignRight(1).AlignRight(7);  // 7: out of range, ignored.
  t.AddRow({"n1", "5", ""});
  t.AddRow({"node-two", "123456", "x"});
  EXPECT_EQ(t.Render(),
            "NAME        KEYS  NOTE\n"
            "n1             5\n"
            "node-two  123456  x\n");
}

TEST(TableTest, ShortRowRunsOnWithoutWideningItsColumn) {
  Table t({"ENDPOINT", "STATUS", "KEYS"});
  t.AddRow({"127.0.0.1:1", "UNAVAILABLE: connection refused"});
  t.AddRow({"127.0.0.1:7070", "SERVING", "3"});
  t.AddRow({"h:1", "SERVING", "4", "dropped"});
  EXPECT_EQ(t.Render(),
            "ENDPOINT        STATUS   KEYS\n"
            "127.0.0.1:1     UNAVAILABLE: connection refused\n"
            "127.0.0.1:7070  SERVING  3\n"
            "h:1             SERVING  4\n");
}

TEST(TableTest, WidthCountsCodePointsNotBytes) {
  Table t({"K", "V"});
  t.AddRow({"\xc3\xa9t\xc3\xa9", "1"});  // "été": 3 code points, 5 bytes.
  t.AddRow({"abcd", "2"});
  EXPECT_EQ(t.Render(),
            "K     V\n"
            "\xc3\xa9t\xc3\xa9   1\n"
            "abcd  2\n");
}

TEST(TableTest, HeaderOnlyWhenEmpty) {
  EXPECT_EQ(Table({"A", "B"}).Render(), "A  B\n");
}

}  // namespace
}  // namespace kv::client
