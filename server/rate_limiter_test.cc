#include "server/rate_limiter.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace kv::server {
namespace {

TEST(RateLimiterTest, PacesToTheRate) {
  RateLimiter limiter(100000);  // 100 KB/s; the bucket starts full.
  const absl::Time start = absl::Now();
  ASSERT_TRUE(limiter.Acquire(100000).ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
  ASSERT_TRUE(limiter.Acquire(20000).ok());  // 200 ms of debt.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
}

TEST(RateLimiterTest, UnlimitedNeverWaits) {
  RateLimiter limiter(0);
  const absl::Time start = absl::Now();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.Acquire(1 << 30).ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
}

// A low --ae-bandwidth must not hold a shutdown: a sender waiting out a
// 1000 s debt wakes at once when the limiter is cancelled.
TEST(RateLimiterTest, CancelEndsAWait) {
  RateLimiter limiter(1000);
  ASSERT_TRUE(limiter.Acquire(1000).ok());  // Empties the bucket.
  absl::Status waited;
  absl::Duration took;
  absl::Notification started;
  std::thread sender([&] {
    started.Notify();
    const absl::Time start = absl::Now();
    waited = limiter.Acquire(1000000);
    took = absl::Now() - start;
  });
  started.WaitForNotification();
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time cancel = absl::Now();
  limiter.Cancel();
  sender.join();
  EXPECT_LT(absl::Now() - cancel, absl::Seconds(2));
  EXPECT_EQ(waited.code(), absl::StatusCode::kCancelled) << waited;
  EXPECT_LT(took, absl::Seconds(5));
  // Later calls do not wait, whatever the rate.
  EXPECT_EQ(limiter.Acquire(1).code(), absl::StatusCode::kCancelled);
  limiter.Cancel();  // Idempotent.
  RateLimiter unlimited(0);
  unlimited.Cancel();
  EXPECT_EQ(unlimited.Acquire(1).code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace kv::server
