// CPU priority of RocksDB's flush and compaction threads that follows their
// backlog (kvd --storage-cpu-priority auto). A flush or compaction running
// at normal priority holds a core for milliseconds at a time (the
// scheduler's slice is only enforced at its tick, 4 ms on a 250 Hz
// kernel), and a request waking on that core waits: during a full sync the
// receiver's foreground p99 rose to 3-4 x idle. At nice 19 a waking
// request preempts them, but when requests keep the core busy the flush
// gets almost nothing, memtables wait, and RocksDB stops writes for
// seconds. So: nice 19 while the backlog is small, nice 0 as soon as it
// grows, before RocksDB slows or stops writes (README, Measurements).
// Raising a thread's nice value back to 0 needs CAP_SYS_NICE (or an
// RLIMIT_NICE of 20); without it kvd leaves them at normal priority.
//
// Thread safety: the free functions are pure or only read /proc;
// StoragePriorityMonitor is driven by its own thread.
#ifndef KV_SERVER_STORAGE_PRIORITY_H_
#define KV_SERVER_STORAGE_PRIORITY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/cpu_priority.h"  // CanLowerAndRaiseNice, SetThreadNice.
#include "storage/engine.h"

namespace kv::server {

// The nice value for the flush threads given the most memtables any one
// column has waiting for their flush (writes stop at 3): 19 with at most
// one, 0 from two.
int FlushNiceFor(int64_t max_immutable_memtables);
// The nice value for the compaction threads given the most level-0 table
// files of any one column (RocksDB slows writes from 20): 19 below 8, 0
// from 8.
int CompactionNiceFor(int64_t max_l0_files);

// The kernel ids of this process's threads whose name starts with `prefix`.
std::vector<int> ThreadsNamed(const std::string& prefix);

// Every `interval`, reads `backlog` and sets the nice value of RocksDB's
// flush ("rocksdb:high") and compaction ("rocksdb:low") threads as above.
// Stops (and leaves every thread it changed at nice 0) on destruction.
// REQUIRES: CanLowerAndRaiseNice().
class StoragePriorityMonitor {
 public:
  StoragePriorityMonitor(std::function<storage::EngineBacklog()> backlog,
                         absl::Duration interval);
  ~StoragePriorityMonitor();
  StoragePriorityMonitor(const StoragePriorityMonitor&) = delete;
  StoragePriorityMonitor& operator=(const StoragePriorityMonitor&) = delete;

 private:
  void Loop();
  // Sets `nice` on every thread named `prefix` whose last value set differs.
  void Apply(const std::string& prefix, int nice, bool rescan);

  const std::function<storage::EngineBacklog()> backlog_;
  const absl::Duration interval_;
  std::map<int, int> set_;  // tid -> nice last set; the loop thread's own.
  std::map<std::string, std::vector<int>> tids_;  // By prefix; rescanned.
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace kv::server

#endif  // KV_SERVER_STORAGE_PRIORITY_H_
