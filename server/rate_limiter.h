// A token bucket shared by all anti-entropy exchanges of a node, so repair
// traffic stays under a configured bandwidth and leaves room for foreground
// requests.
//
// Thread safety: thread-safe.
#ifndef KV_SERVER_RATE_LIMITER_H_
#define KV_SERVER_RATE_LIMITER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
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
  void Acquire(int64_t bytes);

 private:
  const int64_t rate_;  // Constant after construction.
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv::server

#endif  // KV_SERVER_RATE_LIMITER_H_
