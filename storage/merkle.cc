#include "storage/merkle.h"

namespace kv::storage {

HashRange RangeOf(uint32_t depth, uint64_t index) {
  if (depth == 0) return HashRange{0, 0, false};
  const uint32_t shift = 64 - depth;
  HashRange r;
  r.lo = depth == 64 ? index : index << shift;
  const uint64_t last = uint64_t{1} << (depth == 64 ? 63 : depth);
  const bool is_last = depth == 64 ? index == ~uint64_t{0} : index + 1 == last;
  r.bounded = !is_last;
  if (r.bounded) r.hi = depth == 64 ? index + 1 : (index + 1) << shift;
  return r;
}

MerkleTree::MerkleTree(uint32_t leaf_depth) : leaf_depth_(leaf_depth) {
  for (uint32_t d = 0; d <= leaf_depth_; ++d) {
    levels_.push_back(std::make_unique<Node[]>(uint64_t{1} << d));
  }
}

void MerkleTree::Apply(uint32_t leaf, const Digest& delta, int64_t count_delta) {
  uint64_t index = leaf;
  for (int d = static_cast<int>(leaf_depth_); d >= 0; --d) {
    Node& n = levels_[d][index];
    n.hi.fetch_xor(delta.hi, std::memory_order_relaxed);
    n.lo.fetch_xor(delta.lo, std::memory_order_relaxed);
    n.count.fetch_add(count_delta, std::memory_order_relaxed);
    index >>= 1;
  }
}

Digest MerkleTree::NodeDigest(uint32_t depth, uint64_t index) const {
  const Node& n = levels_[depth][index];
  return Digest{n.hi.load(std::memory_order_relaxed),
                n.lo.load(std::memory_order_relaxed)};
}

int64_t MerkleTree::NodeCount(uint32_t depth, uint64_t index) const {
  return levels_[depth][index].count.load(std::memory_order_relaxed);
}

void MerkleTree::Reset(const std::vector<LeafValue>& leaves) {
  for (uint32_t d = 0; d <= leaf_depth_; ++d) {
    for (uint64_t i = 0; i < (uint64_t{1} << d); ++i) {
      levels_[d][i].hi = 0;
      levels_[d][i].lo = 0;
      levels_[d][i].count = 0;
    }
  }
  for (uint64_t i = 0; i < leaves.size() && i < num_leaves(); ++i) {
    if (leaves[i].digest.IsZero() && leaves[i].count == 0) continue;
    Apply(static_cast<uint32_t>(i), leaves[i].digest, leaves[i].count);
  }
}

}  // namespace kv::storage
