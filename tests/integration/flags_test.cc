// kvd validates every flag at start: a bad value exits with a nonzero code
// and a message naming the flag, before anything is opened or served.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::Eq;
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
      // The kernel takes 100 us to 100 ms (0: its default).
      {{"--cpu-slice-us", "50"}, "--cpu-slice-us"},
      {{"--cpu-slice-us", "100001"}, "--cpu-slice-us"},
      {{"--storage-cpu-priority", "idle"}, "--storage-cpu-priority"},
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

// se.slice from a /proc/.../sched file: the thread's scheduler slice in ns
// (Linux 6.12 and later); -1 where the kernel does not show one.
int64_t SliceIn(const std::string& sched_file) {
  std::ifstream in(sched_file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("se.slice", 0) != 0) continue;
    const size_t colon = line.find(':');
    return colon == std::string::npos ? -1 : std::stoll(line.substr(colon + 1));
  }
  return -1;
}

// Every thread of kvd runs with --cpu-slice-us: set on its main thread
// before any other starts, so that all inherit it.
TEST(FlagsTest, EveryThreadRunsWithTheSchedulerSliceGiven) {
  const int64_t own = SliceIn("/proc/thread-self/sched");
  if (own < 0) GTEST_SKIP() << "this kernel shows no slice per thread (Linux < 6.12)";
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, int64_t>> cases = {
      {{}, 400'000},                           // The default.
      {{"--cpu-slice-us", "700"}, 700'000},
      {{"--cpu-slice-us", "0"}, own},          // The kernel's default, as here.
  };
  for (const auto& [args, want] : cases) {
    SCOPED_TRACE(args.empty() ? "default" : args[1]);
    KvdProcess kvd(dir.path() + "/data", args);
    ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
    int threads = 0;
    const std::string tasks = "/proc/" + std::to_string(kvd.pid()) + "/task";
    for (const auto& task : std::filesystem::directory_iterator(tasks)) {
      const int64_t slice = SliceIn(task.path().string() + "/sched");
      if (slice < 0 && !std::filesystem::exists(task.path())) continue;  // Ended meanwhile.
      ++threads;
      EXPECT_EQ(slice, want) << task.path();
    }
    EXPECT_GE(threads, 5);  // RocksDB's, gRPC's and kvd's own.
    ASSERT_TRUE(kvd.Terminate().ok());
  }
}

// The nice value of each thread of process `pid` whose name starts with
// `prefix` (threads that end meanwhile are left out).
std::vector<int> NicesOfThreadsNamed(int pid, const std::string& prefix) {
  std::vector<int> nices;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    if (!std::getline(comm_file, comm) || comm.rfind(prefix, 0) != 0) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat;
    if (!std::getline(stat_file, stat)) continue;
    // Fields after "(comm)": state is the 3rd field of the line, nice the
    // 19th, so the 17th after the ')'.
    std::istringstream rest(stat.substr(stat.rfind(')') + 1));
    std::string field;
    for (int i = 0; i < 17 && rest >> field; ++i) {
    }
    nices.push_back(std::stoi(field));
  }
  return nices;
}

// RocksDB's flush ("rocksdb:high") and compaction ("rocksdb:low") threads
// run at nice 19 with --storage-cpu-priority low (each lowers itself when it
// takes its first job: snapshots flush the memtables, and the fourth flush
// of a column starts a compaction), at 0 with normal. With auto, the
// default, kvd sets them to 19 while their backlog is small (none here),
// where it may raise them back (root with CAP_SYS_NICE, as here), else
// leaves them at 0 and says so.
TEST(FlagsTest, FlushAndCompactionRunAtTheStorageCpuPriorityGiven) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, int>> cases = {
      {{"--storage-cpu-priority", "low"}, 19},
      {{"--storage-cpu-priority", "normal"}, 0},
      {{}, -1},  // auto: 19, or 0 where kvd says it cannot.
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& args = cases[c].first;
    int want = cases[c].second;
    SCOPED_TRACE(args.empty() ? "default" : args[1]);
    const std::string data = dir.path() + "/data" + std::to_string(c);
    KvdProcess kvd(data, args);
    ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
    if (want < 0) {
      want = kvd.LogTail(100000).find("--storage-cpu-priority auto is not possible") ==
                     std::string::npos
                 ? 19
                 : 0;
    }
    for (int i = 0; i < 5; ++i) {
      const std::string key = "k" + std::to_string(i);
      ASSERT_EQ(RunCommand({KvctlPath(), "--endpoint", kvd.address(), "put", key, "v"})
                    .exit_code,
                0);
      const std::string snap = data + "-snap" + std::to_string(i);
      CommandResult r =
          RunCommand({KvctlPath(), "--endpoint", kvd.address(), "snapshot", "save", snap});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
    for (const std::string& pool : {"rocksdb:high", "rocksdb:low"}) {
      SCOPED_TRACE(pool);
      // The compaction may still be starting.
      std::vector<int> nices;
      WaitFor(
          [&] {
            nices = NicesOfThreadsNamed(kvd.pid(), pool);
            return std::find(nices.begin(), nices.end(), want) != nices.end();
          },
          absl::Seconds(10));
      ASSERT_FALSE(nices.empty()) << "no thread named " << pool;
      EXPECT_THAT(nices, Contains(want));
      // A thread that has taken no job yet is still at 0.
      EXPECT_THAT(nices, Each(AnyOf(Eq(want), Eq(0))));
    }
    ASSERT_TRUE(kvd.Terminate().ok());
  }
}

}  // namespace
}  // namespace kv::testing
