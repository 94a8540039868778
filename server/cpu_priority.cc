#include "server/cpu_priority.h"

#include <sched.h>
#include <unistd.h>

#include <thread>

namespace kv::server {

const char* CpuPriorityName(CpuPriority priority) {
  return priority == CpuPriority::kIdle ? "idle" : "normal";
}

namespace {

// The kernel's calls with pid 0 act on the calling thread (Linux), and
// unlike pthread_getschedparam they see changes made by other threads
// (PromoteToNormal).

// Moves the calling thread to SCHED_IDLE; false (and unchanged) on failure.
bool EnterIdle(int* old_policy, int* old_priority) {
  sched_param param{};
  *old_policy = sched_getscheduler(0);
  if (*old_policy < 0 || sched_getparam(0, &param) != 0) return false;
  *old_priority = param.sched_priority;
  if (*old_policy == SCHED_IDLE) return false;  // Nothing to do or undo.
  sched_param idle{};
  return sched_setscheduler(0, SCHED_IDLE, &idle) == 0;
}

bool Restore(int policy, int priority) {
  sched_param param{};
  param.sched_priority = priority;
  return sched_setscheduler(0, policy, &param) == 0;
}

bool ProbeIdleAndBack() {
  bool ok = false;
  std::thread([&ok] {
    int policy = 0, priority = 0;
    if (!EnterIdle(&policy, &priority)) return;
    ok = Restore(policy, priority);
  }).join();
  return ok;
}

}  // namespace

bool CanSwitchToIdleAndBack() {
  static const bool can = ProbeIdleAndBack();
  return can;
}

ScopedCpuPriority::ScopedCpuPriority(CpuPriority priority) {
  if (priority != CpuPriority::kIdle || !CanSwitchToIdleAndBack()) return;
  if (EnterIdle(&old_policy_, &old_priority_)) tid_ = static_cast<int>(gettid());
}

ScopedCpuPriority::~ScopedCpuPriority() {
  // Proven possible by CanSwitchToIdleAndBack; should it fail anyway the
  // thread stays idle, which slows it but breaks nothing.
  if (active()) Restore(old_policy_, old_priority_);
}

bool PromoteToNormal(int tid) {
  if (tid <= 0) return false;
  sched_param param{};
  return sched_setscheduler(tid, SCHED_OTHER, &param) == 0;
}

bool CurrentThreadIsIdlePriority() { return sched_getscheduler(0) == SCHED_IDLE; }

}  // namespace kv::server
