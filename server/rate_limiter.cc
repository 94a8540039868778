#include "server/rate_limiter.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace kv::server {

RateLimiter::RateLimiter(int64_t bytes_per_second)
    : rate_(bytes_per_second), tokens_(static_cast<double>(bytes_per_second)),
      last_(absl::Now()) {}

void RateLimiter::Acquire(int64_t bytes) {
  if (rate_ <= 0) return;
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    tokens_ = std::min<double>(static_cast<double>(rate_),
                               tokens_ + absl::ToDoubleSeconds(now - last_) * rate_);
    last_ = now;
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ >= 0) return;
    wait = absl::Seconds(-tokens_ / static_cast<double>(rate_));
  }
  absl::SleepFor(wait);
}

}  // namespace kv::server
