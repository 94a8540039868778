// A token bucket shared by all anti-entropy exchanges of a node, so repair
// traffic stays under a configured bandwidth and leaves room for foreground
// requests.
//
// Thread safety: thread-safe. Cancel() may be called from any thread while
// others wait in Acquire().
#ifndef KV_SERVER_RATE_LIMITER_H_
#define KV_SERVER_RATE_LIMITER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kv::server {

class RateLimiter {
 public:
  // Where the limiter reads the time and how it waits: the system clock in
  // production, a fake one in tests (time that moves only when told, waits
  // that return at once and are recorded). Implementations are thread-safe.
  class Clock {
   public:
    virtual ~Clock() = default;
    virtual absl::Time Now() = 0;
    // As absl::Mutex::AwaitWithDeadline: releases `mu` until `cond` holds or
    // `deadline` (in this clock's time) passes, takes it again, and returns
    // whether `cond` holds. A Cancel() from another thread makes `cond` hold,
    // so a real implementation must wake on it (the wait stays cancellable).
    virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                   absl::Time deadline)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
  };
  // absl::Now() and absl::Mutex::AwaitWithDeadline. Never destroyed.
  static Clock* SystemClock();

  // `bytes_per_second` 0 = unlimited. The bucket holds at most one second's
  // worth, so an idle period allows a burst of at most that. `clock` must
  // outlive the limiter.
  explicit RateLimiter(int64_t bytes_per_second, Clock* clock = SystemClock());

  // Blocks until `bytes` may be sent. A request larger than the bucket is
  // let through once the debt it leaves is paid by later callers' waits.
  // The wait ends early at Cancel(), so a low rate cannot hold a shutdown.
  // Success: OK, the caller may send. Errors: CANCELLED once Cancel() was
  // called (at once, or when it ends a wait); the caller should not send.
  absl::Status Acquire(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes every Acquire waiting now and makes every later one return
  // CANCELLED at once. Irreversible; idempotent.
  void Cancel() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Constant after construction.
  const int64_t rate_;
  Clock* const clock_;

  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);  // Negative: debt the waiters pay.
  absl::Time last_ ABSL_GUARDED_BY(mu_);  // Of the last refill.
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kv::server

#endif  // KV_SERVER_RATE_LIMITER_H_
