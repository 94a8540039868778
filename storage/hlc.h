// Hybrid logical clock (HLC) with a persisted high-water mark.
//
// A timestamp is 48 bits of physical milliseconds followed by 16 bits of
// logical counter, so timestamps compare as plain uint64. The clock never
// goes backwards: not when the wall clock jumps back, not across restarts
// (every timestamp handed out is below a high-water mark that was persisted
// first), and it moves past every remote timestamp it observes.
//
// Thread safety: all methods are thread-safe.
#ifndef KV_STORAGE_HLC_H_
#define KV_STORAGE_HLC_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace kv::storage {

// Source of physical time; tests substitute a manual clock.
class PhysicalClock {
 public:
  virtual ~PhysicalClock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t NowMillis() = 0;
};

// The system's wall clock, plus a fixed offset (tests use the offset to
// simulate skew between real processes).
class SystemClock : public PhysicalClock {
 public:
  explicit SystemClock(int64_t offset_ms = 0) : offset_ms_(offset_ms) {}
  int64_t NowMillis() override;

 private:
  const int64_t offset_ms_;
};

// A clock the test sets by hand.
class ManualClock : public PhysicalClock {
 public:
  explicit ManualClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMillis() override { return now_ms_.load(); }
  void Set(int64_t now_ms) { now_ms_.store(now_ms); }
  void Advance(int64_t ms) { now_ms_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_ms_;
};

inline constexpr int kHlcLogicalBits = 16;
inline uint64_t HlcFromMillis(int64_t ms) {
  return static_cast<uint64_t>(ms) << kHlcLogicalBits;
}
inline int64_t HlcMillis(uint64_t hlc) {
  return static_cast<int64_t>(hlc >> kHlcLogicalBits);
}

class HybridClock {
 public:
  // Persists a new high-water mark; must be durable when it returns OK.
  using PersistFn = std::function<absl::Status(uint64_t high_water)>;

  // `physical` must outlive the clock. `persisted_high_water` is the mark
  // read back at start (0 on a new node): every timestamp handed out by an
  // earlier run was below it. `window_ms` is how far ahead of the newest
  // timestamp each persisted mark reaches (one persist per window).
  HybridClock(PhysicalClock* physical, uint64_t persisted_high_water,
              PersistFn persist, int64_t window_ms = 1000);

  // A timestamp greater than every one handed out or observed before.
  // Errors: whatever persisting the high-water mark returned (then no
  // timestamp is handed out); OUT_OF_RANGE when the next timestamp plus the
  // persist window would pass 2^64 (the clock was driven to the end of its
  // range; nothing is handed out rather than wrapping to 0).
  absl::StatusOr<uint64_t> Now();

  // Moves the clock past `remote` (a version seen from another node).
  // Errors: OUT_OF_RANGE (CheckObservable) when `remote` is too close to
  // 2^64, the clock untouched; otherwise as Now().
  absl::Status Observe(uint64_t remote);

  // OK when the clock can observe `remote`: it and its persisted
  // high-water mark (remote + the window) stay below 2^64, so the clock
  // could still hand out timestamps after it. Else OUT_OF_RANGE naming the
  // value (a forged or corrupt version; with --max-clock-drift-ms 0 nothing
  // else stops one). Thread-safe; reads only constants.
  absl::Status CheckObservable(uint64_t remote) const;

  // The last timestamp handed out or observed.
  uint64_t Last() const;

 private:
  // Makes sure `ts` is below the persisted high-water mark.
  // Errors: OUT_OF_RANGE when ts + window_ overflows; persist_'s errors.
  absl::Status CoverLocked(uint64_t ts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  PhysicalClock* const physical_;
  const PersistFn persist_;
  const uint64_t window_;  // In HLC units.

  mutable absl::Mutex mu_;
  uint64_t last_ ABSL_GUARDED_BY(mu_);
  uint64_t high_water_ ABSL_GUARDED_BY(mu_);  // Every timestamp is below it.
};

}  // namespace kv::storage

#endif  // KV_STORAGE_HLC_H_
