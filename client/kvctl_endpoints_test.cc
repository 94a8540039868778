#include "client/kvctl_endpoints.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kv::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseEndpointsTest, TrimsAndDropsEmpty) {
  EXPECT_THAT(ParseEndpoints(" a:1, b:2,,c:3 "), ElementsAre("a:1", "b:2", "c:3"));
  EXPECT_TRUE(ParseEndpoints("").empty());
}

TEST(ConnectFirstTest, EmptyListAndNoneAnswering) {
  ClientOptions o;
  EXPECT_EQ(ConnectFirst({}, o, absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Port 1 on loopback: refused at once.
  auto c = ConnectFirst({"127.0.0.1:1", "127.0.0.1:2"}, o, absl::Milliseconds(500));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(c.status().message(), HasSubstr("127.0.0.1:1: "));
  EXPECT_THAT(c.status().message(), HasSubstr("127.0.0.1:2: "));
}

TEST(FormatReportTest, TableAndJson) {
  EndpointReport up{.endpoint = "127.0.0.1:7071", .health = "SERVING", .node_name = "n1",
                    .node_id = 0xabc, .key_count = 42, .root_digest = "ff00"};
  EndpointReport down{.endpoint = "127.0.0.1:7072",
                      .status = absl::UnavailableError("connection refused")};
  const std::string table = FormatReportTable({up, down}, /*stats=*/true);
  EXPECT_EQ(table,
            "ENDPOINT        STATUS   NAME  NODE ID           KEYS  ROOT\n"
            "127.0.0.1:7071  SERVING  n1    0000000000000abc    42  ff00\n"
            "127.0.0.1:7072  UNAVAILABLE: connection refused\n");
  EXPECT_EQ(FormatReportTable({up}, /*stats=*/false),
            "ENDPOINT        STATUS\n"
            "127.0.0.1:7071  SERVING\n");
  const std::string json = FormatReportJson({up, down}, /*stats=*/true);
  EXPECT_THAT(json, HasSubstr("{\"endpoint\":\"127.0.0.1:7071\",\"ok\":true,\"health\":"
                              "\"SERVING\",\"node_name\":\"n1\",\"node_id\":"
                              "\"0000000000000abc\",\"key_count\":42,\"root_digest\":\"ff00\"}\n"));
  EXPECT_THAT(json, HasSubstr("\"ok\":false,\"health\":\"\",\"error\":\"UNAVAILABLE: "
                              "connection refused\"}"));
  EXPECT_FALSE(AllServing({up, down}));
  EXPECT_TRUE(AllServing({up}));
}

}  // namespace
}  // namespace kv::client
