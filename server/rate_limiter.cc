#include "server/rate_limiter.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace kv::server {
namespace {

absl::Status Cancelled() {
  return absl::CancelledError("the repair bandwidth limiter was cancelled (shutting down)");
}

class SystemClockImpl final : public RateLimiter::Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                         absl::Time deadline) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return mu->AwaitWithDeadline(cond, deadline);
  }
};

}  // namespace

RateLimiter::Clock* RateLimiter::SystemClock() {
  static Clock* const clock = new SystemClockImpl();
  return clock;
}

RateLimiter::RateLimiter(int64_t bytes_per_second, Clock* clock)
    : rate_(bytes_per_second), clock_(clock),
      tokens_(static_cast<double>(bytes_per_second)), last_(clock->Now()) {}

absl::Status RateLimiter::Acquire(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return Cancelled();
  if (rate_ <= 0) return absl::OkStatus();
  const absl::Time now = clock_->Now();
  tokens_ = std::min<double>(static_cast<double>(rate_),
                             tokens_ + absl::ToDoubleSeconds(now - last_) * rate_);
  last_ = now;
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) return absl::OkStatus();
  // Wait until the debt is paid, releasing the lock meanwhile (later callers
  // add their own debt and wait longer); Cancel ends the wait.
  const absl::Time until = now + absl::Seconds(-tokens_ / static_cast<double>(rate_));
  if (clock_->AwaitWithDeadline(&mu_, absl::Condition(&cancelled_), until)) {
    return Cancelled();
  }
  return absl::OkStatus();
}

void RateLimiter::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

}  // namespace kv::server
