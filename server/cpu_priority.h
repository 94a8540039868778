// Background CPU priority for repair work: with kvd --ae-cpu-priority idle
// (default normal), anti-entropy exchanges run their threads under Linux's
// SCHED_IDLE policy, so that a foreground request waking up on a busy core
// preempts them at once instead of waiting for the scheduler to get round
// to it. On the 2-core VM a 1M-key full sync between two nodes then raised
// foreground Get p99 to 1.8-2.1 ms instead of 3.9-4.3 ms (idle: 0.7-1.3
// ms), for about the same sync time. But SCHED_IDLE threads get only what
// nobody else wants (weight 3 against 1024): with two busy loops at normal
// priority on the same 2 cores, a 300k-key sync had moved 40 000 keys
// after 150 s, exchanges failing on their deadlines, where it took 9.9 s
// at normal priority. So it is not the default.
//
// Thread safety: all functions act on the calling thread only.
#ifndef KV_SERVER_CPU_PRIORITY_H_
#define KV_SERVER_CPU_PRIORITY_H_

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

// Moves the calling thread to SCHED_IDLE for the rest of its life (a thread
// that does only background work: no way back is needed, so this works
// without privileges). Returns whether it was moved.
bool MakeCurrentThreadIdle();

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
  bool active() const { return active_; }

 private:
  bool active_ = false;
  int old_policy_ = 0;
  int old_priority_ = 0;
};

// The calling thread's scheduling policy is SCHED_IDLE (for tests).
bool CurrentThreadIsIdlePriority();

}  // namespace kv::server

#endif  // KV_SERVER_CPU_PRIORITY_H_
