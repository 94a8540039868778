#include "storage/hlc.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "absl/strings/str_cat.h"

#include "storage/status_macros.h"

namespace kv::storage {

int64_t SystemClock::NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() +
         offset_ms_;
}

HybridClock::HybridClock(PhysicalClock* physical, uint64_t persisted_high_water,
                         PersistFn persist, int64_t window_ms)
    : physical_(physical),
      persist_(std::move(persist)),
      window_(HlcFromMillis(std::max<int64_t>(window_ms, 1))),
      // Everything handed out before the restart was below the mark, so
      // starting at the mark keeps the clock monotonic across restarts.
      last_(persisted_high_water),
      high_water_(persisted_high_water) {}

absl::Status HybridClock::CheckObservable(uint64_t remote) const {
  // Room for the mark above it, and for Now() to count on after it.
  if (remote > std::numeric_limits<uint64_t>::max() - 2 * window_) {
    return absl::OutOfRangeError(absl::StrCat(
        "timestamp ", remote, " is too close to 2^64: the hybrid clock cannot ",
        "move past it (a forged or corrupt version)"));
  }
  return absl::OkStatus();
}

absl::Status HybridClock::CoverLocked(uint64_t ts) {
  if (ts < high_water_) return absl::OkStatus();
  if (ts > std::numeric_limits<uint64_t>::max() - window_) {
    return absl::OutOfRangeError(absl::StrCat(
        "the hybrid clock is at ", ts, ", the end of its range; no timestamp ",
        "can follow it"));
  }
  const uint64_t mark = ts + window_;
  KV_RETURN_IF_ERROR(persist_(mark));
  high_water_ = mark;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> HybridClock::Now() {
  absl::MutexLock lock(&mu_);
  const uint64_t physical = HlcFromMillis(physical_->NowMillis());
  const uint64_t next = std::max(physical, last_ + 1);
  KV_RETURN_IF_ERROR(CoverLocked(next));
  last_ = next;
  return next;
}

absl::Status HybridClock::Observe(uint64_t remote) {
  absl::MutexLock lock(&mu_);
  if (remote <= last_) return absl::OkStatus();
  KV_RETURN_IF_ERROR(CheckObservable(remote));
  KV_RETURN_IF_ERROR(CoverLocked(remote));
  last_ = remote;
  return absl::OkStatus();
}

uint64_t HybridClock::Last() const {
  absl::MutexLock lock(&mu_);
  return last_;
}

}  // namespace kv::storage
