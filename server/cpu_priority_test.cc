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

TEST(CpuPriorityTest, AThreadMadeIdleStaysIdle) {
  std::thread([] {
    // Lowering one's own priority needs no privilege.
    EXPECT_TRUE(MakeCurrentThreadIdle());
    EXPECT_TRUE(CurrentThreadIsIdlePriority());
    EXPECT_FALSE(MakeCurrentThreadIdle());  // Already idle.
  }).join();
  EXPECT_FALSE(CurrentThreadIsIdlePriority());  // Other threads untouched.
}

TEST(CpuPriorityTest, Names) {
  EXPECT_STREQ(CpuPriorityName(CpuPriority::kIdle), "idle");
  EXPECT_STREQ(CpuPriorityName(CpuPriority::kNormal), "normal");
}

}  // namespace
}  // namespace kv::server
