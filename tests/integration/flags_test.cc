// kvd validates every flag at start: a bad value exits with a nonzero code
// and a message naming the flag, before anything is opened or served.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::HasSubstr;

struct BadFlag {
  std::vector<std::string> args;
  std::string flag;  // Named in the message.
};

TEST(FlagsTest, EveryBadFlagIsRefusedNamingTheFlag) {
  TempDir dir;
  const std::vector<BadFlag> cases = {
      // Narrowed to int by gRPC: 2^32 would become a small limit.
      {{"--max-message-bytes", "4294967296"}, "--max-message-bytes"},
      {{"--max-message-bytes", "-1"}, "--max-message-bytes"},
      // Negative used to turn the check off.
      {{"--max-clock-drift-ms", "-5"}, "--max-clock-drift-ms"},
      // spdlog used to map an unknown level to "off": kvd went silent.
      {{"--log-level", "warning"}, "--log-level"},
      {{"--listen", "localhost"}, "--listen"},
      {{"--listen", "127.0.0.1:70000"}, "--listen"},
      {{"--advertise", "host:port"}, "--advertise"},
      {{"--seeds", "127.0.0.1:1,nocolon"}, "--seeds"},
      {{"--verify-interval", "-1"}, "--verify-interval"},
      {{"--ae-bandwidth", "-1"}, "--ae-bandwidth"},
      {{"--ae-interval-ms", "0"}, "--ae-interval-ms"},
      {{"--ae-deadline", "0"}, "--ae-deadline"},
      {{"--ae-idle-timeout-ms", "0"}, "--ae-idle-timeout-ms"},
      {{"--gossip-interval-ms", "0"}, "--gossip-interval-ms"},
      {{"--fanout-ack-timeout-ms", "0"}, "--fanout-ack-timeout-ms"},
      {{"--max-key-bytes", "0"}, "--max-key-bytes"},
      {{"--max-batch", "0"}, "--max-batch"},
      {{"--leaf-depth", "25"}, "--leaf-depth"},
      {{"--data-dir", ""}, "--data-dir"},
      {{"--name", ""}, "--name"},
      {{"--max-value-bytes", "abc"}, "--max-value-bytes"},
  };
  for (const BadFlag& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1]);
    // `timeout`: a kvd that accepted the flag would serve until killed.
    std::vector<std::string> argv = {"/usr/bin/timeout", "10", KvdPath()};
    // Defaults only for flags the case does not set (CLI11 refuses a flag
    // given twice, which would pass for the wrong reason).
    if (c.args[0] != "--listen") argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    if (c.args[0] != "--data-dir") {
      argv.insert(argv.end(), {"--data-dir", dir.path() + "/data"});
    }
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    CommandResult r = RunCommand(argv);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.exit_code, 124) << "kvd started with the bad flag";
    EXPECT_THAT(r.out + r.err, HasSubstr(c.flag));
  }
}

TEST(FlagsTest, GoodEdgeValuesStart) {
  TempDir dir;
  KvdProcess kvd(dir.path() + "/data",
                 {"--max-message-bytes", "2147483647", "--max-clock-drift-ms", "0",
                  "--log-level", "warn", "--verify-interval", "0", "--ae-bandwidth", "0",
                  "--seeds", ""});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
}

}  // namespace
}  // namespace kv::testing
