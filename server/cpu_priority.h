// Background CPU priority for repair work: with kvd --ae-cpu-priority idle
// (the default), each anti-entropy exchange runs its thread under Linux's
// SCHED_IDLE policy for its duration, so that a foreground request waking
// up on a busy core preempts it at once instead of waiting for the
// scheduler to get round to it. SCHED_IDLE threads get only what nobody
// else wants (weight 3 against 1024), so an exchange still running after
// AntiEntropyOptions::idle_promote_after (2 s) is moved back to normal
// priority by the watchdog (PromoteToNormal): repair keeps going while
// other work saturates the cores. Measured on the 2-core VM (README,
// Measurements): during a 1M-key full sync foreground Get p99 1.9-2.1 ms
// instead of 3.5-4.3 ms at normal priority (idle: 0.7-1.3 ms); with two
// busy loops on the cores a 300k-key sync took 26.9 s (9.9 s at normal
// priority; without the promotion it had moved 40 000 keys after 150 s).
//
// Thread safety: all functions act on the calling thread only.
#ifndef KV_SERVER_CPU_PRIORITY_H_
#define KV_SERVER_CPU_PRIORITY_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace kv::server {

enum class CpuPriority { kNormal, kIdle };

// "idle" or "normal", as kvd's --ae-cpu-priority spells them.
const char* CpuPriorityName(CpuPriority priority);

// Whether this process may move a thread to SCHED_IDLE and back to its
// policy (root, CAP_SYS_NICE, or an RLIMIT_NICE that allows nice 0): tried
// once on a scratch thread, the answer cached. Without it ScopedCpuPriority
// leaves threads as they are (a thread that could not come back would stay
// idle while serving foreground work).
bool CanSwitchToIdleAndBack();

// Whether this process may set a thread's nice value to 19 and back to 0
// (the same rights): tried once on a scratch thread, the answer cached.
bool CanLowerAndRaiseNice();
// Sets the nice value of thread `tid` of this process; whether it could.
bool SetThreadNice(int tid, int nice);

// Runs the calling thread at `priority` from construction to destruction,
// then restores its policy. With kNormal, on a thread already idle, or
// where CanSwitchToIdleAndBack() is false, it does nothing.
class ScopedCpuPriority {
 public:
  explicit ScopedCpuPriority(CpuPriority priority);
  ~ScopedCpuPriority();
  ScopedCpuPriority(const ScopedCpuPriority&) = delete;
  ScopedCpuPriority& operator=(const ScopedCpuPriority&) = delete;

  // Whether the calling thread was moved (and will be restored).
  bool active() const { return tid_ != 0; }
  // The moved thread's kernel id (for PromoteToNormal); 0 when not active.
  int thread_id() const { return tid_; }

 private:
  int tid_ = 0;
  int old_policy_ = 0;
  int old_priority_ = 0;
};

// Moves thread `tid` of this process (ScopedCpuPriority::thread_id) back
// to SCHED_OTHER, before its scope ends: for repair work that has waited
// too long at idle priority. Returns whether it was moved.
bool PromoteToNormal(int tid);

// The calling thread's scheduling policy is SCHED_IDLE (for tests).
bool CurrentThreadIsIdlePriority();

// The time slice of the calling thread under Linux's EEVDF scheduler
// (sched_setattr's sched_runtime for SCHED_OTHER, Linux 6.12 and later;
// the kernel clamps it to 0.1-100 ms; zero: the kernel's default, 0.7 ms
// times 1 + log2 of the CPUs). Threads started afterwards inherit it. A
// thread whose slice is shorter than the running one's preempts it when it
// wakes, and a busy thread gives up the CPU after its slice: kvd sets
// --cpu-slice-us (default 400) on its main thread before any other thread
// starts, so that a request waking on a core busy with a flush or another
// node's work waits for at most a short slice. Returns the slice the kernel
// reports afterwards: 0 where it keeps no slice per thread (older kernels
// accept the call and ignore it), or an error where the call fails.
absl::StatusOr<int64_t> SetThreadSliceNanos(int64_t nanos);
// The calling thread's slice as the kernel reports it (0: none reported).
int64_t ThreadSliceNanos();

}  // namespace kv::server

#endif  // KV_SERVER_CPU_PRIORITY_H_
