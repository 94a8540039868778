#include "server/cpu_priority.h"

#include <gtest/gtest.h>

#include <thread>

namespace kv::server {
namespace {

TEST(CpuPriorityTest, IdleForTheScopeThenBack) {
  if (!CanSwitchToIdleAndBack()) {
    GTEST_SKIP() << "this process may not switch to SCHED_IDLE and back (not root)";
  }
  std::thread([] {
    ASSERT_FALSE(CurrentThreadIsIdlePriority());
    {
      const ScopedCpuPriority idle(CpuPriority::kIdle);
      EXPECT_TRUE(idle.active());
      EXPECT_TRUE(CurrentThreadIsIdlePriority());
      {
        const ScopedCpuPriority inner(CpuPriority::kIdle);
        EXPECT_FALSE(inner.active());  // Already idle: nothing to undo.
      }
      EXPECT_TRUE(CurrentThreadIsIdlePriority());
    }
    EXPECT_FALSE(CurrentThreadIsIdlePriority());
  }).join();
}

TEST(CpuPriorityTest, NormalLeavesTheThreadAlone) {
  std::thread([] {
    const ScopedCpuPriority normal(CpuPriority::kNormal);
    EXPECT_FALSE(normal.active());
    EXPECT_FALSE(CurrentThreadIsIdlePriority());
  }).join();
}

TEST(CpuPriorityTest, PromotedBeforeTheScopeEnds) {
  if (!CanSwitchToIdleAndBack()) GTEST_SKIP() << "not root";
  std::thread([] {
    {
      const ScopedCpuPriority idle(CpuPriority::kIdle);
      ASSERT_TRUE(idle.active());
      EXPECT_NE(idle.thread_id(), 0);
      EXPECT_TRUE(CurrentThreadIsIdlePriority());
      // As the watchdog does, from another thread.
      bool promoted = false;
      std::thread([&] { promoted = PromoteToNormal(idle.thread_id()); }).join();
      EXPECT_TRUE(promoted);
      EXPECT_FALSE(CurrentThreadIsIdlePriority());
    }
    EXPECT_FALSE(CurrentThreadIsIdlePriority());
  }).join();
  EXPECT_FALSE(PromoteToNormal(0));
}

// Set on a thread, inherited by the threads it starts (kvd sets it on its
// main thread first), and kept across an idle scope.
TEST(CpuPriorityTest, SliceIsInheritedAndKeptAcrossAnIdleScope) {
  int64_t reported = -1;
  std::thread([&reported] { reported = SetThreadSliceNanos(300'000).value_or(-1); }).join();
  ASSERT_GE(reported, 0);
  if (reported == 0) GTEST_SKIP() << "this kernel keeps no slice per thread (Linux < 6.12)";
  EXPECT_EQ(reported, 300'000);
  std::thread([] {
    ASSERT_EQ(*SetThreadSliceNanos(200'000), 200'000);
    int64_t child = 0;
    std::thread([&child] { child = ThreadSliceNanos(); }).join();
    EXPECT_EQ(child, 200'000);
    if (CanSwitchToIdleAndBack()) {
      {
        const ScopedCpuPriority idle(CpuPriority::kIdle);
        ASSERT_TRUE(idle.active());
      }
      EXPECT_FALSE(CurrentThreadIsIdlePriority());
      EXPECT_EQ(ThreadSliceNanos(), 200'000);
    }
    // 0: back to the kernel's default, whatever it is.
    EXPECT_GT(*SetThreadSliceNanos(0), 0);
    EXPECT_EQ(SetThreadSliceNanos(-1).status().code(), absl::StatusCode::kInvalidArgument);
  }).join();
}

TEST(CpuPriorityTest, Names) {
  EXPECT_STREQ(CpuPriorityName(CpuPriority::kIdle), "idle");
  EXPECT_STREQ(CpuPriorityName(CpuPriority::kNormal), "normal");
}

}  // namespace
}  // namespace kv::server
