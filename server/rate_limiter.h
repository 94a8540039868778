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
  // `bytes_per_second` 0 = unlimited. The bucket holds at most one second's
  // worth, so an idle period allows a burst of at most that.
  explicit RateLimiter(int64_t bytes_per_second);

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
  const int64_t rate_;  // Constant after construction.
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);  // Negative: debt the waiters pay.
  absl::Time last_ ABSL_GUARDED_BY(mu_);  // Of the last refill.
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kv::server

#endif  // KV_SERVER_RATE_LIMITER_H_
