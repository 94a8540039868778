#include "server/storage_priority.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace kv::server {
namespace {

TEST(StoragePriorityTest, NiceFollowsTheBacklog) {
  EXPECT_EQ(FlushNiceFor(0), 19);
  EXPECT_EQ(FlushNiceFor(1), 19);
  EXPECT_EQ(FlushNiceFor(2), 0);  // One more and RocksDB stops writes.
  EXPECT_EQ(FlushNiceFor(5), 0);
  EXPECT_EQ(CompactionNiceFor(0), 19);
  EXPECT_EQ(CompactionNiceFor(7), 19);
  EXPECT_EQ(CompactionNiceFor(8), 0);
  EXPECT_EQ(CompactionNiceFor(30), 0);
}

// A thread named `name` that idles until `done`; its kernel id in *tid.
std::thread NamedThread(const char* name, std::atomic<int>* tid,
                        absl::Notification* done) {
  return std::thread([=] {
    pthread_setname_np(pthread_self(), name);
    tid->store(static_cast<int>(gettid()));
    done->WaitForNotification();
  });
}

bool NiceBecomes(int tid, int want) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && nice == want) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

TEST(StoragePriorityTest, MonitorSetsFlushAndCompactionThreadsByTheirBacklog) {
  if (!CanLowerAndRaiseNice()) {
    GTEST_SKIP() << "this process may not raise a nice value back (no CAP_SYS_NICE)";
  }
  std::atomic<int> flush_tid{0}, compaction_tid{0}, other_tid{0};
  absl::Notification done;
  std::thread flush = NamedThread("rocksdb:high0", &flush_tid, &done);
  std::thread compaction = NamedThread("rocksdb:low0", &compaction_tid, &done);
  std::thread other = NamedThread("grpc_worker", &other_tid, &done);
  while (flush_tid == 0 || compaction_tid == 0 || other_tid == 0) std::this_thread::yield();

  std::atomic<int64_t> immutable{0}, l0{0};
  {
    StoragePriorityMonitor monitor(
        [&] {
          storage::EngineBacklog s;
          s.max_immutable_memtables = immutable.load();
          s.max_l0_files = l0.load();
          return s;
        },
        absl::Milliseconds(5));
    EXPECT_TRUE(NiceBecomes(flush_tid, 19));
    EXPECT_TRUE(NiceBecomes(compaction_tid, 19));
    immutable = 2;  // A second memtable waits: the flush at normal priority.
    EXPECT_TRUE(NiceBecomes(flush_tid, 0));
    EXPECT_TRUE(NiceBecomes(compaction_tid, 19));
    l0 = 12;
    EXPECT_TRUE(NiceBecomes(compaction_tid, 0));
    immutable = 1;
    l0 = 3;
    EXPECT_TRUE(NiceBecomes(flush_tid, 19));
    EXPECT_TRUE(NiceBecomes(compaction_tid, 19));
    EXPECT_EQ(getpriority(PRIO_PROCESS, other_tid), 0);  // Not RocksDB's.
  }
  // Stopped: every thread it lowered is back at 0.
  EXPECT_EQ(getpriority(PRIO_PROCESS, flush_tid), 0);
  EXPECT_EQ(getpriority(PRIO_PROCESS, compaction_tid), 0);
  done.Notify();
  flush.join();
  compaction.join();
  other.join();
}

}  // namespace
}  // namespace kv::server
