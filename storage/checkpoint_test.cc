// Engine::Checkpoint, Store::Inspect and Store::AssignNewNodeId: the storage
// side of snapshots (server/snapshot.h does the directories and manifest).
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "storage/engine_test_util.h"
#include "storage/store.h"

namespace kv::storage {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<StoreInfo> InspectReadOnly(const std::filesystem::path& dir) {
  auto engine = OpenRocksDbEngine(RocksDbOptions{.path = dir.string(), .read_only = true});
  if (!engine.ok()) return engine.status();
  return Store::Inspect(std::move(*engine));
}

Mutation Put(std::string key, std::string value) {
  return Mutation{.key = std::move(key), .value = std::move(value)};
}

TEST(CheckpointTest, CopyHoldsTheDataAndInspectDescribesIt) {
  RocksDbEngineFactory live;
  RocksDbEngineFactory copy_dir;  // Only for its (absent) path.
  auto store = Store::Open(live.Open(), StoreOptions{.leaf_depth = 4});
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 100; ++i) {
    Mutation m = Put(absl::StrCat("k", i), "v");
    ASSERT_TRUE((*store)->Write({&m, 1}).ok());
  }
  Mutation del{.key = "k7", .tombstone = true};
  ASSERT_TRUE((*store)->Write({&del, 1}).ok());

  ASSERT_TRUE((*store)->Checkpoint(copy_dir.dir().string()).ok());
  auto info = InspectReadOnly(copy_dir.dir());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->node_id, (*store)->node_id());
  EXPECT_EQ(info->leaf_depth, 4u);
  EXPECT_EQ(info->key_count, 100);  // The tombstone counts.
  EXPECT_EQ(info->root, (*store)->tree().Root());

  // The copy opens as a store of its own with the same records.
  auto engine = OpenRocksDbEngine(RocksDbOptions{.path = copy_dir.dir().string()});
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto copy = Store::Open(std::move(*engine), StoreOptions{.leaf_depth = 4});
  ASSERT_TRUE(copy.ok()) << copy.status();
  auto rec = (*copy)->Get("k7");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_TRUE((*rec)->tombstone);
  auto verify = (*copy)->VerifyTree();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->matched);
}

TEST(CheckpointTest, ConsistentUnderConcurrentWrites) {
  RocksDbEngineFactory live;
  RocksDbEngineFactory copy_dir;
  StoreOptions options{.leaf_depth = 6, .committer_thread = true};
  auto store = Store::Open(live.Open(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      Mutation ms[2] = {Put(absl::StrCat("a", i), "x"), Put(absl::StrCat("b", i % 50), "y")};
      ASSERT_TRUE((*store)->Write(ms).ok());
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  absl::Status s = (*store)->Checkpoint(copy_dir.dir().string());
  stop = true;
  writer.join();
  ASSERT_TRUE(s.ok()) << s;
  // The tree in the copy matches the data in the copy: one moment.
  auto engine = OpenRocksDbEngine(RocksDbOptions{.path = copy_dir.dir().string()});
  ASSERT_TRUE(engine.ok());
  auto copy = Store::Open(std::move(*engine), options);
  ASSERT_TRUE(copy.ok());
  auto verify = (*copy)->VerifyTree();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->matched);
  EXPECT_GT(verify->key_count, 0);
}

TEST(CheckpointTest, ExistingDirectoryIsRefused) {
  RocksDbEngineFactory live;
  RocksDbEngineFactory copy_dir;
  auto store = Store::Open(live.Open(), StoreOptions{.leaf_depth = 4});
  ASSERT_TRUE(store.ok());
  std::filesystem::create_directories(copy_dir.dir());
  absl::Status s = (*store)->Checkpoint(copy_dir.dir().string());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST(CheckpointTest, MemoryEngineCannotCheckpoint) {
  auto store = Store::Open(std::make_unique<MemoryEngine>(), StoreOptions{.leaf_depth = 4});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Checkpoint("/nonexistent/x").code(), absl::StatusCode::kUnimplemented);
}

TEST(CheckpointTest, AssignNewNodeIdChangesTheIdAndKeepsTheData) {
  RocksDbEngineFactory f;
  uint64_t old_id = 0;
  {
    auto store = Store::Open(f.Open(), StoreOptions{.leaf_depth = 4});
    ASSERT_TRUE(store.ok());
    old_id = (*store)->node_id();
    Mutation m = Put("k", "v");
    ASSERT_TRUE((*store)->Write({&m, 1}).ok());
  }
  auto engine = f.Open();
  auto new_id = Store::AssignNewNodeId(*engine);
  ASSERT_TRUE(new_id.ok()) << new_id.status();
  EXPECT_NE(*new_id, old_id);
  EXPECT_NE(*new_id, 0u);
  auto store = Store::Open(std::move(engine), StoreOptions{.leaf_depth = 4});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->node_id(), *new_id);
  auto rec = (*store)->Get("k");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->value, "v");
}

TEST(CheckpointTest, InspectAndAssignRefuseAnEmptyEngine) {
  auto info = Store::Inspect(std::make_unique<MemoryEngine>());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("no kvd store"));
  MemoryEngine empty;
  EXPECT_EQ(Store::AssignNewNodeId(empty).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kv::storage
