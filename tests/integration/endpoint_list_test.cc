// kvctl --endpoints (first that answers, KVCTL_ENDPOINTS) and --all
// (health/stats of every node as a table or JSON lines) with real kvd.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

TEST(KvctlEndpointsTest, FirstThatAnswersAndAll) {
  TempDir dir;
  KvdProcess a(dir.path() + "/a", {"--name", "a"});
  KvdProcess b(dir.path() + "/b", {"--name", "b"});
  ASSERT_TRUE(a.Start().ok()) << a.LogTail();
  ASSERT_TRUE(b.Start().ok()) << b.LogTail();
  const std::string dead = absl::StrCat("127.0.0.1:", FreePort());

  // The dead one first: the next one answers.
  auto put = RunCommand({KvctlPath(), "--endpoints", absl::StrCat(dead, ",", a.address()),
                         "put", "k", "v"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  auto get = RunCommand({"/usr/bin/env", absl::StrCat("KVCTL_ENDPOINTS=", dead, ",", a.address()),
                         KvctlPath(), "get", "k"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "v");
  auto none = RunCommand({KvctlPath(), "--endpoints", dead, "get", "k"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("no endpoint answered"));

  const std::string all = absl::StrCat(a.address(), ",", b.address());
  auto stats = RunCommand({KvctlPath(), "--endpoints", all, "--all", "stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("ENDPOINT"));
  EXPECT_THAT(stats.out, ContainsRegex(absl::StrCat(a.address(), " +SERVING")));
  EXPECT_THAT(stats.out, HasSubstr(" a "));
  EXPECT_THAT(stats.out, HasSubstr(" b "));

  auto health = RunCommand({KvctlPath(), "--endpoints", absl::StrCat(all, ",", dead), "--all",
                            "--output", "json", "health"});
  EXPECT_EQ(health.exit_code, 2);  // One is down.
  EXPECT_THAT(health.out, HasSubstr(absl::StrCat("{\"endpoint\":\"", b.address(),
                                                 "\",\"ok\":true,\"health\":\"SERVING\"}")));
  EXPECT_THAT(health.out, HasSubstr(absl::StrCat("{\"endpoint\":\"", dead, "\",\"ok\":false")));
}

}  // namespace
}  // namespace kv::testing
