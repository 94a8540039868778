#include "storage/key_state_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace kv::storage {
namespace {

KeyState StateOf(uint64_t hlc) { return KeyState{Version{hlc, 7}, false, Digest{hlc, hlc}}; }

TEST(KeyStateCacheTest, FindsWhatWasSetAndCountsHitsAndMisses) {
  KeyStateCache cache(4, 1 << 20);
  EXPECT_EQ(cache.Find(1, "k"), nullptr);
  cache.Set(1, "k", StateOf(5));
  ASSERT_NE(cache.Find(1, "k"), nullptr);
  EXPECT_EQ(cache.Find(1, "k")->version.hlc, 5u);
  EXPECT_EQ(cache.Find(2, "k"), nullptr);  // Shards are separate.
  cache.Set(1, "k", StateOf(6));           // Replaced, not added.
  EXPECT_EQ(cache.Find(1, "k")->version.hlc, 6u);
  EXPECT_EQ(cache.hits(), 3);
  EXPECT_EQ(cache.misses(), 2);
}

TEST(KeyStateCacheTest, StaysWithinItsBudgetAndKeepsTheEntryJustSet) {
  // Room for 10 entries of 4-byte keys in the one shard.
  const size_t entry = 4 + KeyStateCache::kEntryOverhead;
  KeyStateCache cache(1, 10 * entry);
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("k", 100 + i % 900);
    cache.Set(0, key, StateOf(i + 1));
    const KeyState* s = cache.Find(0, key);
    ASSERT_NE(s, nullptr) << "entry just set was evicted: " << key;
    EXPECT_EQ(s->version.hlc, static_cast<uint64_t>(i + 1));
  }
  int present = 0;
  for (int k = 100; k < 1000; ++k) present += cache.Find(0, absl::StrCat("k", k)) != nullptr;
  EXPECT_EQ(present, 10);
}

// Update changes a cached entry and adds none; entries() counts what is
// cached through evictions.
TEST(KeyStateCacheTest, UpdateChangesOnlyCachedEntries) {
  const size_t entry = 2 + KeyStateCache::kEntryOverhead;
  KeyStateCache cache(1, 3 * entry);
  cache.Update(0, "k1", StateOf(1));
  EXPECT_EQ(cache.Find(0, "k1"), nullptr);
  EXPECT_EQ(cache.entries(), 0);
  cache.Set(0, "k1", StateOf(1));
  cache.Update(0, "k1", StateOf(2));
  ASSERT_NE(cache.Find(0, "k1"), nullptr);
  EXPECT_EQ(cache.Find(0, "k1")->version.hlc, 2u);
  for (int i = 2; i <= 5; ++i) cache.Set(0, absl::StrCat("k", i), StateOf(i));
  EXPECT_EQ(cache.entries(), 3);  // Room for three.
}

TEST(KeyStateCacheTest, ZeroCapacityIsOff) {
  KeyStateCache cache(2, 0);
  cache.Set(0, "k", StateOf(1));
  EXPECT_EQ(cache.Find(0, "k"), nullptr);
}

}  // namespace
}  // namespace kv::storage
