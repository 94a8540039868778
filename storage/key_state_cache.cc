#include "storage/key_state_cache.h"

#include <algorithm>

namespace kv::storage {

KeyStateCache::KeyStateCache(size_t num_shards, size_t capacity_bytes)
    : shards_(num_shards), shard_budget_(capacity_bytes / std::max<size_t>(num_shards, 1)) {}

const KeyState* KeyStateCache::Find(size_t shard, absl::string_view key) {
  if (shard_budget_ == 0) return nullptr;
  Shard& s = shards_[shard];
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return &it->second;
}

void KeyStateCache::Set(size_t shard, absl::string_view key, const KeyState& state) {
  const size_t cost = key.size() + kEntryOverhead;
  if (cost > shard_budget_) return;  // Also: the cache is off.
  Shard& s = shards_[shard];
  auto [it, inserted] = s.map.try_emplace(key, state);
  if (!inserted) {
    it->second = state;
    return;
  }
  s.bytes += cost;
  entries_.fetch_add(1, std::memory_order_relaxed);
  while (s.bytes > shard_budget_) {
    auto victim = s.map.begin();
    if (victim->first == key) ++victim;  // Never the entry just set.
    s.bytes -= victim->first.size() + kEntryOverhead;
    s.map.erase(victim);
    entries_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void KeyStateCache::Update(size_t shard, absl::string_view key, const KeyState& state) {
  Shard& s = shards_[shard];
  auto it = s.map.find(key);
  if (it != s.map.end()) it->second = state;
}

}  // namespace kv::storage
