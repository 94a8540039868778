#include "server/cpu_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

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

// The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER1); glibc 2.36 has no
// wrapper, and <linux/sched/types.h> clashes with <sched.h>.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56);

bool GetAttr(SchedAttr* attr) {
  std::memset(attr, 0, sizeof(*attr));
  return syscall(SYS_sched_getattr, 0, attr, sizeof(*attr), 0) == 0;
}

bool FairPolicy(uint32_t policy) {
  return policy == SCHED_OTHER || policy == SCHED_BATCH || policy == SCHED_IDLE;
}

bool Restore(int policy, int priority) {
  sched_param param{};
  param.sched_priority = priority;
  return sched_setscheduler(0, policy, &param) == 0;
}

// Runs `probe` on a scratch thread (whose priority may be left changed).
bool OnScratchThread(const std::function<bool()>& probe) {
  bool ok = false;
  std::thread([&] { ok = probe(); }).join();
  return ok;
}

}  // namespace

bool SetThreadNice(int tid, int nice) { return setpriority(PRIO_PROCESS, tid, nice) == 0; }

bool CanSwitchToIdleAndBack() {
  static const bool can = OnScratchThread([] {
    int policy = 0, priority = 0;
    return EnterIdle(&policy, &priority) && Restore(policy, priority);
  });
  return can;
}

bool CanLowerAndRaiseNice() {
  static const bool can = OnScratchThread([] {
    const int tid = static_cast<int>(gettid());
    return SetThreadNice(tid, 19) && SetThreadNice(tid, 0);
  });
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

absl::StatusOr<int64_t> SetThreadSliceNanos(int64_t nanos) {
  if (nanos < 0) {
    return absl::InvalidArgumentError(absl::StrCat("a slice of ", nanos, " ns"));
  }
  SchedAttr attr;
  if (!GetAttr(&attr)) {
    return absl::InternalError(absl::StrCat("sched_getattr: ", std::strerror(errno)));
  }
  if (!FairPolicy(attr.sched_policy)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the thread runs under scheduling policy ", attr.sched_policy,
        " (real-time or deadline), which has no slice to set"));
  }
  attr.size = sizeof(attr);
  attr.sched_flags = 0;
  attr.sched_runtime = static_cast<uint64_t>(nanos);
  attr.sched_deadline = 0;
  attr.sched_period = 0;
  if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) {
    return absl::InternalError(absl::StrCat("sched_setattr: ", std::strerror(errno)));
  }
  return ThreadSliceNanos();
}

int64_t ThreadSliceNanos() {
  SchedAttr attr;
  if (!GetAttr(&attr) || !FairPolicy(attr.sched_policy)) return 0;
  return static_cast<int64_t>(attr.sched_runtime);
}

}  // namespace kv::server
