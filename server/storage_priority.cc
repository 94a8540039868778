#include "server/storage_priority.h"

#include <filesystem>
#include <fstream>
#include <vector>

namespace kv::server {

int FlushNiceFor(int64_t max_immutable_memtables) {
  return max_immutable_memtables <= 1 ? 19 : 0;
}

int CompactionNiceFor(int64_t max_l0_files) { return max_l0_files < 8 ? 19 : 0; }

std::vector<int> ThreadsNamed(const std::string& prefix) {
  std::vector<int> tids;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    if (!std::getline(comm_file, comm) || comm.rfind(prefix, 0) != 0) continue;
    tids.push_back(std::stoi(task.path().filename().string()));
  }
  return tids;
}

StoragePriorityMonitor::StoragePriorityMonitor(std::function<storage::EngineBacklog()> backlog,
                                               absl::Duration interval)
    : backlog_(std::move(backlog)), interval_(interval) {
  thread_ = std::thread([this] { Loop(); });
}

StoragePriorityMonitor::~StoragePriorityMonitor() {
  stop_.Notify();
  thread_.join();
}

void StoragePriorityMonitor::Apply(const std::string& prefix, int nice, bool rescan) {
  std::vector<int>& tids = tids_[prefix];
  if (rescan) tids = ThreadsNamed(prefix);
  for (int tid : tids) {
    auto it = set_.find(tid);
    if (it != set_.end() && it->second == nice) continue;
    // Still the same thread (a kernel id is reused once a thread ends)?
    std::ifstream comm_file("/proc/self/task/" + std::to_string(tid) + "/comm");
    std::string comm;
    if (!std::getline(comm_file, comm) || comm.rfind(prefix, 0) != 0) continue;
    if (SetThreadNice(tid, nice)) set_[tid] = nice;
  }
}

void StoragePriorityMonitor::Loop() {
  // RocksDB starts its pool threads lazily (more with more jobs), so the
  // names are looked up again every second.
  const int64_t rescan_every = std::max<int64_t>(1, absl::Seconds(1) / interval_);
  for (int64_t tick = 0; !stop_.WaitForNotificationWithTimeout(interval_); ++tick) {
    const storage::EngineBacklog s = backlog_();
    const bool rescan = tick % rescan_every == 0;
    Apply("rocksdb:high", FlushNiceFor(s.max_immutable_memtables), rescan);
    Apply("rocksdb:low", CompactionNiceFor(s.max_l0_files), rescan);
  }
  for (const auto& [tid, nice] : set_) {
    if (nice != 0) SetThreadNice(tid, 0);
  }
}

}  // namespace kv::server
