#include "server/cpu_priority.h"

#include <pthread.h>
#include <sched.h>

#include <thread>

namespace kv::server {

const char* CpuPriorityName(CpuPriority priority) {
  return priority == CpuPriority::kIdle ? "idle" : "normal";
}

namespace {

// Moves the calling thread to SCHED_IDLE; false (and unchanged) on failure.
bool EnterIdle(int* old_policy, int* old_priority) {
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), old_policy, &param) != 0) return false;
  *old_priority = param.sched_priority;
  if (*old_policy == SCHED_IDLE) return false;  // Nothing to do or undo.
  sched_param idle{};
  return pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) == 0;
}

bool Restore(int policy, int priority) {
  sched_param param{};
  param.sched_priority = priority;
  return pthread_setschedparam(pthread_self(), policy, &param) == 0;
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

bool MakeCurrentThreadIdle() {
  int policy = 0, priority = 0;
  return EnterIdle(&policy, &priority);
}

bool CanSwitchToIdleAndBack() {
  static const bool can = ProbeIdleAndBack();
  return can;
}

ScopedCpuPriority::ScopedCpuPriority(CpuPriority priority) {
  if (priority != CpuPriority::kIdle || !CanSwitchToIdleAndBack()) return;
  active_ = EnterIdle(&old_policy_, &old_priority_);
}

ScopedCpuPriority::~ScopedCpuPriority() {
  // Proven possible by CanSwitchToIdleAndBack; should it fail anyway the
  // thread stays idle, which slows it but breaks nothing.
  if (active_) Restore(old_policy_, old_priority_);
}

bool CurrentThreadIsIdlePriority() {
  int policy = 0;
  sched_param param{};
  return pthread_getschedparam(pthread_self(), &policy, &param) == 0 &&
         policy == SCHED_IDLE;
}

}  // namespace kv::server
