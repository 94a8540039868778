#include "storage/hlc.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace kv::storage {
namespace {

struct Persisted {
  uint64_t mark = 0;
  int writes = 0;
  HybridClock::PersistFn Fn() {
    return [this](uint64_t m) {
      mark = m;
      ++writes;
      return absl::OkStatus();
    };
  }
};

TEST(HlcTest, FollowsPhysicalTime) {
  ManualClock physical(1000);
  Persisted p;
  HybridClock clock(&physical, 0, p.Fn());
  auto t1 = clock.Now();
  ASSERT_TRUE(t1.ok());
  EXPECT_EQ(*t1, HlcFromMillis(1000));
  physical.Set(2000);
  EXPECT_EQ(*clock.Now(), HlcFromMillis(2000));
}

TEST(HlcTest, MonotonicWhenWallClockJumpsBack) {
  ManualClock physical(5000);
  Persisted p;
  HybridClock clock(&physical, 0, p.Fn());
  uint64_t last = *clock.Now();
  physical.Set(1000);  // NTP step backwards.
  for (int i = 0; i < 100; ++i) {
    uint64_t t = *clock.Now();
    EXPECT_GT(t, last);
    EXPECT_EQ(HlcMillis(t), 5000);  // Logical counter carries on.
    last = t;
  }
}

TEST(HlcTest, ObserveMovesPastRemote) {
  ManualClock physical(1000);
  Persisted p;
  HybridClock clock(&physical, 0, p.Fn());
  const uint64_t remote = HlcFromMillis(90000) + 7;  // A peer far ahead.
  ASSERT_TRUE(clock.Observe(remote).ok());
  EXPECT_GT(*clock.Now(), remote);
  ASSERT_TRUE(clock.Observe(1).ok());  // Older remote: no effect.
  EXPECT_GT(clock.Last(), remote);
}

// A version near 2^64 (--max-clock-drift-ms 0 lets any through) must not
// wrap the clock or its high-water mark around to 0.
TEST(HlcTest, ObserveNearTheEndOfTheRangeIsRefused) {
  ManualClock physical(1000);
  Persisted p;
  HybridClock clock(&physical, 0, p.Fn());
  const uint64_t before = *clock.Now();
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  for (uint64_t remote : {max, max - 1, max - HlcFromMillis(1000)}) {
    absl::Status s = clock.Observe(remote);
    EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << remote;
    EXPECT_NE(s.message().find("2^64"), std::string::npos) << s;
    EXPECT_EQ(clock.CheckObservable(remote).code(), absl::StatusCode::kOutOfRange);
  }
  // Untouched: it keeps counting from where it was, the mark above it.
  const uint64_t after = *clock.Now();
  EXPECT_GT(after, before);
  EXPECT_LT(after, HlcFromMillis(2000));
  EXPECT_GT(p.mark, after);
  // Far ahead but with room left: observed.
  ASSERT_TRUE(clock.Observe(max / 2).ok());
  EXPECT_GT(*clock.Now(), max / 2);
}

// A clock whose persisted mark was already driven to the end (an older
// kvd without the check) hands out nothing rather than wrapping to 0.
TEST(HlcTest, NowAtTheEndOfTheRangeFails) {
  ManualClock physical(1000);
  Persisted p;
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  HybridClock clock(&physical, max - 5, p.Fn());
  for (int i = 0; i < 10; ++i) {
    auto t = clock.Now();
    if (t.ok()) {
      EXPECT_GT(*t, max - 10);
    } else {
      EXPECT_EQ(t.status().code(), absl::StatusCode::kOutOfRange);
    }
  }
  EXPECT_FALSE(clock.Now().ok());
}

TEST(HlcTest, NeverBackwardsAcrossRestart) {
  ManualClock physical(10000);
  Persisted p;
  uint64_t last = 0;
  {
    HybridClock clock(&physical, 0, p.Fn(), /*window_ms=*/1000);
    for (int i = 0; i < 1000; ++i) last = *clock.Now();
    ASSERT_TRUE(clock.Observe(HlcFromMillis(20000)).ok());
    last = std::max(last, clock.Last());
  }
  EXPECT_GT(p.mark, last);  // Persisted ahead of everything handed out.
  physical.Set(500);        // Restart with the wall clock far behind.
  HybridClock clock(&physical, p.mark, p.Fn(), 1000);
  EXPECT_GT(*clock.Now(), last);
}

TEST(HlcTest, PersistsOncePerWindow) {
  ManualClock physical(10000);
  Persisted p;
  HybridClock clock(&physical, 0, p.Fn(), /*window_ms=*/1000);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(clock.Now().ok());
  EXPECT_EQ(p.writes, 1);
  physical.Advance(1500);
  ASSERT_TRUE(clock.Now().ok());
  EXPECT_EQ(p.writes, 2);
}

TEST(HlcTest, PersistFailureHandsOutNothing) {
  ManualClock physical(10000);
  HybridClock clock(&physical, 0, [](uint64_t) {
    return absl::UnavailableError("disk gone");
  });
  auto t = clock.Now();
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(clock.Last(), 0u);
}

TEST(HlcTest, ConcurrentCallersGetUniqueIncreasingStamps) {
  SystemClock physical;
  Persisted p;
  HybridClock clock(&physical, 0, p.Fn());
  constexpr int kThreads = 4, kPer = 5000;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) got[t].push_back(*clock.Now());
    });
  }
  for (auto& th : threads) th.join();
  std::vector<uint64_t> all;
  for (auto& g : got) {
    for (size_t i = 1; i < g.size(); ++i) EXPECT_GT(g[i], g[i - 1]);
    all.insert(all.end(), g.begin(), g.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
}

}  // namespace
}  // namespace kv::storage
