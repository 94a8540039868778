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

TEST(CpuPriorityTest, Names) {
  EXPECT_STREQ(CpuPriorityName(CpuPriority::kIdle), "idle");
  EXPECT_STREQ(CpuPriorityName(CpuPriority::kNormal), "normal");
}

}  // namespace
}  // namespace kv::server
