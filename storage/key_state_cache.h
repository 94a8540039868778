// KeyStateCache: what a write needs of the record it replaces (its version,
// whether it is a delete, its entry digest), kept in memory for recently
// written keys so that a write of such a key does not read the old record
// from the engine (the memtable lookup was a quarter of a write's CPU).
//
// Store keeps it exact: an entry is set only after the engine batch that
// stored that state succeeded, under the key's stripe lock, and only Store
// writes records. A key missing from the cache is read from the engine.
//
// The cache is sharded like Store's stripes; the caller must hold the lock
// that guards shard `s` (Store's stripe s) for every call on it. It is bounded
// in bytes (an estimate per entry); when a shard is over its share, entries
// are evicted in the hash table's own order, close to random.
#ifndef KV_STORAGE_KEY_STATE_CACHE_H_
#define KV_STORAGE_KEY_STATE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "storage/record.h"

namespace kv::storage {

// The newest stored record of a key, without its value.
struct KeyState {
  Version version;
  bool tombstone = false;
  Digest digest;  // EntryDigest of the record.
};

class KeyStateCache {
 public:
  // Estimated bytes of one entry besides its key (map slot, string header,
  // KeyState).
  static constexpr size_t kEntryOverhead = 80;

  // `capacity_bytes` 0 turns the cache off (Find never hits).
  KeyStateCache(size_t num_shards, size_t capacity_bytes);

  KeyStateCache(const KeyStateCache&) = delete;
  KeyStateCache& operator=(const KeyStateCache&) = delete;

  // The cached state of `key`, or nullptr. REQUIRES the lock of `shard`.
  const KeyState* Find(size_t shard, absl::string_view key);
  // Sets the state of `key`, evicting others while the shard is over its
  // budget. REQUIRES the lock of `shard`.
  void Set(size_t shard, absl::string_view key, const KeyState& state);
  // Sets the state of `key` only if it is cached (nothing is added or
  // evicted). REQUIRES the lock of `shard`.
  void Update(size_t shard, absl::string_view key, const KeyState& state);
  // Entries cached, over all shards.
  int64_t entries() const { return entries_.load(std::memory_order_relaxed); }

  int64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  int64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    absl::flat_hash_map<std::string, KeyState> map;
    size_t bytes = 0;
  };
  std::vector<Shard> shards_;
  const size_t shard_budget_;
  std::atomic<int64_t> hits_{0};
  std::atomic<int64_t> misses_{0};
  std::atomic<int64_t> entries_{0};
};

}  // namespace kv::storage

#endif  // KV_STORAGE_KEY_STATE_CACHE_H_
