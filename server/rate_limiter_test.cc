#include "server/rate_limiter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace kv::server {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Time that moves only when the limiter waits or the test advances it; each
// wait returns at once and is recorded. Single-threaded use only.
class FakeClock final : public RateLimiter::Clock {
 public:
  absl::Time Now() override { return now_; }
  bool AwaitWithDeadline(absl::Mutex* /*mu*/, const absl::Condition& cond,
                         absl::Time deadline) override {
    if (cond.Eval()) return true;
    waits_.push_back(deadline - now_);
    now_ = std::max(now_, deadline);
    return cond.Eval();
  }
  void Advance(absl::Duration d) { now_ += d; }
  // The waits since the last call, in ms.
  std::vector<double> TakeWaitsMs() {
    std::vector<double> ms;
    for (absl::Duration d : waits_) ms.push_back(absl::ToDoubleMilliseconds(d));
    waits_.clear();
    return ms;
  }

 private:
  absl::Time now_ = absl::UnixEpoch() + absl::Hours(24);
  std::vector<absl::Duration> waits_;
};

TEST(RateLimiterTest, PacesToTheRate) {
  FakeClock clock;
  RateLimiter limiter(100000, &clock);  // 100 kB/s; the bucket starts full.
  ASSERT_TRUE(limiter.Acquire(100000).ok());
  EXPECT_THAT(clock.TakeWaitsMs(), IsEmpty());
  ASSERT_TRUE(limiter.Acquire(20000).ok());  // 200 ms of debt.
  EXPECT_THAT(clock.TakeWaitsMs(), ElementsAre(DoubleNear(200, 1e-3)));
  // The wait paid that debt: the next 50 kB cost 500 ms of their own.
  ASSERT_TRUE(limiter.Acquire(50000).ok());
  EXPECT_THAT(clock.TakeWaitsMs(), ElementsAre(DoubleNear(500, 1e-3)));
  // Time that passed without sending refills the bucket.
  clock.Advance(absl::Milliseconds(300));
  ASSERT_TRUE(limiter.Acquire(30000).ok());
  EXPECT_THAT(clock.TakeWaitsMs(), IsEmpty());
}

TEST(RateLimiterTest, AnIdlePeriodAllowsABurstOfOneSecondAtMost) {
  FakeClock clock;
  RateLimiter limiter(1000, &clock);
  ASSERT_TRUE(limiter.Acquire(1000).ok());
  clock.Advance(absl::Seconds(60));
  ASSERT_TRUE(limiter.Acquire(1000).ok());  // One second's worth, not 60.
  EXPECT_THAT(clock.TakeWaitsMs(), IsEmpty());
  ASSERT_TRUE(limiter.Acquire(100).ok());
  EXPECT_THAT(clock.TakeWaitsMs(), ElementsAre(DoubleNear(100, 1e-3)));
}

TEST(RateLimiterTest, ARequestLargerThanTheBucketLeavesDebt) {
  FakeClock clock;
  RateLimiter limiter(1000, &clock);
  ASSERT_TRUE(limiter.Acquire(3000).ok());  // Full bucket, 2 s of debt.
  EXPECT_THAT(clock.TakeWaitsMs(), ElementsAre(DoubleNear(2000, 1e-3)));
  ASSERT_TRUE(limiter.Acquire(500).ok());
  EXPECT_THAT(clock.TakeWaitsMs(), ElementsAre(DoubleNear(500, 1e-3)));
}

TEST(RateLimiterTest, UnlimitedNeverWaits) {
  FakeClock clock;
  RateLimiter limiter(0, &clock);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.Acquire(1 << 30).ok());
  EXPECT_THAT(clock.TakeWaitsMs(), IsEmpty());
}

TEST(RateLimiterTest, CancelledLimiterRefusesWithoutWaiting) {
  FakeClock clock;
  RateLimiter limiter(1000, &clock);
  limiter.Cancel();
  EXPECT_EQ(limiter.Acquire(1).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(limiter.Acquire(1 << 20).code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(clock.TakeWaitsMs(), IsEmpty());
}

// A low --ae-bandwidth must not hold a shutdown: a sender waiting out a
// 1000 s debt on the system clock wakes at once when the limiter is
// cancelled.
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
