// AntiEntropy's lifecycle: Start and Stop may be called from any thread, in
// any order and more than once (the class says thread-safe).
#include "server/anti_entropy.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "storage/memory_engine.h"

namespace kv::server {
namespace {

std::unique_ptr<storage::Store> NewStore() {
  auto store = storage::Store::Open(std::make_unique<storage::MemoryEngine>(),
                                    storage::StoreOptions{.leaf_depth = 4});
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

TEST(AntiEntropyLifecycleTest, StartTwiceStartsOnceAndStartAfterStopDoesNothing) {
  std::unique_ptr<storage::Store> store = NewStore();
  ASSERT_NE(store, nullptr);
  AntiEntropy ae(store.get(), AntiEntropyOptions{});
  ae.Start();
  ae.Start();  // Used to assign a running std::thread: std::terminate.
  ae.Stop();
  ae.Start();  // After Stop: nothing starts, so nothing is left to join.
  ae.Stop();
}

TEST(AntiEntropyLifecycleTest, ConcurrentStartsAndStops) {
  std::unique_ptr<storage::Store> store = NewStore();
  ASSERT_NE(store, nullptr);
  for (int round = 0; round < 20; ++round) {
    AntiEntropy ae(store.get(), AntiEntropyOptions{});
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&ae, i] {
        if (i % 2 == 0) {
          ae.Start();
        } else {
          ae.Stop();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    ae.Stop();
  }
}

}  // namespace
}  // namespace kv::server
