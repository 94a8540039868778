// The in-memory Merkle tree over the hash space.
//
// Level d has 2^d nodes; node (d, i) covers the keys whose KeyHash has `i` as
// its top d bits. Level `leaf_depth` holds the leaves (persisted by Store in
// the Merkle column). A node's digest is the XOR of the entry digests below
// it and its count the number of entries, so a write updates one path of
// leaf_depth + 1 nodes with atomic XOR/add and nothing is rehashed.
//
// Thread safety: Apply and the readers are thread-safe and lock-free. A
// reader racing a writer may see a node half updated; callers treat digests
// as hints that a later exchange confirms. Reset REQUIRES no concurrent use.
#ifndef KV_STORAGE_MERKLE_H_
#define KV_STORAGE_MERKLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "storage/config.h"
#include "storage/record.h"

namespace kv::storage {

// The hash range [lo, hi) of node (depth, index); `bounded` is false when the
// range runs to the end of the hash space (then hi is meaningless).
struct HashRange {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool bounded = false;
  bool Contains(uint64_t h) const { return h >= lo && (!bounded || h < hi); }
};
// REQUIRES: depth <= 64 and index < 2^depth.
HashRange RangeOf(uint32_t depth, uint64_t index);

class MerkleTree {
 public:
  // REQUIRES: leaf_depth <= config::kMaxLeafDepth.
  explicit MerkleTree(uint32_t leaf_depth);

  uint32_t leaf_depth() const { return leaf_depth_; }
  uint64_t num_leaves() const { return uint64_t{1} << leaf_depth_; }
  uint32_t LeafOf(uint64_t key_hash) const {
    return leaf_depth_ == 0 ? 0 : static_cast<uint32_t>(key_hash >> (64 - leaf_depth_));
  }

  // XORs `delta` into the leaf and every ancestor; adds `count_delta`.
  void Apply(uint32_t leaf, const Digest& delta, int64_t count_delta);

  // REQUIRES: depth <= leaf_depth(), index < 2^depth.
  Digest NodeDigest(uint32_t depth, uint64_t index) const;
  int64_t NodeCount(uint32_t depth, uint64_t index) const;
  Digest Root() const { return NodeDigest(0, 0); }
  int64_t KeyCount() const { return NodeCount(0, 0); }

  // Replaces every node from `leaves` (size num_leaves()).
  void Reset(const std::vector<LeafValue>& leaves);

 private:
  struct Node {
    std::atomic<uint64_t> hi{0};
    std::atomic<uint64_t> lo{0};
    std::atomic<int64_t> count{0};
  };
  const uint32_t leaf_depth_;
  std::vector<std::unique_ptr<Node[]>> levels_;  // levels_[d] has 2^d nodes.
};

}  // namespace kv::storage

#endif  // KV_STORAGE_MERKLE_H_
